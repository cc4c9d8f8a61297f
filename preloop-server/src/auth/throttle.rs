//! Throttles for the routes that take no credential: sign-in and registration. A keyed token
//! bucket (the `governor` crate) per client address, per address and account, or per
//! address; failed sign-ins spend tokens, and an empty bucket blocks the key until it refills.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most keys remembered as blocked; past it the oldest blocks are forgotten.
const MAX_BLOCKED: usize = 100_000;

/// One throttle.
pub struct Throttle {
    limiter: DefaultKeyedRateLimiter<String>,
    blocked: Mutex<HashMap<String, Instant>>,
    clock: DefaultClock,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("keys", &self.limiter.len())
            .finish_non_exhaustive()
    }
}

impl Throttle {
    /// `burst` at once, then one more every `refill`.
    pub fn new(burst: u32, refill: Duration) -> Self {
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(refill)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            blocked: Mutex::new(HashMap::new()),
            clock: DefaultClock::default(),
        }
    }

    /// How much longer `key` is blocked, if it is.
    pub fn blocked(&self, key: &str) -> Option<Duration> {
        let mut blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        let until = *blocked.get(key)?;
        let left = until.checked_duration_since(Instant::now());
        if left.is_none() {
            blocked.remove(key);
        }
        left
    }

    /// Spends one token of `key` (an attempt, or a failure); when there is none, blocks the
    /// key until one is back and says for how long.
    pub fn spend(&self, key: &str) -> Result<(), Duration> {
        let Err(not_until) = self.limiter.check_key(&key.to_owned()) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(self.clock.now());
        let mut blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        if blocked.len() >= MAX_BLOCKED {
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
        }
        blocked.insert(key.to_owned(), Instant::now() + wait);
        Err(wait)
    }

    /// Forgets keys that have been quiet long enough to be full again.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        let now = Instant::now();
        self.blocked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, until| *until > now);
    }
}

/// The throttles of the routes that check passwords or take no credential.
#[derive(Debug)]
pub struct Throttles {
    /// Wrong passwords per client address and account: 5, then one a minute.
    pub sign_in_account: Throttle,
    /// Wrong passwords per account, from any address (slows a brute force spread over many
    /// addresses): 50, then one every 30 s.
    pub sign_in_anywhere: Throttle,
    /// Wrong passwords per client address: 30, then one every 10 s.
    pub sign_in_address: Throttle,
    /// Registrations per client address: 5, then one every 10 minutes.
    pub registration: Throttle,
    /// Users an organization tried to create whose address has an account (elsewhere, maybe):
    /// 10, then one a minute, so the answer cannot be used to list who has accounts.
    pub existing_accounts: Throttle,
}

impl Default for Throttles {
    fn default() -> Self {
        Self {
            sign_in_account: Throttle::new(5, Duration::from_secs(60)),
            sign_in_anywhere: Throttle::new(50, Duration::from_secs(30)),
            sign_in_address: Throttle::new(30, Duration::from_secs(10)),
            registration: Throttle::new(5, Duration::from_secs(600)),
            existing_accounts: Throttle::new(10, Duration::from_secs(60)),
        }
    }
}

/// The keys a password attempt is counted under.
#[derive(Debug, Clone)]
pub struct PasswordKeys {
    address: String,
    account: String,
    anywhere: String,
}

impl Throttles {
    /// The keys of a password attempt for `email` from `address` (an IPv6 address counts as
    /// its /64: one host usually has the whole prefix).
    pub fn password_keys(address: IpAddr, email: &str) -> PasswordKeys {
        let address = client_key(address);
        let anywhere = email.trim().to_lowercase();
        PasswordKeys {
            account: format!("{address}/{anywhere}"),
            address,
            anywhere,
        }
    }

    /// How long attempts with `keys` must wait, if they must.
    pub fn password_blocked(&self, keys: &PasswordKeys) -> Option<Duration> {
        self.sign_in_account
            .blocked(&keys.account)
            .or_else(|| self.sign_in_anywhere.blocked(&keys.anywhere))
            .or_else(|| self.sign_in_address.blocked(&keys.address))
    }

    /// Counts a wrong password; says how long the next attempt waits once a bucket is empty.
    pub fn wrong_password(&self, keys: &PasswordKeys) -> Result<(), Duration> {
        let account = self.sign_in_account.spend(&keys.account);
        let anywhere = self.sign_in_anywhere.spend(&keys.anywhere);
        let address = self.sign_in_address.spend(&keys.address);
        account.and(anywhere).and(address)
    }

    /// Forgets every throttle's idle keys.
    pub fn forget_idle(&self) {
        self.sign_in_account.forget_idle();
        self.sign_in_anywhere.forget_idle();
        self.sign_in_address.forget_idle();
        self.registration.forget_idle();
        self.existing_accounts.forget_idle();
    }
}

/// The key of a client address: itself, or its /64 for IPv6.
pub fn client_key(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let [a, b, c, d, ..] = v6.segments();
            format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_by_their_prefix() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(client_key(one), client_key(other));
        assert_eq!(client_key("192.0.2.1".parse().unwrap()), "192.0.2.1");
    }

    #[test]
    fn an_exhausted_key_is_blocked_until_it_refills() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        assert!(throttle.blocked("a").is_none());
        assert!(throttle.spend("a").is_ok());
        assert!(throttle.spend("a").is_ok());
        let wait = throttle.spend("a").unwrap_err();
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        assert!(throttle.blocked("a").is_some());
        assert!(throttle.blocked("b").is_none(), "keys are separate");
    }
}

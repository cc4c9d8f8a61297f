//! Per-principal rate limits: one token bucket per principal (governor's keyed limiter), shared
//! by the MCP endpoint and the REST API. A caller over the limit gets 429 with `Retry-After`.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use preloop_core::Principal;
use std::num::NonZeroU32;
use std::time::Duration;

/// Default steady rate per principal.
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 1000;
/// Default burst per principal.
pub const DEFAULT_BURST: u32 = 2000;

/// The buckets.
pub struct RateLimits {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("principals", &self.limiter.len())
            .finish()
    }
}

impl RateLimits {
    /// `per_second` requests per principal, up to `burst` at once (zeros count as one).
    pub fn new(per_second: u32, burst: u32) -> Self {
        let per_second = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.max(per_second.get())).unwrap_or(per_second);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(
                Quota::per_second(per_second).allow_burst(burst),
            ),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from the principal's bucket, or says how long to wait for one.
    pub fn check(&self, principal: &Principal) -> Result<(), Duration> {
        let key = format!("{}/{}", principal.organization_id, principal.id);
        self.limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Drops the buckets of principals who have been idle long enough to be full again.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_principal_has_its_own_bucket() {
        let limits = RateLimits::new(1, 3);
        let ann = Principal::new("ann", "acme");
        let bob = Principal::new("bob", "acme");
        for _ in 0..3 {
            assert!(limits.check(&ann).is_ok());
        }
        let wait = limits.check(&ann).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(
            limits.check(&bob).is_ok(),
            "another principal is not affected"
        );
        // The same id in another organization is another principal.
        assert!(limits.check(&Principal::new("ann", "globex")).is_ok());
    }
}

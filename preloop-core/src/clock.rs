//! Injected time: the [`Clock`] trait, the wall clock, and a manual clock for tests.
//!
//! Expiry, escalation and grants read the time through a clock, and waiting sleeps through it, so
//! tests move time forward instead of sleeping.

use chrono::{DateTime, Utc};
use event_listener::Event;
use futures::future::BoxFuture;
use std::sync::{Arc, Mutex, PoisonError};

/// Longest duration a policy, an approval or a grant may name: one year. Parsing refuses
/// longer ones ([`bounded_duration`]), so time arithmetic on them never overflows.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(366 * 24 * 3600);

/// `at` plus `duration`, saturating at the latest representable time instead of overflowing
/// (the one way to add a duration to a time in this crate: `DateTime + Duration` panics on
/// overflow).
pub fn later(at: DateTime<Utc>, duration: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|delta| at.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Serde for durations written like `"10m"` or `"1h 30m"` (humantime), refusing any longer
/// than [`MAX_DURATION`].
pub mod bounded_duration {
    use super::MAX_DURATION;
    use serde::{Deserializer, Serializer};
    use std::time::Duration;

    /// Parses a duration and checks its bound.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let duration = humantime_serde::deserialize::<Duration, D>(deserializer)?;
        check(duration).map_err(serde::de::Error::custom)
    }

    /// Writes a duration as humantime does.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        humantime_serde::serialize(duration, serializer)
    }

    /// A duration longer than [`MAX_DURATION`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
    #[error(
        "`{}` is longer than the limit of {}",
        humantime::format_duration(*.duration),
        humantime::format_duration(MAX_DURATION)
    )]
    pub struct TooLong {
        /// The duration given.
        pub duration: Duration,
    }

    /// `duration` if it is within [`MAX_DURATION`], else what is wrong with it.
    pub fn check(duration: Duration) -> Result<Duration, TooLong> {
        if duration > MAX_DURATION {
            Err(TooLong { duration })
        } else {
            Ok(duration)
        }
    }

    /// The same for optional durations.
    pub mod option {
        use serde::{Deserializer, Serializer};
        use std::time::Duration;

        /// Parses an optional duration and checks its bound.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Duration>, D::Error> {
            let duration = humantime_serde::option::deserialize::<Duration, D>(deserializer)?;
            duration
                .map(super::check)
                .transpose()
                .map_err(serde::de::Error::custom)
        }

        /// Writes an optional duration as humantime does.
        pub fn serialize<S: Serializer>(
            duration: &Option<Duration>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            humantime_serde::option::serialize(duration, serializer)
        }
    }
}

/// A source of the current time that can also sleep until a deadline.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// A future that completes once [`Clock::now`] has reached `deadline`.
    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()>;
}

/// The system clock. Sleeping uses a runtime-independent timer thread, so it works on any executor.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let wait = (deadline - Utc::now()).to_std().unwrap_or_default();
        Box::pin(futures_timer::Delay::new(wait))
    }
}

/// A clock that only moves when told to; sleepers wake when it passes their deadline.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
    moved: Arc<Event>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
            moved: Arc::new(Event::new()),
        }
    }

    /// Moves the clock forward by `by` and wakes every sleeper whose deadline has passed.
    pub fn advance(&self, by: chrono::Duration) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) += by;
        self.moved.notify(usize::MAX);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let clock = self.clone();
        Box::pin(async move {
            loop {
                // Listen before reading the time so an advance in between is not missed.
                let listener = clock.moved.listen();
                if clock.now() >= deadline {
                    return;
                }
                listener.await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_a_duration_saturates_instead_of_overflowing() {
        let now = Utc::now();
        assert_eq!(
            later(now, std::time::Duration::MAX),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            later(DateTime::<Utc>::MAX_UTC, std::time::Duration::from_secs(1)),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            later(now, std::time::Duration::from_secs(60)),
            now + chrono::Duration::seconds(60)
        );
    }
    use futures::FutureExt;

    #[test]
    fn manual_clock_sleepers_wake_only_when_the_deadline_passes() {
        let start = Utc::now();
        let clock = ManualClock::new(start);
        let mut sleep = clock.sleep_until(start + chrono::Duration::seconds(10));
        assert!((&mut sleep).now_or_never().is_none());
        clock.advance(chrono::Duration::seconds(5));
        assert!((&mut sleep).now_or_never().is_none());
        clock.advance(chrono::Duration::seconds(5));
        assert!(sleep.now_or_never().is_some());
    }
}

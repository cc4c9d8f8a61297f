//! Injected time: the [`Clock`] trait, the wall clock, and a manual clock for tests.
//!
//! Expiry, escalation and grants read the time through a clock, and waiting sleeps through it, so
//! tests move time forward instead of sleeping.

use chrono::{DateTime, Utc};
use event_listener::Event;
use futures::future::BoxFuture;
use std::sync::{Arc, Mutex, PoisonError};

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

//! Waiting for something that happens asynchronously (a replica hears a change, an upstream's
//! tools are discovered, a delivery gives up): `check` is polled every [`POLL`] until it holds,
//! and the test fails, naming what it waited for, once the deadline has passed.
//!
//! ```no_run
//! # async fn example(ready: impl Fn() -> bool, next: impl Fn() -> Option<u32>) {
//! use preloop_testkit::wait::{eventually, eventually_some};
//! eventually("the server is ready", async || ready()).await;
//! let value = eventually_some("a value arrives", async || next()).await;
//! # let _ = value;
//! # }
//! ```

use std::time::{Duration, Instant};

/// How long [`eventually`] and [`eventually_some`] wait.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// How often they check.
pub const POLL: Duration = Duration::from_millis(50);

/// Polls `check` until it returns `true`; panics naming `what` after [`DEADLINE`].
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    eventually_within(DEADLINE, what, async || check().await.then_some(())).await;
}

/// Polls `check` until it returns a value, and returns that value; panics naming `what` after
/// [`DEADLINE`].
pub async fn eventually_some<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    eventually_within(DEADLINE, what, check).await
}

/// [`eventually_some`] with another deadline than [`DEADLINE`]. The first check runs at once;
/// the test fails at the first check that finds nothing after the deadline.
pub async fn eventually_within<T>(
    deadline: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < until,
            "never happened within {deadline:?}: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

//! Where costly policy decisions are made: the [`DecisionRunner`] trait.
//!
//! Most decisions take well under a microsecond and are made on the caller's thread. A call
//! whose candidate rules include a costly condition (a comprehension, many scans: see
//! [`crate::policy::COSTLY_CONDITION`]) may take milliseconds, bounded by the evaluation
//! budget; a server that serves several organizations on few threads runs those apart, so one
//! organization's rules never hold up another's calls.

use crate::policy::Decision;
use async_trait::async_trait;

/// One decision to make, on whatever thread the runner chooses.
pub type DecisionJob = Box<dyn FnOnce() -> Decision + Send>;

/// Runs costly policy decisions.
#[async_trait]
pub trait DecisionRunner: Send + Sync {
    /// Makes `decide` for a call of `organization_id`; `None` if it could not be run, and the
    /// call then fails closed.
    async fn run(&self, organization_id: &str, decide: DecisionJob) -> Option<Decision>;
}

/// Makes every decision at once, on the caller's thread (the default: right for one tenant).
#[derive(Debug, Default, Clone, Copy)]
pub struct InlineDecisions;

#[async_trait]
impl DecisionRunner for InlineDecisions {
    async fn run(&self, _organization_id: &str, decide: DecisionJob) -> Option<Decision> {
        Some(decide())
    }
}

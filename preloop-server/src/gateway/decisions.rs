//! Costly policy decisions run on the blocking pool, one organization at a time.
//!
//! A decision whose rules include a costly CEL condition can take milliseconds (bounded by
//! the evaluation budget). Made on the async workers, a burst of them would hold up every
//! other request of the server, `/health` included. Here each runs on tokio's blocking pool,
//! behind two gates: at most one per organization at a time (so one organization's burst
//! queues behind itself), and at most `workers - 1` in all (so a core stays free for
//! everything else). Both gates are fair queues: an organization waits for at most one
//! decision of every other organization ahead of it.

use async_trait::async_trait;
use preloop_core::governor::{DecisionJob, DecisionRunner};
use preloop_core::policy::Decision;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Semaphore;

/// Runs costly decisions apart from the request threads.
#[derive(Debug)]
pub struct PooledDecisions {
    all: Arc<Semaphore>,
    organizations: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Default for PooledDecisions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new(cores.saturating_sub(1).max(1))
    }
}

impl PooledDecisions {
    /// At most `concurrent` decisions at once, in all.
    pub fn new(concurrent: usize) -> Self {
        Self {
            all: Arc::new(Semaphore::new(concurrent)),
            organizations: Mutex::new(HashMap::new()),
        }
    }

    fn gate_of(&self, organization_id: &str) -> Arc<Semaphore> {
        let mut gates = self
            .organizations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            gates
                .entry(organization_id.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(1))),
        )
    }

    /// Forgets an organization's gate once nobody holds or waits for it.
    fn release(&self, organization_id: &str, gate: Arc<Semaphore>) {
        let mut gates = self
            .organizations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The map's reference and `gate`: nobody else is waiting or running.
        if Arc::strong_count(&gate) == 2 {
            gates.remove(organization_id);
        }
    }
}

#[async_trait]
impl DecisionRunner for PooledDecisions {
    async fn run(&self, organization_id: &str, decide: DecisionJob) -> Option<Decision> {
        let gate = self.gate_of(organization_id);
        let permits = async {
            let own_turn = Arc::clone(&gate).acquire_owned().await.ok()?;
            let a_thread = Arc::clone(&self.all).acquire_owned().await.ok()?;
            Some((own_turn, a_thread))
        }
        .await;
        let decision = match permits {
            // INVARIANT (the gates hold): the permits go with the work, so a caller that stops
            // waiting (a client that disconnects) does not free them while the decision runs.
            Some(permits) => tokio::task::spawn_blocking(move || {
                let _permits = permits;
                decide()
            })
            .await
            .ok(),
            None => None,
        };
        self.release(organization_id, gate);
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use preloop_core::policy::{Effect, Reason};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn allow() -> Decision {
        Decision {
            effect: Effect::Allow,
            reason: Reason::Default,
            shadow: None,
            candidates: 0,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_decision_per_organization_runs_at_a_time() {
        let runner = Arc::new(PooledDecisions::new(4));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut calls = Vec::new();
        for _ in 0..6 {
            let (runner, running, most) = (runner.clone(), running.clone(), most.clone());
            calls.push(tokio::spawn(async move {
                runner
                    .run(
                        "acme",
                        Box::new(move || {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(20));
                            running.fetch_sub(1, Ordering::SeqCst);
                            allow()
                        }),
                    )
                    .await
            }));
        }
        for call in calls {
            assert!(call.await.unwrap().is_some());
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert!(runner.organizations.lock().unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_decision_is_none() {
        let runner = PooledDecisions::new(1);
        let failed = runner
            .run(
                "acme",
                Box::new(|| std::panic::panic_any("the decision panicked")),
            )
            .await;
        assert!(failed.is_none());
    }
}

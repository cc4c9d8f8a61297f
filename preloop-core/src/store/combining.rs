//! Group commit for the audit log: concurrent appends share one store write.
//!
//! Each caller queues its entries and waits for the write lock; whoever holds it writes every
//! queued entry in one `append` (one transaction in a database store) and hands each caller its
//! own events. Every caller still returns only after its events are stored, so durability and the
//! chain order are unchanged; only the number of transactions drops under load.

use super::{AuditStore, StoreError};
use crate::audit::{AuditEntry, AuditEvent};
use async_trait::async_trait;
use futures::channel::oneshot;
use futures::lock::Mutex as AsyncMutex;
use std::sync::{Mutex, PoisonError};

type Reply = oneshot::Sender<Result<Vec<AuditEvent>, StoreError>>;

/// An [`AuditStore`] that batches concurrent appends into single writes of the inner store.
pub struct GroupCommitAudit<S> {
    inner: S,
    queue: Mutex<Vec<(Vec<AuditEntry>, Reply)>>,
    writer: AsyncMutex<()>,
}

impl<S> std::fmt::Debug for GroupCommitAudit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupCommitAudit")
    }
}

impl<S: AuditStore> GroupCommitAudit<S> {
    /// Wraps a store.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            queue: Mutex::new(Vec::new()),
            writer: AsyncMutex::new(()),
        }
    }
}

#[async_trait]
impl<S: AuditStore> AuditStore for GroupCommitAudit<S> {
    async fn append(&self, entries: Vec<AuditEntry>) -> Result<Vec<AuditEvent>, StoreError> {
        let (reply, mut answer) = oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((entries, reply));
        let _writing = self.writer.lock().await;
        // An earlier writer may have stored our entries while we waited for the lock.
        if let Ok(Some(result)) = answer.try_recv() {
            return result;
        }
        let jobs = std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner));
        let sizes: Vec<usize> = jobs.iter().map(|(entries, _)| entries.len()).collect();
        let (batches, replies): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        let result = self
            .inner
            .append(batches.into_iter().flatten().collect())
            .await;
        match result {
            Ok(events) => {
                let mut events = events.into_iter();
                for (size, reply) in sizes.into_iter().zip(replies) {
                    let _ = reply.send(Ok(events.by_ref().take(size).collect()));
                }
            }
            Err(error) => {
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
        answer.try_recv().ok().flatten().unwrap_or_else(|| {
            Err(StoreError::Backend(
                "the audit batch lost this append".to_owned(),
            ))
        })
    }

    async fn events(
        &self,
        organization_id: &str,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner
            .events(organization_id, from_sequence, limit)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEventKind, verify_chain};
    use crate::store::MemoryStore;
    use std::sync::Arc;
    use uuid::Uuid;

    #[test]
    fn concurrent_appends_each_get_their_own_events_in_one_chain() {
        let store = Arc::new(GroupCommitAudit::new(MemoryStore::new()));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let entries: Vec<AuditEntry> = (0..=(i % 3))
                            .map(|_| {
                                AuditEntry::new(
                                    "acme",
                                    chrono::Utc::now(),
                                    AuditEventKind::CallRejected {
                                        call_id: Uuid::new_v4(),
                                        reason: format!("thread {t}"),
                                    },
                                )
                            })
                            .collect();
                        let expected = entries.clone();
                        let events = futures::executor::block_on(store.append(entries)).unwrap();
                        assert_eq!(events.len(), expected.len());
                        for (event, entry) in events.iter().zip(&expected) {
                            assert_eq!(event.kind, entry.kind, "each caller gets its own events");
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let events = futures::executor::block_on(store.events("acme", 1, 0)).unwrap();
        assert_eq!(
            verify_chain(&events).unwrap().events,
            8 * (9 + 8 * 2 + 8 * 3)
        );
    }
}

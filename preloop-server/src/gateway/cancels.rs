//! The fast path's calls in flight, by session and JSON-RPC id, so a client's
//! `notifications/cancelled` reaches the call it names ([`crate::gateway::fastpath`] answers
//! these calls, so rmcp does not know them). A cancelled call's upstream is told, and the call
//! ends as cancelled (its audit record says so).

use rmcp::model::RequestId;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio_util::sync::CancellationToken;

/// Most calls tracked at once; past it new calls cannot be cancelled (they still run).
const MAX_TRACKED: usize = 100_000;

/// The calls in flight on this replica; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Cancels(Arc<Mutex<HashMap<(String, RequestId), CancellationToken>>>);

/// A POSTed `notifications/cancelled`.
#[derive(Debug, Deserialize)]
struct Cancelled {
    method: String,
    params: CancelledParams,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelledParams {
    request_id: RequestId,
}

impl Cancels {
    /// Tracks call `id` of `session` until the returned guard is dropped; its token is
    /// cancelled if the client cancels the call.
    pub fn track(&self, session: &str, id: &RequestId) -> (CancellationToken, Tracked) {
        let token = CancellationToken::new();
        let key = (session.to_owned(), id.clone());
        let mut calls = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if calls.len() < MAX_TRACKED {
            calls.insert(key.clone(), token.clone());
        }
        (
            token,
            Tracked {
                cancels: self.clone(),
                key,
            },
        )
    }

    /// Cancels the call of `session` that `body` (a `notifications/cancelled`) names; whether
    /// it was one of these calls.
    pub fn cancel(&self, session: &str, body: &[u8]) -> bool {
        let Ok(cancelled) = serde_json::from_slice::<Cancelled>(body) else {
            return false;
        };
        if cancelled.method != "notifications/cancelled" {
            return false;
        }
        let key = (session.to_owned(), cancelled.params.request_id);
        let token = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        token.map(|token| token.cancel()).is_some()
    }
}

/// A tracked call; it stops being tracked when this is dropped.
#[derive(Debug)]
pub struct Tracked {
    cancels: Cancels,
    key: (String, RequestId),
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.cancels
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancellation_reaches_only_the_call_of_its_session() {
        let cancels = Cancels::default();
        let (token, tracked) = cancels.track("s1", &RequestId::Number(7));
        let body = |id: u32| {
            format!(
                r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{id}}}}}"#
            )
        };
        assert!(
            !cancels.cancel("s2", body(7).as_bytes()),
            "another session's"
        );
        assert!(!cancels.cancel("s1", body(8).as_bytes()), "another call");
        assert!(!cancels.cancel("s1", b"{\"jsonrpc\":\"2.0\",\"method\":\"ping\"}"));
        assert!(!token.is_cancelled());
        assert!(cancels.cancel("s1", body(7).as_bytes()));
        assert!(token.is_cancelled());
        drop(tracked);
        assert!(
            !cancels.cancel("s1", body(7).as_bytes()),
            "no longer in flight"
        );
    }
}

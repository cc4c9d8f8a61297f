//! MCP clients told when their tool lists change (`notifications/tools/list_changed`): an
//! upstream's tools discovered or gone, a tool enabled or hidden, a policy that hides tools.
//!
//! Each session's peer is remembered, by organization, when its client finishes initializing
//! or lists tools (sessions resumed after a restart do the latter); one task waits for the
//! registry's changes and tells the sessions of the organizations concerned. The message goes
//! on the session's standalone stream, for clients that keep one open.

use preloop_core::Principal;
use preloop_core::registry::{Registry, ToolChanges};
use rmcp::RoleServer;
use rmcp::service::Peer;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long changes are gathered before clients are told (a scan registers many tools at once).
const SETTLE: Duration = Duration::from_millis(200);
/// How long one session's message may take to be accepted; a session that does not take it
/// is forgotten.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Most sessions remembered per organization; past it the organization's sessions are
/// forgotten (they are remembered again when they next list tools).
const MAX_SESSIONS: usize = 10_000;

/// One organization's sessions, by session id.
type Sessions = HashMap<String, Peer<RoleServer>>;

/// The sessions to tell, by organization.
#[derive(Debug, Clone, Default)]
pub struct ToolListeners(Arc<Mutex<HashMap<String, Sessions>>>);

impl ToolListeners {
    /// Remembers the session `session_id` of `principal`'s organization.
    pub fn listen(&self, principal: &Principal, session_id: &str, peer: Peer<RoleServer>) {
        let mut listeners = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let sessions = listeners
            .entry(principal.organization_id.clone())
            .or_default();
        if sessions.len() >= MAX_SESSIONS && !sessions.contains_key(session_id) {
            sessions.clear();
        }
        sessions.insert(session_id.to_owned(), peer);
    }

    /// Tells every session `changes` concerns; sessions that have gone are forgotten.
    pub fn tell(&self, changes: &ToolChanges) {
        let peers: Vec<(String, String, Peer<RoleServer>)> = {
            let listeners = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            listeners
                .iter()
                .filter(|(organization, _)| changes.concerns(organization))
                .flat_map(|(organization, sessions)| {
                    sessions
                        .iter()
                        .map(|(id, peer)| (organization.clone(), id.clone(), peer.clone()))
                })
                .collect()
        };
        // Each session on its own, with a deadline: a client that never reads its stream
        // holds up nobody else's message.
        for (organization, session, peer) in peers {
            let listeners = self.clone();
            tokio::spawn(async move {
                let told = !peer.is_transport_closed()
                    && tokio::time::timeout(SEND_TIMEOUT, peer.notify_tool_list_changed())
                        .await
                        .is_ok_and(|sent| sent.is_ok());
                if !told {
                    let mut listeners = listeners.0.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(sessions) = listeners.get_mut(&organization) {
                        sessions.remove(&session);
                    }
                }
            });
        }
    }

    /// Tells sessions about the registry's changes until `shutdown`.
    pub fn follow(&self, registry: Arc<Registry>, shutdown: CancellationToken) {
        let listeners = self.clone();
        tokio::spawn(async move {
            loop {
                let mut changes = tokio::select! {
                    () = shutdown.cancelled() => return,
                    changes = registry.changes() => changes,
                };
                tokio::time::sleep(SETTLE).await;
                // Whatever else changed meanwhile goes in the same message.
                if let Some(more) = futures::FutureExt::now_or_never(registry.changes()) {
                    changes.everyone |= more.everyone;
                    changes.organizations.extend(more.organizations);
                }
                listeners.tell(&changes);
            }
        });
    }
}

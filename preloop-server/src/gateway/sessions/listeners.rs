//! MCP clients told when their tool lists change (`notifications/tools/list_changed`): an
//! upstream's tools discovered or gone, a tool enabled or hidden, a policy that hides tools;
//! their prompts or resources (`notifications/prompts/list_changed`, `.../resources/list_changed`);
//! and when a resource they subscribed to changes (`notifications/resources/updated`).
//!
//! Each session's peer is remembered in [`Sessions`], with its organization, when its client
//! finishes initializing or lists tools (sessions resumed after a restart do the latter); one
//! task waits for the registry's changes and tells the sessions of the organizations
//! concerned. The message goes on the session's standalone stream, for clients that keep one
//! open. The same changes go out as [`Change`]s to the `subscriptions/listen` streams of
//! 2026-07-28 clients ([`ToolListeners::changes`]), which have no session.

use super::{Listener, Sessions};
use crate::gateway::upstream::{Announced, Announcement};
use preloop_core::Principal;
use preloop_core::registry::{Registry, ToolChanges};
use rmcp::RoleServer;
use rmcp::model::{
    PromptListChangedNotification, ResourceListChangedNotification, ResourceUpdatedNotification,
    ResourceUpdatedNotificationParam, ServerNotification, ToolListChangedNotification,
};
use rmcp::service::Peer;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// How long changes are gathered before clients are told (a scan registers many tools at once).
const SETTLE: Duration = Duration::from_millis(200);
/// How long one session's message may take to be accepted; a session that does not take it
/// is forgotten.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How many changes a slow `subscriptions/listen` stream may fall behind before it misses
/// some.
const CHANGES_BUFFERED: usize = 256;

/// A change to tell the `subscriptions/listen` streams of an organization (or of every one).
#[derive(Debug, Clone)]
pub struct Change {
    /// The organization concerned; `None` for every one (the shared built-in tools).
    pub organization: Option<String>,
    /// What to tell them.
    pub notification: ServerNotification,
}

impl Change {
    /// Whether the change concerns `organization_id`.
    pub fn concerns(&self, organization_id: &str) -> bool {
        self.organization
            .as_deref()
            .is_none_or(|organization| organization == organization_id)
    }
}

/// The sessions to tell: those of [`Sessions`] with a peer; and the listen streams.
#[derive(Debug, Clone)]
pub struct ToolListeners {
    sessions: Sessions,
    changes: broadcast::Sender<Change>,
}

impl ToolListeners {
    /// Listeners among `sessions`.
    pub fn new(sessions: Sessions) -> Self {
        Self {
            sessions,
            changes: broadcast::channel(CHANGES_BUFFERED).0,
        }
    }

    /// The changes from now on, for a `subscriptions/listen` stream.
    pub fn changes(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Tells the listen streams `notification`, for `organization` (`None`: every one).
    fn publish(&self, organization: Option<&str>, notification: &ServerNotification) {
        // Nobody listening is no error.
        let _ = self.changes.send(Change {
            organization: organization.map(str::to_owned),
            notification: notification.clone(),
        });
    }

    /// Remembers the peer of session `session_id` of `principal`'s organization.
    pub fn listen(&self, principal: &Principal, session_id: &str, peer: Peer<RoleServer>) {
        let listener = Listener {
            organization_id: principal.organization_id.clone(),
            peer,
        };
        self.sessions
            .update(session_id, |session| session.listener = Some(listener));
    }

    /// Tells every session `changes` concerns; sessions that have gone stop listening.
    pub fn tell(&self, changes: &ToolChanges) {
        let peers = self
            .sessions
            .listeners(|organization| changes.concerns(organization));
        let notification =
            ServerNotification::ToolListChangedNotification(ToolListChangedNotification::default());
        if changes.everyone {
            self.publish(None, &notification);
        } else {
            for organization in &changes.organizations {
                self.publish(Some(organization), &notification);
            }
        }
        self.send_each(peers, &notification);
    }

    /// Sends `notification` to each of `peers`, each on its own and with a deadline (a client
    /// that never reads its stream holds up nobody else's message); sessions that do not take
    /// it stop listening.
    fn send_each(&self, peers: Vec<(String, Peer<RoleServer>)>, notification: &ServerNotification) {
        for (session, peer) in peers {
            let sessions = self.sessions.clone();
            let notification = notification.clone();
            tokio::spawn(async move {
                let told = !peer.is_transport_closed()
                    && tokio::time::timeout(SEND_TIMEOUT, peer.send_notification(notification))
                        .await
                        .is_ok_and(|sent| sent.is_ok());
                if !told {
                    sessions.update(&session, |session| session.listener = None);
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

    /// Tells the sessions concerned what the upstreams announce, until `shutdown`: a
    /// resource's update those subscribed to it, a change of prompts or resources every
    /// session of the organization.
    pub fn follow_upstreams(
        &self,
        mut announcements: broadcast::Receiver<Announcement>,
        shutdown: CancellationToken,
    ) {
        let listeners = self.clone();
        tokio::spawn(async move {
            loop {
                let announcement = tokio::select! {
                    () = shutdown.cancelled() => return,
                    announcement = announcements.recv() => announcement,
                };
                let Announcement {
                    organization_id,
                    what,
                } = match announcement {
                    Ok(announcement) => announcement,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            missed,
                            "upstream announcements dropped: listeners fell behind"
                        );
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let everyone = || listeners.sessions.listeners(|org| org == organization_id);
                let (peers, notification) = match what {
                    Announced::ResourceUpdated(uri) => (
                        listeners.sessions.subscribers(&organization_id, &uri),
                        ServerNotification::ResourceUpdatedNotification(
                            ResourceUpdatedNotification::new(
                                ResourceUpdatedNotificationParam::new(uri),
                            ),
                        ),
                    ),
                    Announced::PromptsChanged => (
                        everyone(),
                        ServerNotification::PromptListChangedNotification(
                            PromptListChangedNotification::default(),
                        ),
                    ),
                    Announced::ResourcesChanged => (
                        everyone(),
                        ServerNotification::ResourceListChangedNotification(
                            ResourceListChangedNotification::default(),
                        ),
                    ),
                };
                listeners.publish(Some(&organization_id), &notification);
                listeners.send_each(peers, &notification);
            }
        });
    }
}

//! The server's live events, for the unified WebSocket ([`crate::web::ws`]): one in-process broadcast
//! bus with five topics. `approvals` hears every request opened, escalated or decided (from the
//! governor's notifications here, and from other replicas through the database's approval
//! notifications); `activity` hears the audit events of governed calls (decisions, executions)
//! as they are appended (approval state changes come on `approvals`); `system` hears state
//! changes of upstream servers (tools registered after a scan, a server unavailable) and of the
//! server itself (shutting down); `flow_executions` is reserved for flow runs, which nothing in
//! this server starts yet; `issues` hears tracker events (webhook deliveries, normalized) and
//! synchronizations. Each event names its organization; delivery is filtered per subscriber.

use async_trait::async_trait;
use chrono::Utc;
use preloop_core::Principal;
use preloop_core::approval::ApprovalRequest;
use preloop_core::audit::{AuditEntry, AuditEvent};
use preloop_core::governor::{Notification, Notifier, NotifyError};
use preloop_core::store::{AuditStore, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Events a slow subscriber may fall behind by before it misses some (it is told so).
const BACKLOG: usize = 1024;

/// A topic subscribers choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// Approval requests opened, escalated, decided.
    Approvals,
    /// Audit events: every governed call and administrative change.
    Activity,
    /// Flow runs.
    FlowExecutions,
    /// Issues changed in a tracker (webhook deliveries: `issue.created`, `issue.updated`,
    /// `issue.closed`, `issue.commented`) and trackers' synchronizations (`sync.progress`,
    /// `sync.finished`).
    Issues,
    /// The server's own state.
    System,
}

/// One event.
#[derive(Debug, Clone)]
pub struct Event {
    /// Its topic.
    pub topic: Topic,
    /// The organization it belongs to (`None`: every organization's).
    pub organization_id: Option<String>,
    /// For approval events: the request, whose requester, eligible approvers and admins may
    /// see it (as over REST).
    pub request: Option<Arc<ApprovalRequest>>,
    /// The event's JSON.
    pub data: Value,
}

impl Event {
    /// Whether `principal` may receive it: their organization's, and for approvals the
    /// requester, an eligible approver of the request or an admin; activity (the audit trail)
    /// and an organization's system events (upstream errors) for admins only.
    pub fn visible_to(&self, principal: &Principal) -> bool {
        if self
            .organization_id
            .as_ref()
            .is_some_and(|org| *org != principal.organization_id)
        {
            return false;
        }
        match self.topic {
            Topic::Approvals => {
                principal.has_role("admin")
                    || self.request.as_ref().is_some_and(|request| {
                        request.requester.id == principal.id
                            || request
                                .policy
                                .is_approver(principal, request.escalation_stage)
                    })
            }
            Topic::Activity => principal.has_role("admin"),
            Topic::System => self.organization_id.is_none() || principal.has_role("admin"),
            Topic::FlowExecutions | Topic::Issues => true,
        }
    }
}

/// The bus; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BACKLOG).0,
        }
    }
}

impl EventBus {
    /// Whether anyone listens (so publishers can skip building events nobody reads).
    pub fn has_subscribers(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Publishes an event to every current subscriber.
    pub fn publish(&self, event: Event) {
        // No receivers is not an error: nobody is watching.
        let _ = self.sender.send(Arc::new(event));
    }

    /// A new subscription, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }

    /// Publishes what an approval request is now.
    pub fn approval(&self, event: &str, request: &ApprovalRequest) {
        if !self.has_subscribers() {
            return;
        }
        self.publish(Event {
            topic: Topic::Approvals,
            organization_id: Some(request.organization_id.clone()),
            request: Some(Arc::new(request.clone())),
            data: json!({
                "event": event,
                "id": request.id,
                "state": request.state,
                "tool": request.tool.exposed_name,
                "requester": request.requester.display_name(),
                "created_at": request.created_at,
                "expires_at": request.expires_at,
            }),
        });
    }

    /// Publishes a state change of the server (or, with an organization, of one of its
    /// upstream servers): `event` names it, `details` add to it.
    pub fn system(&self, organization_id: Option<&str>, event: &str, details: Value) {
        if !self.has_subscribers() {
            return;
        }
        let mut data = json!({"event": event, "at": Utc::now()});
        if let (Some(data), Value::Object(details)) = (data.as_object_mut(), details) {
            data.extend(details);
        }
        self.publish(Event {
            topic: Topic::System,
            organization_id: organization_id.map(str::to_owned),
            request: None,
            data,
        });
    }
}

/// Publishes approval notifications on the bus, then hands them to the channels.
#[derive(Debug)]
pub struct PublishingNotifier<N> {
    /// The bus.
    pub bus: EventBus,
    /// The channels.
    pub inner: Arc<N>,
}

#[async_trait]
impl<N: Notifier + 'static> Notifier for PublishingNotifier<N> {
    async fn notify(&self, notification: Notification<'_>) -> Result<(), NotifyError> {
        match notification {
            Notification::Created { request, .. } => self.bus.approval("created", request),
            Notification::Escalated { request, .. } => self.bus.approval("escalated", request),
            Notification::Decided { request } => self.bus.approval("decided", request),
            _ => {}
        }
        self.inner.notify(notification).await
    }
}

/// Publishes every appended audit event on the `activity` topic.
#[derive(Debug)]
pub struct PublishingAudit<S> {
    /// The bus.
    pub bus: EventBus,
    /// The audit store.
    pub inner: Arc<S>,
}

#[async_trait]
impl<S: AuditStore + 'static> AuditStore for PublishingAudit<S> {
    async fn append(&self, entries: Vec<AuditEntry>) -> Result<Vec<AuditEvent>, StoreError> {
        let events = self.inner.append(entries).await?;
        if self.bus.has_subscribers() {
            for event in &events {
                self.bus.publish(Event {
                    topic: Topic::Activity,
                    organization_id: Some(event.organization_id.clone()),
                    request: None,
                    data: serde_json::to_value(event).unwrap_or(Value::Null),
                });
            }
        }
        Ok(events)
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

//! Approval channels: how approvers hear about requests, and how they answer from where they
//! are. The governor calls one [`Notifier`]; [`Channels`] hands each notification to the channels
//! the request's approval policy names (and its escalation stages, once reached):
//!
//! - `web`: the inbox and the REST API; nothing to deliver.
//! - `email` ([`email`]): SMTP, text and HTML, with the one-click decision page's link.
//! - `slack`, `mattermost`, `telegram`: a message with Approve/Decline buttons; the button
//!   press comes back to an endpoint of ours ([`routes`]) that verifies it came from the platform,
//!   maps the platform's user to an approver ([`decide`]), votes as that approver, and the
//!   message is updated to show the outcome.
//! - `webhook`: signed JSON for the approvers' own systems.
//!
//! Arguments leave through a channel only with secret-looking values redacted ([`Redactor`]).
//! Delivery runs in the background, retried, and every message is recorded
//! ([`deliveries`]): a slow or failing channel never holds up or loses a request, and its
//! failures are visible in the request's channel history.

mod decide;
mod deliveries;
mod email;
mod error;
mod mattermost;
mod message;
mod redact;
mod slack;
mod telegram;
mod webhook;

pub use email::EmailConfig;
pub use error::ChannelsError;
pub use mattermost::MattermostConfig;
pub(crate) use message::outcome as outcome_text;
pub use redact::Redactor;
pub use slack::{SlackConfig, slack_signature};
pub use telegram::TelegramConfig;
pub use webhook::{WebhookConfig, sign};

use crate::app::Approvals;
use crate::auth::tokens::TokenKeys;
use async_trait::async_trait;
use deliveries::Deliveries;
use preloop_core::approval::ApprovalRequest;
use preloop_core::documents::ChannelMessage;
use preloop_core::governor::{Notification, Notifier, NotifyError};
use preloop_core::store::{AccountStore, DocumentStore, StoreError};
use preloop_store::Database;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What happened to a request, owned, for delivery in the background.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// `created`, `escalated-<stage>`, `decided`.
    pub(crate) name: String,
    pub(crate) request: ApprovalRequest,
    /// The decision-link secret (only when the request was created).
    pub(crate) token: Option<String>,
    /// The escalation stage that started (0-based), for `escalated-*`.
    pub(crate) stage: Option<usize>,
}

impl Event {
    fn of(notification: &Notification<'_>) -> Option<Self> {
        let (name, request, token, stage) = match *notification {
            Notification::Created { request, token } => {
                ("created".to_owned(), request, Some(token.to_owned()), None)
            }
            Notification::Escalated { request, stage } => (
                format!("escalated-{}", stage + 1),
                request,
                None,
                Some(stage),
            ),
            Notification::Decided { request } => ("decided".to_owned(), request, None, None),
            _ => return None,
        };
        Some(Self {
            name,
            request: request.clone(),
            token,
            stage,
        })
    }

    pub(crate) fn is_decided(&self) -> bool {
        self.name == "decided"
    }

    /// What channels say about it (an escalation's title says so).
    pub(crate) fn summary(&self, redactor: &Redactor) -> message::Summary {
        message::Summary {
            escalated: self.stage.is_some(),
            ..message::Summary::of(&self.request, redactor)
        }
    }
}

/// What every channel shares: the delivery log, redaction, links, one HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub(crate) deliveries: Deliveries,
    pub(crate) redactor: Redactor,
    /// The server's public base URL, without a trailing slash.
    pub(crate) public_url: String,
    pub(crate) http: reqwest::Client,
    /// Signs personal decision links.
    pub(crate) tokens: TokenKeys,
}

impl Context {
    /// The public decision page of a request (the token is the credential).
    pub(crate) fn decision_page(&self, request_id: Uuid, token: &str) -> String {
        format!("{}/approval/{request_id}?token={token}", self.public_url)
    }

    /// The decision page with a personal link for `user_id`, valid until the request expires.
    pub(crate) fn approver_page(&self, request: &ApprovalRequest, user_id: &str) -> String {
        let token = self.tokens.issue_approver(
            user_id,
            &request.organization_id,
            request.id,
            request.expires_at,
        );
        self.decision_page(request.id, &token)
    }

    /// The request in the console (for approvers who sign in).
    pub(crate) fn console_page(&self, request_id: Uuid) -> String {
        format!("{}/console/#/approvals/{request_id}", self.public_url)
    }

    /// An endpoint of ours under `/api/v1/channels/`.
    pub(crate) fn callback(&self, path: &str) -> String {
        format!("{}/api/v1/channels/{path}", self.public_url)
    }
}

/// A configured channel.
#[async_trait]
pub(crate) trait Channel: Send + Sync {
    /// The name approval policies use.
    fn name(&self) -> &'static str;

    /// Delivers (and records) what `event` means for this channel; failures are logged and
    /// recorded, never returned.
    async fn send(&self, event: &Event);
}

/// Keeps each request's deliveries on a channel in order: an event's task waits for the task of
/// the request's previous event on that channel (a decision's update must find the first message
/// sent). The chain ends with the decision, so only undecided requests have an entry.
#[derive(Debug, Default)]
struct InOrder(std::sync::Mutex<HashMap<(Uuid, &'static str), oneshot::Receiver<()>>>);

impl InOrder {
    /// The previous event's completion (if any), and the sender this event's task signals.
    fn next(
        &self,
        request: Uuid,
        channel: &'static str,
        last: bool,
    ) -> (Option<oneshot::Receiver<()>>, oneshot::Sender<()>) {
        let mut chains = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = chains.remove(&(request, channel));
        let (done, finished) = oneshot::channel();
        if !last {
            chains.insert((request, channel), finished);
        }
        (previous, done)
    }
}

/// `[channels]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelsSection {
    /// Key patterns (case-insensitive globs) whose values channels never send; unset: the
    /// defaults in [`redact::DEFAULT_REDACT_KEYS`].
    pub redact_keys: Option<Vec<String>>,
    /// Organizations whose requests the channels carry (ids; `"*"`: every organization);
    /// default: the default organization only, so self-registered organizations cannot post
    /// into the operator's channels.
    pub organizations: Option<Vec<String>>,
    /// `[channels.webhook]`.
    pub webhook: Option<WebhookConfig>,
    /// `[channels.email]`.
    pub email: Option<EmailConfig>,
    /// `[channels.slack]`.
    pub slack: Option<SlackConfig>,
    /// `[channels.mattermost]`.
    pub mattermost: Option<MattermostConfig>,
    /// `[channels.telegram]`.
    pub telegram: Option<TelegramConfig>,
}

/// The configured channels.
pub struct Channels {
    context: Context,
    /// Organizations whose requests the channels carry (`*`: all).
    organizations: Vec<String>,
    in_order: InOrder,
    all: Vec<Arc<dyn Channel>>,
    slack: Option<Arc<slack::Slack>>,
    mattermost: Option<Arc<mattermost::Mattermost>>,
    telegram: Option<Arc<telegram::Telegram>>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.all.iter().map(|c| c.name()))
            .finish()
    }
}

impl Channels {
    /// Channels from `[channels]`; `public_url` is the base of links and callbacks; `store`
    /// keeps the delivery log and finds approvers' addresses; `tokens` signs personal decision
    /// links. The error names what is wrong.
    pub fn new<S>(
        section: &ChannelsSection,
        public_url: &str,
        store: Arc<S>,
        tokens: TokenKeys,
    ) -> Result<Self, ChannelsError>
    where
        S: DocumentStore<ChannelMessage> + AccountStore + 'static,
    {
        let redactor = match &section.redact_keys {
            Some(keys) => Redactor::new(keys)?,
            None => Redactor::default(),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| ChannelsError::Client { source })?;
        let context = Context {
            deliveries: Deliveries::new(store.clone()),
            redactor,
            public_url: public_url.trim_end_matches('/').to_owned(),
            http,
            tokens,
        };
        let mut all: Vec<Arc<dyn Channel>> = Vec::new();
        if let Some(config) = &section.webhook {
            all.push(Arc::new(webhook::Webhook::new(
                config.clone(),
                context.clone(),
            )));
        }
        if let Some(config) = &section.email {
            all.push(Arc::new(email::Email::new(
                config.clone(),
                context.clone(),
                store,
            )?));
        }
        let slack = match &section.slack {
            Some(config) => Some(Arc::new(slack::Slack::new(
                config.clone(),
                context.clone(),
            )?)),
            None => None,
        };
        let mattermost = section
            .mattermost
            .as_ref()
            .map(|config| Arc::new(mattermost::Mattermost::new(config.clone(), context.clone())));
        let telegram = match &section.telegram {
            Some(config) => Some(Arc::new(telegram::Telegram::new(
                config.clone(),
                context.clone(),
            )?)),
            None => None,
        };
        all.extend(slack.iter().map(|c| c.clone() as Arc<dyn Channel>));
        all.extend(mattermost.iter().map(|c| c.clone() as Arc<dyn Channel>));
        all.extend(telegram.iter().map(|c| c.clone() as Arc<dyn Channel>));
        Ok(Self {
            context,
            organizations: section
                .organizations
                .clone()
                .unwrap_or_else(|| vec![crate::tenancy::DEFAULT_ORGANIZATION.to_owned()]),
            in_order: InOrder::default(),
            all,
            slack,
            mattermost,
            telegram,
        })
    }

    /// Starts what channels run on their own (Telegram's webhook registration or long polling),
    /// until `shutdown`.
    pub fn start(&self, callbacks: &Callbacks, shutdown: &CancellationToken) {
        if let Some(telegram) = &self.telegram {
            telegram.start(callbacks.clone(), shutdown.clone());
        }
    }

    /// The redaction every channel applies (the decision page applies it too).
    pub fn redactor(&self) -> &Redactor {
        &self.context.redactor
    }

    /// The request's channel history (every message sent or tried, oldest event first).
    pub async fn history(
        &self,
        organization_id: &str,
        request_id: Uuid,
    ) -> Result<Vec<ChannelMessage>, StoreError> {
        self.context
            .deliveries
            .history(organization_id, request_id)
            .await
    }
}

#[async_trait]
impl Notifier for Channels {
    async fn notify(&self, notification: Notification<'_>) -> Result<(), NotifyError> {
        let Some(event) = Event::of(&notification) else {
            return Ok(());
        };
        let request = &event.request;
        // The channels are the server operator's: other organizations (e.g. self-registered
        // ones) do not post into them unless listed.
        if !self
            .organizations
            .iter()
            .any(|org| org == "*" || *org == request.organization_id)
        {
            tracing::debug!(organization = %request.organization_id, "channels do not serve this organization");
            return Ok(());
        }
        let wants = |channel: &str| {
            request.policy.channels.iter().any(|c| c == channel)
                || request
                    .policy
                    .escalation
                    .iter()
                    .take(request.escalation_stage)
                    .any(|stage| stage.channels.iter().any(|c| c == channel))
        };
        let mut missing = Vec::new();
        for name in ["webhook", "email", "slack", "mattermost", "telegram"] {
            if !wants(name) {
                continue;
            }
            match self.all.iter().find(|c| c.name() == name) {
                Some(channel) => {
                    let (previous, done) =
                        self.in_order
                            .next(request.id, channel.name(), event.is_decided());
                    let channel = channel.clone();
                    let event = event.clone();
                    tokio::spawn(async move {
                        if let Some(previous) = previous {
                            // Sent or given up (or its task ended): either way, go on.
                            let _ = previous.await;
                        }
                        channel.send(&event).await;
                        let _ = done.send(());
                    });
                }
                None => missing.push(name),
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(NotifyError(format!(
                "approval policy `{}` names channels that are not configured: {}",
                request.policy.name,
                missing.join(", ")
            )))
        }
    }
}

/// What the channels' callbacks need: the channels themselves, the approval service to vote
/// through, and the accounts their platform users map to.
#[derive(Debug, Clone)]
pub struct Callbacks {
    /// The configured channels.
    pub channels: Arc<Channels>,
    /// Records the votes.
    pub approvals: Approvals,
    /// Finds the Preloop user a platform user is mapped to.
    pub store: Arc<Database>,
}

/// The endpoints chat platforms call back (public: each verifies the platform's own proof).
pub fn routes<S>(callbacks: Callbacks) -> axum::Router<S> {
    use axum::routing::post;
    axum::Router::new()
        .route(
            "/api/v1/channels/slack/interactions",
            post(slack::interactions),
        )
        .route(
            "/api/v1/channels/mattermost/actions",
            post(mattermost::actions),
        )
        .route("/api/v1/channels/telegram/webhook", post(telegram::webhook))
        .with_state(callbacks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use preloop_core::store::MemoryStore;
    use serde_json::json;

    fn request(organization_id: &str) -> ApprovalRequest {
        serde_json::from_value(json!({
            "id": Uuid::new_v4(), "organization_id": organization_id, "call_id": Uuid::new_v4(),
            "requester": {"id": "u", "organization_id": organization_id, "roles": []},
            "tool": {"exposed_name": "t", "server": "s", "name": "t", "input_schema": {}},
            "original_arguments": {}, "arguments_version": 0,
            "policy": {"name": "ops", "channels": ["webhook"]},
            "state": "pending", "votes": [], "created_at": chrono::Utc::now(),
            "expires_at": chrono::Utc::now(), "escalation_stage": 0, "version": 0
        }))
        .unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[tokio::test]
    async fn channels_carry_only_the_organizations_they_serve() {
        let section: ChannelsSection = toml::from_str(
            "[webhook]\nurl = \"http://127.0.0.1:9/hook\"\nsecret = \"s\"\nmax_attempts = 1",
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        let store = Arc::new(MemoryStore::new());
        let tokens =
            TokenKeys::from_secret(&"k".repeat(40)).unwrap_or_else(|e| unreachable!("{e}"));
        let channels = Channels::new(&section, "http://localhost", store, tokens)
            .unwrap_or_else(|e| unreachable!("{e}"));
        let (ours, theirs) = (request("default"), request("self-registered"));
        for request in [&ours, &theirs] {
            let notified = channels.notify(Notification::Decided { request }).await;
            assert_eq!(notified, Ok(()));
        }
        // The default organization's request was attempted (and failed: nothing listens).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let history = channels
                .history("default", ours.id)
                .await
                .unwrap_or_default();
            if history
                .iter()
                .any(|m| m.status == preloop_core::documents::DeliveryStatus::Failed)
            {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{history:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let history = channels.history("self-registered", theirs.id).await;
        assert_eq!(
            history.map(|h| h.len()),
            Ok(0),
            "nothing was sent for another organization"
        );
    }
}

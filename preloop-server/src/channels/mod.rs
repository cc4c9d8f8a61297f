//! Approval channels: how approvers hear about requests. The governor calls one [`Notifier`];
//! [`Channels`] hands each notification to the channels the request's approval policy names.
//! `web` (the inbox and the REST API) needs no delivery; `webhook` posts signed JSON. Arguments
//! leave through a channel only with secret-looking values redacted ([`Redactor`]).
//! Delivery runs in the background: a slow or failing channel never holds up a call.

mod redact;
mod webhook;

pub use redact::{DEFAULT_REDACT_KEYS, REDACTED, Redactor};
pub use webhook::{WebhookConfig, sign};

use async_trait::async_trait;
use preloop_core::governor::{Notification, Notifier, NotifyError};
use std::sync::Arc;
use webhook::Webhook;

/// The configured channels.
#[derive(Debug, Default)]
pub struct Channels {
    webhook: Option<Arc<Webhook>>,
}

impl Channels {
    /// Channels from the configuration; `public_url` is the base of decision links; `redactor`
    /// keeps secrets out of every message.
    pub fn new(webhook: Option<WebhookConfig>, public_url: &str, redactor: Redactor) -> Self {
        Self {
            webhook: webhook
                .map(|config| Arc::new(Webhook::new(config, public_url, redactor.clone()))),
        }
    }
}

#[async_trait]
impl Notifier for Channels {
    async fn notify(&self, notification: Notification<'_>) -> Result<(), NotifyError> {
        let request = match notification {
            Notification::Created { request, .. }
            | Notification::Escalated { request, .. }
            | Notification::Decided { request } => request,
            _ => return Ok(()),
        };
        let wants = |channel: &str| {
            request.policy.channels.iter().any(|c| c == channel)
                || request
                    .policy
                    .escalation
                    .iter()
                    .take(request.escalation_stage)
                    .any(|stage| stage.channels.iter().any(|c| c == channel))
        };
        if wants("webhook") {
            match &self.webhook {
                Some(webhook) => webhook.send_in_background(&notification),
                None => {
                    return Err(NotifyError(format!(
                        "approval policy `{}` names the webhook channel, but [channels.webhook] is not configured",
                        request.policy.name
                    )));
                }
            }
        }
        Ok(())
    }
}

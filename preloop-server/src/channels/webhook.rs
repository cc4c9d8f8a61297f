//! The generic webhook channel: a JSON POST per notification, signed with HMAC-SHA256 over
//! `"{timestamp}.{body}"` (headers `X-Preloop-Timestamp` and `X-Preloop-Signature: v1=<hex>`),
//! retried with exponential backoff and jitter; every attempt is recorded in the delivery log.

use super::deliveries::{DEFAULT_ATTEMPTS, Envelope, Failure};
use super::{Channel, Context, Event, Redactor};
use async_trait::async_trait;
use chrono::Utc;
use hmac::{Hmac, Mac};
use preloop_core::approval::ApprovalRequest;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

/// `[channels.webhook]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST.
    pub url: String,
    /// The HMAC key receivers verify signatures with.
    pub secret: String,
    /// Attempts per notification (default 5).
    pub max_attempts: Option<usize>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The signature header's value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A configured webhook.
#[derive(Debug)]
pub(super) struct Webhook {
    config: WebhookConfig,
    context: Context,
}

impl Webhook {
    pub(super) fn new(config: WebhookConfig, context: Context) -> Self {
        Self { config, context }
    }

    /// The JSON body for an event.
    fn payload(&self, event: &Event) -> Value {
        let request = &event.request;
        let name = match event.stage {
            Some(_) => "approval.escalated",
            None if event.is_decided() => "approval.decided",
            None => "approval.requested",
        };
        let links = event.token.as_deref().map(|token| {
            let base = format!("{}/api/v1/approval/{}", self.context.public_url, request.id);
            json!({
                "page": self.context.decision_page(request.id, token),
                "data": format!("{base}/data?token={token}"),
                "decide": format!("{base}/decide?token={token}"),
            })
        });
        json!({
            "event": name,
            "request": summary(request, &self.context.redactor),
            "links": links,
        })
    }

    async fn post(&self, body: &str) -> Result<Value, Failure> {
        let timestamp = Utc::now().timestamp();
        let response = self
            .context
            .http
            .post(&self.config.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Preloop-Timestamp", timestamp.to_string())
            .header(
                "X-Preloop-Signature",
                sign(&self.config.secret, timestamp, body.as_bytes()),
            )
            .body(body.to_owned())
            .send()
            .await?;
        if response.status().is_success() {
            Ok(Value::Null)
        } else {
            Err(Failure::transient(format!(
                "the receiver answered {}",
                response.status()
            )))
        }
    }
}

#[async_trait]
impl Channel for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, event: &Event) {
        let body = self.payload(event).to_string();
        let envelope = Envelope {
            channel: "webhook",
            event: event.name.clone(),
            recipient: "webhook".to_owned(),
            attempts: self.config.max_attempts.unwrap_or(DEFAULT_ATTEMPTS),
        };
        self.context
            .deliveries
            .deliver(&event.request, envelope, Value::Null, || self.post(&body))
            .await;
    }
}

/// What approvers need to decide, without the request's secrets (its decision token, and
/// argument values `redactor` matches).
fn summary(request: &ApprovalRequest, redactor: &Redactor) -> Value {
    json!({
        "id": request.id,
        "state": request.state,
        "tool": request.tool.exposed_name,
        "server": request.tool.server,
        "arguments": redactor.redact(request.effective_arguments()),
        "requester": request.requester.display_name(),
        "rule": request.matched_rule,
        "context": request.context,
        "approval_policy": request.policy.name,
        "expires_at": request.expires_at,
        "resolution": request.resolution,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_timestamp_and_body() {
        let a = sign("k", 1, b"{}");
        assert!(a.starts_with("v1=") && a.len() == 3 + 64);
        assert_ne!(a, sign("k", 2, b"{}"));
        assert_ne!(a, sign("k", 1, b"{ }"));
        assert_ne!(a, sign("other", 1, b"{}"));
        assert_eq!(a, sign("k", 1, b"{}"));
    }
}

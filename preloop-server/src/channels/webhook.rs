//! The generic webhook channel: a JSON POST per notification, signed with HMAC-SHA256 over
//! `"{timestamp}.{body}"` (headers `X-Preloop-Timestamp` and `X-Preloop-Signature: v1=<hex>`),
//! retried with exponential backoff and jitter; every attempt is logged.

use super::Redactor;
use backon::{ExponentialBuilder, Retryable};
use chrono::Utc;
use hmac::{Hmac, Mac};
use preloop_core::approval::ApprovalRequest;
use preloop_core::governor::Notification;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::Duration;

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
    public_url: String,
    http: reqwest::Client,
    redactor: Redactor,
}

impl Webhook {
    pub(super) fn new(config: WebhookConfig, public_url: &str, redactor: Redactor) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            config,
            public_url: public_url.trim_end_matches('/').to_owned(),
            http,
            redactor,
        }
    }

    /// The JSON body for a notification.
    fn payload(&self, notification: &Notification<'_>) -> Option<Value> {
        let (event, request, links) = match *notification {
            Notification::Created { request, token } => (
                "approval.requested",
                request,
                Some(self.links(request, token)),
            ),
            Notification::Escalated { request, .. } => ("approval.escalated", request, None),
            Notification::Decided { request } => ("approval.decided", request, None),
            _ => return None,
        };
        Some(json!({
            "event": event,
            "request": summary(request, &self.redactor),
            "links": links,
        }))
    }

    fn links(&self, request: &ApprovalRequest, token: &str) -> Value {
        let base = format!("{}/api/v1/approval/{}", self.public_url, request.id);
        json!({
            "data": format!("{base}/data?token={token}"),
            "decide": format!("{base}/decide?token={token}"),
        })
    }

    /// Posts the notification from a background task, retrying; failures are logged.
    pub(super) fn send_in_background(self: &std::sync::Arc<Self>, notification: &Notification<'_>) {
        let Some(payload) = self.payload(notification) else {
            return;
        };
        let webhook = self.clone();
        tokio::spawn(async move {
            let body = payload.to_string();
            let request_id = payload["request"]["id"].clone();
            let event = payload["event"].clone();
            let attempts = webhook.config.max_attempts.unwrap_or(5).max(1);
            let backoff = ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(30))
                .with_max_times(attempts - 1)
                .with_jitter();
            let delivered = (|| webhook.post(&body))
                .retry(backoff)
                .notify(|error: &String, wait: Duration| {
                    tracing::warn!(%error, retry_in = ?wait, %request_id, %event, "webhook delivery failed");
                })
                .await;
            match delivered {
                Ok(()) => tracing::info!(%request_id, %event, "webhook delivered"),
                Err(error) => {
                    tracing::error!(%error, %request_id, %event, attempts, "webhook delivery gave up");
                }
            }
        });
    }

    async fn post(&self, body: &str) -> Result<(), String> {
        let timestamp = Utc::now().timestamp();
        let response = self
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
            .await
            .map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {}", response.status()))
        }
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

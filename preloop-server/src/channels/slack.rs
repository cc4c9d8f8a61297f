//! The Slack channel. Requests are posted with Approve/Decline buttons, by a bot
//! (`chat.postMessage`, so the message can be updated with `chat.update` once the request is
//! decided anywhere) or through an incoming webhook. Button presses arrive at
//! `POST /api/v1/channels/slack/interactions`, which accepts only requests signed by Slack
//! (`v0` HMAC-SHA256 over `v0:{timestamp}:{raw body}` with the app's signing secret, compared in
//! constant time, timestamp at most 5 minutes away), maps the Slack user to an approver and votes
//! as them, answers at once, and rewrites the message through the interaction's `response_url`.

use super::Callbacks;
use super::decide::{Answer, decide_as};
use super::deliveries::{DEFAULT_ATTEMPTS, Envelope, Failure, post_json};
use super::message::{Summary, outcome, truncate};
use super::{Channel, ChannelsError, Context, Event, Redactor};
use crate::http::ApiError;
use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use preloop_core::approval::{ApprovalRequest, ApprovalState, VoteDecision};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::BTreeMap;

/// Slack's Web API.
const DEFAULT_API_URL: &str = "https://slack.com/api";
/// How far a signed request's timestamp may be from now (Slack's recommendation).
const MAX_SKEW_SECONDS: i64 = 5 * 60;
/// Slack API errors that retrying cannot fix.
const PERMANENT_ERRORS: &[&str] = &[
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_permission",
    "missing_scope",
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "message_not_found",
    "cant_update_message",
    "invalid_blocks",
    "msg_too_long",
];

/// `[channels.slack]`: a bot token and channel, or an incoming webhook URL; the signing secret
/// of the Slack app whose interactivity request URL is `/api/v1/channels/slack/interactions`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// A bot token (`xoxb-...`, scope `chat:write`); messages are then updated once decided.
    pub bot_token: Option<String>,
    /// The channel id the bot posts to.
    pub channel: Option<String>,
    /// An incoming webhook URL, instead of a bot token.
    pub webhook_url: Option<String>,
    /// The app's signing secret: button presses are accepted only when signed with it.
    pub signing_secret: String,
    /// Slack user id → the e-mail address of the Preloop user who votes when they press a
    /// button. Anyone else is refused.
    #[serde(default)]
    pub users: BTreeMap<String, String>,
    /// The Web API's base URL (default `https://slack.com/api`).
    pub api_url: Option<String>,
    /// Attempts per message (default 5).
    pub max_attempts: Option<usize>,
}

impl std::fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackConfig")
            .field("channel", &self.channel)
            .field("users", &self.users)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// The `X-Slack-Signature` value Slack sends for `body` at `timestamp` (as sent, in seconds).
pub fn slack_signature(signing_secret: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "v0={}",
        hex::encode(mac(signing_secret, timestamp, body).finalize().into_bytes())
    )
}

fn mac(signing_secret: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

/// Why a callback is not taken to come from Slack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum Unverified {
    /// No timestamp header.
    #[error("missing X-Slack-Request-Timestamp header")]
    NoTimestamp,
    /// The timestamp is not a number.
    #[error("malformed X-Slack-Request-Timestamp header")]
    MalformedTimestamp,
    /// The timestamp is too far from now.
    #[error("the request timestamp is more than 5 minutes away (a replay?)")]
    Stale,
    /// No signature, or not one in Slack's form.
    #[error("missing or malformed X-Slack-Signature header")]
    NoSignature,
    /// The signature is not the signing secret's.
    #[error("the signature does not match")]
    Mismatch,
}

/// Why an interaction's body is not a payload.
#[derive(Debug, thiserror::Error)]
enum MalformedPayload {
    /// The body is not a form with a `payload` field.
    #[error(transparent)]
    Form {
        /// The form decoder's error.
        #[from]
        source: serde_urlencoded::de::Error,
    },
    /// The `payload` field is not JSON.
    #[error(transparent)]
    Json {
        /// The JSON parser's error.
        #[from]
        source: serde_json::Error,
    },
}

/// Checks that Slack signed `body`, recently.
fn verify(
    signing_secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<(), Unverified> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let timestamp = header("x-slack-request-timestamp").ok_or(Unverified::NoTimestamp)?;
    let seconds: i64 = timestamp
        .parse()
        .map_err(|_| Unverified::MalformedTimestamp)?;
    if now.abs_diff(seconds) > MAX_SKEW_SECONDS.unsigned_abs() {
        return Err(Unverified::Stale);
    }
    let signature = header("x-slack-signature")
        .and_then(|s| s.strip_prefix("v0="))
        .and_then(|s| hex::decode(s).ok())
        .ok_or(Unverified::NoSignature)?;
    mac(signing_secret, timestamp, body)
        .verify_slice(&signature)
        .map_err(|_| Unverified::Mismatch)
}

/// The configured Slack channel.
pub(super) struct Slack {
    config: SlackConfig,
    api_url: String,
    context: Context,
}

impl Slack {
    pub(super) fn new(config: SlackConfig, context: Context) -> Result<Self, ChannelsError> {
        match (&config.bot_token, &config.channel, &config.webhook_url) {
            (Some(_), Some(_), None) | (None, None, Some(_)) => {}
            _ => return Err(ChannelsError::SlackDestination),
        }
        if config.signing_secret.trim().is_empty() {
            return Err(ChannelsError::SlackSigningSecret);
        }
        let api_url = config
            .api_url
            .clone()
            .unwrap_or_else(|| DEFAULT_API_URL.to_owned())
            .trim_end_matches('/')
            .to_owned();
        Ok(Self {
            config,
            api_url,
            context,
        })
    }

    fn envelope(&self, event: &Event, recipient: String) -> Envelope {
        Envelope {
            channel: "slack",
            event: event.name.clone(),
            recipient,
            attempts: self.config.max_attempts.unwrap_or(DEFAULT_ATTEMPTS),
        }
    }

    /// Calls a Web API method with the bot token.
    async fn api(&self, method: &str, body: &Value) -> Result<Value, Failure> {
        let token = self.config.bot_token.as_deref().unwrap_or_default();
        let response = self
            .context
            .http
            .post(format!("{}/{method}", self.api_url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(Failure::transient(format!("Slack answered {status}")));
        }
        let answer: Value = response.json().await?;
        if answer["ok"].as_bool() == Some(true) {
            return Ok(answer);
        }
        let error = answer["error"].as_str().unwrap_or("unknown error");
        let message = format!("Slack refused {method}: {error}");
        if PERMANENT_ERRORS.contains(&error) {
            Err(Failure::permanent(message))
        } else {
            Err(Failure::transient(message))
        }
    }

    async fn post_request(&self, event: &Event) {
        let summary = event.summary(&self.context.redactor);
        let mut message = json!({
            "text": summary.title(),
            "blocks": blocks(&summary, None),
        });
        match (&self.config.webhook_url, &self.config.channel) {
            (Some(url), _) => {
                let envelope = self.envelope(event, "incoming-webhook".to_owned());
                self.context
                    .deliveries
                    .deliver(&event.request, envelope, Value::Null, || {
                        post_json(&self.context.http, url, &message, "the Slack webhook")
                    })
                    .await;
            }
            (None, Some(channel)) => {
                message["channel"] = json!(channel);
                let envelope = self.envelope(event, channel.clone());
                self.context
                    .deliveries
                    .deliver(&event.request, envelope, Value::Null, || async {
                        let answer = self.api("chat.postMessage", &message).await?;
                        Ok(json!({"channel": answer["channel"], "ts": answer["ts"]}))
                    })
                    .await;
            }
            (None, None) => {}
        }
    }

    /// Rewrites the bot's messages about a decided request to show the outcome, without buttons.
    async fn update_decided(&self, event: &Event) {
        if self.config.bot_token.is_none() {
            return;
        }
        for sent in self.context.deliveries.sent(&event.request, "slack").await {
            let (Some(channel), Some(ts)) = (
                sent.reference["channel"].as_str(),
                sent.reference["ts"].as_str(),
            ) else {
                continue;
            };
            let mut update = decided_message(&event.request, &self.context.redactor);
            update["channel"] = json!(channel);
            update["ts"] = json!(ts);
            let envelope = self.envelope(event, format!("{channel}@{ts}"));
            self.context
                .deliveries
                .deliver(&event.request, envelope, Value::Null, || async {
                    self.api("chat.update", &update).await.map(|_| Value::Null)
                })
                .await;
        }
    }
}

#[async_trait]
impl Channel for Slack {
    fn name(&self) -> &'static str {
        "slack"
    }

    async fn send(&self, event: &Event) {
        if event.is_decided() {
            self.update_decided(event).await;
        } else {
            self.post_request(event).await;
        }
    }
}

/// Slack's three control characters in text, escaped, then cut to `max` characters (escaping
/// lengthens the text, and Slack refuses a whole message over a block's limit).
fn escape(text: &str, max: usize) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    truncate(&escaped, max)
}

/// Under Slack's 2,000 characters per section field and 3,000 per section text, with room for
/// the cut marker and the markup around the text.
const FIELD_CHARS: usize = 1_900;
const TEXT_CHARS: usize = 2_900;

/// The message's Block Kit blocks: the facts, the arguments, then the buttons, or the outcome
/// once decided.
fn blocks(summary: &Summary, outcome: Option<&str>) -> Value {
    let fields: Vec<Value> = summary
        .fields()
        .into_iter()
        .take(10)
        .map(|(label, value)| {
            json!({"type": "mrkdwn", "text": format!("*{label}*\n{}", escape(&value, FIELD_CHARS))})
        })
        .collect();
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*", escape(&summary.title(), TEXT_CHARS))}}),
        json!({"type": "section", "fields": fields}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("```{}```", escape(&summary.arguments, TEXT_CHARS))}}),
    ];
    match outcome {
        Some(outcome) => blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!("*{}*", escape(outcome, TEXT_CHARS))}],
        })),
        None => blocks.push(json!({
            "type": "actions",
            "block_id": "preloop_decision",
            "elements": [
                {"type": "button", "action_id": "approve", "style": "primary", "value": summary.id.to_string(), "text": {"type": "plain_text", "text": "Approve"}},
                {"type": "button", "action_id": "decline", "style": "danger", "value": summary.id.to_string(), "text": {"type": "plain_text", "text": "Decline"}},
            ],
        })),
    }
    Value::Array(blocks)
}

#[derive(Deserialize)]
struct InteractionForm {
    payload: String,
}

/// `POST /api/v1/channels/slack/interactions`: a button press, signed by Slack.
pub(super) async fn interactions(
    State(state): State<Callbacks>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(slack) = state.channels.slack.clone() else {
        return ApiError::NotFound("the Slack channel is not configured".to_owned())
            .into_response();
    };
    let now = chrono::Utc::now().timestamp();
    if let Err(reason) = verify(&slack.config.signing_secret, &headers, &body, now) {
        tracing::warn!(%reason, "Slack interaction refused");
        return ApiError::Unauthorized(reason.to_string()).into_response();
    }
    let payload: Result<Value, MalformedPayload> =
        serde_urlencoded::from_bytes::<InteractionForm>(&body)
            .map_err(MalformedPayload::from)
            .and_then(|form| Ok(serde_json::from_str(&form.payload)?));
    let payload = match payload {
        Ok(payload) => payload,
        Err(error) => {
            return ApiError::BadRequest(format!("malformed interaction payload: {error}"))
                .into_response();
        }
    };
    if payload["type"] != "block_actions" {
        return StatusCode::OK.into_response();
    }
    let action = &payload["actions"][0];
    let decision = match action["action_id"].as_str() {
        Some("approve") => VoteDecision::Approve,
        Some("decline") => VoteDecision::Decline,
        _ => return StatusCode::OK.into_response(),
    };
    let Some(request_id) = action["value"].as_str().and_then(|v| v.parse().ok()) else {
        return ApiError::BadRequest("the button carries no request id".to_owned()).into_response();
    };
    let user = payload["user"]["id"].as_str().unwrap_or_default();
    let answer = decide_as(
        &state,
        "Slack",
        &slack.config.users,
        user,
        request_id,
        decision,
    )
    .await;
    if let Some(response_url) = payload["response_url"].as_str() {
        let reply = reply(&slack, &answer);
        let http = slack.context.http.clone();
        let response_url = response_url.to_owned();
        // Answered at once; the message is rewritten (or the presser told why not) after.
        tokio::spawn(async move {
            let sent = http.post(&response_url).json(&reply).send().await;
            if let Err(error) = sent.and_then(reqwest::Response::error_for_status) {
                tracing::warn!(%error, "cannot answer a Slack interaction");
            }
        });
    }
    StatusCode::OK.into_response()
}

/// What the interaction's `response_url` gets: the rewritten message once decided, otherwise a
/// note only the presser sees.
fn reply(slack: &Slack, answer: &Answer) -> Value {
    match answer {
        Answer::Recorded(request) if request.state != ApprovalState::Pending => {
            let mut message = decided_message(request, &slack.context.redactor);
            message["replace_original"] = json!(true);
            message
        }
        _ => json!({
            "response_type": "ephemeral",
            "replace_original": false,
            "text": answer.reply(),
        }),
    }
}

/// A decided request's message: the facts and the outcome, without buttons.
fn decided_message(request: &ApprovalRequest, redactor: &Redactor) -> Value {
    let summary = Summary::of(request, redactor);
    let outcome = outcome(request);
    json!({
        "text": format!("{}: {outcome}", summary.title()),
        "blocks": blocks(&summary, Some(&outcome)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_stay_within_slacks_limits_whatever_the_agent_writes() {
        let long = "a && b > c < d ".repeat(400);
        let summary = Summary {
            id: uuid::Uuid::nil(),
            tool: "tool".to_owned(),
            server: "server".to_owned(),
            requester: "agent@example.com".to_owned(),
            arguments: long.chars().take(2_500).collect(),
            rule: Some("rule".to_owned()),
            reason: Some(long.clone()),
            policy: "ops".to_owned(),
            expires_at: chrono::Utc::now(),
            escalated: true,
        };
        for block in blocks(&summary, None).as_array().into_iter().flatten() {
            if let Some(text) = block["text"]["text"].as_str() {
                assert!(text.chars().count() <= 3_000, "{}", text.len());
            }
            for field in block["fields"].as_array().into_iter().flatten() {
                let text = field["text"].as_str().unwrap_or_default();
                assert!(text.chars().count() <= 2_000, "{}", text.len());
            }
        }
    }

    fn headers(timestamp: &str, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-slack-request-timestamp",
            timestamp.parse().unwrap_or_else(|_| unreachable!()),
        );
        headers.insert(
            "x-slack-signature",
            signature.parse().unwrap_or_else(|_| unreachable!()),
        );
        headers
    }

    #[test]
    fn only_fresh_requests_signed_with_the_secret_pass() {
        let body = b"payload=%7B%7D";
        let now = 1_700_000_000;
        let signed = slack_signature("secret", "1700000000", body);
        assert_eq!(
            verify("secret", &headers("1700000000", &signed), body, now),
            Ok(())
        );
        // Slack's documented example: its signing secret, timestamp, body and signature.
        let example_body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            slack_signature(
                "8f742231b10e8888abcd99yyyzzz85a5",
                "1531420618",
                example_body
            ),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
        let wrong_secret = slack_signature("other", "1700000000", body);
        assert!(verify("secret", &headers("1700000000", &wrong_secret), body, now).is_err());
        assert!(
            verify(
                "secret",
                &headers("1700000000", &signed),
                b"payload=%7B%20%7D",
                now
            )
            .is_err()
        );
        let old = slack_signature("secret", "1699999600", body);
        let stale = verify("secret", &headers("1699999600", &old), body, now);
        assert!(stale.is_err_and(|e| e.to_string().contains("5 minutes")));
        assert!(verify("secret", &headers("soon", &signed), body, now).is_err());
        assert!(verify("secret", &headers("1700000000", "v0=zz"), body, now).is_err());
        assert!(verify("secret", &HeaderMap::new(), body, now).is_err());
    }
}

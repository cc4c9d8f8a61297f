//! The Mattermost channel: an incoming-webhook post with Approve/Decline interactive buttons.
//! Each post gets its own random callback secret (only its hash is stored, in the delivery
//! record): Mattermost sends it back in the action's `context` to
//! `POST /api/v1/channels/mattermost/actions`, where it is checked in constant time before the
//! Mattermost user is mapped to an approver who votes. The answer updates the post to show the
//! outcome without buttons (incoming webhooks return no post id, so posts are updated by the
//! button press that decides, not when a request is decided elsewhere; a later press is told
//! the outcome). Mattermost's action calls carry no signature of their own: the user id in the
//! call is taken as given once the post's secret matches, so anyone who sees a callback's
//! secret (a Mattermost administrator, a logging proxy) could vote as any mapped user of that
//! post. Agent-supplied text is escaped so it cannot render Markdown (links, images).

use super::Callbacks;
use super::decide::{Answer, decide_as};
use super::deliveries::{DEFAULT_ATTEMPTS, Envelope, post_json};
use super::message::{Summary, outcome};
use super::{Channel, Context, Event};
use crate::http::ApiError;
use async_trait::async_trait;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use preloop_core::approval::{ApprovalState, DecisionToken, VoteDecision, verify_secret};
use preloop_core::documents::ChannelMessage;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use uuid::Uuid;

/// `[channels.mattermost]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MattermostConfig {
    /// The incoming webhook URL (a secret: it is never logged).
    pub webhook_url: String,
    /// Post to this channel instead of the webhook's own.
    pub channel: Option<String>,
    /// Post under this name instead of the webhook's own.
    pub username: Option<String>,
    /// Mattermost user id → the e-mail address of the Preloop user who votes when they press a
    /// button. Anyone else is refused.
    #[serde(default)]
    pub users: BTreeMap<String, String>,
    /// Attempts per message (default 5).
    pub max_attempts: Option<usize>,
}

impl std::fmt::Debug for MattermostConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MattermostConfig")
            .field("channel", &self.channel)
            .field("users", &self.users)
            .finish_non_exhaustive()
    }
}

/// The configured Mattermost channel.
pub(super) struct Mattermost {
    config: MattermostConfig,
    context: Context,
}

impl Mattermost {
    pub(super) fn new(config: MattermostConfig, context: Context) -> Self {
        Self { config, context }
    }
}

/// Markdown's special characters in agent-supplied text, escaped, so it cannot render links,
/// images or formatting in the approvers' channel.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\`*_{}[]()<>#+-.!|~".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// `text` in a code block whose fence is longer than any run of backticks inside it.
fn code_block(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}\n{text}\n{fence}")
}

/// The post's attachment: the facts and arguments, then buttons or the outcome.
fn attachment(
    summary: &Summary,
    title: &str,
    buttons: Option<Vec<Value>>,
    outcome: Option<&str>,
) -> Value {
    let fields: Vec<Value> = summary
        .fields()
        .into_iter()
        .map(|(label, value)| json!({"short": true, "title": label, "value": escape(&value)}))
        .collect();
    let mut text = code_block(&summary.arguments);
    if let Some(outcome) = outcome {
        text.push_str(&format!("\n**{}**", escape(outcome)));
    }
    json!({
        "fallback": title,
        "color": if outcome.is_some() { "#8b949e" } else { "#f0ad4e" },
        "title": title,
        "text": text,
        "fields": fields,
        "actions": buttons.unwrap_or_default(),
    })
}

#[async_trait]
impl Channel for Mattermost {
    fn name(&self) -> &'static str {
        "mattermost"
    }

    async fn send(&self, event: &Event) {
        if event.is_decided() {
            return;
        }
        let request = &event.request;
        let summary = event.summary(&self.context.redactor);
        let title = summary.title();
        let recipient = self
            .config
            .channel
            .clone()
            .unwrap_or_else(|| "incoming-webhook".to_owned());
        let secret = DecisionToken::generate();
        let record = ChannelMessage::key("mattermost", &event.name, &recipient);
        let callback = self.context.callback("mattermost/actions");
        let button = |id: &str, label: &str, style: &str| {
            json!({
                "id": id,
                "name": label,
                "type": "button",
                "style": style,
                "integration": {"url": callback, "context": {
                    "organization_id": request.organization_id,
                    "request_id": request.id,
                    "record": record,
                    "decision": id,
                    "secret": secret.secret,
                }},
            })
        };
        let buttons = vec![
            button("approve", "Approve", "success"),
            button("decline", "Decline", "danger"),
        ];
        let mut post = json!({
            "text": title,
            "attachments": [attachment(&summary, &title, Some(buttons), None)],
        });
        if let Some(channel) = &self.config.channel {
            post["channel"] = json!(channel);
        }
        if let Some(username) = &self.config.username {
            post["username"] = json!(username);
        }
        let envelope = Envelope {
            channel: "mattermost",
            event: event.name.clone(),
            recipient,
            attempts: self.config.max_attempts.unwrap_or(DEFAULT_ATTEMPTS),
        };
        self.context
            .deliveries
            .deliver(
                request,
                envelope,
                json!({"secret_hash": secret.hash}),
                || {
                    post_json(
                        &self.context.http,
                        &self.config.webhook_url,
                        &post,
                        "the Mattermost webhook",
                    )
                },
            )
            .await;
    }
}

#[derive(Debug, Deserialize)]
struct ActionCall {
    #[serde(default)]
    user_id: String,
    context: ActionContext,
}

#[derive(Debug, Deserialize)]
struct ActionContext {
    organization_id: String,
    request_id: Uuid,
    record: String,
    decision: VoteDecision,
    secret: String,
}

/// `POST /api/v1/channels/mattermost/actions`: a button press, carrying the post's secret.
pub(super) async fn actions(State(state): State<Callbacks>, body: axum::body::Bytes) -> Response {
    let Some(mattermost) = state.channels.mattermost.clone() else {
        return ApiError::NotFound("the Mattermost channel is not configured".to_owned())
            .into_response();
    };
    let call: ActionCall = match serde_json::from_slice(&body) {
        Ok(call) => call,
        Err(error) => {
            return ApiError::BadRequest(format!("malformed action call: {error}")).into_response();
        }
    };
    let context = &call.context;
    let record = mattermost
        .context
        .deliveries
        .find(
            &context.organization_id,
            context.request_id,
            &context.record,
        )
        .await;
    let genuine = record.as_ref().is_some_and(|record| {
        record.channel == "mattermost"
            && record.reference["secret_hash"]
                .as_str()
                .is_some_and(|hash| verify_secret(&context.secret, hash))
    });
    if !genuine {
        tracing::warn!(request = %context.request_id, "Mattermost action with a wrong secret refused");
        return ApiError::Unauthorized("the action's secret does not match".to_owned())
            .into_response();
    }
    let answer = decide_as(
        &state,
        "Mattermost",
        &mattermost.config.users,
        &call.user_id,
        context.request_id,
        context.decision,
    )
    .await;
    let mut reply = json!({"ephemeral_text": answer.reply()});
    if let Answer::Recorded(request) = &answer
        && request.state != ApprovalState::Pending
    {
        let summary = Summary::of(request, &mattermost.context.redactor);
        let title = summary.title();
        let outcome = outcome(request);
        reply["update"] = json!({
            "message": title,
            "props": {"attachments": [attachment(&summary, &title, None, Some(&outcome))]},
        });
    }
    Json(reply).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_text_cannot_render_markdown_or_leave_its_code_block() {
        assert_eq!(
            escape("[Approve](https://evil) ![x](y)"),
            r"\[Approve\]\(https://evil\) \!\[x\]\(y\)"
        );
        let block = code_block("a ``` b ````` c");
        assert!(
            block.starts_with("``````\n") && block.ends_with("\n``````"),
            "{block}"
        );
        assert!(code_block("plain").starts_with("```\n"));
    }
}

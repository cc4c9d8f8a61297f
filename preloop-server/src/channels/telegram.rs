//! The Telegram channel: a bot message with an inline keyboard (Approve/Decline) in a configured
//! chat. A button's `callback_data` is the decision and the request id (at most 41 bytes, within
//! Telegram's 64). Presses arrive by webhook at `POST /api/v1/channels/telegram/webhook` (only
//! with the `X-Telegram-Bot-Api-Secret-Token` we registered, compared in constant time) or by long
//! polling `getUpdates` (one replica only: Telegram serves one poller per bot). The Telegram user
//! id is mapped to an approver who votes; the press is answered with `answerCallbackQuery`, and
//! every message about the request is edited to show the outcome, without buttons, so nobody
//! decides twice.

use super::Callbacks;
use super::decide::{Answer, decide_as};
use super::deliveries::{DEFAULT_ATTEMPTS, Envelope, Failure};
use super::message::{Summary, outcome, truncate};
use super::{Channel, ChannelsError, Context, Event};
use crate::http::ApiError;
use async_trait::async_trait;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use backon::{ExponentialBuilder, Retryable};
use preloop_core::approval::{VoteDecision, hash_secret, verify_secret};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The Bot API.
const DEFAULT_API_URL: &str = "https://api.telegram.org";
/// A Telegram message's longest text.
const MAX_TEXT_CHARS: usize = 4_000;
/// How long one `getUpdates` long poll waits for an update.
const POLL_SECONDS: u64 = 25;

/// How button presses reach the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TelegramUpdates {
    /// Telegram POSTs them to `/api/v1/channels/telegram/webhook` (registered at start with
    /// `setWebhook`; needs a public HTTPS `public_url`).
    #[default]
    Webhook,
    /// The server long-polls `getUpdates` (no public URL needed; run it on one replica).
    Polling,
}

/// `[channels.telegram]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The bot's token from BotFather.
    pub bot_token: String,
    /// The chat requests are posted to (a numeric id, or `@channelname`).
    pub chat_id: Value,
    /// `webhook` (default) or `polling`.
    #[serde(default)]
    pub updates: TelegramUpdates,
    /// The secret Telegram sends back in `X-Telegram-Bot-Api-Secret-Token` (webhook mode; 1-256
    /// characters of `A-Z a-z 0-9 _ -`).
    pub webhook_secret: Option<String>,
    /// Telegram user id → the e-mail address of the Preloop user who votes when they press a
    /// button. Anyone else is refused.
    #[serde(default)]
    pub users: BTreeMap<String, String>,
    /// The Bot API's base URL (default `https://api.telegram.org`).
    pub api_url: Option<String>,
    /// Attempts per message (default 5).
    pub max_attempts: Option<usize>,
}

impl std::fmt::Debug for TelegramConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramConfig")
            .field("chat_id", &self.chat_id)
            .field("updates", &self.updates)
            .field("users", &self.users)
            .finish_non_exhaustive()
    }
}

/// The configured Telegram channel.
pub(super) struct Telegram {
    config: TelegramConfig,
    /// `{api_url}/bot{token}`: a secret, never logged.
    bot_url: String,
    secret_hash: Option<String>,
    context: Context,
}

impl Telegram {
    pub(super) fn new(config: TelegramConfig, context: Context) -> Result<Self, ChannelsError> {
        if !(config.chat_id.is_i64() || config.chat_id.is_string()) {
            return Err(ChannelsError::TelegramChatId);
        }
        let secret_hash = match (&config.updates, &config.webhook_secret) {
            (TelegramUpdates::Webhook, None) => {
                return Err(ChannelsError::TelegramNoWebhookSecret);
            }
            (_, Some(secret))
                if secret.is_empty()
                    || secret.len() > 256
                    || !secret
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                return Err(ChannelsError::TelegramWebhookSecret);
            }
            (_, secret) => secret.as_deref().map(hash_secret),
        };
        let api_url = config
            .api_url
            .clone()
            .unwrap_or_else(|| DEFAULT_API_URL.to_owned());
        let bot_url = format!("{}/bot{}", api_url.trim_end_matches('/'), config.bot_token);
        Ok(Self {
            config,
            bot_url,
            secret_hash,
            context,
        })
    }

    /// Calls a Bot API method.
    async fn api(&self, method: &str, body: &Value, timeout: Duration) -> Result<Value, Failure> {
        let response = self
            .context
            .http
            .post(format!("{}/{method}", self.bot_url))
            .timeout(timeout)
            .json(body)
            .send()
            .await
            // The error's URL would carry the bot token.
            .map_err(|e| Failure::transient(e.without_url().to_string()))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if answer["ok"].as_bool() == Some(true) {
            return Ok(answer["result"].clone());
        }
        let description = answer["description"].as_str().unwrap_or("no description");
        let message = format!("Telegram refused {method} ({status}): {description}");
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Err(Failure::transient(message))
        } else {
            Err(Failure::permanent(message))
        }
    }

    fn envelope(&self, event: &Event, recipient: String) -> Envelope {
        Envelope {
            channel: "telegram",
            event: event.name.clone(),
            recipient,
            attempts: self.config.max_attempts.unwrap_or(DEFAULT_ATTEMPTS),
        }
    }

    async fn post_request(&self, event: &Event) {
        let text = event.summary(&self.context.redactor).text();
        let id = event.request.id.simple();
        let message = json!({
            "chat_id": self.config.chat_id,
            "text": truncate(&text, MAX_TEXT_CHARS),
            "reply_markup": {"inline_keyboard": [[
                {"text": "Approve", "callback_data": format!("approve:{id}")},
                {"text": "Decline", "callback_data": format!("decline:{id}")},
            ]]},
        });
        let envelope = self.envelope(event, chat_name(&self.config.chat_id));
        self.context
            .deliveries
            .deliver(&event.request, envelope, Value::Null, || async {
                let sent = self
                    .api("sendMessage", &message, Duration::from_secs(10))
                    .await?;
                Ok(json!({"chat_id": sent["chat"]["id"], "message_id": sent["message_id"]}))
            })
            .await;
    }

    /// Edits every message about a decided request to show the outcome and drop its buttons.
    async fn update_decided(&self, event: &Event) {
        let summary = Summary::of(&event.request, &self.context.redactor);
        let text = truncate(
            &format!("{}\n\n{}", outcome(&event.request), summary.text()),
            MAX_TEXT_CHARS,
        );
        for sent in self
            .context
            .deliveries
            .sent(&event.request, "telegram")
            .await
        {
            let edit = json!({
                "chat_id": sent.reference["chat_id"],
                "message_id": sent.reference["message_id"],
                "text": text,
            });
            let recipient = format!(
                "{}@{}",
                chat_name(&sent.reference["chat_id"]),
                sent.reference["message_id"]
            );
            let envelope = self.envelope(event, recipient);
            self.context
                .deliveries
                .deliver(&event.request, envelope, Value::Null, || async {
                    match self
                        .api("editMessageText", &edit, Duration::from_secs(10))
                        .await
                    {
                        Ok(_) => Ok(Value::Null),
                        // Already showing the outcome (edited by another replica).
                        Err(failure) if failure.message.contains("message is not modified") => {
                            Ok(Value::Null)
                        }
                        Err(failure) => Err(failure),
                    }
                })
                .await;
        }
    }

    /// Registers the webhook, or long-polls for button presses, until `shutdown`.
    pub(super) fn start(self: &Arc<Self>, state: Callbacks, shutdown: CancellationToken) {
        let telegram = self.clone();
        match self.config.updates {
            TelegramUpdates::Webhook => {
                tokio::spawn(async move { telegram.register_webhook().await });
            }
            TelegramUpdates::Polling => {
                tokio::spawn(async move {
                    tokio::select! {
                        () = telegram.poll(&state) => {}
                        () = shutdown.cancelled() => {}
                    }
                });
            }
        }
    }

    async fn register_webhook(&self) {
        let body = json!({
            "url": self.context.callback("telegram/webhook"),
            "secret_token": self.config.webhook_secret,
            "allowed_updates": ["callback_query"],
        });
        let registered = (|| self.api("setWebhook", &body, Duration::from_secs(10)))
            .retry(
                ExponentialBuilder::default()
                    .with_max_delay(Duration::from_secs(60))
                    .with_max_times(8),
            )
            .when(|failure: &Failure| !failure.permanent)
            .await;
        match registered {
            Ok(_) => tracing::info!("Telegram webhook registered"),
            Err(failure) => {
                tracing::error!(error = %failure.message, "cannot register the Telegram webhook");
            }
        }
    }

    async fn poll(&self, state: &Callbacks) {
        // Telegram refuses getUpdates while a webhook is set (e.g. by an earlier configuration).
        if let Err(failure) = self
            .api("deleteWebhook", &json!({}), Duration::from_secs(10))
            .await
        {
            tracing::warn!(error = %failure.message, "cannot remove a Telegram webhook before polling");
        }
        let mut offset: i64 = 0;
        let mut pause = Duration::from_millis(500);
        loop {
            let body = json!({
                "offset": offset,
                "timeout": POLL_SECONDS,
                "allowed_updates": ["callback_query"],
            });
            let wait = Duration::from_secs(POLL_SECONDS + 10);
            match self.api("getUpdates", &body, wait).await {
                Ok(Value::Array(updates)) => {
                    pause = Duration::from_millis(500);
                    for update in updates {
                        if let Some(id) = update["update_id"].as_i64() {
                            offset = offset.max(id + 1);
                        }
                        self.handle_update(state, &update).await;
                    }
                }
                Ok(_) => {}
                Err(failure) => {
                    tracing::warn!(error = %failure.message, retry_in = ?pause, "Telegram getUpdates failed");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Handles one update: a button press votes as the mapped approver and is answered.
    async fn handle_update(&self, state: &Callbacks, update: &Value) {
        let query = &update["callback_query"];
        let Some(query_id) = query["id"].as_str() else {
            return;
        };
        let answer = match parse_button(query["data"].as_str().unwrap_or_default()) {
            Some((decision, request_id)) => {
                let user = match &query["from"]["id"] {
                    Value::Number(id) => id.to_string(),
                    _ => String::new(),
                };
                decide_as(
                    state,
                    "Telegram",
                    &self.config.users,
                    &user,
                    request_id,
                    decision,
                )
                .await
            }
            None => Answer::Refused("This button is not one of Preloop's.".to_owned()),
        };
        let reply = json!({
            "callback_query_id": query_id,
            // Telegram shows at most 200 characters (the cut marker adds about 40).
            "text": truncate(&answer.reply(), 150),
            "show_alert": matches!(answer, Answer::Refused(_)),
        });
        if let Err(failure) = self
            .api("answerCallbackQuery", &reply, Duration::from_secs(10))
            .await
        {
            tracing::warn!(error = %failure.message, "cannot answer a Telegram button press");
        }
    }
}

/// A chat id as a record's recipient.
fn chat_name(chat_id: &Value) -> String {
    match chat_id {
        Value::String(name) => name.clone(),
        other => other.to_string(),
    }
}

/// `approve:<request id>` or `decline:<request id>`.
fn parse_button(data: &str) -> Option<(VoteDecision, Uuid)> {
    let (decision, id) = data.split_once(':')?;
    let decision = match decision {
        "approve" => VoteDecision::Approve,
        "decline" => VoteDecision::Decline,
        _ => return None,
    };
    Some((decision, id.parse().ok()?))
}

#[async_trait]
impl Channel for Telegram {
    fn name(&self) -> &'static str {
        "telegram"
    }

    async fn send(&self, event: &Event) {
        if event.is_decided() {
            self.update_decided(event).await;
        } else {
            self.post_request(event).await;
        }
    }
}

/// `POST /api/v1/channels/telegram/webhook`: an update, from Telegram (it sends our secret).
pub(super) async fn webhook(
    State(state): State<Callbacks>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(telegram) = state.channels.telegram.clone() else {
        return ApiError::NotFound("the Telegram channel is not configured".to_owned())
            .into_response();
    };
    let presented = headers
        .get("x-telegram-bot-api-secret-token")
        .and_then(|v| v.to_str().ok());
    let genuine = match (presented, &telegram.secret_hash) {
        (Some(presented), Some(hash)) => verify_secret(presented, hash),
        _ => false,
    };
    if !genuine {
        tracing::warn!("Telegram webhook call without the right secret token refused");
        return ApiError::Unauthorized(
            "missing or wrong X-Telegram-Bot-Api-Secret-Token".to_owned(),
        )
        .into_response();
    }
    let update: Value = match serde_json::from_slice(&body) {
        Ok(update) => update,
        Err(error) => {
            return ApiError::BadRequest(format!("malformed update: {error}")).into_response();
        }
    };
    telegram.handle_update(&state, &update).await;
    Json(json!({"ok": true})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_fit_telegrams_64_bytes_and_parse_back() {
        let id = Uuid::new_v4();
        let data = format!("decline:{}", id.simple());
        assert!(data.len() <= 64);
        assert_eq!(parse_button(&data), Some((VoteDecision::Decline, id)));
        assert_eq!(parse_button("approve:not-a-uuid"), None);
        assert_eq!(parse_button(&format!("delete:{}", id.simple())), None);
        assert_eq!(parse_button(""), None);
    }
}

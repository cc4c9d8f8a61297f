//! The unified WebSocket, `GET /api/v1/ws/unified`: live events for the console and for
//! integrations. A client authenticates with `Authorization: Bearer` on the upgrade request, or
//! (browsers cannot set headers on a WebSocket) with `{"type":"auth","token":"..."}` as its first
//! message within 10 s; then it subscribes to topics (`approvals`, `activity`,
//! `flow_executions`, `issues`, `system`) with `{"type":"subscribe","topics":[...]}` and receives
//! `{"type":"event","topic":...,"data":...}` for its own organization only, as its roles allow
//! ([`crate::events::Event::visible_to`]). The server sends a heartbeat every 25 s (`[server] websocket_heartbeat_seconds`), re-checking
//! the credential (a revoked or expired one closes the socket with 4401; changed roles apply) and answers `{"type":"ping"}`; malformed
//! messages get an error message, not a dropped connection.

use crate::auth::AuthError;
use crate::events::Topic;
use crate::http::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use preloop_core::Principal;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// How often the server says it is alive (and re-checks the credential), by default.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(25);
/// How long a connection may stay unauthenticated.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest message a client may send.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Close code for a missing or invalid credential (application range, like HTTP 401).
const CLOSE_UNAUTHORIZED: u16 = 4401;

/// How a connection lives: its heartbeat, and when it must end.
#[derive(Debug, Clone)]
pub struct Lifetime {
    /// Between heartbeats (each re-checks the credential).
    pub heartbeat: Duration,
    /// Cancelled at shutdown: every connection closes.
    pub shutdown: CancellationToken,
}

/// The route.
pub fn routes(lifetime: Lifetime) -> Router<AppState> {
    Router::new()
        .route("/api/v1/ws/unified", get(upgrade))
        .layer(Extension(lifetime))
}

async fn upgrade(
    State(state): State<AppState>,
    Extension(lifetime): Extension<Lifetime>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let signed_in = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            let credential = value.to_str().unwrap_or_default().to_owned();
            match state.authenticator.authenticate(Some(&credential)).await {
                Ok(principal) => Some((principal, credential)),
                Err(error) => return ApiError::Unauthorized(error.to_string()).into_response(),
            }
        }
        None => None,
    };
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| connection(state, socket, signed_in, lifetime))
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Auth { token: String },
    Subscribe { topics: Vec<Topic> },
    Unsubscribe { topics: Vec<Topic> },
    Ping,
}

fn text(value: &Value) -> Message {
    Message::Text(Utf8Bytes::from(value.to_string()))
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await;
}

/// Waits for `{"type":"auth"}` as the first message; the principal and its credential.
async fn authenticate(state: &AppState, socket: &mut WebSocket) -> Option<(Principal, String)> {
    let first = tokio::time::timeout(AUTH_TIMEOUT, socket.recv())
        .await
        .ok()??
        .ok()?;
    let Message::Text(first) = first else {
        return None;
    };
    let Ok(ClientMessage::Auth { token }) = serde_json::from_str(first.as_str()) else {
        return None;
    };
    let credential = format!("Bearer {token}");
    let principal = state
        .authenticator
        .authenticate(Some(&credential))
        .await
        .ok()?;
    Some((principal, credential))
}

async fn connection(
    state: AppState,
    mut socket: WebSocket,
    signed_in: Option<(Principal, String)>,
    lifetime: Lifetime,
) {
    let (mut principal, credential) = match signed_in {
        Some(signed_in) => signed_in,
        None => match authenticate(&state, &mut socket).await {
            Some(principal) => principal,
            None => {
                close(&mut socket, CLOSE_UNAUTHORIZED, "authentication required").await;
                return;
            }
        },
    };
    let mut events = state.events.subscribe();
    let mut topics: BTreeSet<Topic> = BTreeSet::new();
    let welcome = json!({
        "type": "welcome",
        "user": principal.display_name(),
        "organization_id": principal.organization_id,
        "topics": [Topic::Approvals, Topic::Activity, Topic::FlowExecutions, Topic::Issues, Topic::System],
        "heartbeat_seconds": lifetime.heartbeat.as_secs(),
    });
    if socket.send(text(&welcome)).await.is_err() {
        return;
    }
    let every = lifetime.heartbeat;
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        let outgoing = tokio::select! {
            () = lifetime.shutdown.cancelled() => {
                close(&mut socket, 1001, "server shutting down").await;
                return;
            }
            _ = heartbeat.tick() => {
                // A revoked key or an expired token ends the stream; changed roles apply from
                // now on; a store outage is no reason to drop anyone.
                match state.authenticator.authenticate(Some(&credential)).await {
                    Ok(fresh) if fresh.organization_id == principal.organization_id => principal = fresh,
                    Err(AuthError::Unavailable) => {}
                    Ok(_) | Err(_) => {
                        close(&mut socket, CLOSE_UNAUTHORIZED, "credential no longer valid").await;
                        return;
                    }
                }
                json!({"type": "heartbeat", "at": Utc::now()})
            }
            received = socket.recv() => match received {
                Some(Ok(Message::Text(message))) => answer(message.as_str(), &mut topics),
                Some(Ok(Message::Binary(_))) => json!({"type": "error", "message": "send JSON text messages"}),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            },
            event = events.recv() => match event {
                Ok(event) if topics.contains(&event.topic) && event.visible_to(&principal) => json!({
                    "type": "event",
                    "topic": event.topic,
                    "data": event.data,
                }),
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => json!({"type": "lagged", "missed": missed}),
                Err(RecvError::Closed) => return,
            },
        };
        if socket.send(text(&outgoing)).await.is_err() {
            return;
        }
    }
}

/// The reply to a client's message.
fn answer(message: &str, topics: &mut BTreeSet<Topic>) -> Value {
    match serde_json::from_str::<ClientMessage>(message) {
        Ok(ClientMessage::Subscribe { topics: added }) => {
            topics.extend(added);
            json!({"type": "subscribed", "topics": topics})
        }
        Ok(ClientMessage::Unsubscribe { topics: removed }) => {
            for topic in removed {
                topics.remove(&topic);
            }
            json!({"type": "subscribed", "topics": topics})
        }
        Ok(ClientMessage::Ping) => json!({"type": "pong", "at": Utc::now()}),
        Ok(ClientMessage::Auth { .. }) => {
            json!({"type": "error", "message": "already authenticated"})
        }
        Err(error) => json!({"type": "error", "message": format!("unreadable message: {error}")}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_change_subscriptions_and_bad_ones_are_answered() {
        let mut topics = BTreeSet::new();
        let reply = answer(
            r#"{"type":"subscribe","topics":["approvals","system"]}"#,
            &mut topics,
        );
        assert_eq!(reply["topics"], json!(["approvals", "system"]));
        let reply = answer(r#"{"type":"unsubscribe","topics":["system"]}"#, &mut topics);
        assert_eq!(reply["topics"], json!(["approvals"]));
        let reply = answer(r#"{"type":"subscribe","topics":["gossip"]}"#, &mut topics);
        assert_eq!(reply["type"], "error");
        assert_eq!(answer("not json", &mut topics)["type"], "error");
        assert_eq!(answer(r#"{"type":"ping"}"#, &mut topics)["type"], "pong");
        assert_eq!(topics.len(), 1);
    }
}

//! Server-sent-event framing of JSON-RPC messages, as the streamable HTTP transport sends them.

use axum::body::Bytes;
use serde::Serialize;

/// A comment line: keeps an idle stream open through proxies that cut silent connections.
pub const KEEP_ALIVE: Bytes = Bytes::from_static(b": keep-alive\n\n");

/// One `data:` event carrying `message` as JSON, with event id `id` (so a client can resume
/// after it); a comment saying so if it cannot be encoded, which rmcp's message types never
/// cause.
pub fn event_with_id(id: &str, message: &impl Serialize) -> Bytes {
    serde_json::to_string(message).map_or_else(
        |error| {
            tracing::error!(%error, "cannot serialize a message for the client");
            Bytes::from_static(b": unserializable message dropped\n\n")
        },
        |json| Bytes::from(format!("id: {id}\ndata: {json}\n\n")),
    )
}

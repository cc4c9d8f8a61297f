//! The MCP wire format, written once for both of the gateway's edges (clients in, upstream
//! servers out):
//!
//! - [`convert`]: core types to and from MCP (rmcp) types, field by field.
//! - [`notifications`]: an upstream's progress and log notifications, reported to the observer
//!   of the call they concern.
//! - [`sse`]: server-sent-event framing of JSON-RPC messages.
//! - [`headers`]: the HTTP headers a 2026-07-28 request mirrors from its body (SEP-2243).
//! - [`json_rpc_error`]: the answer to a request that cannot be read or admitted.
//!
//! JSON-RPC messages themselves are decoded and encoded by rmcp's model types; nothing here
//! parses JSON-RPC by hand.

pub mod convert;
pub mod headers;
pub mod notifications;
pub mod sse;

use serde_json::json;

/// A JSON-RPC error answering no particular request (the request could not be read).
pub fn json_rpc_error(code: i32, message: &str) -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}})
}

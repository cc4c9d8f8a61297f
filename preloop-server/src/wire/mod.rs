//! The MCP wire format shared by the inbound and outbound edges: JSON-RPC error bodies.

use serde_json::json;

/// A JSON-RPC error answering no particular request (the request could not be read).
pub fn json_rpc_error(code: i32, message: &str) -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}})
}

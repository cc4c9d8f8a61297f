//! The MCP wire format, written once for the gateway's edges: so far the JSON-RPC error body
//! (the inbound edge's answer to a request it cannot read or admit).

use serde_json::json;

/// A JSON-RPC error answering no particular request (the request could not be read).
pub fn json_rpc_error(code: i32, message: &str) -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}})
}

//! The built-in tools every agent sees: `request_approval` and `get_approval_status`.

use chrono::Utc;
use preloop_core::approval::{ApprovalRequest, ApprovalState};
use preloop_core::executor::{FnExecutor, ToolOutput};
use preloop_core::registry::{
    RegisteredTool, Registry, RegistryError, ToolAnnotations, ToolDescriptor, ToolSource,
};
use serde_json::{Value, json};
use std::sync::Arc;

/// The namespace of built-in tools.
pub const SERVER: &str = "preloop";
/// Asks a human to approve an operation the agent describes.
pub const REQUEST_APPROVAL: &str = "request_approval";
/// Reports an approval request's state, and the tool's result once it ran.
pub const GET_APPROVAL_STATUS: &str = "get_approval_status";

fn built_in(name: &str, description: &str, schema: Value, read_only: bool) -> ToolDescriptor {
    ToolDescriptor::new(SERVER, name, ToolSource::BuiltIn)
        .with_exposed_name(name)
        .with_description(description)
        .with_input_schema(schema)
        .with_annotations(ToolAnnotations {
            read_only_hint: Some(read_only),
            destructive_hint: Some(false),
            open_world_hint: Some(false),
            ..ToolAnnotations::default()
        })
}

/// `request_approval`: once approved, "running" it reports the approval to the agent.
pub fn request_approval_tool() -> RegisteredTool {
    let descriptor = built_in(
        REQUEST_APPROVAL,
        "Ask a human to approve an operation before you perform it. Blocks until decided (or returns a request_id to poll with get_approval_status).",
        json!({
            "type": "object",
            "properties": {
                "operation": {"type": "string", "description": "What you want to do"},
                "context": {"type": "string", "description": "What the approver needs to know"},
                "reasoning": {"type": "string", "description": "Why you want to do it"},
                "approval_policy": {"type": "string", "description": "Approval policy to use (default: the default policy)"},
                "options": {"type": "array", "items": {"type": "string"}, "description": "Answers the approver may choose from (the chosen one comes back as the response)"},
                "metadata": {"type": "object", "description": "Anything else the approver should see"},
                "hitl": {"type": "object", "description": "Set by the HITL API: the session that asked"}
            },
            "required": ["operation"],
            "additionalProperties": false
        }),
        false,
    );
    RegisteredTool::new(
        descriptor,
        Arc::new(FnExecutor::new(|_, arguments| {
            let operation = arguments
                .get("operation")
                .and_then(Value::as_str)
                .unwrap_or("the operation");
            Ok(ToolOutput::text(format!(
                "Approved: {operation}. You may proceed."
            )))
        })),
    )
}

/// `get_approval_status`: answered by the MCP layer, never executed through the governor.
pub fn get_approval_status_descriptor() -> ToolDescriptor {
    built_in(
        GET_APPROVAL_STATUS,
        "Get the state of an approval request; once approved and executed, returns the tool's result.",
        json!({
            "type": "object",
            "properties": {"request_id": {"type": "string", "description": "The request_id of a pending approval"}},
            "required": ["request_id"],
            "additionalProperties": false
        }),
        true,
    )
}

/// Registers the built-in tools that run through the governor.
pub fn register(registry: &Registry) -> Result<(), RegistryError> {
    registry.register(request_approval_tool())
}

/// The `get_approval_status` answer: state, votes, remaining time, and the result once executed.
pub fn status_report(request: &ApprovalRequest) -> Value {
    let remaining = (request.state == ApprovalState::Pending)
        .then(|| (request.expires_at - Utc::now()).num_seconds().max(0));
    let votes: Vec<Value> = request
        .votes
        .iter()
        .map(|v| json!({"approver": v.approver_email.as_ref().unwrap_or(&v.approver_id), "decision": v.decision, "comment": v.comment}))
        .collect();
    json!({
        "request_id": request.id,
        "tool": request.tool.exposed_name,
        "status": request.state,
        "votes": votes,
        "remaining_seconds": remaining,
        "resolution": request.resolution,
        "result": request.output,
        "error": request.error,
    })
}

//! Core types to and from MCP types, field by field, in one place.
//!
//! What MCP carries and the core does not (yet) keep is named here rather than dropped by a
//! serde round trip: a tool's `title`, `outputSchema`, `icons` and `_meta` are not kept by
//! discovery, and a result's `_meta` and `resultType` are not kept by [`tool_output`]. Content
//! items are kept whole: the core holds them as MCP's own JSON.

// MCP logging is deprecated by SEP-2577, but clients still use it and upstreams still send it.
#![allow(deprecated)]

use preloop_core::executor::ToolOutput;
use preloop_core::registry::{ToolAnnotations, ToolDescriptor};
use rmcp::model::{CallToolResult, ContentBlock, LoggingLevel, Tool};
use serde_json::Value;
use std::sync::Arc;

/// The MCP tool a client is shown for `descriptor` (named by its exposed name), or `None` when
/// its input schema is not a JSON object (MCP requires one).
pub fn tool(descriptor: &ToolDescriptor) -> Option<Tool> {
    let Value::Object(schema) = &descriptor.input_schema else {
        return None;
    };
    Some(
        Tool::new(
            descriptor.exposed_name.clone(),
            descriptor.description.clone(),
            Arc::new(schema.clone()),
        )
        .with_annotations(mcp_annotations(&descriptor.annotations)),
    )
}

/// A tool's MCP annotations as the core keeps them.
pub fn annotations(annotations: &rmcp::model::ToolAnnotations) -> ToolAnnotations {
    ToolAnnotations {
        title: annotations.title.clone(),
        read_only_hint: annotations.read_only_hint,
        destructive_hint: annotations.destructive_hint,
        idempotent_hint: annotations.idempotent_hint,
        open_world_hint: annotations.open_world_hint,
    }
}

/// The core's annotations as MCP's.
pub fn mcp_annotations(annotations: &ToolAnnotations) -> rmcp::model::ToolAnnotations {
    let mut mcp = rmcp::model::ToolAnnotations::new();
    mcp.title.clone_from(&annotations.title);
    mcp.read_only_hint = annotations.read_only_hint;
    mcp.destructive_hint = annotations.destructive_hint;
    mcp.idempotent_hint = annotations.idempotent_hint;
    mcp.open_world_hint = annotations.open_world_hint;
    mcp
}

/// A tool's output as the MCP result of `tools/call`, or `None` when a content item is not an
/// MCP content block (the core keeps content as JSON; only MCP's kinds can be sent on).
pub fn call_tool_result(output: &ToolOutput) -> Option<CallToolResult> {
    let content = output
        .content
        .iter()
        .map(|item| serde_json::from_value::<ContentBlock>(item.clone()).ok())
        .collect::<Option<Vec<_>>>()?;
    // `resultType: "complete"`, which 2026-07-28 requires; rmcp and the fast path leave it out
    // for clients of earlier revisions.
    let mut result = CallToolResult::success(content);
    result
        .structured_content
        .clone_from(&output.structured_content);
    result.is_error = Some(output.is_error);
    Some(result)
}

/// An MCP `tools/call` result as the core's tool output (see the module doc for what is not
/// kept).
pub fn tool_output(result: CallToolResult) -> Result<ToolOutput, serde_json::Error> {
    Ok(ToolOutput {
        content: result
            .content
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()?,
        structured_content: result.structured_content,
        is_error: result.is_error.unwrap_or(false),
        protocol: None,
    })
}

/// MCP's name of a logging level (`"info"`, `"warning"`, ...).
pub fn level_name(level: LoggingLevel) -> &'static str {
    match level {
        LoggingLevel::Debug => "debug",
        LoggingLevel::Info => "info",
        LoggingLevel::Notice => "notice",
        LoggingLevel::Warning => "warning",
        LoggingLevel::Error => "error",
        LoggingLevel::Critical => "critical",
        LoggingLevel::Alert => "alert",
        LoggingLevel::Emergency => "emergency",
    }
}

/// How severe `level` is: 0 for `debug` up to 7 for `emergency`, in MCP's (syslog's) order.
pub fn severity(level: LoggingLevel) -> u8 {
    level as u8
}

/// The logging level MCP names `name`; an unknown name is `info`.
pub fn level(name: &str) -> LoggingLevel {
    [
        LoggingLevel::Debug,
        LoggingLevel::Info,
        LoggingLevel::Notice,
        LoggingLevel::Warning,
        LoggingLevel::Error,
        LoggingLevel::Critical,
        LoggingLevel::Alert,
        LoggingLevel::Emergency,
    ]
    .into_iter()
    .find(|level| level_name(*level) == name)
    .unwrap_or(LoggingLevel::Info)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;
    use preloop_core::registry::ToolSource;
    use serde_json::json;

    #[test]
    fn a_result_crosses_both_ways_unchanged() {
        let output = ToolOutput {
            content: vec![
                json!({"type": "text", "text": "hi"}),
                json!({"type": "image", "data": "AAAA", "mimeType": "image/png"}),
            ],
            structured_content: Some(json!({"n": 1})),
            is_error: true,
            protocol: None,
        };
        let result = call_tool_result(&output).unwrap();
        assert!(result.result_type.as_ref().is_some_and(|t| t.is_complete()));
        assert_eq!(tool_output(result).unwrap(), output);
    }

    #[test]
    fn content_mcp_cannot_carry_is_refused_not_dropped() {
        let output = ToolOutput {
            content: vec![json!({"type": "hologram"})],
            structured_content: None,
            is_error: false,
            protocol: None,
        };
        assert!(call_tool_result(&output).is_none());
    }

    #[test]
    fn tools_keep_their_schema_and_annotations() {
        let descriptor = ToolDescriptor::new("docs", "echo", ToolSource::Upstream)
            .with_exposed_name("docs__echo")
            .with_description("Echoes")
            .with_input_schema(json!({"type": "object"}))
            .with_annotations(ToolAnnotations {
                title: Some("Echo".into()),
                read_only_hint: Some(true),
                ..ToolAnnotations::default()
            });
        let tool = tool(&descriptor).unwrap();
        assert_eq!(tool.name, "docs__echo");
        assert_eq!(tool.description.as_deref(), Some("Echoes"));
        assert_eq!(
            annotations(tool.annotations.as_ref().unwrap()),
            descriptor.annotations
        );
        let not_an_object = descriptor.with_input_schema(json!(true));
        assert!(super::tool(&not_an_object).is_none());
    }

    #[test]
    fn levels_round_trip_by_name() {
        for name in [
            "debug",
            "info",
            "notice",
            "warning",
            "error",
            "critical",
            "alert",
            "emergency",
        ] {
            assert_eq!(level_name(level(name)), name);
        }
        assert_eq!(level("loud"), LoggingLevel::Info);
    }
}

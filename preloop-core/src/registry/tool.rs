//! Tool descriptors: what a tool is called, where it comes from, and what it declares about itself.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Separator between the server name and the tool name in an exposed name (`github__create_issue`).
pub const EXPOSED_NAME_SEPARATOR: &str = "__";

/// The exposed name of `tool` from `server` under `prefix` (the server name unless overridden):
/// `{prefix}__{tool}`, or the bare tool name when the prefix is empty.
pub fn exposed_name(prefix: &str, tool: &str) -> String {
    if prefix.is_empty() {
        tool.to_owned()
    } else {
        format!("{prefix}{EXPOSED_NAME_SEPARATOR}{tool}")
    }
}

/// The MCP tool annotations (hints a server declares about a tool's behaviour).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolAnnotations {
    /// Human-readable title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The tool does not modify its environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_hint: Option<bool>,
    /// The tool may perform destructive updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destructive_hint: Option<bool>,
    /// Calling the tool repeatedly with the same arguments has no additional effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent_hint: Option<bool>,
    /// The tool interacts with an open world of external entities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_world_hint: Option<bool>,
}

/// Where a tool's implementation lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ToolSource {
    /// A tool Preloop itself provides (approvals, trackers).
    BuiltIn,
    /// A tool discovered on an upstream MCP server.
    Upstream,
    /// A tool an embedding runtime registered with its own executor.
    Embedded,
}

/// What a governed operation does: call a tool, get a prompt, read a resource, or ask the
/// calling client a tool server's question. Policy rules name each kind apart (`tools`,
/// `prompts`, `resources`, `questions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// `tools/call`.
    #[default]
    Tool,
    /// `prompts/get`: the descriptor's names are the prompt's.
    Prompt,
    /// `resources/read`: the descriptor's names are the resource's URI (its own, and the one
    /// agents see).
    Resource,
    /// A tool server's question to the calling client during a call (`sampling/createMessage`,
    /// `elicitation/create`, `roots/list`): the descriptor's names are the method, its server
    /// the asking server's.
    Question,
}

impl OperationKind {
    /// `tool`, `prompt` or `resource`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Prompt => "prompt",
            Self::Resource => "resource",
            Self::Question => "question",
        }
    }

    /// Whether it is a tool call (the kind serialization leaves out).
    pub fn is_tool(&self) -> bool {
        *self == Self::Tool
    }
}

/// Everything the governor knows about a tool (or another governed operation, see `kind`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDescriptor {
    /// The tool's own name on its server.
    pub name: String,
    /// The server (or built-in namespace) the tool belongs to.
    pub server: String,
    /// The name agents call it by, usually `{server}__{name}`.
    pub exposed_name: String,
    /// Description shown to agents.
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the arguments.
    #[serde(default = "empty_object_schema")]
    pub input_schema: Value,
    /// MCP annotations.
    #[serde(default)]
    pub annotations: ToolAnnotations,
    /// Where the implementation lives.
    pub source: ToolSource,
    /// A tool, or the prompt or resource an operation gets.
    #[serde(default, skip_serializing_if = "OperationKind::is_tool")]
    pub kind: OperationKind,
}

fn empty_object_schema() -> Value {
    serde_json::json!({"type": "object"})
}

impl ToolDescriptor {
    /// A descriptor exposed as `{server}__{name}`, with an object schema and no annotations.
    pub fn new(server: impl Into<String>, name: impl Into<String>, source: ToolSource) -> Self {
        let server = server.into();
        let name = name.into();
        Self {
            exposed_name: exposed_name(&server, &name),
            name,
            server,
            description: String::new(),
            input_schema: empty_object_schema(),
            annotations: ToolAnnotations::default(),
            source,
            kind: OperationKind::Tool,
        }
    }

    /// Makes it describe a prompt or a resource instead of a tool.
    #[must_use]
    pub fn with_kind(mut self, kind: OperationKind) -> Self {
        self.kind = kind;
        self
    }

    /// Overrides the exposed name (e.g. a transparent proxy keeps the upstream name).
    #[must_use]
    pub fn with_exposed_name(mut self, exposed_name: impl Into<String>) -> Self {
        self.exposed_name = exposed_name.into();
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Sets the input schema.
    #[must_use]
    pub fn with_input_schema(mut self, schema: Value) -> Self {
        self.input_schema = schema;
        self
    }

    /// Sets the annotations.
    #[must_use]
    pub fn with_annotations(mut self, annotations: ToolAnnotations) -> Self {
        self.annotations = annotations;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_names_use_the_prefix_unless_it_is_empty() {
        assert_eq!(
            exposed_name("github", "create_issue"),
            "github__create_issue"
        );
        assert_eq!(exposed_name("", "create_issue"), "create_issue");
        let tool = ToolDescriptor::new("time", "now", ToolSource::Upstream);
        assert_eq!(tool.exposed_name, "time__now");
    }

    #[test]
    fn annotations_use_mcp_field_names() {
        let annotations: ToolAnnotations =
            serde_json::from_str(r#"{"destructiveHint": true, "readOnlyHint": false}"#).unwrap();
        assert_eq!(annotations.destructive_hint, Some(true));
        assert_eq!(annotations.read_only_hint, Some(false));
    }
}

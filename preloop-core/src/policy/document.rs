//! The declarative policy model: what users write in TOML or YAML, before compilation.

use crate::approval::ApprovalPolicy;
use serde::{Deserialize, Serialize};

/// What a rule (or the default) does with a call it matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Let the call through.
    #[default]
    Allow,
    /// Refuse the call with a message.
    Deny,
    /// Hold the call until humans approve it.
    RequireApproval,
}

/// Whether a rule (or a whole set) is enforced or only recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleMode {
    /// The rule decides calls.
    #[default]
    Enforce,
    /// The rule is evaluated and its would-be decision recorded, but it decides nothing.
    Shadow,
}

/// What happens to a call when an enforced rule's condition fails at run time. Never "allow".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Deny the call.
    #[default]
    Deny,
    /// Hold the call for approval (under the rule's approval policy, else the default one).
    RequireApproval,
}

fn enabled() -> bool {
    true
}

/// One rule as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Stable identifier; defaults to `rule-<position>` (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What the rule is for, shown in explanations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Glob patterns over the tool's exposed name or its own name (`github__*`, `*__delete_*`).
    /// Absent: every tool, unless the rule names prompts, resources or questions (then no
    /// tool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Glob patterns over the names of prompts got through the gateway (`prompts/get`), as
    /// agents see them or as their server calls them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
    /// Glob patterns over the URIs of resources read through the gateway (`resources/read`,
    /// `file:///etc/*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Glob patterns over the methods of the questions tool servers ask the calling client
    /// during a call (`sampling/createMessage`, `elicitation/*`, `roots/list`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub questions: Vec<String>,
    /// Glob patterns over the server name; empty means any server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// Principal selectors (`role:agent`, `apikey:<key id>`, an e-mail); empty means anyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// A CEL condition; the rule matches only when it is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// What the rule does.
    pub action: ActionKind,
    /// Message shown to the agent when the rule denies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Approval policy for `require_approval`; defaults to the default approval policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_policy: Option<String>,
    /// `enforce` (default) or `shadow`.
    #[serde(default)]
    pub mode: RuleMode,
    /// Disabled rules are kept in the document but never evaluated.
    #[serde(default = "enabled")]
    pub enabled: bool,
}

impl RuleSpec {
    /// A rule with the given action over the given tool patterns, enforced and enabled.
    pub fn new(action: ActionKind, tools: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            id: None,
            description: None,
            tools: Some(tools.into_iter().map(Into::into).collect()),
            prompts: Vec::new(),
            resources: Vec::new(),
            questions: Vec::new(),
            servers: Vec::new(),
            principals: Vec::new(),
            when: None,
            action,
            message: None,
            approval_policy: None,
            mode: RuleMode::Enforce,
            enabled: true,
        }
    }

    /// Sets the id.
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the CEL condition.
    #[must_use]
    pub fn when(mut self, condition: impl Into<String>) -> Self {
        self.when = Some(condition.into());
        self
    }

    /// Sets the deny message.
    #[must_use]
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Restricts the rule to principals.
    #[must_use]
    pub fn principals(mut self, selectors: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.principals = selectors.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the approval policy.
    #[must_use]
    pub fn approval_policy(mut self, name: impl Into<String>) -> Self {
        self.approval_policy = Some(name.into());
        self
    }

    /// Sets the mode.
    #[must_use]
    pub fn mode(mut self, mode: RuleMode) -> Self {
        self.mode = mode;
        self
    }
}

/// An ordered rule list with a default action. The first matching enforced rule decides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// Action when no rule matches.
    #[serde(default)]
    pub default: ActionKind,
    /// Message when the default denies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_message: Option<String>,
    /// `shadow` runs the whole set in shadow mode: its decisions are recorded, every call is allowed.
    #[serde(default)]
    pub mode: RuleMode,
    /// What a CEL error in an enforced rule does to the call.
    #[serde(default)]
    pub on_error: OnError,
    /// The rules, in order.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// A governance file: the `[policy]` section and the `[[approval_policies]]`. Other sections of a
/// server configuration file (`[server]`, `[[mcp_servers]]`, ...) are ignored here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GovernanceDocument {
    /// The rule set.
    #[serde(default)]
    pub policy: PolicyDocument,
    /// Named approval policies.
    #[serde(default)]
    pub approval_policies: Vec<ApprovalPolicy>,
}

/// The text format of a policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TOML (`.toml`).
    Toml,
    /// YAML (`.yaml`, `.yml`).
    Yaml,
}

impl Format {
    /// The format a file name's extension implies; `None` for other extensions.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match extension.as_str() {
            "toml" => Some(Self::Toml),
            "yaml" | "yml" => Some(Self::Yaml),
            _ => None,
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Toml => "TOML",
            Self::Yaml => "YAML",
        })
    }
}

/// A policy file that is not well-formed TOML/YAML or does not fit the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{format} error at line {line}, column {column}: {message}")]
pub struct SyntaxError {
    /// The format being read.
    pub format: Format,
    /// 1-based line (0 when the parser gave no position).
    pub line: usize,
    /// 1-based column (0 when the parser gave no position).
    pub column: usize,
    /// The parser's message.
    pub message: String,
}

impl GovernanceDocument {
    /// Parses a governance file in `format`.
    pub fn parse(text: &str, format: Format) -> Result<Self, SyntaxError> {
        match format {
            Format::Toml => toml::from_str(text).map_err(|error| {
                let (line, column) = error
                    .span()
                    .map(|span| line_and_column(text, span.start))
                    .unwrap_or((0, 0));
                SyntaxError {
                    format,
                    line,
                    column,
                    message: error.message().to_owned(),
                }
            }),
            Format::Yaml => serde_yaml_ng::from_str(text).map_err(|error| {
                let (line, column) = error
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((0, 0));
                SyntaxError {
                    format,
                    line,
                    column,
                    message: error.to_string(),
                }
            }),
        }
    }

    /// Renders the document in `format` (for `policy export`).
    pub fn render(&self, format: Format) -> Result<String, RenderError> {
        match format {
            Format::Toml => {
                toml::to_string_pretty(self).map_err(|source| RenderError::Toml { source })
            }
            Format::Yaml => {
                serde_yaml_ng::to_string(self).map_err(|source| RenderError::Yaml { source })
            }
        }
    }
}

/// Why a document cannot be written out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The TOML writer refused it.
    #[error(transparent)]
    Toml {
        /// The writer's error.
        #[from]
        source: toml::ser::Error,
    },
    /// The YAML writer refused it.
    #[error(transparent)]
    Yaml {
        /// The writer's error.
        #[from]
        source: serde_yaml_ng::Error,
    },
}

/// 1-based line and column of byte `offset` in `text`.
pub(crate) fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_design_example_parses_as_toml() {
        let text = r#"
[server]
bind = "127.0.0.1:8000"

[[approval_policies]]
name = "ops"
default = true
approvers = ["role:admin"]
timeout = "10m"

[policy]
default = "allow"

[[policy.rules]]
description = "No deletions by agents"
tools = ["*__delete_*"]
action = "deny"
message = "Deletions are not allowed"

[[policy.rules]]
tools = ["time__convert_time"]
when = 'args.target_timezone == "Asia/Tokyo"'
action = "require_approval"
approval_policy = "ops"
"#;
        let doc = GovernanceDocument::parse(text, Format::Toml).unwrap();
        assert_eq!(doc.policy.rules.len(), 2);
        assert_eq!(doc.policy.rules[0].action, ActionKind::Deny);
        assert_eq!(
            doc.policy.rules[1].tools.as_deref(),
            Some(&["time__convert_time".to_owned()][..])
        );
        assert_eq!(doc.approval_policies[0].name, "ops");
    }

    #[test]
    fn yaml_and_toml_describe_the_same_document() {
        let yaml =
            "policy:\n  default: deny\n  rules:\n    - tools: [\"a__*\"]\n      action: allow\n";
        let toml = "[policy]\ndefault = \"deny\"\n[[policy.rules]]\ntools = [\"a__*\"]\naction = \"allow\"\n";
        assert_eq!(
            GovernanceDocument::parse(yaml, Format::Yaml).unwrap(),
            GovernanceDocument::parse(toml, Format::Toml).unwrap()
        );
    }

    #[test]
    fn unknown_rule_fields_are_errors_with_positions() {
        let toml =
            "[policy]\n[[policy.rules]]\ntools = [\"x\"]\naction = \"deny\"\nwhen_ = \"true\"\n";
        let error = GovernanceDocument::parse(toml, Format::Toml).unwrap_err();
        assert_eq!(error.line, 5, "{error}");
        assert!(error.message.contains("when_"), "{error}");

        let yaml = "policy:\n  rules:\n    - tools: [x]\n      action: maybe\n";
        let error = GovernanceDocument::parse(yaml, Format::Yaml).unwrap_err();
        assert_eq!(error.line, 4, "{error}");
        assert!(error.message.contains("maybe"), "{error}");
    }

    #[test]
    fn missing_action_is_an_error() {
        let error = GovernanceDocument::parse("[[policy.rules]]\ntools = [\"x\"]\n", Format::Toml)
            .unwrap_err();
        assert!(error.message.contains("action"), "{error}");
    }

    #[test]
    fn documents_round_trip_through_both_formats() {
        let doc = GovernanceDocument {
            policy: PolicyDocument {
                default: ActionKind::RequireApproval,
                rules: vec![RuleSpec::new(ActionKind::Deny, ["*__delete_*"]).message("no")],
                ..PolicyDocument::default()
            },
            approval_policies: Vec::new(),
        };
        for format in [Format::Toml, Format::Yaml] {
            let text = doc.render(format).unwrap();
            assert_eq!(
                GovernanceDocument::parse(&text, format).unwrap(),
                doc,
                "{text}"
            );
        }
    }

    #[test]
    fn formats_follow_file_extensions() {
        assert_eq!(Format::from_file_name("p.yml"), Some(Format::Yaml));
        assert_eq!(Format::from_file_name("dir/p.TOML"), Some(Format::Toml));
        assert_eq!(Format::from_file_name("p.json"), None);
    }
}

//! The tools' arguments, with the original product's names, read into typed structs; and their
//! JSON Schemas, which agents see.

use serde::Deserialize;
use serde_json::{Value, json};

/// `get_issue`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetIssue {
    /// Key, web URL or store id.
    pub issue: String,
}

/// `create_issue`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateIssue {
    /// Project key.
    pub project: String,
    /// Title.
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Assignee login.
    pub assignee: Option<String>,
    /// Priority name.
    pub priority: Option<String>,
    /// Status to move the new issue to.
    pub status: Option<String>,
    /// Tracker name, when two trackers have the project.
    pub tracker: Option<String>,
}

/// `update_issue`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateIssue {
    /// Key, web URL or store id.
    pub issue: String,
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New status.
    pub status: Option<String>,
    /// New priority.
    pub priority: Option<String>,
    /// New assignee (empty text: unassign).
    pub assignee: Option<String>,
    /// Replacement labels.
    pub labels: Option<Vec<String>>,
}

/// `add_comment`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddComment {
    /// Key, web URL or store id.
    pub issue: String,
    /// Comment text.
    pub body: String,
}

/// `search`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    /// Words to look for.
    pub query: String,
    /// Project key.
    pub project: Option<String>,
    /// Most results.
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// `open` or `closed`.
    pub status: Option<String>,
}

fn default_limit() -> usize {
    10
}

/// Most results a search answers.
pub const MAX_SEARCH_LIMIT: usize = 100;

/// Most issues one compliance call assesses.
pub const MAX_ASSESSED: usize = 50;

/// `estimate_compliance` and `improve_compliance`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compliance {
    /// One reference or several.
    pub issues: OneOrMany,
    /// Metric name.
    #[serde(default = "default_metric")]
    pub compliance_metric: String,
}

fn default_metric() -> String {
    "DoR".to_owned()
}

/// One string or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The references, in order.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

const ISSUE: &str = "The issue: its key (owner/repo#12, group/project#12, PROJ-12), its web URL, or its id from search";

/// The JSON Schema of each tool's arguments.
pub fn schema(tool: &str) -> Value {
    let issue = json!({"type": "string", "description": ISSUE});
    let labels = json!({"type": "array", "items": {"type": "string"}, "description": "Labels (replace the issue's labels)"});
    let issues = json!({
        "type": ["string", "array"], "items": {"type": "string"},
        "description": "One issue or a list of issues (keys, web URLs or ids)"
    });
    let metric = json!({"type": "string", "default": "DoR", "description": "The compliance metric: DoR (Definition of Ready)"});
    let (properties, required) = match tool {
        "get_issue" => (json!({"issue": issue}), vec!["issue"]),
        "create_issue" => (
            json!({
                "project": {"type": "string", "description": "The project: owner/repo, group/project or a Jira project key"},
                "title": {"type": "string", "description": "Title"},
                "description": {"type": "string", "description": "Description (Markdown)"},
                "labels": labels,
                "assignee": {"type": "string", "description": "Login (or Jira name / e-mail) of the assignee"},
                "priority": {"type": "string", "description": "Priority name (e.g. High)"},
                "status": {"type": "string", "description": "Status to move the new issue to (open, closed, or a Jira status)"},
                "tracker": {"type": "string", "description": "The tracker's name, when two trackers have the project"}
            }),
            vec!["project", "title"],
        ),
        "update_issue" => (
            json!({
                "issue": issue,
                "title": {"type": "string"},
                "description": {"type": "string"},
                "status": {"type": "string", "description": "open, closed (close, reopen...) or a Jira workflow status"},
                "priority": {"type": "string"},
                "assignee": {"type": "string", "description": "New assignee; empty to unassign"},
                "labels": labels
            }),
            vec!["issue"],
        ),
        "add_comment" => (
            json!({"issue": issue, "body": {"type": "string", "description": "The comment (Markdown)"}}),
            vec!["issue", "body"],
        ),
        "search" => (
            json!({
                "query": {"type": "string", "description": "Words to look for in titles and descriptions"},
                "project": {"type": "string", "description": "Only this project"},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_SEARCH_LIMIT, "default": 10},
                "status": {"type": "string", "enum": ["open", "closed"], "description": "Only open or only closed issues"}
            }),
            vec!["query"],
        ),
        _ => (
            json!({"issues": issues, "compliance_metric": metric}),
            vec!["issues"],
        ),
    };
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;

    fn read<T: DeserializeOwned>(arguments: Value) -> Result<T, serde_json::Error> {
        serde_json::from_value(arguments)
    }

    #[test]
    fn the_original_products_arguments_are_read() {
        let create: Result<CreateIssue, _> = read(json!({
            "project": "acme/web", "title": "t", "description": "d", "labels": ["bug"],
            "assignee": "ann", "priority": "High", "status": "open"
        }));
        assert!(create.is_ok_and(|c| c.assignee.as_deref() == Some("ann") && c.labels == ["bug"]));
        let search: Result<Search, _> = read(json!({"query": "login"}));
        assert!(search.is_ok_and(|s| s.limit == 10));
        let one: Result<Compliance, _> = read(json!({"issues": "PROJ-1"}));
        assert!(
            one.is_ok_and(|c| c.issues.into_vec() == ["PROJ-1"] && c.compliance_metric == "DoR")
        );
    }

    #[test]
    fn unknown_or_missing_arguments_are_named() {
        let unknown: Result<GetIssue, _> = read(json!({"issue": "a#1", "verbose": true}));
        assert!(unknown.is_err_and(|e| e.to_string().contains("verbose")));
        let missing: Result<AddComment, _> = read(json!({"issue": "a#1"}));
        assert!(missing.is_err_and(|e| e.to_string().contains("body")));
    }
}

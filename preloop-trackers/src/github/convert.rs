//! GitHub's REST shapes (issues, comments, repositories; the same in webhook payloads) and
//! their reading into the core models, with the `priority: <name>` label standing in for the
//! priority field GitHub lacks.

use chrono::{DateTime, Utc};
use preloop_core::tracker::{Issue, IssueComment, IssueState, ProjectInfo};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// The label prefix that carries an issue's priority.
const PRIORITY_PREFIX: &str = "priority:";

/// A user as GitHub shows one.
#[derive(Debug, Deserialize)]
pub(crate) struct RestUser {
    login: String,
}

/// A label: an object with a `name`, or (in some answers) just the name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RestLabel {
    Name(String),
    Object { name: String },
}

impl RestLabel {
    fn into_name(self) -> String {
        match self {
            Self::Name(name) | Self::Object { name } => name,
        }
    }
}

/// An issue (or a pull request, which the issues API also answers).
#[derive(Debug, Deserialize)]
pub(crate) struct RestIssue {
    id: u64,
    number: u64,
    title: String,
    #[serde(default)]
    body: Option<String>,
    state: String,
    #[serde(default)]
    labels: Vec<RestLabel>,
    #[serde(default)]
    assignees: Option<Vec<RestUser>>,
    #[serde(default)]
    assignee: Option<RestUser>,
    #[serde(default)]
    user: Option<RestUser>,
    #[serde(default)]
    html_url: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[serde(default)]
    pull_request: Option<IgnoredAny>,
}

impl RestIssue {
    /// Whether this is a pull request rather than an issue.
    pub(crate) fn is_pull_request(&self) -> bool {
        self.pull_request.is_some()
    }

    /// The issue's number.
    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    /// The issue, filed in `project` (`owner/repo`).
    pub(crate) fn into_issue(self, project: &str) -> Issue {
        let labels: Vec<String> = self.labels.into_iter().map(RestLabel::into_name).collect();
        let mut assignees: Vec<String> = self
            .assignees
            .unwrap_or_default()
            .into_iter()
            .map(|user| user.login)
            .collect();
        if assignees.is_empty() {
            assignees.extend(self.assignee.map(|user| user.login));
        }
        Issue {
            id: self.id.to_string(),
            key: format!("{project}#{}", self.number),
            project: project.to_owned(),
            title: self.title,
            body: self.body.unwrap_or_default(),
            state: if self.state.eq_ignore_ascii_case("closed") {
                IssueState::Closed
            } else {
                IssueState::Open
            },
            status: None,
            priority: priority_of(&labels),
            labels,
            assignees,
            author: self.user.map(|user| user.login),
            url: self.html_url,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A comment on an issue.
#[derive(Debug, Deserialize)]
pub(crate) struct RestComment {
    id: u64,
    #[serde(default)]
    user: Option<RestUser>,
    #[serde(default)]
    body: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<RestComment> for IssueComment {
    fn from(comment: RestComment) -> Self {
        Self {
            id: comment.id.to_string(),
            author: comment.user.map(|user| user.login),
            body: comment.body.unwrap_or_default(),
            created_at: comment.created_at,
        }
    }
}

/// A repository.
#[derive(Debug, Deserialize)]
pub(crate) struct RestRepo {
    full_name: String,
    name: String,
    #[serde(default)]
    html_url: Option<String>,
}

impl From<RestRepo> for ProjectInfo {
    fn from(repo: RestRepo) -> Self {
        Self {
            key: repo.full_name,
            name: repo.name,
            url: repo.html_url,
        }
    }
}

/// The priority a `priority: <name>` label names (any case), when one does.
fn priority_of(labels: &[String]) -> Option<String> {
    labels
        .iter()
        .filter_map(|label| priority_name(label))
        .find(|name| !name.is_empty())
        .map(str::to_owned)
}

fn priority_name(label: &str) -> Option<&str> {
    let prefix = label.get(..PRIORITY_PREFIX.len())?;
    prefix
        .eq_ignore_ascii_case(PRIORITY_PREFIX)
        .then(|| label[PRIORITY_PREFIX.len()..].trim())
}

/// `labels` without any `priority: ...` label, plus `priority: <priority>` (none when
/// `priority` is blank, which removes the priority).
pub(crate) fn with_priority(labels: &[String], priority: &str) -> Vec<String> {
    let mut labels: Vec<String> = labels
        .iter()
        .filter(|label| priority_name(label).is_none())
        .cloned()
        .collect();
    let priority = priority.trim();
    if !priority.is_empty() {
        labels.push(format!("{PRIORITY_PREFIX} {priority}"));
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_read_as_names_or_objects() -> Result<(), serde_json::Error> {
        let issue: RestIssue = serde_json::from_value(serde_json::json!({
            "id": 1, "number": 2, "title": "t", "body": null, "state": "closed",
            "labels": ["bug", {"id": 9, "name": "Priority: High", "color": "ff0000"}],
            "assignees": null, "assignee": {"login": "octocat"},
            "created_at": "2011-04-22T13:33:48Z", "updated_at": "2011-04-22T13:33:48Z"
        }))?;
        let issue = issue.into_issue("a/b");
        assert_eq!(issue.labels, ["bug", "Priority: High"]);
        assert_eq!(issue.priority.as_deref(), Some("High"));
        assert_eq!(issue.assignees, ["octocat"]);
        assert_eq!(issue.state, IssueState::Closed);
        assert_eq!(issue.body, "");
        Ok(())
    }

    #[test]
    fn a_new_priority_replaces_the_old_label() {
        let labels = ["bug".to_owned(), "PRIORITY: low".to_owned()];
        assert_eq!(with_priority(&labels, " high "), ["bug", "priority: high"]);
        assert_eq!(with_priority(&labels, ""), ["bug"]);
        assert_eq!(priority_of(&["priority:".to_owned()]), None);
        assert_eq!(priority_name("priorité"), None);
    }
}

//! The issue-tracker interface adapters implement (GitHub, GitLab, Jira in `preloop-trackers`,
//! or an embedder's own), with typed issues, updates, events and errors. Only the trait and
//! models live here.
//!
//! The trait is deliberately small: read one issue, create, update, comment, list a project's
//! issues changed since a time (what synchronization needs) and describe a project (what a
//! connection test needs). Searching is the index's job (the store's full-text search over
//! synchronized issues), not each tracker's.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Open or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueState {
    /// Open.
    Open,
    /// Closed (done, resolved, won't fix...).
    Closed,
}

impl IssueState {
    /// The state a status word names, in any tracker's vocabulary: `open`, `opened`, `reopen`,
    /// `reopened`, `todo` are open; `closed`, `close`, `done`, `resolved` are closed (any case).
    /// Other words (a Jira workflow status such as "In Progress") name no state.
    pub fn from_word(word: &str) -> Option<Self> {
        match word.trim().to_ascii_lowercase().as_str() {
            "open" | "opened" | "reopen" | "reopened" | "todo" | "to do" => Some(Self::Open),
            "closed" | "close" | "done" | "resolved" => Some(Self::Closed),
            _ => None,
        }
    }

    /// `open` or `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

/// An issue as every tracker can describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    /// The tracker's own id.
    pub id: String,
    /// The human key: `owner/repo#12`, `group/project#12`, `PROJ-12`.
    pub key: String,
    /// The project (repository, Jira project key).
    pub project: String,
    /// Title.
    pub title: String,
    /// Body / description (Markdown or plain text).
    #[serde(default)]
    pub body: String,
    /// State.
    pub state: IssueState,
    /// The tracker's own workflow status, when it has one beyond open/closed (Jira's
    /// "In Progress").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Assignee logins.
    #[serde(default)]
    pub assignees: Vec<String>,
    /// Author login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Priority, when the tracker has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    /// Web URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last update time.
    pub updated_at: DateTime<Utc>,
}

/// A new issue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewIssue {
    /// Project to create it in.
    pub project: String,
    /// Title.
    pub title: String,
    /// Body.
    #[serde(default)]
    pub body: String,
    /// Labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Assignees.
    #[serde(default)]
    pub assignees: Vec<String>,
    /// Priority (Jira's priority name; a `priority: <name>` label where the tracker has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
}

/// A partial update: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueUpdate {
    /// New title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// New body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// New status: a word [`IssueState::from_word`] knows (close, reopen) or a tracker's own
    /// workflow status name (Jira transitions to it). Trackers without workflows refuse other
    /// names with [`TrackerError::Invalid`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// New priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    /// Replacement labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// Replacement assignees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignees: Option<Vec<String>>,
}

impl IssueUpdate {
    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueComment {
    /// The tracker's id.
    pub id: String,
    /// Author login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Body.
    pub body: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// One page of issues changed since a time, with the cursor for the next page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuePage {
    /// The issues.
    pub issues: Vec<Issue>,
    /// Pass back to get the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// A project (repository, GitLab project, Jira project) as its tracker describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectInfo {
    /// The key issues are filed under (`owner/repo`, `group/project`, `PROJ`).
    pub key: String,
    /// Display name.
    pub name: String,
    /// Web URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// What happened to an issue, as a tracker's webhook reports it, in one vocabulary for all
/// trackers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TrackerEventKind {
    /// `issue.created`.
    #[serde(rename = "issue.created")]
    IssueCreated,
    /// `issue.updated` (edited, labelled, assigned, reopened...).
    #[serde(rename = "issue.updated")]
    IssueUpdated,
    /// `issue.closed`.
    #[serde(rename = "issue.closed")]
    IssueClosed,
    /// `issue.commented`.
    #[serde(rename = "issue.commented")]
    IssueCommented,
}

impl TrackerEventKind {
    /// The event's name (`issue.created`, ...), as flows' triggers name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IssueCreated => "issue.created",
            Self::IssueUpdated => "issue.updated",
            Self::IssueClosed => "issue.closed",
            Self::IssueCommented => "issue.commented",
        }
    }
}

/// A normalized tracker event: what happened, to which issue (as it is now), and the comment
/// when one was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerEvent {
    /// What happened.
    pub kind: TrackerEventKind,
    /// The issue after the change.
    pub issue: Issue,
    /// The comment, for [`TrackerEventKind::IssueCommented`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<IssueComment>,
}

/// What can go wrong talking to a tracker. Messages never include credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrackerError {
    /// No such issue or project.
    #[error("not found: {0}")]
    NotFound(String),
    /// The credentials are missing or invalid.
    #[error("the tracker refused the credentials: {0}")]
    Unauthorized(String),
    /// The credentials are valid but lack permission for this.
    #[error("the tracker forbids this: {0}")]
    Forbidden(String),
    /// The tracker is rate limiting, until the given time when it says.
    #[error("rate limited by the tracker{}", until.map(|t| format!(" until {}", t.to_rfc3339())).unwrap_or_default())]
    RateLimited {
        /// When the limit resets, when the tracker says.
        until: Option<DateTime<Utc>>,
    },
    /// The request was invalid; the tracker's own message (e.g. an unknown label or field).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The tracker could not be reached or answered with a server error.
    #[error("tracker unavailable: {0}")]
    Unavailable(String),
}

/// An issue tracker.
#[async_trait]
pub trait Tracker: Send + Sync {
    /// The tracker's kind (`github`, `gitlab`, `jira`, ...).
    fn kind(&self) -> &str;

    /// The canonical key (`owner/repo#12`, `group/project#12`, `PROJ-12`) of an issue named
    /// by its key or its web URL on this tracker; `None` when `reference` names no issue of it.
    fn issue_key(&self, reference: &str) -> Option<String>;

    /// One issue by key or web URL.
    async fn get_issue(&self, key: &str) -> Result<Issue, TrackerError>;

    /// Creates an issue.
    async fn create_issue(&self, issue: &NewIssue) -> Result<Issue, TrackerError>;

    /// Updates an issue and answers it as it is afterwards.
    async fn update_issue(&self, key: &str, update: &IssueUpdate) -> Result<Issue, TrackerError>;

    /// Adds a comment to an issue.
    async fn add_comment(&self, key: &str, body: &str) -> Result<IssueComment, TrackerError>;

    /// Issues of `project` updated at or after `since` (all of them when `None`), a page at a
    /// time: pass each page's `next_cursor` back until it is `None`.
    async fn list_updated_since(
        &self,
        project: &str,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<IssuePage, TrackerError>;

    /// The project, as the tracker describes it: checks that it exists and the credentials
    /// can read it.
    async fn get_project(&self, project: &str) -> Result<ProjectInfo, TrackerError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_name_states_in_any_trackers_vocabulary() {
        assert_eq!(IssueState::from_word("Reopen"), Some(IssueState::Open));
        assert_eq!(IssueState::from_word(" done "), Some(IssueState::Closed));
        assert_eq!(IssueState::from_word("In Progress"), None);
    }

    #[test]
    fn rate_limits_say_until_when() {
        let until = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        assert_eq!(
            TrackerError::RateLimited { until }.to_string(),
            "rate limited by the tracker until 2026-12-01T10:00:00+00:00"
        );
        assert_eq!(
            TrackerError::RateLimited { until: None }.to_string(),
            "rate limited by the tracker"
        );
    }

    #[test]
    fn events_are_named_as_flows_name_them() {
        let json = serde_json::to_value(TrackerEventKind::IssueCommented).ok();
        assert_eq!(json, Some(serde_json::json!("issue.commented")));
        assert_eq!(TrackerEventKind::IssueClosed.as_str(), "issue.closed");
    }
}

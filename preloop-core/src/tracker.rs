//! The issue-tracker interface adapters implement (GitHub, GitLab, Jira in `preloop-trackers`),
//! with typed issues, updates and errors. Only the trait and models live here.

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
    /// New state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<IssueState>,
    /// Replacement labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// Replacement assignees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignees: Option<Vec<String>>,
}

/// A search.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueQuery {
    /// Restrict to a project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Restrict to a state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<IssueState>,
    /// Issues carrying all these labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// At most this many results.
    pub limit: usize,
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

/// What can go wrong talking to a tracker. Messages never include credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrackerError {
    /// No such issue or project.
    #[error("not found: {0}")]
    NotFound(String),
    /// The credentials are missing, invalid or lack permission.
    #[error("the tracker refused the credentials: {0}")]
    Unauthorized(String),
    /// The tracker is rate limiting; retry after the given seconds if known.
    #[error("rate limited by the tracker")]
    RateLimited {
        /// Seconds to wait, when the tracker says.
        retry_after_seconds: Option<u64>,
    },
    /// The request was invalid (e.g. an unknown label or field).
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

    /// One issue by key.
    async fn get_issue(&self, key: &str) -> Result<Issue, TrackerError>;

    /// Creates an issue.
    async fn create_issue(&self, issue: &NewIssue) -> Result<Issue, TrackerError>;

    /// Updates an issue.
    async fn update_issue(&self, key: &str, update: &IssueUpdate) -> Result<Issue, TrackerError>;

    /// Searches issues.
    async fn search_issues(&self, query: &IssueQuery) -> Result<Vec<Issue>, TrackerError>;

    /// Issues of `project` updated at or after `since`, a page at a time (for sync).
    async fn list_updated_since(
        &self,
        project: &str,
        since: DateTime<Utc>,
        cursor: Option<&str>,
    ) -> Result<IssuePage, TrackerError>;

    /// Adds a comment to an issue.
    async fn add_comment(&self, key: &str, body: &str) -> Result<IssueComment, TrackerError>;
}

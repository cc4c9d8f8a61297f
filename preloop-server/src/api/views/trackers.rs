//! Trackers, their synchronization status and issues, as the API shows them: a tracker's token
//! and webhook secret are never shown, only whether they are set.

use crate::app::trackers::TrackerStatus;
use crate::app::trackers::WebhookOutcome;
use crate::app::trackers::sync::{Progress, SyncSummary};
use chrono::{DateTime, Utc};
use preloop_core::documents::{Project, TrackerKind};
use preloop_core::store::{IssueHit, StoredIssue};
use preloop_core::tracker::{Issue, IssueComment, ProjectInfo};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// A tracker kind as the API writes it.
fn kind_name(kind: TrackerKind) -> &'static str {
    match kind {
        TrackerKind::Github => "github",
        TrackerKind::Gitlab => "gitlab",
        TrackerKind::Jira => "jira",
    }
}

/// A project's synchronization.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct ProjectView {
    id: Uuid,
    tracker_id: Uuid,
    /// `owner/repo`, `group/project`, Jira key.
    key: String,
    name: String,
    /// Last successful synchronization (`null`: never).
    #[schema(required = true)]
    last_synced_at: Option<DateTime<Utc>>,
    /// The newest update synchronized; the next sync asks for changes since then.
    #[schema(required = true)]
    synced_through: Option<DateTime<Utc>>,
    /// Why the last synchronization failed (`null`: it did not).
    #[schema(required = true)]
    last_error: Option<String>,
}

impl From<&Project> for ProjectView {
    fn from(project: &Project) -> Self {
        Self {
            id: project.id,
            tracker_id: project.tracker_id,
            key: project.key.clone(),
            name: project.name.clone(),
            last_synced_at: project.last_synced_at,
            synced_through: project.synced_through,
            last_error: project.last_error.clone(),
        }
    }
}

/// A synchronization running now.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct ProgressView {
    started_at: DateTime<Utc>,
    project: String,
    issues: u64,
    pages: u64,
}

impl From<&Progress> for ProgressView {
    fn from(progress: &Progress) -> Self {
        Self {
            started_at: progress.started_at,
            project: progress.project.clone(),
            issues: progress.issues,
            pages: progress.pages,
        }
    }
}

/// A tracker with its status. Its token and webhook secret are write-only.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct TrackerView {
    id: Uuid,
    name: String,
    /// `github`, `gitlab` or `jira`.
    kind: String,
    /// API base URL.
    url: String,
    /// Jira Cloud's e-mail (`null` elsewhere).
    #[schema(required = true)]
    username: Option<String>,
    projects: Vec<String>,
    sync_interval_seconds: u64,
    enabled: bool,
    created_at: DateTime<Utc>,
    /// Whether a webhook secret is set (deliveries are refused without one).
    has_webhook_secret: bool,
    /// The URL to paste into the tracker's webhook settings.
    webhook_url: String,
    /// Issues of this tracker in the index.
    issues_indexed: u64,
    /// The latest successful synchronization of any project (`null`: none yet).
    #[schema(required = true)]
    last_synced_at: Option<DateTime<Utc>>,
    /// The last failure of a project's synchronization, or of building the adapter.
    #[schema(required = true)]
    last_error: Option<String>,
    /// The projects' synchronization records.
    project_status: Vec<ProjectView>,
    /// A synchronization running on the replica that answered (`null`: none).
    #[schema(required = true)]
    running: Option<ProgressView>,
}

impl TrackerView {
    /// The view of `status`, with its webhook URL under `public_url`.
    pub(in crate::api) fn new(status: &TrackerStatus, public_url: &str) -> Self {
        let tracker = &status.tracker;
        let last_error = status
            .connection_error
            .clone()
            .or_else(|| status.projects.iter().find_map(|p| p.last_error.clone()));
        Self {
            id: tracker.id,
            name: tracker.name.clone(),
            kind: kind_name(tracker.kind).to_owned(),
            url: tracker.base_url.clone(),
            username: tracker.username.clone(),
            projects: tracker.projects.clone(),
            sync_interval_seconds: tracker.sync_interval_seconds,
            enabled: tracker.enabled,
            created_at: tracker.created_at,
            has_webhook_secret: tracker.webhook_secret.is_some(),
            webhook_url: format!(
                "{}/api/v1/trackers/{}/webhook",
                public_url.trim_end_matches('/'),
                tracker.id
            ),
            issues_indexed: status.issues_indexed,
            last_synced_at: status
                .projects
                .iter()
                .filter_map(|p| p.last_synced_at)
                .max(),
            last_error,
            project_status: status.projects.iter().map(ProjectView::from).collect(),
            running: status.running.as_ref().map(ProgressView::from),
        }
    }
}

/// What a synchronization did.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct SyncView {
    issues: u64,
    pages: u64,
    /// Projects that failed, with why.
    failures: Vec<SyncFailureView>,
    /// Another replica was synchronizing this tracker, so this one did nothing.
    skipped: bool,
}

/// A project whose synchronization failed.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct SyncFailureView {
    project: String,
    error: String,
}

impl From<SyncSummary> for SyncView {
    fn from(summary: SyncSummary) -> Self {
        Self {
            issues: summary.issues,
            pages: summary.pages,
            failures: summary
                .failures
                .into_iter()
                .map(|(project, error)| SyncFailureView { project, error })
                .collect(),
            skipped: summary.skipped,
        }
    }
}

/// A project as its tracker describes it (a connection test).
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct ProjectInfoView {
    key: String,
    name: String,
    #[schema(required = true)]
    url: Option<String>,
}

impl From<ProjectInfo> for ProjectInfoView {
    fn from(info: ProjectInfo) -> Self {
        Self {
            key: info.key,
            name: info.name,
            url: info.url,
        }
    }
}

/// What became of a webhook delivery.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct DeliveryView {
    delivery_id: String,
    /// Seen before, so ignored.
    duplicate: bool,
    /// The normalized event (`issue.created`, ...), when it reported one.
    #[schema(required = true)]
    event: Option<String>,
    #[schema(required = true)]
    issue: Option<String>,
}

impl From<WebhookOutcome> for DeliveryView {
    fn from(outcome: WebhookOutcome) -> Self {
        Self {
            delivery_id: outcome.delivery_id,
            duplicate: outcome.duplicate,
            event: outcome.event,
            issue: outcome.issue,
        }
    }
}

/// An issue as the index holds it.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct IssueView {
    /// The index's id (`issues/{id}`).
    id: String,
    tracker_id: String,
    /// The tracker's own id.
    tracker_issue_id: String,
    key: String,
    project: String,
    title: String,
    body: String,
    /// `open` or `closed`.
    state: String,
    /// The tracker's workflow status, when it has one.
    #[schema(required = true)]
    status: Option<String>,
    labels: Vec<String>,
    assignees: Vec<String>,
    #[schema(required = true)]
    author: Option<String>,
    #[schema(required = true)]
    priority: Option<String>,
    #[schema(required = true)]
    url: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Relevance, in search results.
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f32>,
}

impl IssueView {
    fn of(id: &str, tracker_id: &str, issue: &Issue, score: Option<f32>) -> Self {
        Self {
            id: id.to_owned(),
            tracker_id: tracker_id.to_owned(),
            tracker_issue_id: issue.id.clone(),
            key: issue.key.clone(),
            project: issue.project.clone(),
            title: issue.title.clone(),
            body: issue.body.clone(),
            state: issue.state.as_str().to_owned(),
            status: issue.status.clone(),
            labels: issue.labels.clone(),
            assignees: issue.assignees.clone(),
            author: issue.author.clone(),
            priority: issue.priority.clone(),
            url: issue.url.clone(),
            created_at: issue.created_at,
            updated_at: issue.updated_at,
            score,
        }
    }
}

impl From<&StoredIssue> for IssueView {
    fn from(stored: &StoredIssue) -> Self {
        Self::of(&stored.id, &stored.tracker_id, &stored.issue, None)
    }
}

impl From<&IssueHit> for IssueView {
    fn from(hit: &IssueHit) -> Self {
        Self::of(
            &hit.stored.id,
            &hit.stored.tracker_id,
            &hit.stored.issue,
            Some(hit.score),
        )
    }
}

/// A comment that was added.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct CommentView {
    id: String,
    #[schema(required = true)]
    author: Option<String>,
    body: String,
    created_at: DateTime<Utc>,
}

impl From<IssueComment> for CommentView {
    fn from(comment: IssueComment) -> Self {
        Self {
            id: comment.id,
            author: comment.author,
            body: comment.body,
            created_at: comment.created_at,
        }
    }
}

//! The built-in issue tools, with the original product's names and arguments: `get_issue`,
//! `create_issue`, `update_issue`, `search`, `estimate_compliance`, `improve_compliance`, and
//! `add_comment`. They are ordinary [`RegisteredTool`]s, so the governor applies visibility,
//! policy, approvals and audit to them exactly as to any upstream tool.
//!
//! Reads go to the tracker (fresh) and fall back to the index when the tracker is unavailable;
//! every issue read or written lands in the index, so `search` (full text over the index) sees
//! it at once. Failures are tool errors (`isError: true`) in plain words, never protocol errors.

mod arguments;
mod render;
mod resolve;

pub use resolve::{
    ConnectedTracker, FixedDirectory, ResolveError, TrackerDirectory, project_of_key,
    tracker_for_project,
};

use crate::compliance::{self, Metric};
pub use arguments::MAX_SEARCH_LIMIT;
use arguments::{AddComment, Compliance, CreateIssue, GetIssue, Search, UpdateIssue};
use async_trait::async_trait;
use preloop_core::executor::{ExecutionContext, ExecutionError, ToolExecutor, ToolOutput};
use preloop_core::registry::{RegisteredTool, ToolAnnotations, ToolDescriptor, ToolSource};
use preloop_core::store::{IssueHit, IssueStore, StoreError, TextSearch};
use preloop_core::tracker::{Issue, IssueState, IssueUpdate, NewIssue, TrackerError};
use serde_json::Value;
use std::sync::Arc;

/// The namespace (`tool.server` in policies) of the issue tools.
pub const SERVER: &str = "preloop";

/// The tools' names, as agents call them.
pub const TOOL_NAMES: [&str; 7] = [
    "get_issue",
    "create_issue",
    "update_issue",
    "add_comment",
    "search",
    "estimate_compliance",
    "improve_compliance",
];

/// The issue tools over an organization's trackers and the issue index.
#[derive(Clone)]
pub struct IssueTools {
    directory: Arc<dyn TrackerDirectory>,
    index: Arc<dyn IssueStore>,
}

impl std::fmt::Debug for IssueTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IssueTools")
    }
}

/// Why a tool could not do what it was asked: becomes the tool error's text.
#[derive(Debug, thiserror::Error)]
enum ToolFailure {
    #[error("{0}")]
    Arguments(String),
    #[error("invalid arguments: {0}")]
    Unreadable(#[from] serde_json::Error),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Tracker(#[from] TrackerError),
    #[error("the issue index failed: {0}")]
    Store(#[from] StoreError),
}

impl IssueTools {
    /// Tools over `directory`'s trackers, indexing into `index`.
    pub fn new(directory: Arc<dyn TrackerDirectory>, index: Arc<dyn IssueStore>) -> Self {
        Self { directory, index }
    }

    /// The seven tools, shared by every organization (register them per organization with
    /// the registry's `replace_server_tools` to show them only where a tracker is connected).
    pub fn tools(&self) -> Vec<RegisteredTool> {
        TOOL_NAMES
            .iter()
            .map(|name| {
                RegisteredTool::new(
                    descriptor(name),
                    Arc::new(self.clone()) as Arc<dyn ToolExecutor>,
                )
            })
            .collect()
    }

    async fn run(
        &self,
        tool: &str,
        arguments: Value,
        organization_id: &str,
    ) -> Result<ToolOutput, ToolFailure> {
        let trackers = self.directory.trackers(organization_id);
        let context = Context {
            tools: self,
            trackers: &trackers,
            organization_id,
        };
        match tool {
            "get_issue" => context.get(serde_json::from_value(arguments)?).await,
            "create_issue" => context.create(serde_json::from_value(arguments)?).await,
            "update_issue" => context.update(serde_json::from_value(arguments)?).await,
            "add_comment" => context.comment(serde_json::from_value(arguments)?).await,
            "search" => context.search(serde_json::from_value(arguments)?).await,
            "estimate_compliance" | "improve_compliance" => {
                let arguments: Compliance = serde_json::from_value(arguments)?;
                context
                    .compliance(arguments, tool == "improve_compliance")
                    .await
            }
            other => Err(ToolFailure::Arguments(format!(
                "unknown issue tool {other:?}"
            ))),
        }
    }
}

#[async_trait]
impl ToolExecutor for IssueTools {
    async fn execute(
        &self,
        tool: &ToolDescriptor,
        arguments: Value,
        context: &ExecutionContext,
    ) -> Result<ToolOutput, ExecutionError> {
        Ok(self
            .run(&tool.name, arguments, &context.organization_id)
            .await
            .unwrap_or_else(|failure| ToolOutput::error_text(failure.to_string())))
    }
}

/// One call's view: the tools, the organization's trackers, the organization.
struct Context<'a> {
    tools: &'a IssueTools,
    trackers: &'a [ConnectedTracker],
    organization_id: &'a str,
}

impl Context<'_> {
    async fn resolve(&self, reference: &str) -> Result<(ConnectedTracker, String), ToolFailure> {
        Ok(resolve::resolve_issue(
            self.trackers,
            self.tools.index.as_ref(),
            self.organization_id,
            reference,
        )
        .await?)
    }

    /// Files `issue` in the index and answers its store id.
    async fn index(
        &self,
        tracker: &ConnectedTracker,
        issue: &Issue,
    ) -> Result<String, ToolFailure> {
        Ok(self
            .tools
            .index
            .upsert_issue(self.organization_id, &tracker.id, issue, None)
            .await?)
    }

    fn answer(
        &self,
        tracker: &ConnectedTracker,
        issue: &Issue,
        id: &str,
        note: Option<&str>,
    ) -> ToolOutput {
        render::output(
            render::issue_text(issue, note),
            serde_json::json!({"issue": render::issue_value(issue, Some(id), &tracker.name)}),
        )
    }

    /// The issue from its tracker, or from the index (with a note) while the tracker cannot
    /// answer.
    async fn fetch(
        &self,
        tracker: &ConnectedTracker,
        key: &str,
    ) -> Result<(Issue, String, Option<String>), ToolFailure> {
        match tracker.tracker.get_issue(key).await {
            Ok(issue) => {
                let id = self.index(tracker, &issue).await?;
                Ok((issue, id, None))
            }
            Err(error @ (TrackerError::Unavailable(_) | TrackerError::RateLimited { .. })) => {
                let stored = self
                    .tools
                    .index
                    .get_issue(self.organization_id, &tracker.id, key)
                    .await?;
                match stored {
                    Some(stored) => Ok((
                        stored.issue,
                        stored.id,
                        Some(format!("from the index: {error}")),
                    )),
                    None => Err(error.into()),
                }
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn get(&self, arguments: GetIssue) -> Result<ToolOutput, ToolFailure> {
        let (tracker, key) = self.resolve(&arguments.issue).await?;
        let (issue, id, note) = self.fetch(&tracker, &key).await?;
        Ok(self.answer(&tracker, &issue, &id, note.as_deref()))
    }

    async fn create(&self, arguments: CreateIssue) -> Result<ToolOutput, ToolFailure> {
        if arguments.title.trim().is_empty() {
            return Err(ToolFailure::Arguments(
                "the title must not be empty".to_owned(),
            ));
        }
        let tracker = resolve::tracker_for_project(
            self.trackers,
            &arguments.project,
            arguments.tracker.as_deref(),
        )?;
        let mut issue = tracker
            .tracker
            .create_issue(&NewIssue {
                project: arguments.project.clone(),
                title: arguments.title,
                body: arguments.description,
                labels: arguments.labels,
                assignees: arguments.assignee.into_iter().collect(),
                priority: arguments.priority,
            })
            .await?;
        // A status other than the new issue's own is a change right after creation.
        if let Some(status) = arguments.status.filter(|s| !is_current(&issue, s)) {
            let update = IssueUpdate {
                status: Some(status),
                ..IssueUpdate::default()
            };
            issue = tracker.tracker.update_issue(&issue.key, &update).await?;
        }
        let id = self.index(&tracker, &issue).await?;
        Ok(self.answer(&tracker, &issue, &id, Some("created")))
    }

    async fn update(&self, arguments: UpdateIssue) -> Result<ToolOutput, ToolFailure> {
        let (tracker, key) = self.resolve(&arguments.issue).await?;
        let update = IssueUpdate {
            title: arguments.title,
            body: arguments.description,
            status: arguments.status,
            priority: arguments.priority,
            labels: arguments.labels,
            assignees: arguments.assignee.map(|a| {
                Some(a)
                    .filter(|a| !a.trim().is_empty())
                    .into_iter()
                    .collect()
            }),
        };
        if update.is_empty() {
            return Err(ToolFailure::Arguments(
                "nothing to change: give at least one of title, description, status, priority, assignee, labels".to_owned(),
            ));
        }
        let issue = tracker.tracker.update_issue(&key, &update).await?;
        let id = self.index(&tracker, &issue).await?;
        Ok(self.answer(&tracker, &issue, &id, Some("updated")))
    }

    async fn comment(&self, arguments: AddComment) -> Result<ToolOutput, ToolFailure> {
        if arguments.body.trim().is_empty() {
            return Err(ToolFailure::Arguments(
                "the comment must not be empty".to_owned(),
            ));
        }
        let (tracker, key) = self.resolve(&arguments.issue).await?;
        let comment = tracker.tracker.add_comment(&key, &arguments.body).await?;
        Ok(render::comment(&key, &comment))
    }

    async fn search(&self, arguments: Search) -> Result<ToolOutput, ToolFailure> {
        if self.trackers.is_empty() {
            return Err(ResolveError::NoTracker.into());
        }
        let state = match arguments.status.as_deref() {
            None => None,
            Some(word) => Some(IssueState::from_word(word).ok_or_else(|| {
                ToolFailure::Arguments(format!("status {word:?} is neither open nor closed"))
            })?),
        };
        let search = TextSearch {
            text: arguments.query.clone(),
            tracker_id: None,
            project: arguments.project,
            state,
            limit: arguments.limit,
        };
        let hits = search_connected(
            self.trackers,
            self.tools.index.as_ref(),
            self.organization_id,
            search,
        )
        .await?;
        Ok(render::hits(&arguments.query, &hits, |id| {
            self.trackers
                .iter()
                .find(|t| t.id == id)
                .map(|t| t.name.clone())
                .unwrap_or_default()
        }))
    }

    async fn compliance(
        &self,
        arguments: Compliance,
        suggest: bool,
    ) -> Result<ToolOutput, ToolFailure> {
        let metric = Metric::parse(&arguments.compliance_metric).ok_or_else(|| {
            ToolFailure::Arguments(format!(
                "unknown compliance metric {:?}; available: {}",
                arguments.compliance_metric,
                compliance::METRICS.join(", ")
            ))
        })?;
        let references = arguments.issues.into_vec();
        if references.is_empty() || references.len() > arguments::MAX_ASSESSED {
            return Err(ToolFailure::Arguments(format!(
                "give between 1 and {} issues",
                arguments::MAX_ASSESSED
            )));
        }
        let mut assessed = Vec::with_capacity(references.len());
        for reference in references {
            let (tracker, key) = self.resolve(&reference).await?;
            let (issue, _, _) = self.fetch(&tracker, &key).await?;
            let assessment = compliance::assess(&issue, metric);
            assessed.push((issue, assessment));
        }
        Ok(render::assessments(&assessed, suggest))
    }
}

/// Full-text search over the index, answering only issues of `trackers` (a removed or
/// disabled tracker's leftovers are not answers), at most [`MAX_SEARCH_LIMIT`] of them.
pub async fn search_connected(
    trackers: &[ConnectedTracker],
    index: &dyn IssueStore,
    organization_id: &str,
    search: TextSearch,
) -> Result<Vec<IssueHit>, StoreError> {
    let search = TextSearch {
        limit: search.limit.clamp(1, MAX_SEARCH_LIMIT),
        ..search
    };
    let hits = index.search_text(organization_id, &search).await?;
    Ok(hits
        .into_iter()
        .filter(|hit| trackers.iter().any(|t| t.id == hit.stored.tracker_id))
        .collect())
}

/// Whether `status` is what the issue already is (so creating needs no transition).
fn is_current(issue: &Issue, status: &str) -> bool {
    issue
        .status
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case(status.trim()))
        || IssueState::from_word(status) == Some(issue.state)
}

fn descriptor(name: &str) -> ToolDescriptor {
    let (description, read_only, destructive) = match name {
        "get_issue" => (
            "Get an issue from a connected tracker (GitHub, GitLab, Jira) by key, web URL or id: title, description, state, labels, assignees, priority.",
            true,
            false,
        ),
        "create_issue" => (
            "Create an issue in a connected tracker's project.",
            false,
            false,
        ),
        "update_issue" => (
            "Update an issue: title, description, status (open, closed, or a Jira workflow status), priority, assignee, labels.",
            false,
            true,
        ),
        "add_comment" => ("Add a comment to an issue.", false, false),
        "search" => (
            "Search the connected trackers' issues by words in their titles and descriptions (best matches first).",
            true,
            false,
        ),
        "estimate_compliance" => (
            "Score issues against a compliance metric (DoR: Definition of Ready), criterion by criterion, each from 0 to 1.",
            true,
            false,
        ),
        _ => (
            "Say how to make issues meet a compliance metric (DoR: Definition of Ready): the score and a concrete suggestion for each gap.",
            true,
            false,
        ),
    };
    ToolDescriptor::new(SERVER, name, ToolSource::BuiltIn)
        .with_exposed_name(name)
        .with_description(description)
        .with_input_schema(arguments::schema(name))
        .with_annotations(ToolAnnotations {
            read_only_hint: Some(read_only),
            destructive_hint: Some(destructive),
            idempotent_hint: Some(read_only),
            open_world_hint: Some(true),
            ..ToolAnnotations::default()
        })
}

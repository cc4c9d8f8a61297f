//! Which of an organization's trackers a project or an issue reference belongs to.

use preloop_core::store::{IssueStore, StoreError};
use preloop_core::tracker::Tracker;
use std::sync::Arc;

/// A tracker an organization connected, as the tools use it.
#[derive(Clone)]
pub struct ConnectedTracker {
    /// The tracker's id (the index files its issues under it).
    pub id: String,
    /// Its unique name in the organization (`gh`).
    pub name: String,
    /// The projects it was connected for (`owner/repo`, `group/project`, `PROJ`).
    pub projects: Vec<String>,
    /// The adapter.
    pub tracker: Arc<dyn Tracker>,
}

impl std::fmt::Debug for ConnectedTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectedTracker")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("kind", &self.tracker.kind())
            .field("projects", &self.projects)
            .finish()
    }
}

impl ConnectedTracker {
    /// Whether the tracker was connected for `project` (Jira keys in any case).
    pub fn has_project(&self, project: &str) -> bool {
        self.projects
            .iter()
            .any(|p| p.eq_ignore_ascii_case(project))
    }
}

/// Where the tools find an organization's trackers (the server keeps them in memory).
pub trait TrackerDirectory: Send + Sync {
    /// The organization's trackers.
    fn trackers(&self, organization_id: &str) -> Vec<ConnectedTracker>;
}

/// A fixed list of trackers for every organization: what an embedder with its own adapter
/// needs.
#[derive(Debug, Clone, Default)]
pub struct FixedDirectory(pub Vec<ConnectedTracker>);

impl TrackerDirectory for FixedDirectory {
    fn trackers(&self, _organization_id: &str) -> Vec<ConnectedTracker> {
        self.0.clone()
    }
}

/// Why a reference names no tracker's issue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The organization has no tracker.
    #[error("this organization has no issue tracker connected")]
    NoTracker,
    /// No tracker has the project.
    #[error("unknown project {project:?}; the connected projects are: {known}")]
    UnknownProject {
        /// What was asked.
        project: String,
        /// The projects there are.
        known: String,
    },
    /// No tracker recognizes the reference.
    #[error(
        "no connected tracker knows the issue {0:?}: give its key (owner/repo#12, group/project#12, PROJ-12), its web URL, or its id from search"
    )]
    UnknownIssue(String),
    /// Several trackers could mean it.
    #[error("{reference:?} could be in more than one tracker ({trackers}): name the tracker")]
    Ambiguous {
        /// What was asked.
        reference: String,
        /// The candidates.
        trackers: String,
    },
    /// The index could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The project part of a canonical key: before `#` (`owner/repo#12`), else before the last `-`
/// (`PROJ-12`).
pub fn project_of_key(key: &str) -> &str {
    key.rsplit_once('#')
        .or_else(|| key.rsplit_once('-'))
        .map_or(key, |(project, _)| project)
}

/// The tracker a new issue in `project` goes to (`tracker` names one when several could).
pub fn tracker_for_project(
    trackers: &[ConnectedTracker],
    project: &str,
    tracker: Option<&str>,
) -> Result<ConnectedTracker, ResolveError> {
    if trackers.is_empty() {
        return Err(ResolveError::NoTracker);
    }
    let named: Vec<&ConnectedTracker> = trackers
        .iter()
        .filter(|t| tracker.is_none_or(|name| t.name == name))
        .collect();
    let candidates: Vec<&ConnectedTracker> = named
        .iter()
        .copied()
        .filter(|t| t.has_project(project))
        .collect();
    match candidates.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ResolveError::UnknownProject {
            project: project.to_owned(),
            known: trackers
                .iter()
                .flat_map(|t| t.projects.iter().map(move |p| format!("{p} ({})", t.name)))
                .collect::<Vec<_>>()
                .join(", "),
        }),
        many => Err(ResolveError::Ambiguous {
            reference: project.to_owned(),
            trackers: names(many),
        }),
    }
}

fn names(trackers: &[&ConnectedTracker]) -> String {
    trackers
        .iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The tracker and canonical key an issue reference (key, web URL or store id) names.
pub async fn resolve_issue(
    trackers: &[ConnectedTracker],
    index: &dyn IssueStore,
    organization_id: &str,
    reference: &str,
) -> Result<(ConnectedTracker, String), ResolveError> {
    if trackers.is_empty() {
        return Err(ResolveError::NoTracker);
    }
    let reference = reference.trim();
    if let Some(stored) = index.find_issue(organization_id, reference).await?
        && let Some(tracker) = trackers.iter().find(|t| t.id == stored.tracker_id)
    {
        return Ok((tracker.clone(), stored.issue.key));
    }
    let recognized: Vec<(&ConnectedTracker, String)> = trackers
        .iter()
        .filter_map(|t| t.tracker.issue_key(reference).map(|key| (t, key)))
        .collect();
    // Prefer the trackers connected for the key's project.
    let preferred: Vec<&(&ConnectedTracker, String)> = recognized
        .iter()
        .filter(|(t, key)| t.has_project(project_of_key(key)))
        .collect();
    let chosen: Vec<&(&ConnectedTracker, String)> = if preferred.is_empty() {
        recognized.iter().collect()
    } else {
        preferred
    };
    match chosen.as_slice() {
        [(tracker, key)] => Ok(((*tracker).clone(), key.clone())),
        [] => Err(ResolveError::UnknownIssue(reference.to_owned())),
        many => Err(ResolveError::Ambiguous {
            reference: reference.to_owned(),
            trackers: names(&many.iter().map(|(t, _)| *t).collect::<Vec<_>>()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_project() {
        assert_eq!(project_of_key("owner/repo#12"), "owner/repo");
        assert_eq!(project_of_key("group/sub-project#3"), "group/sub-project");
        assert_eq!(project_of_key("PROJ-12"), "PROJ");
        assert_eq!(project_of_key("plain"), "plain");
    }
}

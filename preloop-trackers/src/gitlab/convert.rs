//! GitLab's REST shapes (issues, notes, projects, users) and how they become core models;
//! priorities as `priority::<name>` scoped labels; GitLab's two time formats.

use chrono::{DateTime, NaiveDateTime, Utc};
use preloop_core::tracker::{Issue, IssueComment, IssueState, ProjectInfo, TrackerError};
use serde::{Deserialize, Deserializer};

/// The scoped-label prefix that carries a priority (GitLab's free tier has no priority field).
const PRIORITY_PREFIX: &str = "priority::";

/// A user as GitLab embeds one (`author`, `assignees[]`, a webhook's `user`).
#[derive(Debug, Deserialize)]
pub(crate) struct User {
    /// The global id.
    pub(crate) id: u64,
    /// The login.
    pub(crate) username: String,
}

/// An issue as the REST API answers it.
#[derive(Debug, Deserialize)]
pub(crate) struct RestIssue {
    id: u64,
    iid: u64,
    title: String,
    #[serde(default)]
    description: Option<String>,
    state: String,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    assignees: Vec<User>,
    #[serde(default)]
    author: Option<User>,
    #[serde(default)]
    web_url: Option<String>,
    #[serde(deserialize_with = "time")]
    created_at: DateTime<Utc>,
    #[serde(deserialize_with = "time")]
    updated_at: DateTime<Utc>,
    #[serde(default)]
    references: Option<References>,
}

#[derive(Debug, Deserialize)]
struct References {
    /// `group/project#12`.
    full: Option<String>,
}

impl RestIssue {
    /// The core issue; `project` is the path it was asked under, used when the answer does
    /// not name its own (`references.full`).
    pub(crate) fn into_issue(self, project: &str) -> Result<Issue, TrackerError> {
        let project = self
            .references
            .and_then(|r| r.full)
            .and_then(|full| full.rsplit_once('#').map(|(path, _)| path.to_owned()))
            .unwrap_or_else(|| project.to_owned());
        let state = state(&self.state).ok_or_else(|| {
            TrackerError::Unavailable(format!(
                "GitLab answered an unknown issue state {:?}",
                self.state
            ))
        })?;
        Ok(IssueParts {
            id: self.id,
            iid: self.iid,
            project,
            title: self.title,
            description: self.description,
            state,
            labels: self.labels,
            assignees: self.assignees.into_iter().map(|u| u.username).collect(),
            author: self.author.map(|u| u.username),
            url: self.web_url,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
        .into_issue())
    }
}

/// What an issue is made of, whichever payload (REST or webhook) it came in.
#[derive(Debug)]
pub(crate) struct IssueParts {
    pub(crate) id: u64,
    pub(crate) iid: u64,
    pub(crate) project: String,
    pub(crate) title: String,
    pub(crate) description: Option<String>,
    pub(crate) state: IssueState,
    /// All labels, priority labels included.
    pub(crate) labels: Vec<String>,
    pub(crate) assignees: Vec<String>,
    pub(crate) author: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl IssueParts {
    /// The core issue: a `priority::<name>` label becomes the priority, the others stay labels.
    pub(crate) fn into_issue(self) -> Issue {
        let (labels, priority) = split_priority(self.labels);
        Issue {
            id: self.id.to_string(),
            key: format!("{}#{}", self.project, self.iid),
            project: self.project,
            title: self.title,
            body: self.description.unwrap_or_default(),
            state: self.state,
            status: None,
            labels,
            assignees: self.assignees,
            author: self.author,
            priority,
            url: self.url,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A note (comment) as the REST API answers it.
#[derive(Debug, Deserialize)]
pub(crate) struct RestNote {
    id: u64,
    body: String,
    #[serde(default)]
    author: Option<User>,
    #[serde(deserialize_with = "time")]
    created_at: DateTime<Utc>,
}

impl From<RestNote> for IssueComment {
    fn from(note: RestNote) -> Self {
        Self {
            id: note.id.to_string(),
            author: note.author.map(|u| u.username),
            body: note.body,
            created_at: note.created_at,
        }
    }
}

/// A project as the REST API answers it.
#[derive(Debug, Deserialize)]
pub(crate) struct RestProject {
    path_with_namespace: String,
    name: String,
    #[serde(default)]
    web_url: Option<String>,
}

impl From<RestProject> for ProjectInfo {
    fn from(project: RestProject) -> Self {
        Self {
            key: project.path_with_namespace,
            name: project.name,
            url: project.web_url,
        }
    }
}

/// GitLab's issue states: `opened` and `closed`.
pub(crate) fn state(word: &str) -> Option<IssueState> {
    match word {
        "opened" => Some(IssueState::Open),
        "closed" => Some(IssueState::Closed),
        _ => None,
    }
}

/// The priority a label names (`priority::high` → `high`, any case of the prefix).
fn priority_of(label: &str) -> Option<&str> {
    let prefix = label.get(..PRIORITY_PREFIX.len())?;
    prefix
        .eq_ignore_ascii_case(PRIORITY_PREFIX)
        .then(|| &label[PRIORITY_PREFIX.len()..])
        .filter(|name| !name.trim().is_empty())
}

/// The labels without priority labels, and the priority the first of those names.
pub(crate) fn split_priority(labels: Vec<String>) -> (Vec<String>, Option<String>) {
    let mut priority = None;
    let mut others = Vec::with_capacity(labels.len());
    for label in labels {
        match priority_of(&label) {
            Some(name) => {
                priority.get_or_insert_with(|| name.trim().to_owned());
            }
            None => others.push(label),
        }
    }
    (others, priority)
}

/// GitLab's comma-separated `labels` parameter: `labels` (without priority labels) and the
/// priority as a `priority::<name>` label; a label holding a comma cannot be sent.
pub(crate) fn label_list(
    labels: &[String],
    priority: Option<&str>,
) -> Result<String, TrackerError> {
    let mut list: Vec<String> = Vec::with_capacity(labels.len() + 1);
    for label in labels {
        let label = label.trim();
        if label.contains(',') {
            return Err(TrackerError::Invalid(format!(
                "GitLab label names cannot contain a comma: {label:?}"
            )));
        }
        if !label.is_empty() && priority_of(label).is_none() {
            list.push(label.to_owned());
        }
    }
    if let Some(name) = priority.map(str::trim).filter(|name| !name.is_empty()) {
        if name.contains(',') {
            return Err(TrackerError::Invalid(format!(
                "a GitLab priority label cannot contain a comma: {name:?}"
            )));
        }
        list.push(format!("{PRIORITY_PREFIX}{name}"));
    }
    Ok(list.join(","))
}

/// The priority named among `labels`, if one is (a caller may pass `priority::<name>` itself).
pub(crate) fn priority_among(labels: &[String]) -> Option<&str> {
    labels.iter().find_map(|label| priority_of(label.trim()))
}

/// GitLab's times: ISO 8601 in the REST API (`2016-01-04T15:31:51.081Z`), and in some
/// webhook payloads `2015-05-17 17:06:40 UTC`.
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S UTC")
        .ok()
        .map(|time| time.and_utc())
}

/// Deserializes a time in either of GitLab's formats.
pub(crate) fn time<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_time(&text)
        .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a GitLab time")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_time_formats_are_read() {
        assert_eq!(
            parse_time("2016-01-04T15:31:51.081Z").map(|t| t.timestamp_millis()),
            Some(1_451_921_511_081)
        );
        assert_eq!(
            parse_time("2015-05-17 17:06:40 UTC").map(|t| t.to_rfc3339()),
            Some("2015-05-17T17:06:40+00:00".to_owned())
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn priorities_live_in_scoped_labels() -> Result<(), TrackerError> {
        let labels = vec![
            "bug".to_owned(),
            "Priority::High".to_owned(),
            "priority::low".to_owned(),
        ];
        assert_eq!(
            split_priority(labels.clone()),
            (vec!["bug".to_owned()], Some("High".to_owned()))
        );
        assert_eq!(priority_among(&labels), Some("High"));
        assert_eq!(label_list(&labels, Some("medium"))?, "bug,priority::medium");
        assert_eq!(label_list(&labels, None)?, "bug");
        assert_eq!(label_list(&[], Some(" ")), Ok(String::new()));
        assert!(matches!(
            label_list(&["a,b".to_owned()], None),
            Err(TrackerError::Invalid(_))
        ));
        Ok(())
    }
}

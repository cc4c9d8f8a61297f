//! Jira: Cloud through REST v3 (basic authentication with an e-mail and an API token, rich
//! text in Atlassian Document Format) and Server / Data Center through REST v2 (a personal
//! access token, rich text as plain wiki text).
//!
//! Issues are keyed `PROJ-12`; a workflow status maps to [`IssueState::Closed`] when its
//! category is `done`. Status changes go through the issue's transitions.

mod adf;
mod convert;
mod search;
pub mod webhook;
mod write;

use crate::Connection;
use crate::http::{Api, ClientOptions, Credentials};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use convert::{FIELDS, RawIssue, Unexpected};
use preloop_core::tracker::{
    Issue, IssueComment, IssuePage, IssueState, IssueUpdate, NewIssue, ProjectInfo, Tracker,
    TrackerError,
};
use serde::Deserialize;
use serde_json::Value;

/// Which Jira the site runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// Jira Cloud: REST v3, ADF.
    Cloud,
    /// Jira Server / Data Center: REST v2, plain text.
    Server,
}

/// A Jira site (Cloud or Server / Data Center).
#[derive(Debug)]
pub struct Jira {
    api: Api,
    flavor: Flavor,
}

/// A project as `GET /rest/api/{v}/project/{key}` describes it.
#[derive(Debug, Deserialize)]
struct RawProject {
    key: String,
    name: String,
    #[serde(default, rename = "issueTypes")]
    issue_types: Vec<IssueType>,
}

#[derive(Debug, Deserialize)]
struct IssueType {
    id: String,
    name: String,
    #[serde(default)]
    subtask: bool,
}

impl Jira {
    /// Builds the adapter; a broken URL is [`TrackerError::Invalid`]. With
    /// `connection.username` (an e-mail) the site is Jira Cloud, otherwise Server / Data Center.
    pub fn new(connection: &Connection, options: ClientOptions) -> Result<Self, TrackerError> {
        let (flavor, credentials) = match &connection.username {
            Some(username) if !username.trim().is_empty() => (
                Flavor::Cloud,
                Credentials::Basic {
                    username: username.trim().to_owned(),
                    password: connection.token.clone(),
                },
            ),
            _ => (
                Flavor::Server,
                Credentials::Bearer(connection.token.clone()),
            ),
        };
        let api = Api::new(&connection.url, credentials, options)?;
        Ok(Self { api, flavor })
    }

    /// The site, without a trailing `/`.
    fn site(&self) -> &str {
        self.api.base().as_str().trim_end_matches('/')
    }

    /// `rest/api/{3|2}/{rest}`.
    fn path(&self, rest: &str) -> String {
        let version = match self.flavor {
            Flavor::Cloud => 3,
            Flavor::Server => 2,
        };
        format!("rest/api/{version}/{rest}")
    }

    /// Rich text as this flavor sends it: ADF on Cloud, text on Server.
    fn rich_text(&self, text: &str) -> Value {
        match self.flavor {
            Flavor::Cloud => adf::from_text(text),
            Flavor::Server => Value::String(text.to_owned()),
        }
    }

    /// The canonical key of `reference`, or [`TrackerError::Invalid`] saying the accepted forms.
    fn key_of(&self, reference: &str) -> Result<String, TrackerError> {
        self.issue_key(reference).ok_or_else(|| {
            TrackerError::Invalid(format!(
                "{reference:?} names no Jira issue: give a key such as PROJ-12 or a URL {}/browse/PROJ-12",
                self.site()
            ))
        })
    }

    async fn raw_issue(&self, key: &str) -> Result<RawIssue, TrackerError> {
        let fields = FIELDS.join(",");
        let url = self.api.url(
            &self.path(&format!("issue/{key}")),
            &[("fields", fields.as_str())],
        )?;
        Ok(self.api.get(url).await?.0)
    }

    async fn raw_project(&self, project: &str) -> Result<RawProject, TrackerError> {
        let project = project_key(project)?;
        let url = self
            .api
            .url(&self.path(&format!("project/{project}")), &[])?;
        Ok(self.api.get(url).await?.0)
    }

    fn issue(&self, raw: RawIssue) -> Result<Issue, TrackerError> {
        raw.into_issue(self.site()).map_err(unexpected)
    }
}

/// A project key as the adapter accepts it: letters, digits and underscores (Jira's own rule),
/// so it is safe in a path.
fn project_key(project: &str) -> Result<&str, TrackerError> {
    let project = project.trim();
    let valid = !project.is_empty()
        && project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(project)
    } else {
        Err(TrackerError::Invalid(format!(
            "{project:?} is not a Jira project key (letters, digits and underscores, such as PROJ)"
        )))
    }
}

/// `PROJ-12` (project letters in any case) as the canonical `PROJ-12`.
fn canonical_key(text: &str) -> Option<String> {
    let (project, number) = text.trim().rsplit_once('-')?;
    let project_ok = project.starts_with(|c: char| c.is_ascii_alphabetic())
        && project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    let number_ok = !number.is_empty()
        && number.len() <= 18
        && number.chars().all(|c| c.is_ascii_digit())
        && !number.starts_with('0');
    (project_ok && number_ok).then(|| format!("{}-{number}", project.to_ascii_uppercase()))
}

fn unexpected(error: Unexpected) -> TrackerError {
    TrackerError::Unavailable(error.to_string())
}

#[async_trait]
impl Tracker for Jira {
    fn kind(&self) -> &str {
        "jira"
    }

    fn issue_key(&self, reference: &str) -> Option<String> {
        let reference = reference.trim();
        if let Some(key) = canonical_key(reference) {
            return Some(key);
        }
        let url = url::Url::parse(reference).ok()?;
        let base = self.api.base();
        if url.origin() != base.origin() {
            return None;
        }
        let rest = url.path().strip_prefix(base.path())?;
        let key = rest.strip_prefix("browse/")?.trim_end_matches('/');
        canonical_key(key)
    }

    async fn get_issue(&self, key: &str) -> Result<Issue, TrackerError> {
        let key = self.key_of(key)?;
        let raw = self.raw_issue(&key).await?;
        self.issue(raw)
    }

    async fn create_issue(&self, issue: &NewIssue) -> Result<Issue, TrackerError> {
        let key = self.create(issue).await?;
        self.get_issue(&key).await
    }

    async fn update_issue(&self, key: &str, update: &IssueUpdate) -> Result<Issue, TrackerError> {
        let key = self.key_of(key)?;
        self.edit(&key, update).await?;
        if let Some(status) = &update.status {
            self.transition(&key, status, IssueState::from_word(status))
                .await?;
        }
        self.get_issue(&key).await
    }

    async fn add_comment(&self, key: &str, body: &str) -> Result<IssueComment, TrackerError> {
        let key = self.key_of(key)?;
        self.comment(&key, body).await
    }

    async fn list_updated_since(
        &self,
        project: &str,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<IssuePage, TrackerError> {
        let project = project_key(project)?;
        self.search(project, since, cursor).await
    }

    async fn get_project(&self, project: &str) -> Result<ProjectInfo, TrackerError> {
        let raw = self.raw_project(project).await?;
        Ok(ProjectInfo {
            url: Some(format!("{}/browse/{}", self.site(), raw.key)),
            key: raw.key,
            name: raw.name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_in_any_case_and_refused_when_malformed() {
        assert_eq!(canonical_key("proj-12").as_deref(), Some("PROJ-12"));
        assert_eq!(canonical_key(" Ab_2-7 ").as_deref(), Some("AB_2-7"));
        for bad in [
            "PROJ", "PROJ-", "-12", "12-12", "PROJ-0", "PR OJ-1", "PROJ-1a",
        ] {
            assert_eq!(canonical_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn project_keys_are_checked() {
        assert_eq!(project_key(" PROJ "), Ok("PROJ"));
        assert!(matches!(
            project_key("PROJ\" OR 1=1"),
            Err(TrackerError::Invalid(_))
        ));
    }
}

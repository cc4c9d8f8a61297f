//! GitLab (gitlab.com or self-hosted) through its REST API v4.
//!
//! Projects are named by path (`group/sub/project`, sent URL-encoded as one segment), issues by
//! `group/project#12` where the number is the project-scoped `iid`, or by their web URL. The
//! token goes in GitLab's `PRIVATE-TOKEN` header. GitLab's free tier has no issue priority, so a
//! priority is a `priority::<name>` scoped label (read back from it; such labels are not listed
//! among an issue's labels). Webhook deliveries are read by [`webhook::receive`].

mod convert;
mod keys;
mod pages;
pub mod webhook;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use convert::{RestIssue, RestNote, RestProject, User};
use keys::{IssueRef, project_path};
use preloop_core::tracker::{
    Issue, IssueComment, IssuePage, IssueState, IssueUpdate, NewIssue, ProjectInfo, Tracker,
    TrackerError,
};
use reqwest::Method;
use reqwest::header::HeaderName;
use serde_json::{Map, Value, json};
use url::Url;

use crate::http::{Api, ClientOptions, Credentials};

/// A GitLab instance.
#[derive(Debug)]
pub struct GitLab {
    api: Api,
    /// The instance's web root (`https://gitlab.com/`, `https://example.com/gitlab/`).
    web: Url,
}

impl GitLab {
    /// Builds the adapter for the GitLab at `connection.url` (its host, possibly under a path,
    /// or its API base ending in `/api/v4`); a broken URL is [`TrackerError::Invalid`].
    pub fn new(
        connection: &crate::Connection,
        options: ClientOptions,
    ) -> Result<Self, TrackerError> {
        let root = connection.url.trim().trim_end_matches('/');
        let root = root.strip_suffix("/api/v4").unwrap_or(root);
        let credentials = Credentials::Header(
            HeaderName::from_static("private-token"),
            connection.token.clone(),
        );
        let api = Api::new(&format!("{root}/api/v4"), credentials, options)?;
        let mut web = api.base().clone();
        let api_path = web.path().to_owned();
        web.set_path(api_path.strip_suffix("api/v4/").unwrap_or(&api_path));
        Ok(Self { api, web })
    }

    /// The API URL of `segments` (each encoded as one path segment, so a project path's
    /// slashes travel as `%2F`) with `query`.
    fn endpoint(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, TrackerError> {
        let mut url = self.api.url("", query)?;
        url.path_segments_mut()
            .map_err(|()| TrackerError::Invalid("the GitLab URL cannot carry a path".to_owned()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    fn issue_ref(&self, reference: &str) -> Result<IssueRef, TrackerError> {
        IssueRef::parse(reference, &self.web).ok_or_else(|| {
            TrackerError::Invalid(format!(
                "{reference:?} names no GitLab issue: give group/project#IID or the issue's URL \
                 ({}group/project/-/issues/IID)",
                self.web
            ))
        })
    }

    fn issue_url(&self, issue: &IssueRef, rest: &[&str]) -> Result<Url, TrackerError> {
        let iid = issue.iid.to_string();
        let mut segments = vec!["projects", issue.project.as_str(), "issues", iid.as_str()];
        segments.extend_from_slice(rest);
        self.endpoint(&segments, &[])
    }

    async fn fetch_issue(&self, issue: &IssueRef) -> Result<Issue, TrackerError> {
        let (found, _): (RestIssue, _) = self.api.get(self.issue_url(issue, &[])?).await?;
        found.into_issue(&issue.project)
    }

    /// Sends `body` and reads the issue GitLab answers.
    async fn write_issue(
        &self,
        method: Method,
        url: Url,
        body: Map<String, Value>,
        project: &str,
    ) -> Result<Issue, TrackerError> {
        let answer = self
            .api
            .send(method, url, Some(&Value::Object(body)))
            .await?;
        answer.json::<RestIssue>()?.into_issue(project)
    }

    /// The ids of GitLab users named by username; an unknown one is [`TrackerError::Invalid`].
    async fn user_ids(&self, usernames: &[String]) -> Result<Vec<u64>, TrackerError> {
        let mut ids = Vec::with_capacity(usernames.len());
        for username in usernames {
            let username = username.trim();
            if username.is_empty() {
                return Err(TrackerError::Invalid(
                    "an assignee's username is empty".to_owned(),
                ));
            }
            let url = self.endpoint(&["users"], &[("username", username)])?;
            let (users, _): (Vec<User>, _) = self.api.get(url).await?;
            let user = users
                .into_iter()
                .find(|user| user.username.eq_ignore_ascii_case(username))
                .ok_or_else(|| {
                    TrackerError::Invalid(format!("GitLab has no user named {username:?}"))
                })?;
            ids.push(user.id);
        }
        Ok(ids)
    }
}

/// GitLab's `state_event` for a status word: `close` or `reopen`.
fn state_event(status: &str) -> Result<&'static str, TrackerError> {
    match IssueState::from_word(status) {
        Some(IssueState::Closed) => Ok("close"),
        Some(IssueState::Open) => Ok("reopen"),
        None => Err(TrackerError::Invalid(format!(
            "GitLab issues are only open or closed, so the status {status:?} cannot be set: \
             use close (closed, done, resolved) or reopen (open, opened, reopened, todo)"
        ))),
    }
}

#[async_trait]
impl Tracker for GitLab {
    fn kind(&self) -> &str {
        "gitlab"
    }

    fn issue_key(&self, reference: &str) -> Option<String> {
        IssueRef::parse(reference, &self.web).map(|issue| issue.key())
    }

    async fn get_issue(&self, key: &str) -> Result<Issue, TrackerError> {
        self.fetch_issue(&self.issue_ref(key)?).await
    }

    async fn create_issue(&self, issue: &NewIssue) -> Result<Issue, TrackerError> {
        let project = project_path(&issue.project)?;
        let mut body = Map::new();
        body.insert("title".to_owned(), json!(issue.title));
        if !issue.body.is_empty() {
            body.insert("description".to_owned(), json!(issue.body));
        }
        let priority = issue
            .priority
            .as_deref()
            .or_else(|| convert::priority_among(&issue.labels));
        let labels = convert::label_list(&issue.labels, priority)?;
        if !labels.is_empty() {
            body.insert("labels".to_owned(), json!(labels));
        }
        if !issue.assignees.is_empty() {
            body.insert(
                "assignee_ids".to_owned(),
                json!(self.user_ids(&issue.assignees).await?),
            );
        }
        let url = self.endpoint(&["projects", project, "issues"], &[])?;
        self.write_issue(Method::POST, url, body, project).await
    }

    async fn update_issue(&self, key: &str, update: &IssueUpdate) -> Result<Issue, TrackerError> {
        let issue = self.issue_ref(key)?;
        if update.is_empty() {
            return self.fetch_issue(&issue).await;
        }
        let mut body = Map::new();
        if let Some(title) = &update.title {
            body.insert("title".to_owned(), json!(title));
        }
        if let Some(description) = &update.body {
            body.insert("description".to_owned(), json!(description));
        }
        if let Some(status) = &update.status {
            body.insert("state_event".to_owned(), json!(state_event(status)?));
        }
        if update.labels.is_some() || update.priority.is_some() {
            // Labels and the priority share GitLab's one label list: what the update leaves
            // alone is kept from the issue as it is.
            let given_priority = update
                .priority
                .as_deref()
                .or_else(|| update.labels.as_deref().and_then(convert::priority_among));
            let current = match (&update.labels, given_priority) {
                (Some(_), Some(_)) => None,
                _ => Some(self.fetch_issue(&issue).await?),
            };
            let labels = update
                .labels
                .as_deref()
                .or(current.as_ref().map(|c| c.labels.as_slice()))
                .unwrap_or_default();
            let priority = given_priority.or(current.as_ref().and_then(|c| c.priority.as_deref()));
            body.insert(
                "labels".to_owned(),
                json!(convert::label_list(labels, priority)?),
            );
        }
        if let Some(assignees) = &update.assignees {
            body.insert(
                "assignee_ids".to_owned(),
                json!(self.user_ids(assignees).await?),
            );
        }
        let url = self.issue_url(&issue, &[])?;
        self.write_issue(Method::PUT, url, body, &issue.project)
            .await
    }

    async fn add_comment(&self, key: &str, body: &str) -> Result<IssueComment, TrackerError> {
        let issue = self.issue_ref(key)?;
        let url = self.issue_url(&issue, &["notes"])?;
        let answer = self
            .api
            .send(Method::POST, url, Some(&json!({ "body": body })))
            .await?;
        Ok(answer.json::<RestNote>()?.into())
    }

    async fn list_updated_since(
        &self,
        project: &str,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<IssuePage, TrackerError> {
        let project = project_path(project)?;
        let url = match cursor {
            Some(cursor) => self.api.same_origin(cursor)?,
            None => {
                let since = since.map(pages::iso);
                let mut query = vec![
                    ("scope", "all"),
                    ("order_by", "updated_at"),
                    ("sort", "asc"),
                    ("per_page", pages::PER_PAGE),
                ];
                if let Some(since) = &since {
                    query.push((pages::UPDATED_AFTER, since.as_str()));
                }
                self.endpoint(&["projects", project, "issues"], &query)?
            }
        };
        let (found, answer): (Vec<RestIssue>, _) = self.api.get(url.clone()).await?;
        let issues: Vec<Issue> = found
            .into_iter()
            .map(|issue| issue.into_issue(project))
            .collect::<Result<_, _>>()?;
        let newest = issues.iter().map(|issue| issue.updated_at).max();
        let next_cursor = pages::next_page(&self.api, &url, &answer, newest)?.map(String::from);
        Ok(IssuePage {
            issues,
            next_cursor,
        })
    }

    async fn get_project(&self, project: &str) -> Result<ProjectInfo, TrackerError> {
        let url = self.endpoint(&["projects", project_path(project)?], &[])?;
        let (found, _): (RestProject, _) = self.api.get(url).await?;
        Ok(found.into())
    }
}

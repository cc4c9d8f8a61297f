//! GitHub (and GitHub Enterprise) through the REST API v3: issues keyed `owner/repo#12`,
//! synchronization by the issues list sorted by update time and followed through its `Link`
//! headers, pull requests (which the issues API also answers) left out, and the priority
//! GitHub lacks carried as a `priority: <name>` label.

mod convert;
mod names;
pub mod webhook;

use crate::Connection;
use crate::http::{Api, ClientOptions, Credentials};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use convert::{RestComment, RestIssue, RestRepo, with_priority};
use names::{IssueRef, Repo, WebHost};
use preloop_core::tracker::{
    Issue, IssueComment, IssuePage, IssueState, IssueUpdate, NewIssue, ProjectInfo, Tracker,
    TrackerError,
};
use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use serde_json::{Map, Value, json};

/// The REST API version every request asks for.
const API_VERSION: &str = "2022-11-28";

/// Issues per page of a synchronization (GitHub's maximum).
const PAGE_SIZE: &str = "100";

/// A GitHub adapter: one API base (`https://api.github.com` or an Enterprise
/// `https://HOST/api/v3`) and one token.
#[derive(Debug)]
pub struct GitHub {
    api: Api,
    web: WebHost,
}

impl GitHub {
    /// Builds the adapter; a broken URL is [`TrackerError::Invalid`].
    pub fn new(connection: &Connection, options: ClientOptions) -> Result<Self, TrackerError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "x-github-api-version",
            HeaderValue::from_static(API_VERSION),
        );
        let api = Api::new(
            &connection.url,
            Credentials::Bearer(connection.token.clone()),
            options,
        )?
        .with_headers(headers);
        let web = WebHost::of_api(api.base());
        Ok(Self { api, web })
    }

    /// The issue a key or web URL names, or [`TrackerError::Invalid`] saying the accepted forms.
    fn issue_ref(&self, reference: &str) -> Result<IssueRef, TrackerError> {
        self.web.issue(reference).ok_or_else(|| {
            TrackerError::Invalid(format!(
                "{reference:?} names no GitHub issue: give {}",
                self.web.accepted_forms()
            ))
        })
    }

    async fn fetch(&self, issue: &IssueRef) -> Result<RestIssue, TrackerError> {
        let (rest, _) = self.api.get(self.api.url(&issue.path(""), &[])?).await?;
        Ok(rest)
    }

    /// Sends `body` to `path` and reads the answer as an issue of `repo`.
    async fn send_issue(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        repo: &Repo,
    ) -> Result<Issue, TrackerError> {
        let answer = self
            .api
            .send(method, self.api.url(path, &[])?, Some(body))
            .await?;
        issue_of(answer.json()?, repo)
    }
}

/// The issue of `repo` GitHub answered; a pull request is [`TrackerError::NotFound`].
fn issue_of(rest: RestIssue, repo: &Repo) -> Result<Issue, TrackerError> {
    if rest.is_pull_request() {
        return Err(TrackerError::NotFound(format!(
            "{repo}#{} is a pull request, not an issue",
            rest.number()
        )));
    }
    Ok(rest.into_issue(&repo.to_string()))
}

/// The `since` sent to GitHub: a second earlier than asked, in whole seconds, so an update in
/// the same second as the last one seen is listed again rather than missed.
fn since_param(since: DateTime<Utc>) -> String {
    (since - TimeDelta::seconds(1)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[async_trait]
impl Tracker for GitHub {
    fn kind(&self) -> &str {
        "github"
    }

    fn issue_key(&self, reference: &str) -> Option<String> {
        self.web.issue(reference).map(|issue| issue.key())
    }

    async fn get_issue(&self, key: &str) -> Result<Issue, TrackerError> {
        let issue = self.issue_ref(key)?;
        issue_of(self.fetch(&issue).await?, &issue.repo)
    }

    async fn create_issue(&self, issue: &NewIssue) -> Result<Issue, TrackerError> {
        let repo = Repo::parse(&issue.project)?;
        let labels = match &issue.priority {
            Some(priority) => with_priority(&issue.labels, priority),
            None => issue.labels.clone(),
        };
        let body = json!({
            "title": issue.title,
            "body": issue.body,
            "labels": labels,
            "assignees": issue.assignees,
        });
        self.send_issue(Method::POST, &repo.path("/issues"), &body, &repo)
            .await
    }

    async fn update_issue(&self, key: &str, update: &IssueUpdate) -> Result<Issue, TrackerError> {
        let issue = self.issue_ref(key)?;
        let state = update
            .status
            .as_deref()
            .map(|word| {
                IssueState::from_word(word).ok_or_else(|| {
                    TrackerError::Invalid(format!(
                        "GitHub issues are only open or closed: {word:?} is neither \
                         (use open, reopen, close, closed, done or resolved)"
                    ))
                })
            })
            .transpose()?;
        if update.is_empty() {
            return issue_of(self.fetch(&issue).await?, &issue.repo);
        }
        let labels = match (&update.labels, &update.priority) {
            (Some(labels), Some(priority)) => Some(with_priority(labels, priority)),
            (None, Some(priority)) => {
                let current = issue_of(self.fetch(&issue).await?, &issue.repo)?;
                Some(with_priority(&current.labels, priority))
            }
            (labels, None) => labels.clone(),
        };
        let mut body = Map::new();
        if let Some(title) = &update.title {
            body.insert("title".to_owned(), json!(title));
        }
        if let Some(text) = &update.body {
            body.insert("body".to_owned(), json!(text));
        }
        if let Some(state) = state {
            body.insert("state".to_owned(), json!(state.as_str()));
        }
        if let Some(labels) = labels {
            body.insert("labels".to_owned(), json!(labels));
        }
        if let Some(assignees) = &update.assignees {
            body.insert("assignees".to_owned(), json!(assignees));
        }
        self.send_issue(
            Method::PATCH,
            &issue.path(""),
            &Value::Object(body),
            &issue.repo,
        )
        .await
    }

    async fn add_comment(&self, key: &str, body: &str) -> Result<IssueComment, TrackerError> {
        let issue = self.issue_ref(key)?;
        let url = self.api.url(&issue.path("/comments"), &[])?;
        let answer = self
            .api
            .send(Method::POST, url, Some(&json!({ "body": body })))
            .await?;
        Ok(answer.json::<RestComment>()?.into())
    }

    async fn list_updated_since(
        &self,
        project: &str,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<IssuePage, TrackerError> {
        let repo = Repo::parse(project)?;
        let url = match cursor {
            Some(next) => self.api.same_origin(next)?,
            None => {
                let since = since.map(since_param);
                let mut query = vec![
                    ("state", "all"),
                    ("sort", "updated"),
                    ("direction", "asc"),
                    ("per_page", PAGE_SIZE),
                ];
                query.extend(since.as_deref().map(|since| ("since", since)));
                self.api.url(&repo.path("/issues"), &query)?
            }
        };
        let (items, answer): (Vec<RestIssue>, _) = self.api.get(url).await?;
        let next_cursor = answer.next_link();
        if let Some(next) = &next_cursor {
            self.api.same_origin(next)?;
        }
        let project = repo.to_string();
        let issues = items
            .into_iter()
            .filter(|item| !item.is_pull_request())
            .map(|item| item.into_issue(&project))
            .collect();
        Ok(IssuePage {
            issues,
            next_cursor,
        })
    }

    async fn get_project(&self, project: &str) -> Result<ProjectInfo, TrackerError> {
        let repo = Repo::parse(project)?;
        let (rest, _): (RestRepo, _) = self.api.get(self.api.url(&repo.path(""), &[])?).await?;
        Ok(rest.into())
    }
}

//! Creating, editing, transitioning and commenting on issues.

use super::convert::{RawComment, User};
use super::{Flavor, Jira, unexpected};
use preloop_core::tracker::{IssueComment, IssueState, IssueUpdate, NewIssue, TrackerError};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The answer to `POST /rest/api/{v}/issue`.
#[derive(Debug, Deserialize)]
struct Created {
    key: String,
}

#[derive(Debug, Deserialize)]
struct Transitions {
    #[serde(default)]
    transitions: Vec<Transition>,
}

#[derive(Debug, Deserialize)]
struct Transition {
    id: String,
    to: super::convert::Status,
}

impl Jira {
    /// Creates the issue and answers its key.
    pub(crate) async fn create(&self, issue: &NewIssue) -> Result<String, TrackerError> {
        let project = self.raw_project(&issue.project).await?;
        let issue_type = project
            .issue_types
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case("task"))
            .or_else(|| project.issue_types.iter().find(|t| !t.subtask))
            .ok_or_else(|| {
                TrackerError::Invalid(format!(
                    "the Jira project {} has no issue type to create issues with",
                    project.key
                ))
            })?;
        let mut fields = Map::new();
        fields.insert("project".into(), json!({"key": project.key}));
        fields.insert("summary".into(), json!(issue.title));
        fields.insert("issuetype".into(), json!({"id": issue_type.id}));
        if !issue.body.is_empty() {
            fields.insert("description".into(), self.rich_text(&issue.body));
        }
        if !issue.labels.is_empty() {
            fields.insert("labels".into(), json!(issue.labels));
        }
        if let Some(priority) = &issue.priority {
            fields.insert("priority".into(), json!({"name": priority}));
        }
        if !issue.assignees.is_empty() {
            fields.insert("assignee".into(), self.assignee(&issue.assignees).await?);
        }
        let url = self.api.url(&self.path("issue"), &[])?;
        let body = json!({"fields": fields});
        let created: Created = self
            .api
            .send(Method::POST, url, Some(&body))
            .await?
            .json()?;
        Ok(created.key)
    }

    /// Sets the fields `update` gives (not the status); nothing is sent when it gives none.
    pub(crate) async fn edit(&self, key: &str, update: &IssueUpdate) -> Result<(), TrackerError> {
        let mut fields = Map::new();
        if let Some(title) = &update.title {
            fields.insert("summary".into(), json!(title));
        }
        if let Some(body) = &update.body {
            fields.insert("description".into(), self.rich_text(body));
        }
        if let Some(labels) = &update.labels {
            fields.insert("labels".into(), json!(labels));
        }
        if let Some(priority) = &update.priority {
            fields.insert("priority".into(), json!({"name": priority}));
        }
        if let Some(assignees) = &update.assignees {
            let assignee = match assignees.is_empty() {
                true => Value::Null,
                false => self.assignee(assignees).await?,
            };
            fields.insert("assignee".into(), assignee);
        }
        if fields.is_empty() {
            return Ok(());
        }
        let url = self.api.url(&self.path(&format!("issue/{key}")), &[])?;
        let body = json!({"fields": fields});
        self.api.send(Method::PUT, url, Some(&body)).await?;
        Ok(())
    }

    /// Moves the issue to `status`: the transition to a status of that name (any case), or,
    /// for a state word, the first transition into (closed) or out of (open) the `done`
    /// category.
    pub(crate) async fn transition(
        &self,
        key: &str,
        status: &str,
        state: Option<IssueState>,
    ) -> Result<(), TrackerError> {
        let url = self
            .api
            .url(&self.path(&format!("issue/{key}/transitions")), &[])?;
        let (available, _): (Transitions, _) = self.api.get(url.clone()).await?;
        let wanted = status.trim();
        let chosen = available
            .transitions
            .iter()
            .find(|t| t.to.name().eq_ignore_ascii_case(wanted))
            .or_else(|| {
                let closed = state? == IssueState::Closed;
                available
                    .transitions
                    .iter()
                    .find(|t| t.to.is_done() == closed)
            })
            .ok_or_else(|| {
                let names: Vec<&str> = available.transitions.iter().map(|t| t.to.name()).collect();
                TrackerError::Invalid(format!(
                    "{key} cannot move to {wanted:?}; its workflow allows: {}",
                    if names.is_empty() {
                        "nothing".to_owned()
                    } else {
                        names.join(", ")
                    }
                ))
            })?;
        let body = json!({"transition": {"id": chosen.id}});
        self.api.send(Method::POST, url, Some(&body)).await?;
        Ok(())
    }

    /// Adds a comment.
    pub(crate) async fn comment(
        &self,
        key: &str,
        body: &str,
    ) -> Result<IssueComment, TrackerError> {
        let url = self
            .api
            .url(&self.path(&format!("issue/{key}/comment")), &[])?;
        let request = json!({"body": self.rich_text(body)});
        let raw: RawComment = self
            .api
            .send(Method::POST, url, Some(&request))
            .await?
            .json()?;
        raw.into_comment().map_err(unexpected)
    }

    /// The `assignee` field for the one assignee a Jira issue has: Server names the user,
    /// Cloud needs the account id of the user whose e-mail, display name or id it is.
    async fn assignee(&self, assignees: &[String]) -> Result<Value, TrackerError> {
        let [assignee] = assignees else {
            return Err(TrackerError::Invalid(format!(
                "a Jira issue has one assignee, not {}",
                assignees.len()
            )));
        };
        let assignee = assignee.trim();
        if self.flavor == Flavor::Server {
            return Ok(json!({"name": assignee}));
        }
        let url = self
            .api
            .url(&self.path("user/search"), &[("query", assignee)])?;
        let (users, _): (Vec<User>, _) = self.api.get(url).await?;
        let account_id = users
            .iter()
            .find(|user| user.is(assignee))
            .and_then(User::account_id)
            .ok_or_else(|| TrackerError::Invalid(format!("no Jira user is named {assignee:?}")))?;
        Ok(json!({"accountId": account_id}))
    }
}

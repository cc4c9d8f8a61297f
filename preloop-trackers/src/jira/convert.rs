//! Jira's JSON (REST v2 and v3, and webhook payloads) read into the core's models.

use super::adf;
use chrono::{DateTime, Utc};
use preloop_core::tracker::{Issue, IssueComment, IssueState};
use serde::Deserialize;
use serde_json::Value;

/// The issue fields the adapter reads (and asks Jira for).
pub(crate) const FIELDS: &[&str] = &[
    "summary",
    "description",
    "status",
    "labels",
    "assignee",
    "reporter",
    "priority",
    "created",
    "updated",
];

/// A Jira answer that does not have the shape the adapter reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected Jira {what}: {detail}")]
pub(crate) struct Unexpected {
    what: &'static str,
    detail: String,
}

/// An issue as Jira describes it.
#[derive(Debug, Deserialize)]
pub(crate) struct RawIssue {
    id: String,
    key: String,
    #[serde(default)]
    fields: Fields,
}

#[derive(Debug, Default, Deserialize)]
struct Fields {
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    description: Value,
    #[serde(default)]
    status: Option<Status>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    assignee: Option<User>,
    #[serde(default)]
    reporter: Option<User>,
    /// `{name}`, or its name alone (webhook payloads of older Jira).
    #[serde(default)]
    priority: Value,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    updated: Option<String>,
}

/// A workflow status with its category.
#[derive(Debug, Deserialize)]
pub(crate) struct Status {
    name: String,
    #[serde(default, rename = "statusCategory")]
    category: Option<Category>,
}

impl Status {
    /// Whether the status is in the `done` category.
    pub(crate) fn is_done(&self) -> bool {
        self.category.as_ref().is_some_and(|c| c.key == "done")
    }

    /// The status name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

#[derive(Debug, Deserialize)]
struct Category {
    key: String,
}

/// A user: Server / Data Center by `name`, Cloud by `accountId` and `displayName`.
#[derive(Debug, Deserialize)]
pub(crate) struct User {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "displayName")]
    display_name: Option<String>,
    #[serde(default, rename = "accountId")]
    account_id: Option<String>,
    #[serde(default, rename = "emailAddress")]
    email: Option<String>,
}

impl User {
    /// How the adapter names the user: Server's `name`, else Cloud's display name, else its
    /// account id.
    pub(crate) fn login(&self) -> Option<String> {
        [&self.name, &self.display_name, &self.account_id]
            .into_iter()
            .flatten()
            .find(|value| !value.is_empty())
            .cloned()
    }

    /// Whether `wanted` is this user's account id, e-mail or display name (any case).
    pub(crate) fn is(&self, wanted: &str) -> bool {
        [&self.account_id, &self.email, &self.display_name]
            .into_iter()
            .flatten()
            .any(|value| value.eq_ignore_ascii_case(wanted))
    }

    /// The Cloud account id.
    pub(crate) fn account_id(&self) -> Option<&str> {
        self.account_id.as_deref()
    }
}

/// A comment as Jira describes it.
#[derive(Debug, Deserialize)]
pub(crate) struct RawComment {
    id: String,
    #[serde(default)]
    author: Option<User>,
    #[serde(default)]
    body: Value,
    created: String,
}

impl RawComment {
    /// The comment in the core's model.
    pub(crate) fn into_comment(self) -> Result<IssueComment, Unexpected> {
        Ok(IssueComment {
            id: self.id,
            author: self.author.as_ref().and_then(User::login),
            body: rich_text(&self.body),
            created_at: time("comment time", &self.created)?,
        })
    }
}

impl RawIssue {
    /// The issue in the core's model; `site` is the Jira site its web URL is under.
    pub(crate) fn into_issue(self, site: &str) -> Result<Issue, Unexpected> {
        let fields = self.fields;
        let state = match &fields.status {
            Some(status) if status.is_done() => IssueState::Closed,
            _ => IssueState::Open,
        };
        let required = |value: Option<String>, what: &'static str| {
            value.ok_or_else(|| Unexpected {
                what,
                detail: "missing".to_owned(),
            })
        };
        let created_at = time("creation time", &required(fields.created, "creation time")?)?;
        let updated_at = time("update time", &required(fields.updated, "update time")?)?;
        Ok(Issue {
            id: self.id,
            project: project_of(&self.key).to_owned(),
            url: Some(format!(
                "{}/browse/{}",
                site.trim_end_matches('/'),
                self.key
            )),
            key: self.key,
            title: fields.summary.unwrap_or_default(),
            body: rich_text(&fields.description),
            state,
            status: fields.status.map(|s| s.name),
            labels: fields.labels,
            assignees: fields.assignee.iter().filter_map(User::login).collect(),
            author: fields.reporter.as_ref().and_then(User::login),
            priority: match &fields.priority {
                Value::String(name) => Some(name.clone()),
                value => value.get("name").and_then(Value::as_str).map(str::to_owned),
            },
            created_at,
            updated_at,
        })
    }

    /// The issue with `time` as its update time when it carries none (webhook payloads may
    /// leave it out; the delivery's time is then the update's).
    pub(crate) fn updated_by_default(mut self, time: Option<DateTime<Utc>>) -> Self {
        if self.fields.updated.is_none() {
            self.fields.updated = time.map(|t| t.to_rfc3339());
        }
        self
    }

    /// The issue's status, when the answer carries it.
    pub(crate) fn status(&self) -> Option<&Status> {
        self.fields.status.as_ref()
    }
}

/// The project key of an issue key (`PROJ` of `PROJ-12`).
pub(crate) fn project_of(key: &str) -> &str {
    key.rsplit_once('-').map_or(key, |(project, _)| project)
}

/// Rich text as plain text: v2's text, v3's ADF, or nothing.
pub(crate) fn rich_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Object(_) => adf::to_text(value),
        _ => String::new(),
    }
}

/// Jira's time format (`2026-11-30T10:15:30.000+0000`), or RFC 3339.
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(text))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn time(what: &'static str, text: &str) -> Result<DateTime<Utc>, Unexpected> {
    parse_time(text).ok_or_else(|| Unexpected {
        what,
        detail: format!("{text:?} is not a time"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jira_times_are_read_with_their_offset() {
        let parsed = parse_time("2026-11-30T10:15:30.000+0200").map(|t| t.to_rfc3339());
        assert_eq!(parsed.as_deref(), Some("2026-11-30T08:15:30+00:00"));
        let parsed = parse_time("2026-11-30T10:15:30Z").map(|t| t.to_rfc3339());
        assert_eq!(parsed.as_deref(), Some("2026-11-30T10:15:30+00:00"));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn issues_without_times_are_unexpected() -> Result<(), serde_json::Error> {
        let raw: RawIssue = serde_json::from_str(r#"{"id":"1","key":"A-1","fields":{}}"#)?;
        let error = raw.into_issue("https://x.atlassian.net").err();
        assert_eq!(
            error.map(|e| e.to_string()).as_deref(),
            Some("unexpected Jira creation time: missing")
        );
        Ok(())
    }
}

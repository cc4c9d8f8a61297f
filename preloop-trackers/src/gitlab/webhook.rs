//! GitLab's webhook deliveries: the `X-Gitlab-Token` secret, the `X-Gitlab-Event-UUID`
//! delivery id, and issue and issue-comment events normalized to [`TrackerEvent`]s.
//!
//! Webhook payloads name fields differently from the REST API: the issue is
//! `object_attributes` (Issue Hook) or `issue` (Note Hook), its web URL is `url`, labels are
//! objects with a `title`, the project is `project.path_with_namespace`, and times may read
//! `2015-05-17 17:06:40 UTC`. Payloads carry assignees' usernames only in an Issue Hook's
//! `assignees` and never the author's username: the author is known only when the delivery
//! reports the issue being opened (by the delivery's `user`).

use chrono::{DateTime, Utc};
use preloop_core::tracker::{IssueComment, TrackerEvent, TrackerEventKind};
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::convert::{self, IssueParts};
use crate::webhook::{Delivery, WebhookError, delivery_id, header_text, json_body, verify_token};

/// The header carrying the webhook's secret token.
const TOKEN_HEADER: &str = "x-gitlab-token";
/// The header naming the event.
const EVENT_HEADER: &str = "x-gitlab-event";
/// The header with the delivery's id.
const UUID_HEADER: &str = "x-gitlab-event-uuid";
/// The header GitLab repeats on retries of one delivery.
const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Verifies (constant time) and normalizes one delivery; `secret` is non-empty.
pub fn receive(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<Delivery, WebhookError> {
    verify_token(secret, headers, TOKEN_HEADER)?;
    let id_header = if header_text(headers, UUID_HEADER).is_some_and(|id| !id.trim().is_empty()) {
        UUID_HEADER
    } else {
        IDEMPOTENCY_HEADER
    };
    let id = delivery_id(headers, id_header, body);
    let payload = json_body(body)?;
    let kind = payload.get("object_kind").and_then(|k| k.as_str());
    let event = match (header_text(headers, EVENT_HEADER).map(str::trim), kind) {
        (Some("Issue Hook" | "Confidential Issue Hook"), Some("issue")) => {
            issue_event(read(payload)?)?
        }
        (Some("Note Hook" | "Confidential Note Hook"), Some("note")) => note_event(read(payload)?)?,
        _ => None,
    };
    Ok(Delivery { id, event })
}

/// An Issue Hook.
#[derive(Debug, Deserialize)]
struct IssueHook {
    user: Option<HookUser>,
    project: HookProject,
    object_attributes: HookIssue,
    #[serde(default)]
    assignees: Vec<HookUser>,
    /// The labels again (older GitLab versions send them only here).
    #[serde(default)]
    labels: Vec<HookLabel>,
}

/// A Note Hook (any noteable).
#[derive(Debug, Deserialize)]
struct NoteHook {
    user: Option<HookUser>,
    project: HookProject,
    object_attributes: HookNote,
    issue: Option<HookIssue>,
}

/// A user as webhook payloads carry one (assignees come without their id).
#[derive(Debug, Deserialize)]
struct HookUser {
    username: String,
}

#[derive(Debug, Deserialize)]
struct HookProject {
    path_with_namespace: String,
    web_url: Option<String>,
}

/// An issue as webhook payloads carry it.
#[derive(Debug, Deserialize)]
struct HookIssue {
    id: u64,
    iid: u64,
    title: String,
    description: Option<String>,
    state: String,
    action: Option<String>,
    url: Option<String>,
    #[serde(default)]
    labels: Vec<HookLabel>,
    #[serde(deserialize_with = "convert::time")]
    created_at: DateTime<Utc>,
    #[serde(deserialize_with = "convert::time")]
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct HookLabel {
    title: String,
}

#[derive(Debug, Deserialize)]
struct HookNote {
    id: u64,
    note: String,
    noteable_type: String,
    #[serde(deserialize_with = "convert::time")]
    created_at: DateTime<Utc>,
}

fn read<T: DeserializeOwned>(payload: serde_json::Value) -> Result<T, WebhookError> {
    serde_json::from_value(payload)
        .map_err(|e| WebhookError::Malformed(format!("not a GitLab payload: {e}")))
}

fn issue_event(hook: IssueHook) -> Result<Option<TrackerEvent>, WebhookError> {
    let kind = match hook.object_attributes.action.as_deref() {
        Some("open") => TrackerEventKind::IssueCreated,
        Some("close") => TrackerEventKind::IssueClosed,
        Some("reopen" | "update") => TrackerEventKind::IssueUpdated,
        _ => return Ok(None),
    };
    // Whoever opened the issue is its author; other deliveries name only the author's id.
    let author = (kind == TrackerEventKind::IssueCreated)
        .then_some(hook.user)
        .flatten()
        .map(|user| user.username);
    let assignees = hook.assignees.into_iter().map(|u| u.username).collect();
    let mut attributes = hook.object_attributes;
    if attributes.labels.is_empty() {
        attributes.labels = hook.labels;
    }
    let issue = issue(attributes, &hook.project, assignees, author)?;
    Ok(Some(TrackerEvent {
        kind,
        issue,
        comment: None,
    }))
}

fn note_event(hook: NoteHook) -> Result<Option<TrackerEvent>, WebhookError> {
    if hook.object_attributes.noteable_type != "Issue" {
        return Ok(None);
    }
    let Some(noted) = hook.issue else {
        return Err(WebhookError::Malformed(
            "a comment on an issue without the issue".to_owned(),
        ));
    };
    let note = hook.object_attributes;
    let comment = IssueComment {
        id: note.id.to_string(),
        author: hook.user.map(|user| user.username),
        body: note.note,
        created_at: note.created_at,
    };
    Ok(Some(TrackerEvent {
        kind: TrackerEventKind::IssueCommented,
        issue: issue(noted, &hook.project, Vec::new(), None)?,
        comment: Some(comment),
    }))
}

fn issue(
    hooked: HookIssue,
    project: &HookProject,
    assignees: Vec<String>,
    author: Option<String>,
) -> Result<preloop_core::tracker::Issue, WebhookError> {
    let state = convert::state(&hooked.state).ok_or_else(|| {
        WebhookError::Malformed(format!("unknown issue state {:?}", hooked.state))
    })?;
    // A Note Hook's issue carries no URL: it is the project's, at the iid.
    let url = hooked.url.or_else(|| {
        project
            .web_url
            .as_ref()
            .map(|web| format!("{}/-/issues/{}", web.trim_end_matches('/'), hooked.iid))
    });
    Ok(IssueParts {
        id: hooked.id,
        iid: hooked.iid,
        project: project.path_with_namespace.clone(),
        title: hooked.title,
        description: hooked.description,
        state,
        labels: hooked.labels.into_iter().map(|l| l.title).collect(),
        assignees,
        author,
        url,
        created_at: hooked.created_at,
        updated_at: hooked.updated_at,
    }
    .into_issue())
}

//! Jira's webhooks (admin webhooks with a secret): `X-Hub-Signature: sha256=<hex>` is the
//! HMAC-SHA256 of the raw body, `X-Atlassian-Webhook-Identifier` names the delivery.
//!
//! `jira:issue_created` is `issue.created`; `jira:issue_updated` is `issue.closed` when its
//! changelog changes the status and the status is now in the `done` category, else
//! `issue.updated`; `comment_created` is `issue.commented`. Other events are accepted and
//! ignored. Payload issues have REST v2's shape, their description text or ADF.

use super::convert::{RawComment, RawIssue};
use crate::webhook::{Delivery, WebhookError, delivery_id, json_body, verify_hmac_sha256};
use preloop_core::tracker::{TrackerEvent, TrackerEventKind};
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

/// The signature header.
const SIGNATURE: &str = "x-hub-signature";

/// The delivery id header.
const IDENTIFIER: &str = "x-atlassian-webhook-identifier";

#[derive(Debug, Deserialize)]
struct Changelog {
    #[serde(default)]
    items: Vec<ChangeItem>,
}

#[derive(Debug, Deserialize)]
struct ChangeItem {
    #[serde(default)]
    field: String,
}

/// Verifies (constant time) and normalizes one delivery; `secret` is non-empty.
pub fn receive(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<Delivery, WebhookError> {
    if secret.is_empty() {
        return Err(WebhookError::NoSecret);
    }
    verify_hmac_sha256(secret, headers, SIGNATURE, body)?;
    let payload = json_body(body)?;
    let id = delivery_id(headers, IDENTIFIER, body);
    let event = payload
        .get("webhookEvent")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let event = match event {
        "jira:issue_created" => Some(normalize(&payload, TrackerEventKind::IssueCreated)?),
        "jira:issue_updated" => Some(normalize(&payload, TrackerEventKind::IssueUpdated)?),
        "comment_created" => Some(normalize(&payload, TrackerEventKind::IssueCommented)?),
        _ => None,
    };
    Ok(Delivery { id, event })
}

fn normalize(payload: &Value, kind: TrackerEventKind) -> Result<TrackerEvent, WebhookError> {
    let raw = payload
        .get("issue")
        .ok_or_else(|| WebhookError::Malformed("the delivery carries no issue".to_owned()))?;
    let site = raw
        .get("self")
        .and_then(Value::as_str)
        .and_then(|link| link.split_once("/rest/api/"))
        .map(|(site, _)| site.to_owned())
        .ok_or_else(|| WebhookError::Malformed("the issue has no REST link".to_owned()))?;
    let raw: RawIssue = parse(raw, "issue")?;
    let closed = kind == TrackerEventKind::IssueUpdated
        && raw.status().is_some_and(super::convert::Status::is_done)
        && status_changed(payload)?;
    let comment = match kind {
        TrackerEventKind::IssueCommented => {
            let comment = payload.get("comment").ok_or_else(|| {
                WebhookError::Malformed("a comment event carries no comment".to_owned())
            })?;
            let comment: RawComment = parse(comment, "comment")?;
            Some(comment.into_comment().map_err(malformed)?)
        }
        _ => None,
    };
    Ok(TrackerEvent {
        kind: if closed {
            TrackerEventKind::IssueClosed
        } else {
            kind
        },
        issue: raw.into_issue(&site).map_err(malformed)?,
        comment,
    })
}

fn status_changed(payload: &Value) -> Result<bool, WebhookError> {
    let Some(changelog) = payload.get("changelog") else {
        return Ok(false);
    };
    let changelog: Changelog = parse(changelog, "changelog")?;
    Ok(changelog.items.iter().any(|item| item.field == "status"))
}

fn parse<T: serde::de::DeserializeOwned>(value: &Value, what: &str) -> Result<T, WebhookError> {
    T::deserialize(value).map_err(|e| WebhookError::Malformed(format!("the {what}: {e}")))
}

fn malformed(error: super::convert::Unexpected) -> WebhookError {
    WebhookError::Malformed(error.to_string())
}

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
    let delivered = payload
        .get("timestamp")
        .and_then(Value::as_i64)
        .and_then(chrono::DateTime::from_timestamp_millis);
    let raw = parse::<RawIssue>(raw, "issue")?.updated_by_default(delivered);
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

#[cfg(test)]
mod tests {
    //! The deliveries are the examples of Atlassian's webhook documentation
    //! (developer.atlassian.com/cloud/jira/platform/webhooks/), trimmed.

    use super::*;
    use hmac::{Hmac, Mac};
    use preloop_core::tracker::IssueState;
    use reqwest::header::HeaderValue;
    use sha2::Sha256;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const SECRET: &str = "It's a Secret to Everybody";

    fn headers(body: &str) -> Result<HeaderMap, Box<dyn std::error::Error>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes())?;
        mac.update(body.as_bytes());
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let mut headers = HeaderMap::new();
        headers.insert("x-hub-signature", HeaderValue::from_str(&signature)?);
        headers.insert(
            "x-atlassian-webhook-identifier",
            HeaderValue::from_static("2f2a5d6e-1d3b-4a0c-9c47-6b0a7b6f7a11"),
        );
        Ok(headers)
    }

    fn event(body: &str) -> Result<TrackerEvent, Box<dyn std::error::Error>> {
        let delivery = receive(SECRET, &headers(body)?, body.as_bytes())?;
        assert_eq!(delivery.id, "2f2a5d6e-1d3b-4a0c-9c47-6b0a7b6f7a11");
        delivery.event.ok_or_else(|| "no event".into())
    }

    #[test]
    fn created_issues_are_issue_created() -> TestResult {
        let event = event(include_str!(
            "../../tests/fixtures/jira/webhook_issue_created.json"
        ))?;
        assert_eq!(event.kind, TrackerEventKind::IssueCreated);
        assert_eq!(event.issue.key, "ED-1");
        assert_eq!(event.issue.body, "Main order flow broken");
        assert_eq!(event.issue.state, IssueState::Open);
        assert_eq!(event.issue.status.as_deref(), Some("To Do"));
        assert_eq!(event.issue.assignees, vec!["Mia Krystof".to_owned()]);
        assert_eq!(
            event.issue.url.as_deref(),
            Some("https://your-domain.atlassian.net/browse/ED-1")
        );
        assert_eq!(event.comment, None);
        Ok(())
    }

    #[test]
    fn updates_are_issue_updated_with_the_deliverys_time_when_the_issue_has_none() -> TestResult {
        let event = event(include_str!(
            "../../tests/fixtures/jira/webhook_issue_updated.json"
        ))?;
        assert_eq!(event.kind, TrackerEventKind::IssueUpdated);
        assert_eq!(event.issue.key, "JRA-20002");
        assert_eq!(event.issue.project, "JRA");
        assert_eq!(event.issue.body, "Make the issue nav load 10x faster");
        assert_eq!(event.issue.priority.as_deref(), Some("Minor"));
        assert_eq!(event.issue.labels, ["UI", "dialogue", "move"]);
        assert_eq!(event.issue.updated_at.timestamp_millis(), 1_525_698_237_764);
        assert_eq!(
            event.issue.url.as_deref(),
            Some("https://jira.atlassian.com/browse/JRA-20002")
        );
        Ok(())
    }

    #[test]
    fn a_status_change_into_done_is_issue_closed() -> TestResult {
        let event = event(include_str!(
            "../../tests/fixtures/jira/webhook_issue_closed.json"
        ))?;
        assert_eq!(event.kind, TrackerEventKind::IssueClosed);
        assert_eq!(event.issue.state, IssueState::Closed);
        assert_eq!(event.issue.status.as_deref(), Some("Done"));
        Ok(())
    }

    #[test]
    fn comments_are_issue_commented_with_the_comment() -> TestResult {
        let event = event(include_str!(
            "../../tests/fixtures/jira/webhook_comment_created.json"
        ))?;
        assert_eq!(event.kind, TrackerEventKind::IssueCommented);
        assert_eq!(event.issue.key, "JRA-20002");
        let comment = event.comment.ok_or("no comment")?;
        assert_eq!(comment.id, "252789");
        assert_eq!(comment.author.as_deref(), Some("brollins"));
        assert_eq!(comment.body, "Just in time for AtlasCamp!");
        assert_eq!(
            comment.created_at.to_rfc3339(),
            "2011-06-07T15:31:26.805+00:00"
        );
        Ok(())
    }

    #[test]
    fn other_events_are_accepted_and_ignored() -> TestResult {
        let body = include_str!("../../tests/fixtures/jira/webhook_worklog_created.json");
        let delivery = receive(SECRET, &headers(body)?, body.as_bytes())?;
        assert_eq!(delivery.event, None);
        assert_eq!(delivery.id, "2f2a5d6e-1d3b-4a0c-9c47-6b0a7b6f7a11");
        Ok(())
    }

    #[test]
    fn forged_or_missing_signatures_are_refused() -> TestResult {
        let body = include_str!("../../tests/fixtures/jira/webhook_issue_created.json");
        let mut forged = headers(body)?;
        forged.insert(
            "x-hub-signature",
            HeaderValue::from_str(&format!("sha256={}", "ab".repeat(32)))?,
        );
        assert_eq!(
            receive(SECRET, &forged, body.as_bytes()),
            Err(WebhookError::BadSignature)
        );
        let signed_other = headers("{}")?;
        assert_eq!(
            receive(SECRET, &signed_other, body.as_bytes()),
            Err(WebhookError::BadSignature)
        );
        let mut missing = headers(body)?;
        missing.remove("x-hub-signature");
        assert_eq!(
            receive(SECRET, &missing, body.as_bytes()),
            Err(WebhookError::MissingSignature("x-hub-signature"))
        );
        assert_eq!(
            receive("", &headers(body)?, body.as_bytes()),
            Err(WebhookError::NoSecret)
        );
        Ok(())
    }

    #[test]
    fn signed_deliveries_that_are_not_jiras_are_malformed() -> TestResult {
        let body = r#"{"webhookEvent":"jira:issue_created"}"#;
        assert!(matches!(
            receive(SECRET, &headers(body)?, body.as_bytes()),
            Err(WebhookError::Malformed(_))
        ));
        Ok(())
    }
}

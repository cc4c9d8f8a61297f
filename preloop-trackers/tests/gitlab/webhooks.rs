//! GitLab webhook deliveries: the documented example payloads, with the secret token checked
//! and the delivery id taken from GitLab's headers.

use chrono::{DateTime, Utc};
use preloop_core::tracker::{IssueState, TrackerEventKind};
use preloop_trackers::gitlab::webhook::receive;
use preloop_trackers::webhook::WebhookError;
use reqwest::header::{HeaderMap, HeaderValue};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ISSUE_OPEN: &str = include_str!("../fixtures/gitlab/webhook_issue_open.json");
const NOTE_ISSUE: &str = include_str!("../fixtures/gitlab/webhook_note_issue.json");
const NOTE_COMMIT: &str = include_str!("../fixtures/gitlab/webhook_note_commit.json");
const TAG_PUSH: &str = include_str!("../fixtures/gitlab/webhook_tag_push.json");

const SECRET: &str = "hook-secret";
const UUID: &str = "9cd4a1f4-51d5-4b4b-8e0b-8a2d5ecfbf6c";

fn headers(event: &str, token: Option<&str>) -> Result<HeaderMap, Box<dyn std::error::Error>> {
    let mut headers = HeaderMap::new();
    headers.insert("x-gitlab-event", HeaderValue::from_str(event)?);
    headers.insert("x-gitlab-event-uuid", HeaderValue::from_static(UUID));
    if let Some(token) = token {
        headers.insert("x-gitlab-token", HeaderValue::from_str(token)?);
    }
    Ok(headers)
}

fn time(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc))
}

/// The issue example with its `object_attributes.action` set to `action`.
fn issue_with_action(action: &str) -> Result<Vec<u8>, serde_json::Error> {
    let mut payload: serde_json::Value = serde_json::from_str(ISSUE_OPEN)?;
    payload["object_attributes"]["action"] = action.into();
    serde_json::to_vec(&payload)
}

#[test]
fn an_opened_issue_is_issue_created() -> TestResult {
    let delivery = receive(
        SECRET,
        &headers("Issue Hook", Some(SECRET))?,
        ISSUE_OPEN.as_bytes(),
    )?;
    assert_eq!(delivery.id, UUID);
    let event = delivery.event.ok_or("no event")?;
    assert_eq!(event.kind, TrackerEventKind::IssueCreated);
    assert_eq!(event.comment, None);
    let issue = event.issue;
    assert_eq!(issue.id, "301");
    assert_eq!(issue.key, "gitlabhq/gitlab-test#23");
    assert_eq!(issue.project, "gitlabhq/gitlab-test");
    assert_eq!(issue.title, "New API: create/update/delete file");
    assert_eq!(
        issue.body,
        "Create new API for manipulations with repository"
    );
    assert_eq!(issue.state, IssueState::Open);
    assert_eq!(issue.labels, ["API"]);
    assert_eq!(issue.assignees, ["user1"]);
    assert_eq!(issue.author.as_deref(), Some("root"));
    assert_eq!(
        issue.url.as_deref(),
        Some("http://example.com/diaspora/issues/23")
    );
    assert_eq!(issue.created_at, time("2013-12-03T17:15:43Z")?);
    assert_eq!(issue.updated_at, time("2013-12-03T17:15:43Z")?);
    Ok(())
}

#[test]
fn issue_actions_map_to_event_kinds() -> TestResult {
    for (action, kind) in [
        ("close", Some(TrackerEventKind::IssueClosed)),
        ("reopen", Some(TrackerEventKind::IssueUpdated)),
        ("update", Some(TrackerEventKind::IssueUpdated)),
        ("delete", None),
    ] {
        let body = issue_with_action(action)?;
        for event in ["Issue Hook", "Confidential Issue Hook"] {
            let delivery = receive(SECRET, &headers(event, Some(SECRET))?, &body)?;
            let event = delivery.event;
            assert_eq!(event.as_ref().map(|e| e.kind), kind, "{action}");
            // Only the opening names the author.
            assert_eq!(event.and_then(|e| e.issue.author), None, "{action}");
        }
    }
    Ok(())
}

#[test]
fn a_comment_on_an_issue_is_issue_commented() -> TestResult {
    for event in ["Note Hook", "Confidential Note Hook"] {
        let delivery = receive(
            SECRET,
            &headers(event, Some(SECRET))?,
            NOTE_ISSUE.as_bytes(),
        )?;
        let event = delivery.event.ok_or("no event")?;
        assert_eq!(event.kind, TrackerEventKind::IssueCommented);
        let issue = event.issue;
        assert_eq!(issue.id, "92");
        assert_eq!(issue.key, "gitlab-org/gitlab-test#17");
        assert_eq!(issue.title, "test");
        assert_eq!(issue.body, "test");
        assert_eq!(issue.state, IssueState::Closed);
        assert_eq!(issue.labels, ["Afterpod", "Element"]);
        assert_eq!(
            issue.url.as_deref(),
            Some("http://example.com/gitlab-org/gitlab-test/-/issues/17")
        );
        assert_eq!(issue.created_at, time("2015-04-12T14:53:17Z")?);
        assert_eq!(issue.updated_at, time("2015-04-26T08:28:42Z")?);
        let comment = event.comment.ok_or("no comment")?;
        assert_eq!(comment.id, "1241");
        assert_eq!(comment.body, "Hello world");
        assert_eq!(comment.author.as_deref(), Some("root"));
        assert_eq!(comment.created_at, time("2015-05-17T17:06:40Z")?);
    }
    Ok(())
}

#[test]
fn a_forged_token_is_refused() -> TestResult {
    let result = receive(
        SECRET,
        &headers("Issue Hook", Some("guessed"))?,
        ISSUE_OPEN.as_bytes(),
    );
    assert_eq!(result, Err(WebhookError::BadSignature));
    Ok(())
}

#[test]
fn a_delivery_without_a_token_is_refused() -> TestResult {
    let result = receive(SECRET, &headers("Issue Hook", None)?, ISSUE_OPEN.as_bytes());
    assert_eq!(
        result,
        Err(WebhookError::MissingSignature("x-gitlab-token"))
    );
    Ok(())
}

#[test]
fn other_events_are_accepted_without_an_event() -> TestResult {
    for (event, body) in [
        ("Note Hook", NOTE_COMMIT),
        ("Tag Push Hook", TAG_PUSH),
        // An issue payload announced as something else is not read as an issue.
        ("Push Hook", ISSUE_OPEN),
    ] {
        let delivery = receive(SECRET, &headers(event, Some(SECRET))?, body.as_bytes())?;
        assert_eq!(delivery.id, UUID);
        assert_eq!(delivery.event, None, "{event}");
    }
    Ok(())
}

#[test]
fn delivery_ids_fall_back_to_the_idempotency_key_then_the_body() -> TestResult {
    let mut headers = headers("Tag Push Hook", Some(SECRET))?;
    headers.remove("x-gitlab-event-uuid");
    headers.insert(
        "idempotency-key",
        HeaderValue::from_static("f3a1c2d4-retry"),
    );
    let delivery = receive(SECRET, &headers, TAG_PUSH.as_bytes())?;
    assert_eq!(delivery.id, "f3a1c2d4-retry");
    headers.remove("idempotency-key");
    let first = receive(SECRET, &headers, TAG_PUSH.as_bytes())?;
    let again = receive(SECRET, &headers, TAG_PUSH.as_bytes())?;
    assert_eq!(first.id.len(), 64);
    assert_eq!(first.id, again.id);
    Ok(())
}

#[test]
fn a_signed_body_that_is_not_a_gitlab_payload_is_malformed() -> TestResult {
    let headers = headers("Issue Hook", Some(SECRET))?;
    assert!(matches!(
        receive(SECRET, &headers, b"not json"),
        Err(WebhookError::Malformed(_))
    ));
    assert!(matches!(
        receive(SECRET, &headers, br#"{"object_kind":"issue"}"#),
        Err(WebhookError::Malformed(_))
    ));
    Ok(())
}

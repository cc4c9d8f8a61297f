//! GitHub's webhook deliveries: `X-Hub-Signature-256` (HMAC-SHA256 of the raw body) checked in
//! constant time, the delivery id from `X-GitHub-Delivery`, and `issues` / `issue_comment`
//! events normalized; pings, pull requests and everything else are accepted without an event.

use super::convert::{RestComment, RestIssue};
use crate::webhook::{
    Delivery, WebhookError, delivery_id, header_text, json_body, verify_hmac_sha256,
};
use preloop_core::tracker::{TrackerEvent, TrackerEventKind};
use reqwest::header::HeaderMap;
use serde::Deserialize;

const SIGNATURE_HEADER: &str = "x-hub-signature-256";
const EVENT_HEADER: &str = "x-github-event";
const DELIVERY_HEADER: &str = "x-github-delivery";

/// The parts of an `issues` or `issue_comment` payload that are read.
#[derive(Debug, Deserialize)]
struct Payload {
    action: String,
    issue: RestIssue,
    #[serde(default)]
    comment: Option<RestComment>,
    repository: Repository,
}

#[derive(Debug, Deserialize)]
struct Repository {
    full_name: String,
}

/// Verifies (constant time) and normalizes one delivery; `secret` is non-empty.
pub fn receive(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<Delivery, WebhookError> {
    if secret.is_empty() {
        return Err(WebhookError::NoSecret);
    }
    verify_hmac_sha256(secret, headers, SIGNATURE_HEADER, body)?;
    let id = delivery_id(headers, DELIVERY_HEADER, body);
    let event = header_text(headers, EVENT_HEADER).ok_or_else(|| {
        WebhookError::Malformed("the delivery carries no X-GitHub-Event header".to_owned())
    })?;
    let event = match event.trim() {
        name @ ("issues" | "issue_comment") => issue_event(name, body)?,
        _ => None,
    };
    Ok(Delivery { id, event })
}

/// The event of an `issues` or `issue_comment` delivery; `None` for actions that are not
/// one (a deleted issue, an edited comment) and for comments on pull requests.
fn issue_event(name: &str, body: &[u8]) -> Result<Option<TrackerEvent>, WebhookError> {
    let payload: Payload = serde_json::from_value(json_body(body)?)
        .map_err(|e| WebhookError::Malformed(format!("not an {name} payload: {e}")))?;
    if payload.issue.is_pull_request() {
        return Ok(None);
    }
    let kind = match (name, payload.action.as_str()) {
        ("issues", "opened") => TrackerEventKind::IssueCreated,
        ("issues", "closed") => TrackerEventKind::IssueClosed,
        ("issues", "deleted") => return Ok(None),
        ("issues", _) => TrackerEventKind::IssueUpdated,
        ("issue_comment", "created") => TrackerEventKind::IssueCommented,
        _ => return Ok(None),
    };
    let comment = match kind {
        TrackerEventKind::IssueCommented => Some(
            payload
                .comment
                .ok_or_else(|| {
                    WebhookError::Malformed("an issue_comment payload without its comment".into())
                })?
                .into(),
        ),
        _ => None,
    };
    Ok(Some(TrackerEvent {
        kind,
        issue: payload.issue.into_issue(&payload.repository.full_name),
        comment,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use preloop_core::tracker::IssueState;
    use reqwest::header::HeaderValue;
    use sha2::Sha256;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const SECRET: &str = "It's a Secret to Everybody";
    const DELIVERY: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";

    fn signature(secret: &str, body: &[u8]) -> Result<String, Box<dyn std::error::Error>> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|e| e.to_string())?;
        mac.update(body);
        Ok(format!(
            "sha256={}",
            hex::encode(mac.finalize().into_bytes())
        ))
    }

    fn headers(
        event: &str,
        signature: Option<&str>,
    ) -> Result<HeaderMap, Box<dyn std::error::Error>> {
        let mut headers = HeaderMap::new();
        headers.insert(EVENT_HEADER, HeaderValue::from_str(event)?);
        headers.insert(DELIVERY_HEADER, HeaderValue::from_static(DELIVERY));
        if let Some(signature) = signature {
            headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(signature)?);
        }
        Ok(headers)
    }

    fn signed(event: &str, body: &str) -> Result<Delivery, Box<dyn std::error::Error>> {
        let headers = headers(event, Some(&signature(SECRET, body.as_bytes())?))?;
        Ok(receive(SECRET, &headers, body.as_bytes())?)
    }

    #[test]
    fn documented_issue_deliveries_are_normalized() -> TestResult {
        let cases = [
            (
                include_str!("../../tests/fixtures/github/webhook-issues-opened.json"),
                TrackerEventKind::IssueCreated,
            ),
            (
                include_str!("../../tests/fixtures/github/webhook-issues-closed.json"),
                TrackerEventKind::IssueClosed,
            ),
            (
                include_str!("../../tests/fixtures/github/webhook-issues-edited.json"),
                TrackerEventKind::IssueUpdated,
            ),
            (
                include_str!("../../tests/fixtures/github/webhook-issues-reopened.json"),
                TrackerEventKind::IssueUpdated,
            ),
            (
                include_str!("../../tests/fixtures/github/webhook-issues-labeled.json"),
                TrackerEventKind::IssueUpdated,
            ),
            (
                include_str!("../../tests/fixtures/github/webhook-issues-assigned.json"),
                TrackerEventKind::IssueUpdated,
            ),
            (
                include_str!("../../tests/fixtures/github/webhook-issues-unassigned.json"),
                TrackerEventKind::IssueUpdated,
            ),
            (
                include_str!("../../tests/fixtures/github/webhook-issues-unlabeled.json"),
                TrackerEventKind::IssueUpdated,
            ),
        ];
        for (body, kind) in cases {
            let delivery = signed("issues", body)?;
            assert_eq!(delivery.id, DELIVERY);
            let event = delivery.event.ok_or("no event")?;
            assert_eq!(event.kind, kind);
            assert_eq!(event.issue.project, "Codertocat/Hello-World");
            assert_eq!(event.comment, None);
            let expected_state = if kind == TrackerEventKind::IssueClosed {
                IssueState::Closed
            } else {
                IssueState::Open
            };
            assert_eq!(event.issue.state, expected_state, "{kind:?}");
        }
        let opened = signed(
            "issues",
            include_str!("../../tests/fixtures/github/webhook-issues-opened.json"),
        )?
        .event
        .ok_or("no event")?;
        assert_eq!(opened.issue.key, "Codertocat/Hello-World#1");
        assert_eq!(opened.issue.id, "444500041");
        assert_eq!(opened.issue.labels, ["bug"]);
        assert_eq!(opened.issue.author.as_deref(), Some("Codertocat"));
        Ok(())
    }

    #[test]
    fn a_documented_comment_delivery_carries_the_comment() -> TestResult {
        let body = include_str!("../../tests/fixtures/github/webhook-issue_comment-created.json");
        let event = signed("issue_comment", body)?.event.ok_or("no event")?;
        assert_eq!(event.kind, TrackerEventKind::IssueCommented);
        assert_eq!(event.issue.key, "Codertocat/Hello-World#1");
        let comment = event.comment.ok_or("no comment")?;
        assert_eq!(comment.id, "492700400");
        assert_eq!(comment.author.as_deref(), Some("Codertocat"));
        assert_eq!(
            comment.body,
            "You are totally right! I'll get this fixed right away."
        );
        Ok(())
    }

    #[test]
    fn other_deliveries_are_accepted_without_an_event() -> TestResult {
        let cases = [
            (
                "ping",
                include_str!("../../tests/fixtures/github/webhook-ping.json"),
            ),
            (
                "pull_request",
                include_str!("../../tests/fixtures/github/webhook-pull_request-opened.json"),
            ),
            (
                "issues",
                include_str!("../../tests/fixtures/github/webhook-issues-deleted.json"),
            ),
            // GitHub's documented `milestoned` example is about a pull request.
            (
                "issues",
                include_str!("../../tests/fixtures/github/webhook-issues-milestoned.json"),
            ),
            (
                "issue_comment",
                include_str!("../../tests/fixtures/github/webhook-issue_comment-edited.json"),
            ),
        ];
        for (event, body) in cases {
            let delivery = signed(event, body)?;
            assert_eq!(delivery.id, DELIVERY);
            assert_eq!(delivery.event, None, "{event}");
        }
        Ok(())
    }

    #[test]
    fn comments_on_pull_requests_are_not_issue_events() -> TestResult {
        let mut payload: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/github/webhook-issue_comment-created.json"
        ))?;
        payload["issue"]["pull_request"] = serde_json::json!({
            "url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1"
        });
        assert_eq!(signed("issue_comment", &payload.to_string())?.event, None);
        Ok(())
    }

    #[test]
    fn forged_unsigned_and_anonymous_deliveries_are_refused() -> TestResult {
        let body = include_str!("../../tests/fixtures/github/webhook-issues-opened.json");
        let forged = headers("issues", Some(&signature("guess", body.as_bytes())?))?;
        assert_eq!(
            receive(SECRET, &forged, body.as_bytes()),
            Err(WebhookError::BadSignature)
        );
        let unsigned = headers("issues", None)?;
        assert_eq!(
            receive(SECRET, &unsigned, body.as_bytes()),
            Err(WebhookError::MissingSignature("x-hub-signature-256"))
        );
        let mut anonymous = headers("issues", Some(&signature(SECRET, body.as_bytes())?))?;
        anonymous.remove(EVENT_HEADER);
        assert!(matches!(
            receive(SECRET, &anonymous, body.as_bytes()),
            Err(WebhookError::Malformed(_))
        ));
        assert_eq!(
            receive("", &unsigned, body.as_bytes()),
            Err(WebhookError::NoSecret)
        );
        Ok(())
    }

    #[test]
    fn a_signed_delivery_that_is_no_issue_payload_is_malformed() -> TestResult {
        let error = signed("issues", r#"{"action":"opened"}"#);
        let Err(error) = error else {
            return Err("a payload without an issue was accepted".into());
        };
        assert!(error.to_string().contains("malformed"), "{error}");
        Ok(())
    }
}

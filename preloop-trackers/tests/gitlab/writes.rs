//! Writing to GitLab: creating (labels as a comma list, the priority as a scoped label,
//! usernames resolved to ids), updating only the given fields (status words as
//! `state_event`), commenting; GitLab's validation message carried.

use super::{ISSUE, ISSUES, TestResult, gitlab, request, time};
use crate::support::{Reply, StandIn};
use preloop_core::tracker::{IssueState, IssueUpdate, NewIssue, Tracker, TrackerError};
use serde_json::json;

const ISSUE_CREATED: &str = include_str!("../fixtures/gitlab/issue_created.json");
const ISSUE_CLOSED: &str = include_str!("../fixtures/gitlab/issue_closed.json");
const NOTE: &str = include_str!("../fixtures/gitlab/note.json");
const JACK: &str = include_str!("../fixtures/gitlab/users_jack_smith.json");
const JOHN: &str = include_str!("../fixtures/gitlab/users_john_smith.json");
const NO_USERS: &str = include_str!("../fixtures/gitlab/users_none.json");
const TITLE_BLANK: &str = include_str!("../fixtures/gitlab/error_title_blank.json");

#[tokio::test]
async fn an_issue_is_created_with_labels_priority_and_assignee_ids() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/api/v4/users").body(JACK),
        Reply::new("POST", ISSUES).status(201).body(ISSUE_CREATED),
    ])
    .await?;
    let issue = gitlab(&stand_in.base)?
        .create_issue(&NewIssue {
            project: "my-group/my-project".to_owned(),
            title: "Issues with auth".to_owned(),
            body: "Login fails after the upgrade.".to_owned(),
            labels: vec!["bug".to_owned()],
            assignees: vec!["jack_smith".to_owned()],
            priority: Some("high".to_owned()),
        })
        .await?;
    let received = stand_in.received();
    let lookup = request(&received, 0)?;
    assert_eq!(lookup.query("username").as_deref(), Some("jack_smith"));
    let sent = request(&received, 1)?;
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(
        sent.json(),
        json!({
            "title": "Issues with auth",
            "description": "Login fails after the upgrade.",
            "labels": "bug,priority::high",
            "assignee_ids": [2]
        })
    );
    assert_eq!(issue.key, "my-group/my-project#14");
    assert_eq!(issue.id, "84");
    assert_eq!(issue.body, "", "a null description is an empty body");
    assert_eq!(issue.labels, ["bug"]);
    assert_eq!(issue.priority.as_deref(), Some("high"));
    assert_eq!(issue.assignees, ["jack_smith"]);
    Ok(())
}

#[tokio::test]
async fn an_unknown_assignee_is_invalid_and_nothing_is_created() -> TestResult {
    let stand_in = StandIn::start(vec![Reply::new("GET", "/api/v4/users").body(NO_USERS)]).await?;
    let error = gitlab(&stand_in.base)?
        .create_issue(&NewIssue {
            project: "my-group/my-project".to_owned(),
            title: "t".to_owned(),
            assignees: vec!["nobody".to_owned()],
            ..NewIssue::default()
        })
        .await
        .err();
    assert_eq!(
        error,
        Some(TrackerError::Invalid(
            "GitLab has no user named \"nobody\"".to_owned()
        ))
    );
    assert_eq!(stand_in.received().len(), 1);
    Ok(())
}

#[tokio::test]
async fn gitlabs_validation_message_is_carried() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("POST", ISSUES).status(400).body(TITLE_BLANK),
    ])
    .await?;
    let error = gitlab(&stand_in.base)?
        .create_issue(&NewIssue {
            project: "my-group/my-project".to_owned(),
            ..NewIssue::default()
        })
        .await
        .err();
    assert_eq!(
        error,
        Some(TrackerError::Invalid("title: can't be blank".to_owned()))
    );
    let received = stand_in.received();
    assert_eq!(request(&received, 0)?.json(), json!({"title": ""}));
    Ok(())
}

#[tokio::test]
async fn an_update_sends_every_given_field() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/api/v4/users").body(JOHN),
        Reply::new("PUT", &format!("{ISSUES}/15")).body(ISSUE_CLOSED),
    ])
    .await?;
    let issue = gitlab(&stand_in.base)?
        .update_issue(
            "my-group/my-project#15",
            &IssueUpdate {
                title: Some("Issues with auth".to_owned()),
                body: Some("Fixed by the new session store.".to_owned()),
                status: Some("done".to_owned()),
                priority: Some("low".to_owned()),
                labels: Some(vec!["bug".to_owned()]),
                assignees: Some(vec!["john_smith".to_owned()]),
            },
        )
        .await?;
    let received = stand_in.received();
    assert_eq!(
        request(&received, 0)?.query("username").as_deref(),
        Some("john_smith")
    );
    let sent = request(&received, 1)?;
    assert_eq!(sent.method, "PUT");
    assert_eq!(
        sent.json(),
        json!({
            "title": "Issues with auth",
            "description": "Fixed by the new session store.",
            "state_event": "close",
            "labels": "bug,priority::low",
            "assignee_ids": [1]
        })
    );
    assert_eq!(issue.state, IssueState::Closed);
    assert_eq!(issue.key, "my-group/my-project#15");
    Ok(())
}

#[tokio::test]
async fn a_new_priority_replaces_the_priority_label_and_keeps_the_others() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", &format!("{ISSUES}/6")).body(ISSUE),
        Reply::new("PUT", &format!("{ISSUES}/6")).body(ISSUE),
        Reply::new("GET", &format!("{ISSUES}/6")).body(ISSUE),
        Reply::new("PUT", &format!("{ISSUES}/6")).body(ISSUE),
    ])
    .await?;
    let gitlab = gitlab(&stand_in.base)?;
    gitlab
        .update_issue(
            "my-group/my-project#6",
            &IssueUpdate {
                priority: Some("low".to_owned()),
                ..IssueUpdate::default()
            },
        )
        .await?;
    // New labels keep the issue's priority label.
    gitlab
        .update_issue(
            "my-group/my-project#6",
            &IssueUpdate {
                labels: Some(vec!["ui".to_owned(), "needs review".to_owned()]),
                ..IssueUpdate::default()
            },
        )
        .await?;
    let received = stand_in.received();
    assert_eq!(received.len(), 4);
    assert_eq!(
        request(&received, 1)?.json(),
        json!({"labels": "foo,bar,priority::low"})
    );
    assert_eq!(
        request(&received, 3)?.json(),
        json!({"labels": "ui,needs review,priority::high"})
    );
    Ok(())
}

#[tokio::test]
async fn status_words_become_state_events_and_others_are_refused() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("PUT", &format!("{ISSUES}/6")).body(ISSUE),
        Reply::new("GET", &format!("{ISSUES}/6")).body(ISSUE),
    ])
    .await?;
    let gitlab = gitlab(&stand_in.base)?;
    let reopen = IssueUpdate {
        status: Some("Reopened".to_owned()),
        ..IssueUpdate::default()
    };
    let issue = gitlab
        .update_issue("my-group/my-project#6", &reopen)
        .await?;
    assert_eq!(issue.state, IssueState::Open);
    let error = gitlab
        .update_issue(
            "my-group/my-project#6",
            &IssueUpdate {
                status: Some("In Progress".to_owned()),
                ..IssueUpdate::default()
            },
        )
        .await
        .err();
    let Some(TrackerError::Invalid(message)) = error else {
        return Err(format!("expected Invalid, got {error:?}").into());
    };
    assert!(message.contains("In Progress"), "{message}");
    assert!(
        message.contains("close") && message.contains("reopen"),
        "{message}"
    );
    // An update that changes nothing reads the issue instead.
    let unchanged = gitlab
        .update_issue("my-group/my-project#6", &IssueUpdate::default())
        .await?;
    assert_eq!(unchanged.key, "my-group/my-project#6");
    let received = stand_in.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        request(&received, 0)?.json(),
        json!({"state_event": "reopen"})
    );
    assert_eq!(request(&received, 1)?.method, "GET");
    Ok(())
}

#[tokio::test]
async fn a_comment_is_posted_as_a_note() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("POST", &format!("{ISSUES}/6/notes"))
            .status(201)
            .body(NOTE),
    ])
    .await?;
    let comment = gitlab(&stand_in.base)?
        .add_comment(
            &format!("{}/my-group/my-project/-/issues/6", stand_in.base),
            "Text of the comment",
        )
        .await?;
    assert_eq!(comment.id, "305");
    assert_eq!(comment.author.as_deref(), Some("pipin"));
    assert_eq!(comment.body, "Text of the comment\r\n");
    assert_eq!(comment.created_at, time("2013-10-02T09:56:03Z")?);
    let received = stand_in.received();
    let sent = request(&received, 0)?;
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.json(), json!({"body": "Text of the comment"}));
    Ok(())
}

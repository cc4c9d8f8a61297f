//! Writes: creating (issue type, ADF or text description, assignee), updating each field,
//! transitions, comments.

use super::*;

#[tokio::test]
async fn cloud_creates_a_task_with_an_adf_description_and_a_resolved_assignee() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/rest/api/3/project/EX").body(PROJECT),
        Reply::new("GET", "/rest/api/3/user/search")
            .body(include_str!("../fixtures/jira/user_search.json")),
        Reply::new("POST", "/rest/api/3/issue")
            .status(201)
            .body(include_str!("../fixtures/jira/created.json")),
        Reply::new("GET", "/rest/api/3/issue/ED-24").body(ISSUE_CLOUD),
    ])
    .await?;
    let jira = cloud(&stand_in)?;
    let new = NewIssue {
        project: "EX".to_owned(),
        title: "Order flow broken".to_owned(),
        body: "Main order flow broken\n\n- checkout fails".to_owned(),
        labels: vec!["checkout".to_owned()],
        assignees: vec!["mia@example.com".to_owned()],
        priority: Some("Major".to_owned()),
    };
    let issue = jira.create_issue(&new).await?;
    assert_eq!(issue.body, new.body);
    let received = stand_in.received();
    assert_eq!(
        request(&received, 1)?.query("query").as_deref(),
        Some("mia@example.com")
    );
    let fixture: Value = serde_json::from_str(ISSUE_CLOUD)?;
    assert_eq!(
        request(&received, 2)?.json(),
        json!({"fields": {
            "project": {"key": "EX"},
            "summary": "Order flow broken",
            "issuetype": {"id": "3"},
            "description": fixture["fields"]["description"],
            "labels": ["checkout"],
            "priority": {"name": "Major"},
            "assignee": {"accountId": "5b10a2844c20165700ede21g"}
        }})
    );
    assert_eq!(request(&received, 3)?.uri.path(), "/rest/api/3/issue/ED-24");
    assert!(
        received
            .iter()
            .all(|r| r.header("authorization") == Some(CLOUD_AUTH))
    );
    Ok(())
}

#[tokio::test]
async fn server_creates_with_the_first_standard_type_text_and_a_user_name() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/jira/rest/api/2/project/EX")
            .body(include_str!("../fixtures/jira/project_without_task.json")),
        Reply::new("POST", "/jira/rest/api/2/issue")
            .status(201)
            .body(include_str!("../fixtures/jira/created.json")),
        Reply::new("GET", "/jira/rest/api/2/issue/ED-24").body(ISSUE_SERVER),
    ])
    .await?;
    let jira = server(&stand_in)?;
    let new = NewIssue {
        project: "EX".to_owned(),
        title: "Order flow broken".to_owned(),
        body: "Main order flow broken".to_owned(),
        assignees: vec!["fred".to_owned()],
        ..NewIssue::default()
    };
    jira.create_issue(&new).await?;
    let received = stand_in.received();
    assert_eq!(
        request(&received, 1)?.json(),
        json!({"fields": {
            "project": {"key": "EX"},
            "summary": "Order flow broken",
            "issuetype": {"id": "1"},
            "description": "Main order flow broken",
            "assignee": {"name": "fred"}
        }})
    );
    Ok(())
}

#[tokio::test]
async fn unknown_assignees_and_rejected_fields_are_invalid_with_the_reason() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/rest/api/3/project/EX").body(PROJECT),
        Reply::new("GET", "/rest/api/3/user/search").body("[]"),
        Reply::new("GET", "/rest/api/3/project/EX").body(PROJECT),
        Reply::new("POST", "/rest/api/3/issue")
            .status(400)
            .body(include_str!("../fixtures/jira/error_validation.json")),
    ])
    .await?;
    let jira = cloud(&stand_in)?;
    let mut new = NewIssue {
        project: "EX".to_owned(),
        title: "t".to_owned(),
        assignees: vec!["nobody@example.com".to_owned()],
        ..NewIssue::default()
    };
    assert_eq!(
        jira.create_issue(&new).await.err(),
        Some(TrackerError::Invalid(
            "no Jira user is named \"nobody@example.com\"".to_owned()
        ))
    );
    new.assignees.clear();
    assert_eq!(
        jira.create_issue(&new).await.err(),
        Some(TrackerError::Invalid(
            "Field 'priority' is required; summary: You must specify a summary of the issue."
                .to_owned()
        ))
    );
    assert_eq!(stand_in.unused(), 0);
    Ok(())
}

#[tokio::test]
async fn cloud_updates_every_field_then_moves_to_in_progress() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/rest/api/3/user/search")
            .body(include_str!("../fixtures/jira/user_search.json")),
        Reply::new("PUT", "/rest/api/3/issue/ED-1")
            .status(204)
            .body(""),
        Reply::new("GET", "/rest/api/3/issue/ED-1/transitions").body(TRANSITIONS),
        Reply::new("POST", "/rest/api/3/issue/ED-1/transitions")
            .status(204)
            .body(""),
        Reply::new("GET", "/rest/api/3/issue/ED-1").body(ISSUE_CLOUD),
    ])
    .await?;
    let jira = cloud(&stand_in)?;
    let update = IssueUpdate {
        title: Some("Order flow broken".to_owned()),
        body: Some("Main order flow broken\n\n- checkout fails".to_owned()),
        status: Some("in progress".to_owned()),
        priority: Some("Major".to_owned()),
        labels: Some(vec!["checkout".to_owned(), "urgent".to_owned()]),
        assignees: Some(vec!["Mia Krystof".to_owned()]),
    };
    let issue = jira
        .update_issue(&format!("{}/browse/ED-1", stand_in.base), &update)
        .await?;
    assert_eq!(issue.status.as_deref(), Some("In Progress"));
    let received = stand_in.received();
    let fixture: Value = serde_json::from_str(ISSUE_CLOUD)?;
    assert_eq!(
        request(&received, 1)?.json(),
        json!({"fields": {
            "summary": "Order flow broken",
            "description": fixture["fields"]["description"],
            "labels": ["checkout", "urgent"],
            "priority": {"name": "Major"},
            "assignee": {"accountId": "5b10a2844c20165700ede21g"}
        }})
    );
    assert_eq!(
        request(&received, 3)?.json(),
        json!({"transition": {"id": "2"}})
    );
    assert_eq!(stand_in.unused(), 0);
    Ok(())
}

#[tokio::test]
async fn closing_takes_the_first_transition_into_the_done_category() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/jira/rest/api/2/issue/ED-1/transitions").body(TRANSITIONS),
        Reply::new("POST", "/jira/rest/api/2/issue/ED-1/transitions")
            .status(204)
            .body(""),
        Reply::new("GET", "/jira/rest/api/2/issue/ED-1").body(ISSUE_SERVER),
        Reply::new("GET", "/jira/rest/api/2/issue/ED-1/transitions").body(TRANSITIONS),
    ])
    .await?;
    let jira = server(&stand_in)?;
    let close = IssueUpdate {
        status: Some("close".to_owned()),
        ..IssueUpdate::default()
    };
    let issue = jira.update_issue("ED-1", &close).await?;
    assert_eq!(issue.state, IssueState::Closed);
    let received = stand_in.received();
    assert_eq!(
        request(&received, 1)?.json(),
        json!({"transition": {"id": "711"}})
    );
    let review = IssueUpdate {
        status: Some("Review".to_owned()),
        ..IssueUpdate::default()
    };
    assert_eq!(
        jira.update_issue("ED-1", &review).await.err(),
        Some(TrackerError::Invalid(
            "ED-1 cannot move to \"Review\"; its workflow allows: In Progress, Closed".to_owned()
        ))
    );
    assert_eq!(stand_in.unused(), 0);
    Ok(())
}

#[tokio::test]
async fn server_unassigns_with_a_null_assignee() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("PUT", "/jira/rest/api/2/issue/ED-1")
            .status(204)
            .body(""),
        Reply::new("GET", "/jira/rest/api/2/issue/ED-1").body(ISSUE_SERVER),
    ])
    .await?;
    let jira = server(&stand_in)?;
    let update = IssueUpdate {
        assignees: Some(Vec::new()),
        body: Some("plain *wiki* text".to_owned()),
        ..IssueUpdate::default()
    };
    jira.update_issue("ED-1", &update).await?;
    let received = stand_in.received();
    assert_eq!(
        request(&received, 0)?.json(),
        json!({"fields": {"assignee": null, "description": "plain *wiki* text"}})
    );
    Ok(())
}

#[tokio::test]
async fn cloud_comments_are_sent_and_read_as_adf() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("POST", "/rest/api/3/issue/ED-1/comment")
            .status(201)
            .body(include_str!("../fixtures/jira/comment_cloud.json")),
    ])
    .await?;
    let jira = cloud(&stand_in)?;
    let comment = jira
        .add_comment("ED-1", "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\nPellentesque eget venenatis elit.")
        .await?;
    assert_eq!(
        comment,
        IssueComment {
            id: "10000".to_owned(),
            author: Some("Mia Krystof".to_owned()),
            body: "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\nPellentesque eget venenatis elit."
                .to_owned(),
            created_at: time("2021-01-17T12:34:00Z")?,
        }
    );
    let fixture: Value = serde_json::from_str(include_str!("../fixtures/jira/comment_cloud.json"))?;
    let received = stand_in.received();
    assert_eq!(
        request(&received, 0)?.json(),
        json!({"body": fixture["body"]})
    );
    Ok(())
}

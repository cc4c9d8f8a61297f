//! The Jira adapter against a local stand-in: Cloud (REST v3, ADF, basic authentication) and
//! Server / Data Center under a context path (REST v2, text, bearer token). Answers are
//! Atlassian's documented examples (trimmed), kept under `tests/fixtures/jira/`.

mod support;

use chrono::{DateTime, Utc};
use preloop_core::tracker::{
    Issue, IssueComment, IssueState, IssueUpdate, NewIssue, ProjectInfo, Tracker, TrackerError,
};
use preloop_trackers::Connection;
use preloop_trackers::jira::Jira;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{Received, Reply, StandIn};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ISSUE_CLOUD: &str = include_str!("fixtures/jira/issue_cloud.json");
const ISSUE_SERVER: &str = include_str!("fixtures/jira/issue_server.json");
const PROJECT: &str = include_str!("fixtures/jira/project.json");
const TRANSITIONS: &str = include_str!("fixtures/jira/transitions.json");

/// `mia@example.com:api-token` in base64.
const CLOUD_AUTH: &str = "Basic bWlhQGV4YW1wbGUuY29tOmFwaS10b2tlbg==";

const FIELDS: [&str; 9] = [
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

fn cloud(stand_in: &StandIn) -> Result<Jira, TrackerError> {
    let connection = Connection {
        url: stand_in.base.clone(),
        token: "api-token".to_owned(),
        username: Some("mia@example.com".to_owned()),
    };
    Jira::new(&connection, support::fast_options())
}

/// Server / Data Center under the context path `/jira`.
fn server(stand_in: &StandIn) -> Result<Jira, TrackerError> {
    let connection = Connection {
        url: format!("{}/jira", stand_in.base),
        token: "pat-token".to_owned(),
        username: None,
    };
    Jira::new(&connection, support::fast_options())
}

fn time(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    Ok(DateTime::parse_from_rfc3339(text)?.with_timezone(&Utc))
}

fn request(received: &[Received], index: usize) -> Result<&Received, String> {
    received
        .get(index)
        .ok_or_else(|| format!("no request #{index}"))
}

#[path = "jira/writes.rs"]
mod writes;

#[tokio::test]
async fn cloud_issues_are_read_with_basic_auth_and_adf_descriptions() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/rest/api/3/issue/ED-1").body(ISSUE_CLOUD),
    ])
    .await?;
    let jira = cloud(&stand_in)?;
    let issue = jira.get_issue("ed-1").await?;
    let expected = Issue {
        id: "10002".to_owned(),
        key: "ED-1".to_owned(),
        project: "ED".to_owned(),
        title: "Order flow broken".to_owned(),
        body: "Main order flow broken\n\n- checkout fails".to_owned(),
        state: IssueState::Open,
        status: Some("In Progress".to_owned()),
        labels: vec!["checkout".to_owned(), "urgent".to_owned()],
        assignees: vec!["Mia Krystof".to_owned()],
        author: Some("Emma Richards".to_owned()),
        priority: Some("Major".to_owned()),
        url: Some(format!("{}/browse/ED-1", stand_in.base)),
        created_at: time("2022-10-06T07:32:47Z")?,
        updated_at: time("2023-06-24T17:24:50Z")?,
    };
    assert_eq!(issue, expected);
    let received = stand_in.received();
    let get = request(&received, 0)?;
    assert_eq!(
        get.query("fields").as_deref(),
        Some(FIELDS.join(",").as_str())
    );
    assert_eq!(get.header("authorization"), Some(CLOUD_AUTH));
    Ok(())
}

#[tokio::test]
async fn server_issues_are_read_under_the_context_path_with_a_bearer_token() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/jira/rest/api/2/issue/ED-1").body(ISSUE_SERVER),
    ])
    .await?;
    let jira = server(&stand_in)?;
    let issue = jira
        .get_issue(&format!("{}/jira/browse/ed-1", stand_in.base))
        .await?;
    assert_eq!(issue.key, "ED-1");
    assert_eq!(issue.body, "Main order flow broken\n\n* checkout fails");
    assert_eq!(issue.state, IssueState::Closed);
    assert_eq!(issue.status.as_deref(), Some("Closed"));
    assert_eq!(issue.assignees, vec!["fred".to_owned()]);
    assert_eq!(issue.author.as_deref(), Some("admin"));
    assert_eq!(issue.priority, None);
    assert_eq!(
        issue.url,
        Some(format!("{}/jira/browse/ED-1", stand_in.base))
    );
    let received = stand_in.received();
    let get = request(&received, 0)?;
    assert_eq!(get.header("authorization"), Some("Bearer pat-token"));
    Ok(())
}

#[tokio::test]
async fn keys_and_urls_name_issues_and_anything_else_is_refused() -> TestResult {
    let stand_in = StandIn::start(vec![]).await?;
    let jira = cloud(&stand_in)?;
    let base = &stand_in.base;
    assert_eq!(jira.kind(), "jira");
    assert_eq!(jira.issue_key("ed-12").as_deref(), Some("ED-12"));
    assert_eq!(jira.issue_key(" ED-12 ").as_deref(), Some("ED-12"));
    assert_eq!(
        jira.issue_key(&format!("{base}/browse/ED-12")).as_deref(),
        Some("ED-12")
    );
    assert_eq!(
        jira.issue_key(&format!("{base}/browse/ed-12?focusedCommentId=10000"))
            .as_deref(),
        Some("ED-12")
    );
    for other in [
        "https://other.example/browse/ED-12".to_owned(),
        format!("{base}/projects/ED"),
        format!("{base}/browse/ED"),
        "ED".to_owned(),
        "owner/repo#12".to_owned(),
    ] {
        assert_eq!(jira.issue_key(&other), None, "{other}");
    }
    let on_server = server(&stand_in)?;
    assert_eq!(
        on_server
            .issue_key(&format!("{base}/jira/browse/ED-3"))
            .as_deref(),
        Some("ED-3")
    );
    assert_eq!(on_server.issue_key(&format!("{base}/browse/ED-3")), None);
    let refused = jira.get_issue("owner/repo#12").await;
    let Err(TrackerError::Invalid(message)) = refused else {
        return Err(format!("expected Invalid, got {refused:?}").into());
    };
    assert!(
        message.contains("PROJ-12") && message.contains("/browse/"),
        "{message}"
    );
    assert!(stand_in.received().is_empty());
    assert!(matches!(
        Jira::new(
            &Connection {
                url: "not a url".to_owned(),
                token: "t".to_owned(),
                username: None
            },
            support::fast_options()
        ),
        Err(TrackerError::Invalid(_))
    ));
    Ok(())
}

#[tokio::test]
async fn cloud_sync_pages_by_next_page_token() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("POST", "/rest/api/3/search/jql")
            .body(include_str!("fixtures/jira/search_jql_page1.json")),
        Reply::new("POST", "/rest/api/3/search/jql")
            .body(include_str!("fixtures/jira/search_jql_page2.json")),
        Reply::new("POST", "/rest/api/3/search/jql")
            .body(include_str!("fixtures/jira/search_jql_page3.json")),
    ])
    .await?;
    let jira = cloud(&stand_in)?;
    let since = Some(time("2026-11-30T10:15:42Z")?);
    let first = jira.list_updated_since("ED", since, None).await?;
    assert_eq!(first.next_cursor.as_deref(), Some("CAEaAggD"));
    let second = jira
        .list_updated_since("ED", since, first.next_cursor.as_deref())
        .await?;
    assert_eq!(second.next_cursor.as_deref(), Some("CAIaAggE"));
    let third = jira
        .list_updated_since("ED", since, second.next_cursor.as_deref())
        .await?;
    assert_eq!(third.next_cursor, None);
    let keys: Vec<&str> = [&first, &second, &third]
        .iter()
        .flat_map(|page| page.issues.iter().map(|i| i.key.as_str()))
        .collect();
    assert_eq!(keys, ["ED-1", "ED-2", "ED-3"]);
    assert_eq!(first.issues.first().map(|i| i.body.as_str()), Some("first"));
    assert_eq!(second.issues.first().map(|i| i.body.as_str()), Some(""));
    assert_eq!(
        third.issues.first().map(|i| i.updated_at),
        Some(time("2026-11-30T11:30:00Z")?)
    );
    let jql = r#"project = "ED" AND updated >= "2026-11-29 10:15" ORDER BY updated ASC, key ASC"#;
    let received = stand_in.received();
    assert_eq!(received.len(), 3);
    for (request, token) in received
        .iter()
        .zip([None, Some("CAEaAggD"), Some("CAIaAggE")])
    {
        let mut expected = json!({"jql": jql, "fields": FIELDS, "maxResults": 100});
        if let Some(token) = token {
            expected["nextPageToken"] = json!(token);
        }
        assert_eq!(request.uri.path(), "/rest/api/3/search/jql");
        assert_eq!(request.uri.query(), None);
        assert_eq!(request.json(), expected);
    }
    Ok(())
}

fn server_search(file_body: &str) -> Reply {
    Reply::new("POST", "/jira/rest/api/2/search").body(file_body)
}

/// Reads every page, answering the keys of each and the cursors handed out.
async fn read_all(jira: &Jira) -> Result<(Vec<Vec<String>>, Vec<Option<String>>), TrackerError> {
    let (mut keys, mut cursors) = (Vec::new(), Vec::new());
    let mut cursor = None;
    loop {
        let page = jira
            .list_updated_since("ED", None, cursor.as_deref())
            .await?;
        keys.push(page.issues.iter().map(|i| i.key.clone()).collect());
        cursors.push(page.next_cursor.clone());
        cursor = page.next_cursor;
        if cursor.is_none() {
            return Ok((keys, cursors));
        }
    }
}

fn server_search_body(start_at: usize) -> Value {
    json!({
        "jql": r#"project = "ED" ORDER BY updated ASC, key ASC"#,
        "startAt": start_at,
        "maxResults": 100,
        "fields": FIELDS
    })
}

#[tokio::test]
async fn server_sync_pages_by_start_at_from_the_last_issue_handed_out() -> TestResult {
    let stand_in = StandIn::start(vec![
        server_search(include_str!("fixtures/jira/search_page1.json")),
        server_search(include_str!("fixtures/jira/search_page2.json")),
        server_search(include_str!("fixtures/jira/search_page3.json")),
    ])
    .await?;
    let jira = server(&stand_in)?;
    let (keys, cursors) = read_all(&jira).await?;
    assert_eq!(keys, [vec!["ED-1", "ED-2"], vec!["ED-3"], vec!["ED-4"]]);
    assert_eq!(
        cursors,
        [
            Some("2:1796036400000:2".to_owned()),
            Some("3:1796038200000:3".to_owned()),
            None
        ]
    );
    let received = stand_in.received();
    assert_eq!(received.len(), 3);
    for (request, start_at) in received.iter().zip([0, 1, 2]) {
        assert_eq!(request.uri.path(), "/jira/rest/api/2/search");
        assert_eq!(request.uri.query(), None);
        assert_eq!(request.json(), server_search_body(start_at));
        assert_eq!(request.header("authorization"), Some("Bearer pat-token"));
    }
    let bad = jira.list_updated_since("ED", None, Some("CAEaAggD")).await;
    assert!(matches!(bad, Err(TrackerError::Invalid(_))), "{bad:?}");
    let bad = jira
        .list_updated_since("ED\" OR project = \"X", None, None)
        .await;
    assert!(matches!(bad, Err(TrackerError::Invalid(_))), "{bad:?}");
    Ok(())
}

#[tokio::test]
async fn server_sync_misses_nothing_when_issues_move_up_between_pages() -> TestResult {
    // After the first page ED-1 is updated: it moves to the end and ED-3 takes the place
    // where ED-2 was, so the page from there does not start at or before ED-2.
    let stand_in = StandIn::start(vec![
        server_search(include_str!("fixtures/jira/search_page1.json")),
        server_search(include_str!("fixtures/jira/search_moved_up.json")),
        server_search(include_str!("fixtures/jira/search_from_top.json")),
    ])
    .await?;
    let jira = server(&stand_in)?;
    let (keys, _) = read_all(&jira).await?;
    assert_eq!(keys, [vec!["ED-1", "ED-2"], vec!["ED-3", "ED-4", "ED-1"]]);
    let received = stand_in.received();
    let starts: Vec<Value> = received
        .iter()
        .map(|r| r.json()["startAt"].clone())
        .collect();
    assert_eq!(starts, [json!(0), json!(1), json!(0)]);
    Ok(())
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_then_the_request_succeeds() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/rest/api/3/issue/ED-1")
            .status(429)
            .header("retry-after", "1")
            .body(include_str!("fixtures/jira/error_rate_limited.json")),
        Reply::new("GET", "/rest/api/3/issue/ED-1").body(ISSUE_CLOUD),
    ])
    .await?;
    let jira = cloud(&stand_in)?;
    let started = Instant::now();
    let issue = jira.get_issue("ED-1").await?;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(issue.key, "ED-1");
    assert_eq!(stand_in.received().len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_server_error_is_retried_then_the_request_succeeds() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/jira/rest/api/2/issue/ED-1")
            .status(503)
            .body("<html>Service Unavailable</html>"),
        Reply::new("GET", "/jira/rest/api/2/issue/ED-1").body(ISSUE_SERVER),
    ])
    .await?;
    let jira = server(&stand_in)?;
    assert_eq!(jira.get_issue("ED-1").await?.key, "ED-1");
    assert_eq!(stand_in.received().len(), 2);
    Ok(())
}

#[tokio::test]
async fn bad_credentials_are_unauthorized_and_not_retried() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/rest/api/3/project/EX")
            .status(401)
            .body(include_str!("fixtures/jira/error_unauthorized.json")),
    ])
    .await?;
    let jira = cloud(&stand_in)?;
    assert_eq!(
        jira.get_project("EX").await.err(),
        Some(TrackerError::Unauthorized(
            "You are not authenticated. Authentication required to perform this operation."
                .to_owned()
        ))
    );
    assert_eq!(stand_in.received().len(), 1);
    Ok(())
}

#[tokio::test]
async fn projects_are_described() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/rest/api/3/project/EX").body(PROJECT),
    ])
    .await?;
    let jira = cloud(&stand_in)?;
    assert_eq!(
        jira.get_project("EX").await?,
        ProjectInfo {
            key: "EX".to_owned(),
            name: "Example".to_owned(),
            url: Some(format!("{}/browse/EX", stand_in.base)),
        }
    );
    assert_eq!(stand_in.unused(), 0);
    Ok(())
}

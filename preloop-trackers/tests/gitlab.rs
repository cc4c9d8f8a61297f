//! The GitLab adapter against a local stand-in answering GitLab's documented responses: what
//! each call sends (method, encoded project path, query, `PRIVATE-TOKEN`, JSON body) and how
//! each answer is read. Webhook deliveries are in `gitlab/webhooks.rs`.

mod support;
#[path = "gitlab/webhooks.rs"]
mod webhooks;

use chrono::{DateTime, Utc};
use preloop_core::tracker::{IssueState, IssueUpdate, NewIssue, Tracker, TrackerError};
use preloop_trackers::Connection;
use preloop_trackers::gitlab::GitLab;
use preloop_trackers::http::{ClientOptions, RetryPolicy};
use serde_json::json;
use std::time::{Duration, Instant};
use support::{Received, Reply, StandIn};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ISSUE: &str = include_str!("fixtures/gitlab/issue.json");
const ISSUE_CREATED: &str = include_str!("fixtures/gitlab/issue_created.json");
const ISSUE_CLOSED: &str = include_str!("fixtures/gitlab/issue_closed.json");
const PAGE_1: &str = include_str!("fixtures/gitlab/issues_page1.json");
const PAGE_2: &str = include_str!("fixtures/gitlab/issues_page2.json");
const PAGE_3: &str = include_str!("fixtures/gitlab/issues_page3.json");
const NOTE: &str = include_str!("fixtures/gitlab/note.json");
const PROJECT: &str = include_str!("fixtures/gitlab/project.json");
const JACK: &str = include_str!("fixtures/gitlab/users_jack_smith.json");
const JOHN: &str = include_str!("fixtures/gitlab/users_john_smith.json");
const NO_USERS: &str = include_str!("fixtures/gitlab/users_none.json");
const TITLE_BLANK: &str = include_str!("fixtures/gitlab/error_title_blank.json");
const UNAUTHORIZED: &str = include_str!("fixtures/gitlab/error_unauthorized.json");
const RATE_LIMITED: &str = include_str!("fixtures/gitlab/error_rate_limited.json");
const SERVER_ERROR: &str = include_str!("fixtures/gitlab/error_server.json");

/// The project the fixtures' issues belong to, as the stand-in sees its path.
const ISSUES: &str = "/api/v4/projects/my-group%2Fmy-project/issues";

fn gitlab(url: &str) -> Result<GitLab, TrackerError> {
    let options = ClientOptions {
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: 2,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_rate_limit_wait: Duration::from_secs(5),
        },
        ..ClientOptions::default()
    };
    let connection = Connection {
        url: url.to_owned(),
        token: "glpat-test".to_owned(),
        username: None,
    };
    GitLab::new(&connection, options)
}

fn time(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc))
}

fn request(received: &[Received], index: usize) -> Result<&Received, String> {
    received
        .get(index)
        .ok_or_else(|| format!("request {index} was not sent"))
}

#[tokio::test]
async fn an_issue_is_read_by_key_or_url_with_the_token_header() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", &format!("{ISSUES}/6")).body(ISSUE),
        Reply::new("GET", &format!("{ISSUES}/6")).body(ISSUE),
    ])
    .await?;
    let gitlab = gitlab(&stand_in.base)?;
    let issue = gitlab.get_issue("my-group/my-project#6").await?;
    let by_url = gitlab
        .get_issue(&format!("{}/my-group/my-project/-/issues/6", stand_in.base))
        .await?;
    assert_eq!(issue, by_url);
    assert_eq!(issue.id, "76");
    assert_eq!(issue.key, "my-group/my-project#6");
    assert_eq!(issue.project, "my-group/my-project");
    assert_eq!(
        issue.title,
        "Consequatur vero maxime deserunt laboriosam est voluptas dolorem."
    );
    assert_eq!(issue.body, "Ratione dolores corrupti mollitia soluta quia.");
    assert_eq!(issue.state, IssueState::Open);
    assert_eq!(issue.labels, ["foo", "bar"]);
    assert_eq!(issue.priority.as_deref(), Some("high"));
    assert_eq!(issue.assignees, ["root"]);
    assert_eq!(issue.author.as_deref(), Some("eileen.lowe"));
    assert_eq!(
        issue.url.as_deref(),
        Some("http://example.com/my-group/my-project/issues/6")
    );
    assert_eq!(issue.created_at, time("2016-01-04T15:31:51.081Z")?);
    assert_eq!(issue.updated_at, time("2016-01-04T15:31:51.081Z")?);
    let received = stand_in.received();
    assert_eq!(received.len(), 2);
    for sent in &received {
        assert_eq!(sent.method, "GET");
        assert_eq!(sent.uri.path(), format!("{ISSUES}/6"));
        assert_eq!(sent.header("private-token"), Some("glpat-test"));
        assert_eq!(sent.header("authorization"), None);
    }
    Ok(())
}

#[tokio::test]
async fn keys_and_urls_are_canonicalized_and_others_refused() -> TestResult {
    let gitlab = gitlab("https://example.com/gitlab/")?;
    for reference in [
        "group/sub/project#12",
        " group/sub/project#12 ",
        "https://example.com/gitlab/group/sub/project/-/issues/12",
        "https://example.com/gitlab/group/sub/project/-/issues/12#note_3",
    ] {
        assert_eq!(
            gitlab.issue_key(reference).as_deref(),
            Some("group/sub/project#12"),
            "{reference}"
        );
    }
    for reference in [
        "PROJ-12",
        "#12",
        "group/project#0",
        "https://example.com/group/sub/project/-/issues/12",
        "https://gitlab.com/gitlab/group/sub/project/-/issues/12",
        "https://example.com/gitlab/group/sub/project/-/merge_requests/12",
    ] {
        assert_eq!(gitlab.issue_key(reference), None, "{reference}");
    }
    assert_eq!(gitlab.kind(), "gitlab");
    let error = gitlab.get_issue("PROJ-12").await.err();
    let Some(TrackerError::Invalid(message)) = error else {
        return Err(format!("expected Invalid, got {error:?}").into());
    };
    assert!(message.contains("group/project#IID"), "{message}");
    assert!(
        message.contains("https://example.com/gitlab/group/project/-/issues/IID"),
        "{message}"
    );
    assert!(matches!(
        GitLab::new(
            &Connection {
                url: "not a url".to_owned(),
                token: "t".to_owned(),
                username: None,
            },
            ClientOptions::default()
        ),
        Err(TrackerError::Invalid(_))
    ));
    Ok(())
}

#[tokio::test]
async fn a_project_is_described_with_its_path_encoded_as_one_segment() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/api/v4/projects/group%2Fsub%2Fproject").body(PROJECT),
        Reply::new(
            "GET",
            "/gitlab/api/v4/projects/diaspora%2Fdiaspora-project-site",
        )
        .body(PROJECT),
        Reply::new(
            "GET",
            "/gitlab/api/v4/projects/diaspora%2Fdiaspora-project-site",
        )
        .body(PROJECT),
    ])
    .await?;
    let project = gitlab(&stand_in.base)?
        .get_project("group/sub/project")
        .await?;
    assert_eq!(project.key, "diaspora/diaspora-project-site");
    assert_eq!(project.name, "Diaspora Project Site");
    assert_eq!(
        project.url.as_deref(),
        Some("http://example.com/diaspora/diaspora-project-site")
    );
    // A self-hosted instance under a path, given as its host or as its API base.
    for url in [
        format!("{}/gitlab", stand_in.base),
        format!("{}/gitlab/api/v4/", stand_in.base),
    ] {
        let project = gitlab(&url)?
            .get_project("diaspora/diaspora-project-site")
            .await?;
        assert_eq!(project.key, "diaspora/diaspora-project-site");
    }
    assert_eq!(stand_in.unused(), 0);
    let error = gitlab(&stand_in.base)?.get_project("diaspora").await.err();
    assert!(matches!(error, Some(TrackerError::Invalid(_))), "{error:?}");
    Ok(())
}

#[tokio::test]
async fn sync_pages_by_x_next_page_until_it_is_empty() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", ISSUES)
            .header("x-page", "1")
            .header("x-next-page", "2")
            .body(PAGE_1),
        Reply::new("GET", ISSUES)
            .header("x-page", "2")
            .header("x-next-page", "3")
            .body(PAGE_2),
        Reply::new("GET", ISSUES)
            .header("x-page", "3")
            .header("x-next-page", "")
            .body(PAGE_3),
    ])
    .await?;
    let gitlab = gitlab(&stand_in.base)?;
    let since = Some(time("2016-01-01T00:00:00Z")?);
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..3 {
        let page = gitlab
            .list_updated_since("my-group/my-project", since, cursor.as_deref())
            .await?;
        keys.extend(page.issues.into_iter().map(|issue| issue.key));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(cursor, None);
    assert_eq!(
        keys,
        [
            "my-group/my-project#6",
            "my-group/my-project#11",
            "my-group/my-project#15"
        ]
    );
    let received = stand_in.received();
    assert_eq!(received.len(), 3);
    for (index, page) in [None, Some("2"), Some("3")].into_iter().enumerate() {
        let sent = request(&received, index)?;
        assert_eq!(sent.uri.path(), ISSUES);
        assert_eq!(sent.query("scope").as_deref(), Some("all"));
        assert_eq!(sent.query("order_by").as_deref(), Some("updated_at"));
        assert_eq!(sent.query("sort").as_deref(), Some("asc"));
        assert_eq!(sent.query("per_page").as_deref(), Some("100"));
        assert_eq!(
            sent.query("updated_after").as_deref(),
            Some("2016-01-01T00:00:00.000Z")
        );
        assert_eq!(sent.query("page").as_deref(), page);
        assert_eq!(sent.header("private-token"), Some("glpat-test"));
    }
    Ok(())
}

#[tokio::test]
async fn sync_follows_keyset_links_exactly_and_only_on_gitlabs_origin() -> TestResult {
    let next = "/api/v4/projects/my-group%2Fmy-project/issues?cursor=eyJpZCI6Ijc2In0&order_by=updated_at&per_page=100&scope=all&sort=asc";
    let stand_in = StandIn::start(vec![
        Reply::new("GET", ISSUES)
            .header("link", &format!("<{{base}}{next}>; rel=\"next\""))
            .body(PAGE_1),
        Reply::new("GET", ISSUES)
            .header(
                "link",
                "<{base}/api/v4/projects/my-group%2Fmy-project/issues?cursor=eyJpZCI6IjkyIn0&order_by=updated_at&per_page=100&scope=all&sort=asc>; rel=\"next\"",
            )
            .body(PAGE_2),
        Reply::new("GET", ISSUES).body(PAGE_3),
        Reply::new("GET", ISSUES)
            .header(
                "link",
                "<https://evil.example/api/v4/projects/1/issues?cursor=x>; rel=\"next\"",
            )
            .body(PAGE_1),
    ])
    .await?;
    let gitlab = gitlab(&stand_in.base)?;
    let first = gitlab
        .list_updated_since("my-group/my-project", None, None)
        .await?;
    assert_eq!(first.issues.len(), 1);
    let cursor = first.next_cursor.ok_or("no cursor after page 1")?;
    assert_eq!(cursor, format!("{}{next}", stand_in.base));
    let second = gitlab
        .list_updated_since("my-group/my-project", None, Some(&cursor))
        .await?;
    let cursor = second.next_cursor.ok_or("no cursor after page 2")?;
    let third = gitlab
        .list_updated_since("my-group/my-project", None, Some(&cursor))
        .await?;
    assert_eq!(third.next_cursor, None);
    assert_eq!(
        third.issues.first().map(|i| i.state),
        Some(IssueState::Closed)
    );
    let received = stand_in.received();
    let first_sent = request(&received, 0)?;
    assert_eq!(first_sent.query("updated_after"), None);
    assert_eq!(first_sent.query("scope").as_deref(), Some("all"));
    assert_eq!(
        request(&received, 1)?
            .uri
            .path_and_query()
            .map(|p| p.as_str()),
        Some(next)
    );
    assert_eq!(
        request(&received, 2)?.query("cursor").as_deref(),
        Some("eyJpZCI6IjkyIn0")
    );
    let hostile = gitlab
        .list_updated_since("my-group/my-project", None, None)
        .await;
    assert!(
        matches!(hostile, Err(TrackerError::Unavailable(_))),
        "{hostile:?}"
    );
    let forged = gitlab
        .list_updated_since("my-group/my-project", None, Some("https://evil.example/x"))
        .await;
    assert!(forged.is_err());
    assert_eq!(stand_in.received().len(), 4);
    Ok(())
}

#[tokio::test]
async fn a_429_with_gitlabs_ratelimit_headers_waits_for_the_reset() -> TestResult {
    let reset = Utc::now().timestamp() + 2;
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/api/v4/projects/diaspora%2Fdiaspora-project-site")
            .status(429)
            .header("ratelimit-limit", "600")
            .header("ratelimit-remaining", "0")
            .header("ratelimit-reset", &reset.to_string())
            .body(RATE_LIMITED),
        Reply::new("GET", "/api/v4/projects/diaspora%2Fdiaspora-project-site").body(PROJECT),
    ])
    .await?;
    let started = Instant::now();
    let project = gitlab(&stand_in.base)?
        .get_project("diaspora/diaspora-project-site")
        .await?;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(project.name, "Diaspora Project Site");
    assert_eq!(stand_in.received().len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_server_error_is_retried_then_the_issue_read() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", &format!("{ISSUES}/6"))
            .status(500)
            .body(SERVER_ERROR),
        Reply::new("GET", &format!("{ISSUES}/6")).body(ISSUE),
    ])
    .await?;
    let issue = gitlab(&stand_in.base)?
        .get_issue("my-group/my-project#6")
        .await?;
    assert_eq!(issue.key, "my-group/my-project#6");
    assert_eq!(stand_in.received().len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_bad_token_is_unauthorized() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", &format!("{ISSUES}/6"))
            .status(401)
            .body(UNAUTHORIZED),
    ])
    .await?;
    let error = gitlab(&stand_in.base)?
        .get_issue("my-group/my-project#6")
        .await
        .err();
    assert_eq!(
        error,
        Some(TrackerError::Unauthorized("401 Unauthorized".to_owned()))
    );
    assert_eq!(stand_in.received().len(), 1);
    Ok(())
}

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

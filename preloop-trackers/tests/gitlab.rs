//! The GitLab adapter against a local stand-in answering GitLab's documented responses: what
//! each call sends (method, encoded project path, query, `PRIVATE-TOKEN`, JSON body) and how
//! each answer is read. Writes are in `gitlab/writes.rs`, webhook deliveries in
//! `gitlab/webhooks.rs`.

mod support;
#[path = "gitlab/webhooks.rs"]
mod webhooks;
#[path = "gitlab/writes.rs"]
mod writes;

use chrono::{DateTime, Utc};
use preloop_core::tracker::{IssueState, Tracker, TrackerError};
use preloop_trackers::Connection;
use preloop_trackers::gitlab::GitLab;
use preloop_trackers::http::ClientOptions;
use std::time::{Duration, Instant};
use support::{Received, Reply, StandIn};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ISSUE: &str = include_str!("fixtures/gitlab/issue.json");
const PAGE_1: &str = include_str!("fixtures/gitlab/issues_page1.json");
const PAGE_2: &str = include_str!("fixtures/gitlab/issues_page2.json");
const PAGE_3: &str = include_str!("fixtures/gitlab/issues_page3.json");
const PROJECT: &str = include_str!("fixtures/gitlab/project.json");
const UNAUTHORIZED: &str = include_str!("fixtures/gitlab/error_unauthorized.json");
const RATE_LIMITED: &str = include_str!("fixtures/gitlab/error_rate_limited.json");
const SERVER_ERROR: &str = include_str!("fixtures/gitlab/error_server.json");

/// The project the fixtures' issues belong to, as the stand-in sees its path.
const ISSUES: &str = "/api/v4/projects/my-group%2Fmy-project/issues";

fn gitlab(url: &str) -> Result<GitLab, TrackerError> {
    let options = support::fast_options();
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

/// Three offset-paginated answers (`x-next-page`, empty on the last), each with `bodies[i]`.
fn offset_pages(bodies: [&str; 3]) -> Vec<Reply> {
    let next = ["2", "3", ""];
    bodies
        .iter()
        .zip(next)
        .enumerate()
        .map(|(index, (body, next))| {
            Reply::new("GET", ISSUES)
                .header("x-page", &(index + 1).to_string())
                .header("x-per-page", "100")
                .header("x-next-page", next)
                .body(*body)
        })
        .collect()
}

/// Lists `my-group/my-project` from `since` until the last page: the issues' keys.
async fn sync_all(
    gitlab: &GitLab,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<String>, TrackerError> {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = gitlab
            .list_updated_since("my-group/my-project", since, cursor.as_deref())
            .await?;
        keys.extend(page.issues.into_iter().map(|issue| issue.key));
        cursor = page.next_cursor;
        if cursor.is_none() {
            return Ok(keys);
        }
    }
}

/// Checks the parameters every listing request carries.
fn assert_listing(sent: &Received) {
    assert_eq!(sent.uri.path(), ISSUES);
    assert_eq!(sent.query("scope").as_deref(), Some("all"));
    assert_eq!(sent.query("order_by").as_deref(), Some("updated_at"));
    assert_eq!(sent.query("sort").as_deref(), Some("asc"));
    assert_eq!(sent.query("per_page").as_deref(), Some("100"));
    assert_eq!(sent.header("private-token"), Some("glpat-test"));
}

#[tokio::test]
async fn offset_pages_are_asked_from_the_newest_update_seen_so_none_can_slip() -> TestResult {
    let stand_in = StandIn::start(offset_pages([PAGE_1, PAGE_2, PAGE_3])).await?;
    let keys = sync_all(
        &gitlab(&stand_in.base)?,
        Some(time("2016-01-01T00:00:00Z")?),
    )
    .await?;
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
    // Each next page starts at the newest updated_at of the one before (inclusive).
    for (index, from) in [
        "2016-01-01T00:00:00.000Z",
        "2016-01-04T15:31:51.081Z",
        "2016-04-07T12:20:17.596Z",
    ]
    .into_iter()
    .enumerate()
    {
        let sent = request(&received, index)?;
        assert_listing(sent);
        assert_eq!(sent.query("updated_after").as_deref(), Some(from));
        assert_eq!(sent.query("page"), None);
    }
    Ok(())
}

#[tokio::test]
async fn pages_sharing_one_time_move_by_x_next_page() -> TestResult {
    // Every issue of these pages was updated at the time asked from: only the offset moves.
    let stand_in = StandIn::start(offset_pages([PAGE_1, PAGE_1, PAGE_1])).await?;
    let since = time("2016-01-04T15:31:51.081Z")?;
    let keys = sync_all(&gitlab(&stand_in.base)?, Some(since)).await?;
    assert_eq!(keys.len(), 3);
    let received = stand_in.received();
    assert_eq!(received.len(), 3);
    for (index, page) in [None, Some("2"), Some("3")].into_iter().enumerate() {
        let sent = request(&received, index)?;
        assert_listing(sent);
        assert_eq!(
            sent.query("updated_after").as_deref(),
            Some("2016-01-04T15:31:51.081Z")
        );
        assert_eq!(sent.query("page").as_deref(), page);
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

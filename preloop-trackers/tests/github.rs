//! The GitHub adapter against a local stand-in answering with GitHub's recorded answers
//! (`@octokit/fixtures`) and documented examples: what each method sends (method, path, query,
//! headers, JSON body) and how each answer is read.

mod support;

use chrono::{DateTime, Utc};
use preloop_core::tracker::{IssueState, IssueUpdate, NewIssue, Tracker, TrackerError};
use preloop_trackers::Connection;
use preloop_trackers::github::GitHub;
use serde_json::json;
use std::time::{Duration, Instant};
use support::{Received, Reply, StandIn};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const PAGINATED: &str = "/repos/octokit-fixture-org/paginate-issues/issues";
const HELLO_ISSUE: &str = "/repos/Codertocat/Hello-World/issues/1";

fn adapter(base: &str) -> Result<GitHub, TrackerError> {
    let options = support::fast_options();
    let connection = Connection {
        url: base.to_owned(),
        token: "ghp_test".to_owned(),
        username: None,
    };
    GitHub::new(&connection, options)
}

fn time(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    Ok(DateTime::parse_from_rfc3339(text)?.with_timezone(&Utc))
}

/// Every request carried GitHub's media type, API version and the token.
fn assert_github_headers(received: &[Received]) {
    for request in received {
        assert_eq!(
            request.header("accept"),
            Some("application/vnd.github+json")
        );
        assert_eq!(request.header("x-github-api-version"), Some("2022-11-28"));
        assert_eq!(request.header("authorization"), Some("Bearer ghp_test"));
    }
}

fn page(n: usize, body: &str, link: &str) -> Reply {
    let path = if n == 1 {
        PAGINATED
    } else {
        "/repositories/1000/issues"
    };
    Reply::new("GET", path).header("link", link).body(body)
}

#[tokio::test]
async fn a_full_sync_follows_the_next_links_exactly_across_five_pages() -> TestResult {
    macro_rules! recorded {
        ($n:literal) => {
            (
                include_str!(concat!("fixtures/github/issues-page-", $n, ".json")),
                include_str!(concat!("fixtures/github/issues-page-", $n, ".link")),
            )
        };
    }
    let fixtures = [
        recorded!(1),
        recorded!(2),
        recorded!(3),
        recorded!(4),
        recorded!(5),
    ];
    let replies = fixtures
        .iter()
        .enumerate()
        .map(|(i, (body, link))| page(i + 1, body, link))
        .collect();
    let stand_in = StandIn::start(replies).await?;
    let github = adapter(&stand_in.base)?;
    let project = "octokit-fixture-org/paginate-issues";
    let mut issues = Vec::new();
    let mut cursors = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = github
            .list_updated_since(project, None, cursor.as_deref())
            .await?;
        issues.extend(page.issues);
        match page.next_cursor {
            Some(next) => {
                cursors.push(next.clone());
                cursor = Some(next);
            }
            None => break,
        }
    }
    let numbers: Vec<_> = issues.iter().map(|i| i.key.clone()).collect();
    let expected: Vec<_> = (1..=13).rev().map(|n| format!("{project}#{n}")).collect();
    assert_eq!(numbers, expected);
    assert!(
        issues.iter().all(|i| i.body.is_empty()),
        "null bodies are empty text"
    );
    assert_eq!(issues[0].title, "Test issue 13");
    assert_eq!(issues[0].id, "1000");
    assert_eq!(issues[0].project, project);
    assert_eq!(issues[0].state, IssueState::Open);
    assert_eq!(issues[0].author.as_deref(), Some("octokit-fixture-user-a"));
    assert_eq!(issues[0].updated_at, time("2017-10-10T16:00:00Z")?);
    assert_eq!(
        cursors,
        (2..=5)
            .map(|n| format!(
                "{}/repositories/1000/issues?per_page=3&page={n}",
                stand_in.base
            ))
            .collect::<Vec<_>>()
    );
    let received = stand_in.received();
    assert_eq!(received.len(), 5);
    assert_eq!(
        received[0].uri.to_string(),
        format!("{PAGINATED}?state=all&sort=updated&direction=asc&per_page=100")
    );
    for (n, request) in received.iter().enumerate().skip(1) {
        assert_eq!(
            request.uri.to_string(),
            format!("/repositories/1000/issues?per_page=3&page={}", n + 1)
        );
    }
    assert_github_headers(&received);
    assert_eq!(stand_in.unused(), 0);
    Ok(())
}

#[tokio::test]
async fn since_is_sent_in_rfc_3339_a_second_early_and_the_last_page_has_no_cursor() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", PAGINATED).body(include_str!("fixtures/github/issues-page-5.json")),
    ])
    .await?;
    let github = adapter(&stand_in.base)?;
    let since = time("2017-10-10T16:00:00.250Z")?;
    let page = github
        .list_updated_since("octokit-fixture-org/paginate-issues", Some(since), None)
        .await?;
    assert_eq!(page.issues.len(), 1);
    assert_eq!(page.next_cursor, None);
    let received = stand_in.received();
    assert_eq!(
        received[0].query("since").as_deref(),
        Some("2017-10-10T15:59:59Z")
    );
    assert_eq!(received[0].query("state").as_deref(), Some("all"));
    assert_eq!(received[0].query("sort").as_deref(), Some("updated"));
    assert_eq!(received[0].query("direction").as_deref(), Some("asc"));
    assert_eq!(received[0].query("per_page").as_deref(), Some("100"));
    Ok(())
}

#[tokio::test]
async fn pull_requests_in_a_listed_page_are_skipped() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/repos/Codertocat/Hello-World/issues").body(include_str!(
            "fixtures/github/issues-with-pull-request.json"
        )),
    ])
    .await?;
    let github = adapter(&stand_in.base)?;
    let page = github
        .list_updated_since("Codertocat/Hello-World", None, None)
        .await?;
    let keys: Vec<_> = page.issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["Codertocat/Hello-World#1"]);
    assert_eq!(page.issues[0].labels, ["bug"]);
    Ok(())
}

#[tokio::test]
async fn links_and_cursors_off_the_trackers_origin_are_refused() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", PAGINATED)
            .header("link", "<https://evil.example/issues?page=2>; rel=\"next\"")
            .body("[]"),
    ])
    .await?;
    let github = adapter(&stand_in.base)?;
    let project = "octokit-fixture-org/paginate-issues";
    let hostile = github.list_updated_since(project, None, None).await;
    assert!(
        matches!(hostile, Err(TrackerError::Unavailable(_))),
        "{hostile:?}"
    );
    let given = github
        .list_updated_since(project, None, Some("https://evil.example/issues?page=2"))
        .await;
    assert!(
        matches!(given, Err(TrackerError::Unavailable(_))),
        "{given:?}"
    );
    assert_eq!(stand_in.received().len(), 1);
    Ok(())
}

#[tokio::test]
async fn an_exhausted_primary_rate_limit_waits_for_its_reset_then_succeeds() -> TestResult {
    let reset = (Utc::now().timestamp() + 2).to_string();
    let stand_in = StandIn::start(vec![
        Reply::new("GET", HELLO_ISSUE)
            .status(403)
            .header("x-ratelimit-limit", "5000")
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-used", "5000")
            .header("x-ratelimit-reset", &reset)
            .header("x-ratelimit-resource", "core")
            .body(include_str!("fixtures/github/rate-limited.json")),
        Reply::new("GET", HELLO_ISSUE).body(include_str!("fixtures/github/issue.json")),
    ])
    .await?;
    let github = adapter(&stand_in.base)?;
    let started = Instant::now();
    let issue = github.get_issue("Codertocat/Hello-World#1").await?;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(issue.key, "Codertocat/Hello-World#1");
    assert_eq!(stand_in.received().len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_server_error_is_retried_then_the_issue_is_read() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", HELLO_ISSUE)
            .status(502)
            .body("<html>bad gateway</html>"),
        Reply::new("GET", HELLO_ISSUE).body(include_str!("fixtures/github/issue.json")),
    ])
    .await?;
    let github = adapter(&stand_in.base)?;
    let issue = github.get_issue("Codertocat/Hello-World#1").await?;
    assert_eq!(issue.title, "Spelling error in the README file");
    assert_eq!(stand_in.received().len(), 2);
    Ok(())
}

#[tokio::test]
async fn bad_credentials_are_unauthorized_with_githubs_message() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/repos/octokit-fixture-org/hello-world")
            .status(401)
            .body(include_str!("fixtures/github/bad-credentials.json")),
    ])
    .await?;
    let github = adapter(&stand_in.base)?;
    let error = github.get_project("octokit-fixture-org/hello-world").await;
    assert_eq!(
        error,
        Err(TrackerError::Unauthorized("Bad credentials".to_owned()))
    );
    assert_eq!(stand_in.received().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_validation_error_carries_githubs_message() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("POST", "/repos/octokit-fixture-org/errors/issues")
            .status(422)
            .body(include_str!("fixtures/github/validation-failed.json")),
    ])
    .await?;
    let github = adapter(&stand_in.base)?;
    let new = NewIssue {
        project: "octokit-fixture-org/errors".to_owned(),
        title: "t".to_owned(),
        ..NewIssue::default()
    };
    let error = github.create_issue(&new).await;
    assert_eq!(
        error,
        Err(TrackerError::Invalid(
            "Validation Failed; color: invalid".to_owned()
        ))
    );
    assert_eq!(
        stand_in.received().len(),
        1,
        "client errors are not retried"
    );
    Ok(())
}

#[tokio::test]
async fn an_issue_is_read_by_its_web_url() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", HELLO_ISSUE).body(include_str!("fixtures/github/issue.json")),
    ])
    .await?;
    let github = adapter(&stand_in.base)?;
    let url = format!("{}/Codertocat/Hello-World/issues/1", stand_in.base);
    let issue = github.get_issue(&url).await?;
    assert_eq!(issue.id, "444500041");
    assert_eq!(issue.key, "Codertocat/Hello-World#1");
    assert_eq!(issue.project, "Codertocat/Hello-World");
    assert_eq!(issue.title, "Spelling error in the README file");
    assert_eq!(
        issue.body,
        "It looks like you accidently spelled 'commit' with two 't's."
    );
    assert_eq!(issue.state, IssueState::Open);
    assert_eq!(issue.labels, ["bug"]);
    assert_eq!(issue.assignees, ["Codertocat"]);
    assert_eq!(issue.author.as_deref(), Some("Codertocat"));
    assert_eq!(issue.priority, None);
    assert_eq!(
        issue.url.as_deref(),
        Some("https://github.com/Codertocat/Hello-World/issues/1")
    );
    assert_eq!(issue.created_at, time("2019-05-15T15:20:18Z")?);
    let received = stand_in.received();
    assert_eq!(received[0].method, "GET");
    assert_eq!(received[0].uri, HELLO_ISSUE);
    assert_github_headers(&received);
    Ok(())
}

#[tokio::test]
async fn a_pull_request_is_not_an_issue() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/repos/Codertocat/Hello-World/issues/2")
            .body(include_str!("fixtures/github/pull-request-as-issue.json")),
    ])
    .await?;
    let github = adapter(&stand_in.base)?;
    let error = github.get_issue("Codertocat/Hello-World#2").await;
    assert_eq!(
        error,
        Err(TrackerError::NotFound(
            "Codertocat/Hello-World#2 is a pull request, not an issue".to_owned()
        ))
    );
    Ok(())
}

#[tokio::test]
async fn an_issue_is_created_with_its_priority_as_a_label() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new(
            "POST",
            "/repos/octokit-fixture-org/add-labels-to-issue/issues",
        )
        .status(201)
        .body(include_str!("fixtures/github/created-issue.json")),
    ])
    .await?;
    let github = adapter(&stand_in.base)?;
    let new = NewIssue {
        project: "octokit-fixture-org/add-labels-to-issue".to_owned(),
        title: "Issue without a label".to_owned(),
        body: "Steps to reproduce".to_owned(),
        labels: vec!["bug".to_owned()],
        assignees: vec!["octokit-fixture-user-a".to_owned()],
        priority: Some("High".to_owned()),
    };
    let issue = github.create_issue(&new).await?;
    assert_eq!(issue.key, "octokit-fixture-org/add-labels-to-issue#1");
    assert_eq!(issue.id, "1000");
    assert_eq!(issue.body, "");
    let received = stand_in.received();
    assert_eq!(received[0].method, "POST");
    assert_eq!(
        received[0].json(),
        json!({
            "title": "Issue without a label",
            "body": "Steps to reproduce",
            "labels": ["bug", "priority: High"],
            "assignees": ["octokit-fixture-user-a"],
        })
    );
    assert_github_headers(&received);
    Ok(())
}

#[tokio::test]
async fn an_update_sends_every_given_field_and_nothing_else() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("PATCH", HELLO_ISSUE).body(include_str!("fixtures/github/reopened-issue.json")),
        Reply::new("PATCH", HELLO_ISSUE).body(include_str!("fixtures/github/reopened-issue.json")),
    ])
    .await?;
    let github = adapter(&stand_in.base)?;
    let every = IssueUpdate {
        title: Some("Spelling error in the README file".to_owned()),
        body: Some("commit, not committ".to_owned()),
        status: Some("Reopen".to_owned()),
        priority: Some("low".to_owned()),
        labels: Some(vec!["bug".to_owned(), "priority: high".to_owned()]),
        assignees: Some(vec!["Codertocat".to_owned()]),
    };
    let issue = github
        .update_issue("Codertocat/Hello-World#1", &every)
        .await?;
    assert_eq!(issue.state, IssueState::Open);
    assert_eq!(issue.updated_at, time("2021-10-11T16:40:56Z")?);
    let closing = IssueUpdate {
        status: Some("done".to_owned()),
        ..IssueUpdate::default()
    };
    github
        .update_issue("Codertocat/Hello-World#1", &closing)
        .await?;
    let received = stand_in.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].json(),
        json!({
            "title": "Spelling error in the README file",
            "body": "commit, not committ",
            "state": "open",
            "labels": ["bug", "priority: low"],
            "assignees": ["Codertocat"],
        })
    );
    assert_eq!(received[1].json(), json!({"state": "closed"}));
    assert_github_headers(&received);
    Ok(())
}

#[tokio::test]
async fn a_new_priority_alone_reads_the_labels_and_replaces_the_old_one() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", HELLO_ISSUE).body(include_str!("fixtures/github/issue.json")),
        Reply::new("PATCH", HELLO_ISSUE).body(include_str!("fixtures/github/issue.json")),
    ])
    .await?;
    let github = adapter(&stand_in.base)?;
    let update = IssueUpdate {
        priority: Some("urgent".to_owned()),
        ..IssueUpdate::default()
    };
    github
        .update_issue("Codertocat/Hello-World#1", &update)
        .await?;
    let received = stand_in.received();
    assert_eq!(received[0].method, "GET");
    assert_eq!(received[1].method, "PATCH");
    assert_eq!(
        received[1].json(),
        json!({"labels": ["bug", "priority: urgent"]})
    );
    Ok(())
}

#[tokio::test]
async fn statuses_github_lacks_and_empty_updates_send_no_change() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", HELLO_ISSUE).body(include_str!("fixtures/github/issue.json")),
    ])
    .await?;
    let github = adapter(&stand_in.base)?;
    let update = IssueUpdate {
        status: Some("In Progress".to_owned()),
        ..IssueUpdate::default()
    };
    let error = github
        .update_issue("Codertocat/Hello-World#1", &update)
        .await;
    let Err(TrackerError::Invalid(message)) = error else {
        return Err(format!("expected Invalid, got {error:?}").into());
    };
    assert!(
        message.contains("\"In Progress\"") && message.contains("close"),
        "{message}"
    );
    let unchanged = github
        .update_issue("Codertocat/Hello-World#1", &IssueUpdate::default())
        .await?;
    assert_eq!(unchanged.title, "Spelling error in the README file");
    let received = stand_in.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "GET");
    Ok(())
}

#[tokio::test]
async fn a_comment_is_added() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("POST", "/repos/Codertocat/Hello-World/issues/1/comments")
            .status(201)
            .body(include_str!("fixtures/github/comment.json")),
    ])
    .await?;
    let github = adapter(&stand_in.base)?;
    let body = "You are totally right! I'll get this fixed right away.";
    let comment = github
        .add_comment("https://github.com/Codertocat/Hello-World/issues/1", body)
        .await;
    assert!(
        matches!(comment, Err(TrackerError::Invalid(_))),
        "github.com is not this host"
    );
    let url = format!("{}/Codertocat/Hello-World/issues/1", stand_in.base);
    let comment = github.add_comment(&url, body).await?;
    assert_eq!(comment.id, "492700400");
    assert_eq!(comment.author.as_deref(), Some("Codertocat"));
    assert_eq!(comment.body, body);
    assert_eq!(comment.created_at, time("2019-05-15T15:20:21Z")?);
    let received = stand_in.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].json(), json!({ "body": body }));
    assert_github_headers(&received);
    Ok(())
}

#[tokio::test]
async fn a_project_is_described_by_its_repository() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/repos/octokit-fixture-org/hello-world")
            .body(include_str!("fixtures/github/repository.json")),
    ])
    .await?;
    let github = adapter(&stand_in.base)?;
    let project = github
        .get_project("octokit-fixture-org/hello-world")
        .await?;
    assert_eq!(project.key, "octokit-fixture-org/hello-world");
    assert_eq!(project.name, "hello-world");
    assert_eq!(
        project.url.as_deref(),
        Some("https://github.com/octokit-fixture-org/hello-world")
    );
    let received = stand_in.received();
    assert_eq!(received[0].method, "GET");
    assert_github_headers(&received);
    let error = github.get_project("not a repository").await;
    assert!(matches!(error, Err(TrackerError::Invalid(_))), "{error:?}");
    assert_eq!(stand_in.received().len(), 1);
    Ok(())
}

#[test]
fn keys_and_web_urls_name_issues() -> TestResult {
    let github = adapter("https://api.github.com")?;
    let enterprise = adapter("https://ghe.example.com/api/v3")?;
    assert_eq!(github.kind(), "github");
    let key = Some("octocat/Hello-World#1347".to_owned());
    let web = "https://github.com/octocat/Hello-World";
    for reference in [
        "octocat/Hello-World#1347".to_owned(),
        " octocat/Hello-World#1347 ".to_owned(),
        format!("{web}/issues/1347"),
        format!("{web}/issues/1347#issuecomment-1"),
    ] {
        assert_eq!(github.issue_key(&reference), key, "{reference}");
    }
    for reference in [
        format!("{web}/pull/1347"),
        "https://api.github.com/repos/octocat/Hello-World/issues/1347".to_owned(),
        "https://gitlab.com/octocat/Hello-World/issues/1347".to_owned(),
        "PROJ-12".to_owned(),
    ] {
        assert_eq!(github.issue_key(&reference), None, "{reference}");
    }
    let on_enterprise = "https://ghe.example.com/octocat/Hello-World/issues/1347";
    assert_eq!(enterprise.issue_key(on_enterprise), key);
    assert_eq!(enterprise.issue_key(&format!("{web}/issues/1347")), None);
    Ok(())
}

#[tokio::test]
async fn references_that_name_no_issue_are_invalid_and_say_the_accepted_forms() -> TestResult {
    let github = adapter("https://api.github.com")?;
    let error = github.get_issue("PROJ-12").await;
    assert_eq!(
        error,
        Err(TrackerError::Invalid(
            "\"PROJ-12\" names no GitHub issue: give owner/repo#12 or \
             https://github.com/owner/repo/issues/12"
                .to_owned()
        ))
    );
    Ok(())
}

#[test]
fn broken_urls_are_invalid_and_tokens_stay_out_of_debug() -> TestResult {
    assert!(matches!(
        adapter("not a url"),
        Err(TrackerError::Invalid(_))
    ));
    let shown = format!("{:?}", adapter("https://api.github.com")?);
    assert!(!shown.contains("ghp_test"), "{shown}");
    Ok(())
}

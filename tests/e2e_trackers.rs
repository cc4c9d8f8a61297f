//! End to end through an issue tracker: the real `preloop` binary connected to a local GitHub
//! stand-in (GitHub's paths, pagination and shapes), driven by rmcp's client as an agent:
//! the first sync, each of the seven tools, a `create_issue` held for approval and run exactly
//! once after it, a signed webhook making an issue searchable without a sync (forged and
//! replayed deliveries refused or ignored), bad input, a restart keeping the index and the
//! cursors, and a tracker that goes down.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

use preloop_testkit as common;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use common::wait::{eventually, eventually_some};
use common::{ADMIN_KEY, call, connect_url, rest, start_gateway, text, user_with_key};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The stand-in's repository `acme/web`: issues as GitHub's REST API shows them, and every
/// request's path and query.
#[derive(Default)]
struct Repository {
    base: String,
    issues: Vec<Value>,
    created: usize,
    requests: Vec<String>,
}

type Shared = Arc<Mutex<Repository>>;

fn github_issue(base: &str, number: usize, title: &str, body: &str, minute: usize) -> Value {
    json!({
        "id": 1000 + number,
        "node_id": format!("I_{number}"),
        "number": number,
        "title": title,
        "body": body,
        "state": "open",
        "labels": [{"id": 1, "name": "bug", "color": "d73a4a"}],
        "assignees": [],
        "user": {"login": "octocat", "id": 1},
        "html_url": format!("{base}/acme/web/issues/{number}"),
        "url": format!("{base}/repos/acme/web/issues/{number}"),
        "created_at": format!("2026-11-30T10:{minute:02}:00Z"),
        "updated_at": format!("2026-11-30T10:{minute:02}:00Z"),
    })
}

/// Issues pages of two, the next page linked at `/repositories/1/issues` as GitHub does.
async fn list(
    State(repo): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let repo = repo.lock().unwrap();
    let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let since = query.get("since").cloned().unwrap_or_default();
    let matching: Vec<&Value> = repo
        .issues
        .iter()
        .filter(|i| i["updated_at"].as_str().unwrap_or_default() >= since.as_str())
        .collect();
    let items: Vec<&Value> = matching
        .iter()
        .skip((page - 1) * 2)
        .take(2)
        .copied()
        .collect();
    let mut headers = HeaderMap::new();
    if matching.len() > page * 2 {
        let next = format!(
            "<{}/repositories/1/issues?page={}&since={since}>; rel=\"next\"",
            repo.base,
            page + 1
        );
        headers.insert("link", next.parse().unwrap());
    }
    (headers, Json(json!(items)))
}

async fn one(State(repo): State<Shared>, Path(number): Path<usize>) -> impl IntoResponse {
    let repo = repo.lock().unwrap();
    match repo.issues.iter().find(|i| i["number"] == number) {
        Some(issue) => (StatusCode::OK, Json(issue.clone())),
        None => (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))),
    }
}

async fn create(State(repo): State<Shared>, Json(body): Json<Value>) -> impl IntoResponse {
    let mut repo = repo.lock().unwrap();
    repo.created += 1;
    let number = repo.issues.len() + 1;
    let mut issue = github_issue(
        &repo.base.clone(),
        number,
        body["title"].as_str().unwrap_or_default(),
        body["body"].as_str().unwrap_or_default(),
        50,
    );
    issue["labels"] = json!(
        body["labels"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|l| json!({"name": l}))
            .collect::<Vec<_>>()
    );
    repo.issues.push(issue.clone());
    (StatusCode::CREATED, Json(issue))
}

async fn change(
    State(repo): State<Shared>,
    Path(number): Path<usize>,
    Json(body): Json<Value>,
) -> impl IntoResponse {
    let mut repo = repo.lock().unwrap();
    let Some(issue) = repo.issues.iter_mut().find(|i| i["number"] == number) else {
        return (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"})));
    };
    for field in ["title", "body", "state"] {
        if let Some(value) = body.get(field) {
            issue[field] = value.clone();
        }
    }
    if let Some(labels) = body["labels"].as_array() {
        issue["labels"] = json!(
            labels
                .iter()
                .map(|l| json!({"name": l}))
                .collect::<Vec<_>>()
        );
    }
    issue["updated_at"] = json!("2026-11-30T11:00:00Z");
    (StatusCode::OK, Json(issue.clone()))
}

async fn comment(Path(number): Path<usize>, Json(body): Json<Value>) -> impl IntoResponse {
    (
        StatusCode::CREATED,
        Json(json!({
            "id": 77, "body": body["body"], "user": {"login": "octocat"},
            "created_at": "2026-11-30T12:00:00Z",
            "html_url": format!("https://github.test/acme/web/issues/{number}#issuecomment-77")
        })),
    )
}

async fn repository(State(repo): State<Shared>) -> Json<Value> {
    let base = repo.lock().unwrap().base.clone();
    Json(
        json!({"id": 1, "name": "web", "full_name": "acme/web", "html_url": format!("{base}/acme/web")}),
    )
}

/// Starts the stand-in; dropping the handle's task stops it.
async fn github() -> (String, Shared, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let repo: Shared = Arc::new(Mutex::new(Repository {
        base: base.clone(),
        ..Repository::default()
    }));
    {
        let mut r = repo.lock().unwrap();
        r.issues = vec![
            github_issue(
                &base,
                1,
                "Login fails after SSO token refresh",
                "Users are signed out.",
                1,
            ),
            github_issue(
                &base,
                2,
                "Export audit events as CSV",
                "Admins want a spreadsheet.",
                2,
            ),
            github_issue(&base, 3, "Dark mode for the settings page", "Colours.", 3),
        ];
    }
    let recorder = repo.clone();
    let app = axum::Router::new()
        .route("/repos/acme/web", get(repository))
        .route("/repos/acme/web/issues", get(list).post(create))
        .route("/repositories/1/issues", get(list))
        .route("/repos/acme/web/issues/{number}", get(one).patch(change))
        .route("/repos/acme/web/issues/{number}/comments", post(comment))
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let recorder = recorder.clone();
                async move {
                    let seen = request.uri().to_string();
                    recorder.lock().unwrap().requests.push(seen);
                    next.run(request).await
                }
            },
        ))
        .with_state(repo.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, repo, task)
}

fn config(github: &str) -> String {
    format!(
        r#"
[[trackers]]
name = "gh"
kind = "github"
url = "{github}"
token = "ghp_e2e_token"
projects = ["acme/web"]
webhook_secret = "whsec_e2e"
sync_interval = "1h"

[[approval_policies]]
name = "triage"
approvers = ["role:admin"]
mode = "async"

[policy]
default = "allow"

[[policy.rules]]
id = "new-issues-need-a-human"
tools = ["create_issue"]
action = "require_approval"
approval_policy = "triage"
"#
    )
}

fn signed(body: &str, secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn deliver(
    base: &str,
    tracker: &str,
    body: &str,
    signature: &str,
    delivery: &str,
) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/trackers/{tracker}/webhook"))
        .header("x-github-event", "issues")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", signature)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn tracker_status(base: &str) -> Value {
    let (status, list) = rest(
        Method::GET,
        &format!("{base}/api/v1/trackers"),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    list["items"][0].clone()
}

/// Checks that `GET issues/search?query=` answers `key` first.
async fn assert_found_over_rest(base: &str, query: &str, key: &str) {
    let (status, answer) = rest(
        Method::GET,
        &format!("{base}/api/v1/issues/search?query={query}"),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(
        (status, answer["items"][0]["key"].as_str()),
        (200, Some(key)),
        "{answer}"
    );
}

fn structured(result: &rmcp::model::CallToolResult) -> Value {
    result.structured_content.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_work_on_issues_through_the_governed_tools() {
    let (github_url, repo, github_task) = github().await;
    let data = tempfile::tempdir().unwrap();
    let server = start_gateway(data.path(), &config(&github_url), &[]);
    let base = server.url.clone();

    // The first sync runs at start: three issues over two pages, the second at GitHub's
    // /repositories/{id} link.
    let status = eventually_some("the first sync", async || {
        let status = tracker_status(&base).await;
        (status["issues_indexed"] == 3).then_some(status)
    })
    .await;
    assert!(
        status.get("token").is_none() && status.get("webhook_secret").is_none(),
        "{status}"
    );
    assert_eq!(status["has_webhook_secret"], true);
    let tracker_id = status["id"].as_str().unwrap().to_owned();
    assert_eq!(
        status["webhook_url"],
        format!("{base}/api/v1/trackers/{tracker_id}/webhook")
    );
    assert!(status["last_synced_at"].is_string(), "{status}");
    assert!(
        repo.lock()
            .unwrap()
            .requests
            .iter()
            .any(|r| r.starts_with("/repositories/1/issues?page=2"))
    );

    let (_, _, agent_key) = user_with_key(
        &base,
        ADMIN_KEY,
        "agent@example.com",
        &["agent"],
        "triage-bot",
    )
    .await;
    let agent = connect_url(&format!("{base}/mcp"), Some(&agent_key))
        .await
        .unwrap();
    common::wait_for_tool(&agent, "get_issue", true).await;

    // search, get_issue, update_issue, add_comment, estimate/improve_compliance.
    let found = call(&agent, "search", json!({"query": "sso login"})).await;
    assert_eq!(
        structured(&found)["results"][0]["key"],
        "acme/web#1",
        "{}",
        text(&found)
    );
    let got = call(
        &agent,
        "get_issue",
        json!({"issue": format!("{github_url}/acme/web/issues/2")}),
    )
    .await;
    assert_eq!(
        structured(&got)["issue"]["title"],
        "Export audit events as CSV",
        "{}",
        text(&got)
    );
    let updated = call(
        &agent,
        "update_issue",
        json!({"issue": "acme/web#2", "labels": ["feature", "audit"], "status": "closed"}),
    )
    .await;
    assert_eq!(
        structured(&updated)["issue"]["state"],
        "closed",
        "{}",
        text(&updated)
    );
    assert_eq!(repo.lock().unwrap().issues[1]["state"], "closed");
    let commented = call(
        &agent,
        "add_comment",
        json!({"issue": "acme/web#3", "body": "Looking into it."}),
    )
    .await;
    assert_eq!(
        structured(&commented)["comment"]["body"],
        "Looking into it.",
        "{}",
        text(&commented)
    );
    let estimate = call(
        &agent,
        "estimate_compliance",
        json!({"issues": ["acme/web#1", "acme/web#3"]}),
    )
    .await;
    assert_eq!(
        structured(&estimate)["results"].as_array().map(Vec::len),
        Some(2),
        "{}",
        text(&estimate)
    );
    let improve = call(
        &agent,
        "improve_compliance",
        json!({"issues": "acme/web#3"}),
    )
    .await;
    assert!(text(&improve).contains("To improve:"), "{}", text(&improve));

    // create_issue is held for a human, runs exactly once after approval.
    let held = call(&agent, "create_issue", json!({"project": "acme/web", "title": "Rate limit the export endpoint", "description": "Ten exports a minute per admin.", "labels": ["security"]})).await;
    let held: Value = serde_json::from_str(&text(&held)).unwrap();
    assert_eq!(held["status"], "pending_approval", "{held}");
    assert_eq!(
        repo.lock().unwrap().created,
        0,
        "nothing is created before the approval"
    );
    let request_id = held["request_id"].as_str().unwrap();
    let (status, _) = rest(
        Method::POST,
        &format!("{base}/api/v1/approval-requests/{request_id}/approve"),
        Some(&agent_key),
        Some(json!({"comment": "self"})),
    )
    .await;
    assert_eq!(
        status, 403,
        "an agent's own credential never approves its own request"
    );
    let (status, answer) = rest(
        Method::POST,
        &format!("{base}/api/v1/approval-requests/{request_id}/approve"),
        Some(ADMIN_KEY),
        Some(json!({"comment": "ok"})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    eventually("the approved issue is created", async || {
        repo.lock().unwrap().created == 1
    })
    .await;
    let indexed = eventually_some("the new issue is searchable", async || {
        let hits = call(&agent, "search", json!({"query": "export endpoint rate"})).await;
        let first = structured(&hits)["results"][0]["key"].clone();
        (first == "acme/web#4").then_some(first)
    })
    .await;
    assert_eq!(indexed, "acme/web#4");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(repo.lock().unwrap().created, 1, "exactly once");

    // A signed webhook makes an issue searchable without a sync; forged and replayed ones are not applied.
    let delivery = json!({
        "action": "opened",
        "issue": github_issue(&github_url, 99, "Webhook-only crash in the importer", "It crashes.", 30),
        "repository": {"id": 1, "name": "web", "full_name": "acme/web"},
        "sender": {"login": "octocat"}
    })
    .to_string();
    let (status, answer) = deliver(
        &base,
        &tracker_id,
        &delivery,
        &signed(&delivery, "wrong"),
        "d-1",
    )
    .await;
    assert_eq!(status, 401, "{answer}");
    let (status, answer) = deliver(
        &base,
        &tracker_id,
        &delivery,
        &signed(&delivery, "whsec_e2e"),
        "d-1",
    )
    .await;
    assert_eq!(
        (status, answer["event"].as_str()),
        (200, Some("issue.created")),
        "{answer}"
    );
    let hits = call(&agent, "search", json!({"query": "importer"})).await;
    assert_eq!(
        structured(&hits)["results"][0]["key"],
        "acme/web#99",
        "{}",
        text(&hits)
    );
    let (status, answer) = deliver(
        &base,
        &tracker_id,
        &delivery,
        &signed(&delivery, "whsec_e2e"),
        "d-1",
    )
    .await;
    assert_eq!(
        (status, answer["duplicate"].as_bool()),
        (200, Some(true)),
        "{answer}"
    );

    // Bad input gets clear errors.
    let unknown = call(&agent, "get_issue", json!({"issue": "PROJ-1"})).await;
    assert_eq!(unknown.is_error, Some(true));
    assert!(
        text(&unknown).contains("no connected tracker knows the issue"),
        "{}",
        text(&unknown)
    );
    let missing = call(&agent, "get_issue", json!({"issue": "acme/web#404"})).await;
    assert!(text(&missing).contains("not found"), "{}", text(&missing));
    let trackers = format!("{base}/api/v1/trackers");
    let (status, answer) = rest(
        Method::POST,
        &trackers,
        Some(ADMIN_KEY),
        Some(json!({"name": "x", "kind": "bugzilla", "token": "t", "projects": ["a/b"]})),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown variant `bugzilla`"),
        "{answer}"
    );
    let (status, answer) = rest(Method::POST, &trackers, Some(ADMIN_KEY), Some(json!({"name": "x", "kind": "github", "url": "not a url", "token": "t", "projects": ["a/b"]}))).await;
    assert_eq!(status, 422, "{answer}");
    let (status, _) = rest(
        Method::POST,
        &trackers,
        Some(&agent_key),
        Some(json!({"name": "x", "kind": "github", "token": "t", "projects": ["a/b"]})),
    )
    .await;
    assert_eq!(status, 403, "agents do not connect trackers");
    assert_found_over_rest(&base, "importer", "acme/web#99").await;

    // A restart keeps the index and the cursor: the next sync asks only for what changed since.
    drop(agent);
    drop(server);
    let server = start_gateway(data.path(), &config(&github_url), &[]);
    let base = server.url.clone();
    assert_found_over_rest(&base, "importer", "acme/web#99").await;
    repo.lock().unwrap().requests.clear();
    let (status, answer) = rest(
        Method::POST,
        &format!("{base}/api/v1/trackers/{tracker_id}/sync"),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let requests = repo.lock().unwrap().requests.clone();
    assert!(
        requests.iter().any(|r| r.contains("since=")),
        "an incremental sync: {requests:?}"
    );

    // `preloop sync` does the same from the command line, beside the running server.
    let synced = std::process::Command::new(common::binary("preloop"))
        .args(["sync", "--tracker", "gh", "--config"])
        .arg(data.path().join("preloop.toml"))
        .arg("--data-dir")
        .arg(data.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&synced.stdout);
    assert!(
        synced.status.success(),
        "{printed} {}",
        String::from_utf8_lossy(&synced.stderr)
    );
    assert!(
        printed.starts_with("gh: ") && printed.contains("issues indexed from"),
        "{printed}"
    );
    let unknown = std::process::Command::new(common::binary("preloop"))
        .args(["sync", "--tracker", "nope", "--data-dir"])
        .arg(data.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no tracker `nope`"));

    // The tracker goes down: reads come from the index, the gateway's other tools still work.
    github_task.abort();
    let agent = connect_url(&format!("{base}/mcp"), Some(&agent_key))
        .await
        .unwrap();
    common::wait_for_tool(&agent, "get_issue", true).await;
    let cached = call(&agent, "get_issue", json!({"issue": "acme/web#1"})).await;
    assert!(
        text(&cached).contains("from the index"),
        "{}",
        text(&cached)
    );
    let status = call(
        &agent,
        "get_approval_status",
        json!({"request_id": request_id}),
    )
    .await;
    assert!(!text(&status).is_empty());
}

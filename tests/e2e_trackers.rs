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

use common::github::{FakeGitHub, issue, sample_issues, synchronized_tracker};
use common::wait::{eventually, eventually_some};
use common::{ADMIN_KEY, call, connect_url, rest, start_gateway, text, user_with_key};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

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
    let github = FakeGitHub::start("ghp_e2e_token", sample_issues).await;
    let (github_url, repo) = (github.url.clone(), github.repo.clone());
    let data = tempfile::tempdir().unwrap();
    let server = start_gateway(data.path(), &config(&github_url), &[]);
    let base = server.url.clone();

    // The first sync runs at start: three issues over two pages, the second at GitHub's
    // /repositories/{id} link.
    let status = synchronized_tracker(&base, 3).await;
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
        "issue": issue(&github_url, 99, "Webhook-only crash in the importer", "It crashes.", 30),
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
    // Started in the background (202), followed in the tracker's status until it ends.
    let (status, answer) = rest(
        Method::POST,
        &format!("{base}/api/v1/trackers/{tracker_id}/sync"),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!((status, &answer), (202, &json!({"started": true})));
    let tracker = eventually_some("the started sync ends", async || {
        let (_, tracker) = rest(
            Method::GET,
            &format!("{base}/api/v1/trackers/{tracker_id}"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
        tracker["running"].is_null().then_some(tracker)
    })
    .await;
    assert_eq!(tracker["last_error"], Value::Null, "{tracker}");
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
    drop(github);
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

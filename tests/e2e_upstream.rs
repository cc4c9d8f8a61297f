//! End to end through upstream servers: the real `preloop` binary proxying the test upstream over
//! streamable HTTP and over stdio, driven by rmcp's client.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

use preloop_testkit as common;

use common::wait::{eventually_some, eventually_within};
use common::{ADMIN_KEY, call, connect_url, start_gateway, start_upstream, text};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn config(remote_url: &str) -> String {
    format!(
        r#"
[[mcp_servers]]
name = "remote"
transport = "http"
url = "{remote_url}"
headers = {{ Authorization = "Bearer upstream-secret" }}
timeout_seconds = 1

[[mcp_servers]]
name = "local"
transport = "stdio"
command = "{upstream}"
args = ["--stdio"]

[[approval_policies]]
name = "ops"
approvers = ["role:admin"]
mode = "async"

[policy]
default = "allow"

[[policy.rules]]
id = "no-deletes"
tools = ["*__delete_*"]
action = "deny"
message = "Deletions are not allowed"

[[policy.rules]]
id = "big-sums"
tools = ["local__add"]
when = 'args.a > 100'
action = "require_approval"
approval_policy = "ops"
"#,
        upstream = common::binary("preloop-test-upstream").display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_reach_http_and_stdio_upstreams_through_the_policy() {
    let remote = start_upstream();
    let data_dir = tempfile::tempdir().unwrap();
    let server = start_gateway(data_dir.path(), &config(&remote.url), &[]);
    let client = connect_url(&format!("{}/mcp/v1", server.url), Some(ADMIN_KEY))
        .await
        .unwrap();

    // Both upstreams' tools appear once discovered; the unconditionally denied ones are hidden.
    let names = eventually_some("both upstreams' tools appear", async || {
        let mut names: Vec<String> = client
            .list_all_tools()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        names.sort();
        (names.iter().any(|n| n.starts_with("remote__"))
            && names.iter().any(|n| n.starts_with("local__")))
        .then_some(names)
    })
    .await;
    for expected in [
        "local__add",
        "local__echo",
        "remote__echo",
        "remote__progress",
        "request_approval",
    ] {
        assert!(
            names.contains(&expected.to_owned()),
            "{expected} missing from {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n.contains("delete_file")),
        "denied tools are hidden: {names:?}"
    );

    assert_eq!(
        text(&call(&client, "remote__echo", json!({"text": "hello"})).await),
        "hello"
    );
    assert_eq!(
        text(&call(&client, "local__add", json!({"a": 2, "b": 3})).await),
        "5"
    );

    let failed = call(&client, "remote__fail", json!({})).await;
    assert_eq!(failed.is_error, Some(true));
    assert_eq!(
        text(&failed),
        "this tool always fails",
        "upstream tool errors stay tool errors"
    );

    let denied = call(&client, "remote__delete_file", json!({"path": "/etc"})).await;
    assert_eq!(denied.is_error, Some(true));
    assert_eq!(text(&denied), "Deletions are not allowed");

    let held = call(&client, "local__add", json!({"a": 500, "b": 1})).await;
    let held: Value = serde_json::from_str(&text(&held)).unwrap();
    assert_eq!(held["status"], "pending_approval");

    let started = Instant::now();
    let slow = call(&client, "remote__sleep", json!({"ms": 5000})).await;
    assert_eq!(slow.is_error, Some(true));
    assert!(text(&slow).contains("timed out"), "{}", text(&slow));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the timeout bounds the call"
    );

    // The upstream goes away: a clear tool error, no hang, and the gateway keeps serving.
    drop(remote);
    let down = call(&client, "remote__echo", json!({"text": "anyone?"})).await;
    assert_eq!(down.is_error, Some(true));
    assert!(text(&down).contains("could not be run"), "{}", text(&down));
    assert_eq!(
        text(&call(&client, "local__echo", json!({"text": "still here"})).await),
        "still here"
    );

    // The policy over REST: broken CEL is refused with the rule named; a valid change applies at once.
    let http = reqwest::Client::new();
    let rules = format!("{}/api/v1/policy", server.url);
    let broken = json!({"policy": {"rules": [{"id": "typo", "tools": ["*"], "when": "args.x ==", "action": "deny"}]}});
    let refused = http
        .put(&rules)
        .bearer_auth(ADMIN_KEY)
        .json(&broken)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let message = refused.json::<Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("rule `typo`") && message.contains("CEL syntax error"),
        "{message}"
    );
    let strict = json!({"policy": {"default": "allow", "rules": [
        {"id": "no-echo", "tools": ["local__echo"], "action": "deny", "message": "Echo is off today"}
    ]}});
    let applied = http
        .put(&rules)
        .bearer_auth(ADMIN_KEY)
        .json(&strict)
        .send()
        .await
        .unwrap();
    assert_eq!(applied.status(), 200);
    let denied = call(&client, "local__echo", json!({"text": "hi"})).await;
    assert_eq!(text(&denied), "Echo is off today");
    let explained: Value = http
        .post(format!("{}/api/v1/access-rules/test", server.url))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"tool": "local__echo", "arguments": {"text": "x"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(explained["action"], "deny");
    assert_eq!(explained["rule"], "no-echo");
    let stored: Value = http
        .get(&rules)
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["policy"]["rules"][0]["id"], "no-echo");

    let metrics = http
        .get(format!("{}/metrics", server.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "preloop_tool_calls_total{outcome=\"denied\"}",
        "preloop_tool_calls_total{outcome=\"executed\"}",
        "preloop_tool_calls_total{outcome=\"pending_approval\"} 1",
        "preloop_pending_approvals 1",
        "preloop_upstream_call_seconds_count{result=\"ok\",server=\"remote\"}",
        "preloop_upstream_call_seconds_count{result=\"timeout\",server=\"remote\"} 1",
        "preloop_http_requests_total{route=\"/api/v1/policy\",status=\"400\"} 1",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from:\n{metrics}"
        );
    }
    client.cancel().await.unwrap();
}

/// Shared, growing list of what arrived.
type Received<T> = std::sync::Arc<std::sync::Mutex<Vec<T>>>;

/// Collects the log messages a client receives.
#[derive(Clone, Default)]
struct Recorder {
    logs: Received<Value>,
}

impl rmcp::ClientHandler for Recorder {
    #[allow(deprecated, reason = "MCP logging is deprecated but still relayed")]
    async fn on_logging_message(
        &self,
        params: rmcp::model::LoggingMessageNotificationParam,
        _context: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        self.logs.lock().unwrap().push(params.data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_progress_and_logs_reach_the_calling_client() {
    let remote = start_upstream();
    let data_dir = tempfile::tempdir().unwrap();
    let server = start_gateway(data_dir.path(), &config(&remote.url), &[]);
    let recorder = Recorder::default();
    let client = common::connect_with(
        &format!("{}/mcp/v1", server.url),
        Some(ADMIN_KEY),
        recorder.clone(),
    )
    .await
    .unwrap();
    // The call's own response stream, read raw: every step, in order, then the result. (An rmcp
    // client hands notifications to its handler on separate tasks, so it cannot show order.)
    let mcp = format!("{}/mcp/v1", server.url);
    let session = common::raw_session(&mcp).await;
    for (id, tool) in [(10, "remote__progress"), (11, "local__progress")] {
        common::wait_for_tool_in(&client, tool).await;
        let (status, body) = common::raw_post(
            &mcp,
            &session,
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
                "name": tool, "arguments": {"steps": 3}, "_meta": {"progressToken": "p"}}}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let messages: Vec<Value> = body
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str(data.trim()).ok())
            .collect();
        let steps: Vec<(f64, f64)> = messages
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .map(|m| {
                assert_eq!(m["params"]["progressToken"], "p", "the caller's own token");
                (
                    m["params"]["progress"].as_f64().unwrap(),
                    m["params"]["total"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            steps,
            [(1.0, 3.0), (2.0, 3.0), (3.0, 3.0)],
            "{tool}: {body}"
        );
        let last = messages.last().unwrap();
        assert_eq!(last["id"], id, "the result comes last: {body}");
        assert_eq!(last["result"]["content"][0]["text"], "3 steps done");
        // Through the rmcp client too (progress is delivered, in whatever order its tasks run).
        let Value::Object(arguments) = json!({"steps": 3}) else {
            unreachable!()
        };
        let result = client
            .call_tool(rmcp::model::CallToolRequestParams::new(tool).with_arguments(arguments))
            .await
            .unwrap();
        assert_eq!(text(&result), "3 steps done");
    }
    // Log messages travel on the session's stream; they arrive shortly.
    eventually_within(
        Duration::from_secs(10),
        "three log messages arrive",
        async || (recorder.logs.lock().unwrap().len() >= 3).then_some(()),
    )
    .await;
    assert!(
        recorder
            .logs
            .lock()
            .unwrap()
            .contains(&json!("step 3 of 3"))
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_that_crash_mid_call_give_tool_errors_and_are_reconnected() {
    let remote = start_upstream();
    let address = remote
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_owned();
    let data_dir = tempfile::tempdir().unwrap();
    let server = start_gateway(data_dir.path(), &config(&remote.url), &[]);
    let client = connect_url(&format!("{}/mcp/v1", server.url), Some(ADMIN_KEY))
        .await
        .unwrap();
    common::wait_for_tool(&client, "local__crash", true).await;
    common::wait_for_tool(&client, "remote__crash", true).await;

    // The stdio child dies mid-call: a tool error, then a fresh child serves the next call.
    let crashed = call(&client, "local__crash", json!({})).await;
    assert_eq!(crashed.is_error, Some(true), "{}", text(&crashed));
    assert!(
        text(&crashed).contains("could not be run"),
        "{}",
        text(&crashed)
    );
    assert_eq!(
        text(&call(&client, "local__echo", json!({"text": "respawned"})).await),
        "respawned"
    );

    // The HTTP server dies mid-call; once it is back at its address the gateway reconnects.
    let crashed = call(&client, "remote__crash", json!({})).await;
    assert_eq!(crashed.is_error, Some(true), "{}", text(&crashed));
    drop(remote);
    let _restarted = common::spawn(
        std::process::Command::new(common::binary("preloop-test-upstream"))
            .args(["--http", &address]),
        "listening on ",
    );
    let result = eventually_some("the upstream is reconnected", async || {
        let result = call(&client, "remote__echo", json!({"text": "back"})).await;
        (result.is_error != Some(true)).then_some(result)
    })
    .await;
    assert_eq!(text(&result), "back");
    client.cancel().await.unwrap();
}

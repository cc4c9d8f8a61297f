//! Two `preloop serve` replicas on one PostgreSQL database: a change made through one (an MCP
//! server, a rule, a tool setting) takes effect on the other, and an approval decided on one
//! releases a call blocked on the other.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

use preloop_testkit as common;
#[path = "../preloop-store/tests/common/mod.rs"]
mod postgres;

// Changes reach the other replica asynchronously: the tests wait for them.
use common::wait::{eventually, eventually_some};
use common::{ADMIN_KEY, Client, call, connect_url, rest, start_gateway, start_upstream, text};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

const CONFIG: &str = r#"
[[approval_policies]]
name = "ops"
approvers = ["role:admin"]
mode = "blocking"
allow_self_approval = true

[policy]
default = "allow"
"#;

async fn lists(client: &Client, tool: &str) -> bool {
    client
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .any(|t| t.name == tool)
}

/// Two `preloop serve` replicas on one fresh PostgreSQL database, sharing a signing key.
struct Replicas {
    a: common::Process,
    b: common::Process,
    _data: [tempfile::TempDir; 2],
}

/// Two replicas, or `None` (the test is skipped) without PostgreSQL.
async fn two_replicas() -> Option<Replicas> {
    let database = postgres::fresh_postgres_database().await?;
    let env = [
        ("DATABASE_URL", database.as_str()),
        ("SECRET_KEY", "a secret both replicas share, 32+ characters"),
    ];
    let data = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    Some(Replicas {
        a: start_gateway(data[0].path(), CONFIG, &env),
        b: start_gateway(data[1].path(), CONFIG, &env),
        _data: data,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_on_one_replica_apply_on_the_other() {
    let Some(Replicas { a, b, _data }) = two_replicas().await else {
        return;
    };
    let upstream = start_upstream();
    let on_a = |path: &str| format!("{}/api/v1{path}", a.url);
    let client_b = connect_url(&format!("{}/mcp/v1", b.url), Some(ADMIN_KEY))
        .await
        .unwrap();

    // An MCP server registered on A serves calls on B.
    let (status, _) = rest(
        Method::POST,
        &on_a("/mcp-servers"),
        Some(ADMIN_KEY),
        Some(json!({"name": "docs", "transport": "http", "url": upstream.url})),
    )
    .await;
    assert_eq!(status, 201);
    eventually("B lists docs__echo", || lists(&client_b, "docs__echo")).await;
    assert_eq!(
        text(&call(&client_b, "docs__echo", json!({"text": "via B"})).await),
        "via B"
    );

    // A rule written on A decides on B.
    let (status, _) = rest(
        Method::POST,
        &on_a("/access-rules"),
        Some(ADMIN_KEY),
        Some(json!({"id": "quiet", "tools": ["docs__echo"], "action": "deny", "message": "quiet please"})),
    )
    .await;
    assert_eq!(status, 201);
    eventually("B denies docs__echo", || async {
        text(&call(&client_b, "docs__echo", json!({"text": "?"})).await) == "quiet please"
    })
    .await;

    // A tool disabled on A disappears on B.
    let (status, _) = rest(
        Method::PUT,
        &on_a("/tool-configurations/docs__add"),
        Some(ADMIN_KEY),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200);
    eventually("B hides docs__add", || async {
        !lists(&client_b, "docs__add").await
    })
    .await;

    // A session started on A is resumed on B.
    let session = common::raw_session(&format!("{}/mcp/v1", a.url)).await;
    let (status, body) = common::raw_post(
        &format!("{}/mcp/v1", b.url),
        &session,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // (docs__echo is hidden now: the rule above denies it unconditionally.)
    assert!(
        body.contains("docs__progress") && !body.contains("docs__echo"),
        "{body}"
    );

    // A call blocked on B is released by an approval on A.
    let blocked = tokio::spawn({
        let client_b = std::sync::Arc::new(client_b);
        async move {
            let result = call(
                &client_b,
                "request_approval",
                json!({"operation": "rotate the keys", "approval_policy": "ops"}),
            )
            .await;
            text(&result)
        }
    });
    let request_id = eventually_some("the request shows on A", async || {
        let (_, listed) = rest(
            Method::GET,
            &on_a("/approval-requests?status=pending"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
        listed["items"][0]["id"].as_str().map(str::to_owned)
    })
    .await;
    let (status, _) = rest(
        Method::POST,
        &on_a(&format!("/approval-requests/{request_id}/approve")),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let answer = tokio::time::timeout(Duration::from_secs(20), blocked)
        .await
        .expect("the blocked call on B returns")
        .unwrap();
    assert!(answer.contains("Approved: rotate the keys"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_policy_edits_on_two_replicas_lose_nothing() {
    let Some(Replicas { a, b, _data }) = two_replicas().await else {
        return;
    };
    let rules_on = |url: &str| format!("{url}/api/v1/access-rules");

    // A policy large enough that compiling a change takes a while: two edits that start
    // together both read the document before either is stored.
    let rules: Vec<_> = (0..500)
        .map(|i| json!({"id": format!("base-{i}"), "tools": [format!("t{i}__*")], "when": format!("args.n == {i} || args.s.startsWith('x{i}')"), "action": "deny"}))
        .collect();
    let (status, body) = rest(
        Method::PUT,
        &format!("{}/api/v1/policy", a.url),
        Some(ADMIN_KEY),
        Some(json!({"policy": {"default": "allow", "rules": rules}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let mut added = Vec::new();
    let mut conflicts = 0;
    for round in 0..40 {
        let edit = |url: String, id: String| async move {
            let body = json!({"id": id, "tools": ["x__y"], "action": "deny"});
            let (status, answer) = rest(Method::POST, &url, Some(ADMIN_KEY), Some(body)).await;
            (id, status, answer)
        };
        // Each in its own task: building a client takes long enough to keep the other waiting.
        let (one, other) = tokio::join!(
            tokio::spawn(edit(rules_on(&a.url), format!("a-{round}"))),
            tokio::spawn(edit(rules_on(&b.url), format!("b-{round}"))),
        );
        let (one, other) = (one.unwrap(), other.unwrap());
        for (id, status, answer) in [one, other] {
            match status {
                201 => added.push(id),
                409 => {
                    conflicts += 1;
                    assert!(
                        answer["error"]["message"]
                            .as_str()
                            .unwrap_or_default()
                            .contains("retry"),
                        "{answer}"
                    );
                    // The loser retries, and the retry lands.
                    let (_, status, answer) = edit(rules_on(&a.url), id.clone()).await;
                    assert_eq!(status, 201, "{answer}");
                    added.push(id);
                }
                other => panic!("{other}: {answer}"),
            }
        }
        if conflicts >= 3 {
            break;
        }
    }
    assert!(conflicts > 0, "no two edits ever overlapped in 40 rounds");

    // Every edit that was answered 201 is in the document: none was overwritten by another.
    let (status, listed) = rest(Method::GET, &rules_on(&b.url), Some(ADMIN_KEY), None).await;
    assert_eq!(status, 200);
    let mut stored: Vec<String> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|rule| rule["id"].as_str())
        .filter(|id| !id.starts_with("base-"))
        .map(str::to_owned)
        .collect();
    stored.sort();
    added.sort();
    assert_eq!(stored, added);
}

//! End to end through the webhook channel and decision links: the gateway posts a signed
//! notification with the request's links, and someone without an account approves by link.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

use preloop_testkit as common;

use axum::body::Bytes;
use axum::http::HeaderMap;
use common::wait::eventually_some;
use common::{
    ADMIN_KEY, call, connect_url, rest, start_gateway, start_upstream, text, wait_for_tool,
};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;

const SECRET: &str = "webhook-secret-for-tests";

async fn next_delivery(received: &mut mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) -> Value {
    let (headers, body) = tokio::time::timeout(Duration::from_secs(20), received.recv())
        .await
        .expect("a webhook arrives")
        .unwrap();
    let timestamp: i64 = headers["x-preloop-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);
    assert_eq!(
        headers["x-preloop-signature"].to_str().unwrap(),
        preloop_server::signing::sign(SECRET, timestamp, &body),
        "the signature verifies with the shared secret"
    );
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvers_without_an_account_decide_through_the_signed_link() {
    let upstream = start_upstream();
    let (hook, mut received) = common::webhook_receiver(true).await;
    let config = format!(
        r#"
[channels.webhook]
url = "{hook}"
secret = "{SECRET}"

[[mcp_servers]]
name = "up"
transport = "http"
url = "{}"

[[approval_policies]]
name = "by-link"
approvers = ["role:admin"]
mode = "async"
channels = ["web", "webhook"]

[policy]
default = "allow"

[[policy.rules]]
id = "big-sums"
tools = ["up__add"]
when = "args.a > 100"
action = "require_approval"
approval_policy = "by-link"
"#,
        upstream.url
    );
    let data_dir = tempfile::tempdir().unwrap();
    let server = start_gateway(data_dir.path(), &config, &[]);
    let client = connect_url(&format!("{}/mcp/v1", server.url), Some(ADMIN_KEY))
        .await
        .unwrap();
    wait_for_tool(&client, "up__add", true).await;

    let pending: Value = serde_json::from_str(&text(
        &call(
            &client,
            "up__add",
            json!({"a": 200, "b": 1, "api_token": "s3cr3t-value"}),
        )
        .await,
    ))
    .unwrap();
    assert_eq!(pending["status"], "pending_approval");
    let request_id = pending["request_id"].as_str().unwrap().to_owned();

    // The (retried) delivery carries the request and its links; the agent never sees them.
    let requested = next_delivery(&mut received).await;
    assert_eq!(requested["event"], "approval.requested");
    assert_eq!(requested["request"]["id"], request_id);
    // Secret-looking argument values never leave through a channel.
    assert_eq!(
        requested["request"]["arguments"],
        json!({"a": 200, "b": 1, "api_token": "[redacted]"})
    );
    assert!(!requested.to_string().contains("s3cr3t-value"));
    assert_eq!(requested["request"]["rule"], "big-sums");
    assert!(!pending.to_string().contains("token="));
    let data_link = requested["links"]["data"].as_str().unwrap().to_owned();
    let decide_link = requested["links"]["decide"].as_str().unwrap().to_owned();

    let (status, shown) = rest(Method::GET, &data_link, None, None).await;
    assert_eq!(status, 200, "{shown}");
    // What a decider needs, and no more: the arguments redacted as channels redact them, the
    // requester by name (no roles), no output, no votes, no policy, no token hash.
    assert_eq!(shown["state"], "pending");
    assert_eq!(shown["pending"]["tool"], "up__add");
    assert_eq!(
        shown["pending"]["arguments"],
        json!({"a": 200, "b": 1, "api_token": "[redacted]"})
    );
    assert!(!shown.to_string().contains("s3cr3t-value"));
    for hidden in [
        "token_hash",
        "output",
        "votes",
        "policy",
        "requester",
        "roles",
    ] {
        assert!(
            !shown.to_string().contains(&format!("\"{hidden}\"")),
            "{hidden}: {shown}"
        );
    }
    // A wrong token and another request's id look the same: not found.
    let forged = data_link.replace("token=", "token=x");
    assert_eq!(rest(Method::GET, &forged, None, None).await.0, 404);
    let elsewhere = data_link.replace(&request_id, "00000000-0000-0000-0000-000000000000");
    assert_eq!(rest(Method::GET, &elsewhere, None, None).await.0, 404);
    assert_eq!(
        rest(
            Method::POST,
            &forged.replace("/data", "/decide"),
            None,
            Some(json!({"decision": "approve"}))
        )
        .await
        .0,
        404
    );
    let (status, _) = rest(
        Method::POST,
        &decide_link,
        None,
        Some(json!({"decision": "maybe"})),
    )
    .await;
    assert_eq!(status, 400);

    // Approve by link; once decided, the link votes no more (not even the same vote) and shows
    // only the outcome.
    let (status, decided) = rest(
        Method::POST,
        &decide_link,
        None,
        Some(json!({"decision": "approve", "comment": "fine by me"})),
    )
    .await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["state"], "approved");
    assert!(decided.get("pending").is_none(), "{decided}");
    for decision in ["approve", "decline"] {
        let (status, refused) = rest(
            Method::POST,
            &decide_link,
            None,
            Some(json!({"decision": decision})),
        )
        .await;
        assert_eq!(status, 409, "{refused}");
    }
    let (status, after) = rest(Method::GET, &data_link, None, None).await;
    assert_eq!(status, 200, "{after}");
    assert!(after.get("pending").is_none(), "{after}");
    assert!(!after.to_string().contains("\"a\":200"), "{after}");

    // The approved call runs once; the agent reads its result by polling.
    let (report, output) = eventually_some("the approved call is executed", async || {
        let status = call(
            &client,
            "get_approval_status",
            json!({"request_id": request_id}),
        )
        .await;
        let texts: Vec<String> = status
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        let report: Value = serde_json::from_str(&texts[0]).unwrap();
        (report["status"] == "executed").then(|| (report, texts[1..].join("\n")))
    })
    .await;
    assert_eq!(output, "201", "{report}");
    let decided = next_delivery(&mut received).await;
    assert_eq!(decided["event"], "approval.decided");
    assert_eq!(decided["request"]["state"], "approved");
    client.cancel().await.unwrap();
}

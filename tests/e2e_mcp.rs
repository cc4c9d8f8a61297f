//! End to end: the real `preloop` binary on a free loopback port, driven by rmcp's own MCP client.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

use preloop_testkit as common;

use common::{ADMIN_KEY, Client, Process, call, connect_url, start_gateway, text};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
# Six pollers race on one key here; the rate limit is not what these tests are about.
[server]
requests_per_second = 100000
burst = 100000

[[approval_policies]]
name = "later"
default = true
approvers = ["role:admin"]
mode = "async"
timeout = "10m"
allow_self_approval = true

[[approval_policies]]
name = "now"
approvers = ["role:admin"]
mode = "blocking"
allow_self_approval = true

[policy]
default = "allow"
"#;

type Server = Process;

fn start(data_dir: &Path) -> Server {
    start_with(data_dir, &[])
}

fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Server {
    start_gateway(data_dir, CONFIG, env)
}

async fn connect(server: &Server, key: &str) -> Result<Client, common::ConnectError> {
    connect_url(&format!("{}/mcp/v1", server.url), Some(key)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_lists_tools_asks_for_approval_and_the_request_survives_a_restart() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = start(data_dir.path());

    let health: Value = reqwest::get(format!("{}/health", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let unauthenticated = reqwest::Client::new()
        .post(format!("{}/mcp/v1", server.url))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let body: Value = unauthenticated.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32001);
    assert!(
        connect(&server, "pl_not_a_key").await.is_err(),
        "a wrong key cannot open a session"
    );

    let client = connect(&server, ADMIN_KEY).await.unwrap();
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(names, ["request_approval", "get_approval_status"]);

    let unknown = client
        .call_tool(CallToolRequestParams::new("no_such_tool"))
        .await;
    assert!(unknown.is_err(), "unknown tools are protocol errors");

    let pending = call(
        &client,
        "request_approval",
        json!({"operation": "drop the staging database", "reasoning": "reset"}),
    )
    .await;
    let pending: Value = serde_json::from_str(&text(&pending)).unwrap();
    assert_eq!(pending["status"], "pending_approval");
    let request_id = pending["request_id"].as_str().unwrap().to_owned();

    let status = call(
        &client,
        "get_approval_status",
        json!({"request_id": request_id}),
    )
    .await;
    let status_json: Value = serde_json::from_str(&text(&status)).unwrap();
    assert_eq!(status_json["status"], "pending");
    assert!(status_json["remaining_seconds"].as_i64().unwrap() > 500);
    let bad = client
        .call_tool(
            CallToolRequestParams::new("get_approval_status").with_arguments(
                serde_json::Map::from_iter([("request_id".to_owned(), json!("not-a-uuid"))]),
            ),
        )
        .await;
    assert!(bad.is_err());
    client.cancel().await.unwrap();

    // Restart: the pending request is still there.
    drop(server);
    let server = start(data_dir.path());
    let client = connect(&server, ADMIN_KEY).await.unwrap();
    let status = call(
        &client,
        "get_approval_status",
        json!({"request_id": request_id}),
    )
    .await;
    let status_json: Value = serde_json::from_str(&text(&status)).unwrap();
    assert_eq!(status_json["status"], "pending");
    assert_eq!(status_json["tool"], "request_approval");

    // Approved after the restart, with a double click and concurrent polls: it runs exactly once
    // and every poll that sees a result sees the same one.
    let client = std::sync::Arc::new(client);
    let pollers: Vec<_> = (0..6)
        .map(|_| {
            let client = client.clone();
            let request_id = request_id.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..40 {
                    let status = call(
                        &client,
                        "get_approval_status",
                        json!({"request_id": request_id}),
                    )
                    .await;
                    seen.push(text(&status));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                seen
            })
        })
        .collect();
    let approve = || {
        reqwest::Client::new()
            .post(format!(
                "{}/api/v1/approval-requests/{request_id}/approve",
                server.url
            ))
            .bearer_auth(ADMIN_KEY)
            .send()
    };
    let (first, second) = tokio::join!(approve(), approve());
    assert_eq!(first.unwrap().status(), 200);
    assert_eq!(second.unwrap().status(), 200);
    let mut results = std::collections::HashSet::new();
    for poller in pollers {
        for seen in poller.await.unwrap() {
            if seen.contains("Approved: drop the staging database") {
                results.insert(seen);
            }
        }
    }
    let last = text(
        &call(
            &client,
            "get_approval_status",
            json!({"request_id": request_id}),
        )
        .await,
    );
    assert!(last.contains("\"executed\""), "{last}");
    results.insert(last);
    assert_eq!(
        results.len(),
        1,
        "one execution, one recorded result: {results:?}"
    );
}

fn api(server: &Server, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, format!("{}/api/v1{path}", server.url))
        .bearer_auth(ADMIN_KEY)
}

async fn pending_ids(server: &Server) -> Vec<String> {
    let list: Value = api(
        server,
        reqwest::Method::GET,
        "/approval-requests?status=pending",
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_are_decided_over_rest_and_run_exactly_once() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = start(data_dir.path());
    let client = connect(&server, ADMIN_KEY).await.unwrap();

    // Async: pending at once, approved over REST, then the poll returns the result.
    let pending = call(
        &client,
        "request_approval",
        json!({"operation": "rotate the keys"}),
    )
    .await;
    let request_id = serde_json::from_str::<Value>(&text(&pending)).unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        pending_ids(&server).await,
        std::slice::from_ref(&request_id)
    );
    let shown: Value = api(
        &server,
        reqwest::Method::GET,
        &format!("/approval-requests/{request_id}"),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(shown["context"]["operation"], "rotate the keys");
    assert!(
        shown.get("token_hash").is_none(),
        "the token hash is never shown"
    );

    let approve = |body: Value| {
        api(
            &server,
            reqwest::Method::POST,
            &format!("/approval-requests/{request_id}/approve"),
        )
        .json(&body)
    };
    let approved = approve(json!({"comment": "go"})).send().await.unwrap();
    assert_eq!(approved.status(), 200);
    // A double click is harmless; a late decline conflicts.
    assert_eq!(
        approve(json!({"comment": "go"}))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let declined = api(
        &server,
        reqwest::Method::POST,
        &format!("/approval-requests/{request_id}/decline"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(declined.status(), 409);
    let error: Value = declined.json().await.unwrap();
    assert_eq!(error["error"]["code"], "conflict");

    let mut result = String::new();
    for _ in 0..100 {
        let status = call(
            &client,
            "get_approval_status",
            json!({"request_id": request_id}),
        )
        .await;
        result = text(&status);
        if result.contains("\"executed\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(result.contains("Approved: rotate the keys"), "{result}");
    let again = text(
        &call(
            &client,
            "get_approval_status",
            json!({"request_id": request_id}),
        )
        .await,
    );
    assert_eq!(
        again, result,
        "polling again returns the recorded result; nothing runs twice"
    );

    // Blocking: the MCP call waits and returns as soon as the approval lands.
    let blocked = {
        let client = connect(&server, ADMIN_KEY).await.unwrap();
        tokio::spawn(async move {
            let result = call(
                &client,
                "request_approval",
                json!({"operation": "deploy", "approval_policy": "now"}),
            )
            .await;
            (text(&result), Instant::now())
        })
    };
    let blocked_id = loop {
        if let Some(id) = pending_ids(&server).await.pop() {
            break id;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let decided_at = Instant::now();
    let response = api(
        &server,
        reqwest::Method::POST,
        &format!("/approval-requests/{blocked_id}/decide"),
    )
    .json(&json!({"decision": "approve"}))
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let (result, returned_at) = blocked.await.unwrap();
    assert_eq!(result, "Approved: deploy. You may proceed.");
    println!(
        "decision to response: {:?}",
        returned_at.saturating_duration_since(decided_at)
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_errors_are_json_with_the_right_status() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = start(data_dir.path());
    let unauthenticated = reqwest::get(format!("{}/api/v1/approval-requests", server.url))
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(
        unauthenticated.json::<Value>().await.unwrap()["error"]["code"],
        "unauthorized"
    );
    let cases = [
        (
            reqwest::Method::GET,
            "/approval-requests/not-a-uuid".to_owned(),
            None,
            400,
        ),
        (
            reqwest::Method::GET,
            format!("/approval-requests/{}", uuid::Uuid::new_v4()),
            None,
            404,
        ),
        (
            reqwest::Method::GET,
            "/approval-requests?status=sideways".to_owned(),
            None,
            400,
        ),
        (
            reqwest::Method::POST,
            format!("/approval-requests/{}/approve", uuid::Uuid::new_v4()),
            Some("{not json"),
            400,
        ),
        (
            reqwest::Method::POST,
            format!("/approval-requests/{}/decide", uuid::Uuid::new_v4()),
            Some("{}"),
            400,
        ),
    ];
    for (method, path, body, status) in cases {
        let mut request = api(&server, method.clone(), &path);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{method} {path}: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_requests_get_clear_errors() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = start(data_dir.path());
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        http.post(format!("{}/mcp/v1", server.url))
            .bearer_auth(ADMIN_KEY)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
    };
    let malformed = post(b"{not json".to_vec()).send().await.unwrap();
    assert!(
        malformed.status().is_client_error(),
        "{}",
        malformed.status()
    );
    let oversized = 5 * 1024 * 1024;
    assert_eq!(
        raw_post_status(&server.url, "/mcp/v1", oversized).await,
        413
    );
    let approve = format!("/api/v1/approval-requests/{}/approve", uuid::Uuid::new_v4());
    assert_eq!(raw_post_status(&server.url, &approve, oversized).await, 413);

    let client = connect(&server, ADMIN_KEY).await.unwrap();
    let wrong_type = client
        .call_tool(
            CallToolRequestParams::new("request_approval").with_arguments(
                serde_json::Map::from_iter([("operation".to_owned(), json!(42))]),
            ),
        )
        .await
        .unwrap_err();
    assert!(
        wrong_type.to_string().contains("input schema"),
        "{wrong_type}"
    );
    let unknown_field = client
        .call_tool(
            CallToolRequestParams::new("request_approval").with_arguments(
                serde_json::Map::from_iter([
                    ("operation".to_owned(), json!("x")),
                    ("surprise".to_owned(), json!(true)),
                ]),
            ),
        )
        .await;
    assert!(
        unknown_field.is_err(),
        "additionalProperties: false is enforced"
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_register_sign_in_and_use_jwts_and_forged_tokens_fail() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = start(data_dir.path());
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}/api/v1{path}", server.url);
    let registered = post(
        &http,
        url("/auth/register"),
        json!({"email": "Ada@Example.com", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(registered.status(), 202);
    let registered: Value = registered.json().await.unwrap();
    assert!(registered.get("access_token").is_none(), "{registered}");
    // Registering an address that has an account answers exactly the same (no enumeration),
    // and changes nothing: the first password still signs in, the second does not.
    let again = post(
        &http,
        url("/auth/register"),
        json!({"email": "ada@example.com", "password": "another long password"}),
    )
    .await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.json::<Value>().await.unwrap(), registered);
    let second = post(
        &http,
        url("/auth/token"),
        json!({"email": "ada@example.com", "password": "another long password"}),
    )
    .await;
    assert_eq!(second.status(), 401);

    let wrong = post(
        &http,
        url("/auth/token"),
        json!({"email": "ada@example.com", "password": "wrong password!!"}),
    )
    .await;
    assert_eq!(wrong.status(), 401);
    let unknown = post(
        &http,
        url("/auth/token"),
        json!({"email": "nobody@example.com", "password": "whatever it is"}),
    )
    .await;
    assert_eq!(unknown.status(), 401);
    let tokens: Value = post(
        &http,
        url("/auth/token"),
        json!({"email": "ada@example.com", "password": "correct horse battery"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    // The access token opens an MCP session and REST; the refresh token does neither.
    let client = connect(&server, &access).await.unwrap();
    assert!(!client.list_all_tools().await.unwrap().is_empty());
    client.cancel().await.unwrap();
    let listed = http
        .get(url("/approval-requests"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    assert!(connect(&server, &refresh).await.is_err());
    let refreshed: Value = post(
        &http,
        url("/auth/refresh"),
        json!({"refresh_token": refresh}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(refreshed["access_token"].as_str().is_some());
    let misused = post(
        &http,
        url("/auth/refresh"),
        json!({"refresh_token": access}),
    )
    .await;
    assert_eq!(misused.status(), 401);

    // A token signed with another key, a tampered one, and garbage are all refused.
    let mut parts: Vec<String> = access.split('.').map(str::to_owned).collect();
    parts[2] = "c2lnbmF0dXJl".to_owned();
    for bad in [
        parts.join("."),
        format!("{access}x"),
        "not-a-token".to_owned(),
    ] {
        let response = http
            .get(url("/approval-requests"))
            .bearer_auth(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{bad}");
        assert!(connect(&server, &bad).await.is_err());
    }
    drop(server);

    let closed_dir = tempfile::tempdir().unwrap();
    let closed = start_with(closed_dir.path(), &[("REGISTRATION_ENABLED", "false")]);
    let refused = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/register", closed.url))
        .json(&json!({"email": "eve@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
}

/// POSTs `length` bytes over a raw connection and returns the response status. The server may
/// answer and close before reading the whole body, so write errors are ignored and the status is
/// read from what came back (an HTTP client library would report the reset instead).
async fn raw_post_status(base: &str, path: &str, length: usize) -> u16 {
    raw_post_status_with(base, path, length, "").await
}

/// [`raw_post_status`] with more header lines (each ending in `\r\n`).
async fn raw_post_status_with(base: &str, path: &str, length: usize, headers: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         {headers}Content-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(&vec![b' '; length]).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// POSTs a JSON body.
async fn post(http: &reqwest::Client, url: String, body: Value) -> reqwest::Response {
    http.post(url).json(&body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_jwts_and_tokens_for_unknown_users_are_refused() {
    use preloop_server::signing::{Claims, TokenKind};
    let secret = "an e2e signing secret of at least 32 characters";
    let data_dir = tempfile::tempdir().unwrap();
    let server = start_with(data_dir.path(), &[("SECRET_KEY", secret)]);
    let (_, me) = common::rest(
        reqwest::Method::GET,
        &format!("{}/api/v1/users/me", server.url),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    let now = chrono::Utc::now().timestamp();
    let sign = |sub: &str, iat: i64, exp: i64| {
        let claims = Claims {
            sub: sub.to_owned(),
            org: me["organization_id"].as_str().unwrap().to_owned(),
            typ: TokenKind::Access,
            iat,
            exp,
            // The bootstrap admin has no password: the stamp of an empty one.
            pwd: preloop_server::signing::credentials_stamp(&preloop_core::accounts::User::new(
                "any",
                "any@example.com",
                Vec::new(),
                chrono::Utc::now(),
            )),
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let admin_id = me["id"].as_str().unwrap();
    let valid = sign(admin_id, now, now + 600);
    let expired = sign(admin_id, now - 1200, now - 600);
    let stranger = sign("no-such-user", now, now + 600);
    let me_url = format!("{}/api/v1/users/me", server.url);
    let (status, _) = common::rest(reqwest::Method::GET, &me_url, Some(&valid), None).await;
    assert_eq!(status, 200, "a token signed with SECRET_KEY works");
    assert!(connect(&server, &valid).await.is_ok());
    for (label, token) in [("expired", &expired), ("unknown user", &stranger)] {
        let (status, body) = common::rest(reqwest::Method::GET, &me_url, Some(token), None).await;
        assert_eq!(status, 401, "{label}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized");
        assert!(connect(&server, token).await.is_err(), "{label}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_session_survives_a_restart_of_the_server() {
    let data_dir = tempfile::tempdir().unwrap();
    let before = start(data_dir.path());
    let session = common::raw_session(&format!("{}/mcp/v1", before.url)).await;
    drop(before);
    let after = start(data_dir.path());
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (status, body) =
        common::raw_post(&format!("{}/mcp/v1", after.url), &session, list.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("request_approval"), "{body}");
    // A session id nobody issued is still refused.
    let (status, _) =
        common::raw_post(&format!("{}/mcp/v1", after.url), "not-a-session", list).await;
    assert_eq!(status, 404);
}

/// `tools/call` on an established session is answered by the fast path: one JSON body when the
/// result is quick; a restored session is served too; bad input keeps its clear errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_calls_on_a_session_are_answered_as_json_and_bad_ones_still_fail_clearly() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = start(data_dir.path());
    let mcp = format!("{}/mcp/v1", server.url);
    let session = common::raw_session(&mcp).await;
    let unknown_request = uuid::Uuid::new_v4().to_string();
    let status_call = |id: u32| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": "get_approval_status", "arguments": {"request_id": unknown_request}}})
    };
    let response = reqwest::Client::new()
        .post(&mcp)
        .bearer_auth(ADMIN_KEY)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .json(&status_call(7))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], 7, "{body}");
    assert_eq!(
        body["result"]["isError"], true,
        "an unknown request id: {body}"
    );

    // Unknown tools and arguments that break the schema are JSON-RPC errors here too.
    let unknown_tool = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
        "params": {"name": "no_such_tool", "arguments": {}}});
    let (status, body) = common::raw_post(&mcp, &session, unknown_tool).await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no_such_tool"),
        "{body}"
    );
    let wrong_type = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "request_approval", "arguments": {"operation": 42}}});
    let (_, body) = common::raw_post(&mcp, &session, wrong_type).await;
    assert!(body.contains("input schema"), "{body}");

    // An oversized body on a known session: 413, as without one.
    let session_header = format!("Mcp-Session-Id: {session}\r\n");
    assert_eq!(
        raw_post_status_with(&server.url, "/mcp/v1", 5 * 1024 * 1024, &session_header).await,
        413
    );
    // A protocol version the server does not know is refused (by rmcp, which this path defers
    // to for anything it does not interpret).
    let response = reqwest::Client::new()
        .post(&mcp)
        .bearer_auth(ADMIN_KEY)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "1999-01-01")
        .json(&status_call(10))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // After a restart the session is restored from the database, then served here again.
    drop(server);
    let server = start(data_dir.path());
    let mcp = format!("{}/mcp/v1", server.url);
    for id in [11, 12] {
        let (status, body) = common::raw_post(&mcp, &session, status_call(id)).await;
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body)
            .or_else(|_| {
                // rmcp answers the first (restoring) request as an SSE stream.
                let data = body
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .find(|data| !data.trim().is_empty())
                    .unwrap_or("");
                serde_json::from_str(data.trim())
            })
            .unwrap_or_else(|e| panic!("{e}: {body:?}"));
        assert_eq!(body["id"], id, "{body}");
    }
    let (_, body) = common::raw_post(&mcp, &session, status_call(13)).await;
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(
        body["id"], 13,
        "the restored session is answered as JSON: {body}"
    );
    // A client of this revision (2025-06-18) gets no 2026-07-28 `resultType`.
    assert!(body["result"].get("resultType").is_none(), "{body}");

    // Ending the session: 204, then the session is gone.
    let ended = reqwest::Client::new()
        .delete(&mcp)
        .bearer_auth(ADMIN_KEY)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 204);
    let (status, _) = common::raw_post(&mcp, &session, status_call(14)).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_provider_tokens_signed_rs256_or_es256_sign_users_in() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let config = format!(
        "[auth.jwks]\nfile = \"{fixtures}/jwks.json\"\nissuer = \"https://idp.example\"\naudience = \"preloop\"\n{CONFIG}"
    );
    let data_dir = tempfile::tempdir().unwrap();
    let server = start_gateway(data_dir.path(), &config, &[]);
    let (status, _) = common::rest(
        reqwest::Method::POST,
        &format!("{}/api/v1/users", server.url),
        Some(ADMIN_KEY),
        Some(json!({"email": "ann@example.com", "roles": ["agent"]})),
    )
    .await;
    assert_eq!(status, 201);
    let rsa =
        EncodingKey::from_rsa_der(&std::fs::read(format!("{fixtures}/jwks_rsa.der")).unwrap());
    let ec = EncodingKey::from_ec_der(&std::fs::read(format!("{fixtures}/jwks_ec.der")).unwrap());
    let now = chrono::Utc::now().timestamp();
    let token = |alg: Algorithm, kid: &str, key: &EncodingKey, claims: Value| {
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    };
    let claims = |iss: &str, aud: &str, email: &str, exp: i64| json!({"iss": iss, "aud": aud, "sub": "idp-user-1", "email": email, "exp": exp, "iat": now});
    let good = claims(
        "https://idp.example",
        "preloop",
        "Ann@Example.com",
        now + 600,
    );
    let me = format!("{}/api/v1/users/me", server.url);
    for (label, jwt) in [
        (
            "RS256",
            token(Algorithm::RS256, "test-rsa", &rsa, good.clone()),
        ),
        (
            "ES256",
            token(Algorithm::ES256, "test-ec", &ec, good.clone()),
        ),
    ] {
        let (status, body) = common::rest(reqwest::Method::GET, &me, Some(&jwt), None).await;
        assert_eq!(status, 200, "{label}: {body}");
        assert_eq!(body["email"], "ann@example.com");
        assert_eq!(body["effective_roles"], json!(["agent"]));
        assert!(
            connect(&server, &jwt).await.is_ok(),
            "{label} opens an MCP session"
        );
    }
    for (label, jwt) in [
        (
            "wrong issuer",
            token(
                Algorithm::RS256,
                "test-rsa",
                &rsa,
                claims(
                    "https://evil.example",
                    "preloop",
                    "ann@example.com",
                    now + 600,
                ),
            ),
        ),
        (
            "wrong audience",
            token(
                Algorithm::RS256,
                "test-rsa",
                &rsa,
                claims("https://idp.example", "other", "ann@example.com", now + 600),
            ),
        ),
        (
            "expired",
            token(
                Algorithm::RS256,
                "test-rsa",
                &rsa,
                claims(
                    "https://idp.example",
                    "preloop",
                    "ann@example.com",
                    now - 600,
                ),
            ),
        ),
        (
            "unknown user",
            token(
                Algorithm::RS256,
                "test-rsa",
                &rsa,
                claims(
                    "https://idp.example",
                    "preloop",
                    "eve@example.com",
                    now + 600,
                ),
            ),
        ),
        (
            "unknown key id",
            token(Algorithm::RS256, "rotated-away", &rsa, good.clone()),
        ),
        (
            "key of another type under this id",
            token(Algorithm::ES256, "test-rsa", &ec, good.clone()),
        ),
    ] {
        let (status, body) = common::rest(reqwest::Method::GET, &me, Some(&jwt), None).await;
        assert_eq!(status, 401, "{label}: {body}");
    }
}

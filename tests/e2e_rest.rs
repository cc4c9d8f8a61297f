//! End to end over the REST and HITL APIs: users, API keys (scopes, revocation), MCP servers
//! registered at run time, tool configurations, access rules and approval policies one at a
//! time, the audit log, and a Loopgate-style human-in-the-loop exchange.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

use preloop_testkit as common;

use common::{
    ADMIN_KEY, call, connect_url, register, rest, start_gateway, start_upstream, text,
    wait_for_tool,
};
use reqwest::Method;
use serde_json::{Value, json};

const CONFIG: &str = r#"
[[approval_policies]]
name = "ops"
approvers = ["role:admin"]
mode = "async"

[policy]
default = "allow"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_keys_servers_tools_rules_and_audit_over_rest() {
    let upstream = start_upstream();
    let data_dir = tempfile::tempdir().unwrap();
    let server = start_gateway(data_dir.path(), CONFIG, &[]);
    let api = |path: &str| format!("{}/api/v1{path}", server.url);
    let admin = Some(ADMIN_KEY);

    // Users: admins create them; passwords are never shown.
    let (status, approver) = rest(
        Method::POST,
        &api("/users"),
        admin,
        Some(json!({"email": "Ann@Example.com", "roles": ["approver", "agent"], "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, 201, "{approver}");
    assert_eq!(approver["email"], "ann@example.com");
    assert!(approver.get("password_hash").is_none());
    let (status, _) = rest(
        Method::POST,
        &api("/users"),
        admin,
        Some(json!({"email": "x@example.com", "roles": ["wizard"]})),
    )
    .await;
    assert_eq!(status, 422);
    let (status, error) = rest(
        Method::POST,
        &api("/users"),
        admin,
        Some(json!({"email": "ann@example.com", "roles": []})),
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (409, Some("conflict"))
    );

    // API keys: the secret once at creation, never in listings; a scoped key has fewer roles.
    let (status, key) = rest(
        Method::POST,
        &api("/api-keys"),
        admin,
        Some(json!({"name": "ann-agent", "user_id": approver["id"], "scopes": ["agent"]})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let secret = key["secret"].as_str().unwrap().to_owned();
    let (_, keys) = rest(Method::GET, &api("/api-keys"), admin, None).await;
    assert!(!keys.to_string().contains(&secret));
    assert!(
        keys["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("hash").is_none())
    );
    let (_, me) = rest(Method::GET, &api("/users/me"), Some(&secret), None).await;
    assert_eq!(me["effective_roles"], json!(["agent"]));
    let (status, _) = rest(Method::GET, &api("/users"), Some(&secret), None).await;
    assert_eq!(status, 403);
    let (status, _) = rest(
        Method::POST,
        &api("/api-keys"),
        admin,
        Some(json!({"name": "too-much", "user_id": approver["id"], "scopes": ["admin"]})),
    )
    .await;
    assert_eq!(status, 422);

    // An MCP server registered over REST: tools discovered, callable, credentials write-only.
    let (status, created) = rest(
        Method::POST,
        &api("/mcp-servers"),
        admin,
        Some(json!({"name": "docs", "transport": "http", "url": upstream.url, "headers": {"X-Token": "s3cret"}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["headers"]["X-Token"], "<redacted>");
    let id = created["id"].as_str().unwrap().to_owned();
    let client = connect_url(&format!("{}/mcp/v1", server.url), admin)
        .await
        .unwrap();
    wait_for_tool(&client, "docs__echo", true).await;
    assert_eq!(
        text(&call(&client, "docs__echo", json!({"text": "via rest"})).await),
        "via rest"
    );
    let (status, scanned) = rest(
        Method::POST,
        &api(&format!("/mcp-servers/{id}/scan")),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{scanned}");
    assert!(scanned["tools"].as_u64().unwrap() >= 4);
    let (_, tools) = rest(
        Method::GET,
        &api(&format!("/mcp-servers/{id}/tools")),
        admin,
        None,
    )
    .await;
    assert!(
        tools["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "docs__add")
    );
    let (status, _) = rest(
        Method::POST,
        &api("/mcp-servers"),
        admin,
        Some(json!({"name": "bad name!", "transport": "http", "url": "x"})),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = rest(
        Method::POST,
        &api("/mcp-servers"),
        Some(&secret),
        Some(json!({"name": "x", "transport": "stdio", "command": "true"})),
    )
    .await;
    assert_eq!(status, 403);
    // Updating with the redacted marker keeps the stored credential.
    let (status, _) = rest(
        Method::PUT,
        &api(&format!("/mcp-servers/{id}")),
        admin,
        Some(json!({"name": "docs", "transport": "http", "url": upstream.url, "headers": {"X-Token": "<redacted>"}, "timeout_seconds": 5})),
    )
    .await;
    assert_eq!(status, 200);
    wait_for_tool(&client, "docs__echo", true).await;

    // Tool configuration: a disabled tool disappears for everyone and cannot be called.
    let (status, _) = rest(
        Method::PUT,
        &api("/tool-configurations/docs__echo"),
        admin,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200);
    wait_for_tool(&client, "docs__echo", false).await;
    let (status, _) = rest(
        Method::PUT,
        &api("/tool-configurations/docs__add"),
        admin,
        Some(json!({"approval_policy": "nope"})),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = rest(
        Method::DELETE,
        &api("/tool-configurations/docs__echo"),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 204);
    wait_for_tool(&client, "docs__echo", true).await;

    // Access rules one at a time: create at a position, read, replace, reorder, delete.
    let (status, rule) = rest(
        Method::POST,
        &api("/access-rules"),
        admin,
        Some(json!({"id": "no-echo", "tools": ["docs__echo"], "action": "deny", "message": "no echo"})),
    )
    .await;
    assert_eq!(status, 201, "{rule}");
    let denied = call(&client, "docs__echo", json!({"text": "hi"})).await;
    assert_eq!(
        (denied.is_error, text(&denied).as_str()),
        (Some(true), "no echo")
    );
    let (status, _) = rest(
        Method::POST,
        &api("/access-rules"),
        admin,
        Some(json!({"id": "big", "position": 1, "tools": ["docs__add"], "when": "args.a > 100", "action": "require_approval", "approval_policy": "ops"})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, listed) = rest(Method::GET, &api("/access-rules"), admin, None).await;
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["big", "no-echo"]);
    let (status, error) = rest(
        Method::POST,
        &api("/access-rules"),
        admin,
        Some(json!({"tools": ["*"], "when": "args.x ==", "action": "deny"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("CEL syntax error"),
        "{error}"
    );
    let (status, _) = rest(
        Method::PUT,
        &api("/access-rules/order"),
        admin,
        Some(json!({"ids": ["no-echo"]})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = rest(
        Method::PUT,
        &api("/access-rules/order"),
        admin,
        Some(json!({"ids": ["no-echo", "big"]})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = rest(
        Method::PUT,
        &api("/access-rules/no-echo"),
        admin,
        Some(json!({"tools": ["docs__echo"], "action": "deny", "message": "echo is resting"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        text(&call(&client, "docs__echo", json!({"text": "hi"})).await),
        "echo is resting"
    );
    let (status, _) = rest(Method::GET, &api("/access-rules/missing"), admin, None).await;
    assert_eq!(status, 404);
    let (status, _) = rest(
        Method::DELETE,
        &api("/access-rules/no-echo"),
        Some(&secret),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = rest(Method::DELETE, &api("/access-rules/no-echo"), admin, None).await;
    assert_eq!(status, 204);
    assert_eq!(
        text(&call(&client, "docs__echo", json!({"text": "back"})).await),
        "back"
    );

    // Approval policies: a policy a rule uses cannot be deleted; a new one can be.
    let (status, error) = rest(Method::DELETE, &api("/approval-policies/ops"), admin, None).await;
    assert_eq!(status, 400);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rule `big`"),
        "{error}"
    );
    let (status, _) = rest(
        Method::POST,
        &api("/approval-policies"),
        admin,
        Some(json!({"name": "pairs", "approvers": ["role:approver"], "quorum": 2})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, policies) = rest(Method::GET, &api("/approval-policies"), admin, None).await;
    assert_eq!(policies["items"].as_array().unwrap().len(), 2);
    let (status, _) = rest(
        Method::DELETE,
        &api("/approval-policies/pairs"),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 204);

    // Deleting the server removes its tools at once.
    let (status, _) = rest(
        Method::DELETE,
        &api(&format!("/mcp-servers/{id}")),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 204);
    wait_for_tool(&client, "docs__add", false).await;

    // The audit log: filtered listing and an intact chain.
    let (status, executed) = rest(
        Method::GET,
        &api("/audit?type=executed&limit=2"),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{executed}");
    let items = executed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|e| e["kind"]["type"] == "executed"));
    let (_, verified) = rest(Method::GET, &api("/audit/verify"), admin, None).await;
    assert_eq!(verified["intact"], true, "{verified}");
    let (status, _) = rest(Method::GET, &api("/audit?limit=oops"), admin, None).await;
    assert_eq!(status, 400);

    // A revoked key stops working at once.
    let key_id = key["id"].as_str().unwrap();
    let (status, _) = rest(
        Method::DELETE,
        &api(&format!("/api-keys/{key_id}")),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = rest(Method::GET, &api("/users/me"), Some(&secret), None).await;
    assert_eq!(status, 401);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopgate_style_agents_ask_humans_and_poll_for_the_answer() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = start_gateway(data_dir.path(), CONFIG, &[]);
    let hitl = |path: &str| format!("{}/hitl{path}", server.url);
    let admin = Some(ADMIN_KEY);

    let (status, _) = rest(
        Method::POST,
        &hitl("/register"),
        None,
        Some(json!({"session_id": "s1", "client_id": "bot"})),
    )
    .await;
    assert_eq!(status, 401);
    let (status, registered) = rest(
        Method::POST,
        &hitl("/register"),
        admin,
        Some(json!({"session_id": "s1", "client_id": "bot", "telegram_id": 42})),
    )
    .await;
    assert_eq!(status, 200, "{registered}");
    assert_eq!(registered["success"], true);
    let (status, _) = rest(
        Method::POST,
        &hitl("/register"),
        admin,
        Some(json!({"session_id": "s1", "client_id": "bot"})),
    )
    .await;
    assert_eq!(status, 409);
    let (_, session) = rest(Method::GET, &hitl("/status?session_id=s1"), admin, None).await;
    assert_eq!(
        (session["active"].as_bool(), session["telegram_id"].as_i64()),
        (Some(true), Some(42))
    );

    let (status, error) = rest(
        Method::POST,
        &hitl("/request"),
        admin,
        Some(json!({"session_id": "s1", "client_id": "bot"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("message"),
        "{error}"
    );
    let (status, asked) = rest(
        Method::POST,
        &hitl("/request"),
        admin,
        Some(json!({"session_id": "s1", "client_id": "bot", "message": "Deploy v2?", "options": ["ship it", "wait"], "metadata": {"env": "prod"}, "timeout_seconds": 120})),
    )
    .await;
    assert_eq!(status, 200, "{asked}");
    assert_eq!(asked["status"], "pending");
    let request_id = asked["request_id"].as_str().unwrap().to_owned();

    let (_, pending) = rest(Method::GET, &hitl("/pending"), admin, None).await;
    assert_eq!(pending["count"], 1);
    let listed = &pending["pending_requests"][0];
    assert_eq!(
        (listed["message"].as_str(), listed["request_type"].as_str()),
        (Some("Deploy v2?"), Some("choice"))
    );
    assert_eq!(listed["options"], json!(["ship it", "wait"]));

    let poll = format!("/poll?request_id={request_id}");
    let (_, waiting) = rest(Method::GET, &hitl(&poll), admin, None).await;
    assert_eq!(
        (waiting["status"].as_str(), waiting["completed"].as_bool()),
        (Some("pending"), Some(false))
    );

    // A human answers through the ordinary approval API, picking an option as the comment.
    // (The admin asked, so a second admin approves: self-approval is off by default.)
    let (_, ann) = rest(
        Method::POST,
        &format!("{}/api/v1/users", server.url),
        admin,
        Some(json!({"email": "ops@example.com", "roles": ["admin"]})),
    )
    .await;
    let (_, ann_key) = rest(
        Method::POST,
        &format!("{}/api/v1/api-keys", server.url),
        admin,
        Some(json!({"name": "ops", "user_id": ann["id"]})),
    )
    .await;
    let ann_secret = ann_key["secret"].as_str().unwrap();
    let (status, decided) = rest(
        Method::POST,
        &format!(
            "{}/api/v1/approval-requests/{request_id}/approve",
            server.url
        ),
        Some(ann_secret),
        Some(json!({"comment": "ship it"})),
    )
    .await;
    assert_eq!(status, 200, "{decided}");
    let (_, answered) = rest(Method::GET, &hitl(&poll), admin, None).await;
    assert_eq!(answered["status"], "completed", "{answered}");
    assert_eq!(
        (
            answered["approved"].as_bool(),
            answered["response"].as_str()
        ),
        (Some(true), Some("ship it"))
    );

    // Cancelling, unknown ids and missing fields.
    let (_, second) = rest(
        Method::POST,
        &hitl("/request"),
        admin,
        Some(json!({"session_id": "s1", "client_id": "bot", "message": "Again?"})),
    )
    .await;
    let (status, _) = rest(
        Method::POST,
        &hitl("/cancel"),
        admin,
        Some(json!({"request_id": second["request_id"]})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, cancelled) = rest(
        Method::GET,
        &hitl(&format!(
            "/poll?request_id={}",
            second["request_id"].as_str().unwrap()
        )),
        admin,
        None,
    )
    .await;
    assert_eq!(
        (
            cancelled["status"].as_str(),
            cancelled["approved"].as_bool()
        ),
        (Some("canceled"), Some(false))
    );
    let (status, _) = rest(
        Method::GET,
        &hitl("/poll?request_id=00000000-0000-0000-0000-000000000000"),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = rest(Method::GET, &hitl("/poll"), admin, None).await;
    assert_eq!(status, 400);
    let (status, _) = rest(
        Method::POST,
        &hitl("/request"),
        admin,
        Some(json!({"session_id": "nope", "client_id": "bot", "message": "?"})),
    )
    .await;
    assert_eq!(status, 404);
    // Loopgate clients may send the key as X-API-Key.
    let response = reqwest::Client::new()
        .get(hitl("/pending"))
        .header("X-API-Key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["count"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn principals_over_their_rate_get_429_with_retry_after() {
    let data_dir = tempfile::tempdir().unwrap();
    let config = format!("[server]\nrequests_per_second = 1\nburst = 3\n{CONFIG}");
    let server = start_gateway(data_dir.path(), &config, &[]);
    let me = format!("{}/api/v1/users/me", server.url);
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..5 {
        let response = http.get(&me).bearer_auth(ADMIN_KEY).send().await.unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            let retry_after = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .to_owned();
            limited = Some((retry_after, response.json::<Value>().await.unwrap()));
        }
    }
    assert_eq!(&statuses[..3], [200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    let (retry_after, body) = limited.unwrap();
    assert!(retry_after.parse::<u64>().unwrap() >= 1);
    assert_eq!(body["error"]["code"], "rate_limited");
    // The MCP endpoint answers in JSON-RPC's shape; unauthenticated requests are not counted
    // against anyone (they fail with 401 first).
    let (status, body) = rest(
        Method::POST,
        &format!("{}/mcp/v1", server.url),
        Some(ADMIN_KEY),
        Some(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    let (status, _) = rest(Method::GET, &me, None, None).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = start_gateway(data_dir.path(), CONFIG, &[]);
    let (status, doc) = rest(
        Method::GET,
        &format!("{}/openapi.json", server.url),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/users", "post"),
        ("/api/v1/api-keys/{id}", "delete"),
        ("/api/v1/mcp-servers/{id}/scan", "post"),
        ("/api/v1/tool-configurations/{tool}", "put"),
        ("/api/v1/access-rules/order", "put"),
        ("/api/v1/approval-policies/{name}", "delete"),
        ("/api/v1/approval-requests/{id}/decide", "post"),
        ("/api/v1/audit/verify", "get"),
        ("/api/v1/auth/token", "post"),
        ("/api/v1/approval/{id}/decide", "post"),
        ("/hitl/request", "post"),
    ] {
        assert!(paths[path].get(method).is_some(), "{method} {path} missing");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Sign-in and decision links need no credentials; everything else inherits bearer auth.
    assert_eq!(paths["/api/v1/auth/token"]["post"]["security"], json!([{}]));
    assert!(paths["/api/v1/users"]["post"].get("security").is_none());
    let new_user = &doc["components"]["schemas"]["NewUser"]["properties"];
    assert!(
        new_user.get("email").is_some() && new_user.get("roles").is_some(),
        "{new_user}"
    );
    let problems = untyped_bodies(&doc);
    assert!(problems.is_empty(), "{problems:#?}");
    // Views are chosen field by field: the decision-link token's hash is never shown.
    let request = &doc["components"]["schemas"]["ApprovalRequestView"]["properties"];
    assert!(
        request.get("effective_arguments").is_some() && request.get("token_hash").is_none(),
        "{request}"
    );
    let session = &doc["components"]["schemas"]["HitlRegistration"]["properties"];
    assert!(session.get("session_id").is_some(), "{session}");
}

/// The resources of the API, each with everything under it. Every operation of the document
/// must lie under one of them, and every request body and every 2xx answer with a body name a
/// schema of the document's components.
const TYPED_PATHS: [&str; 16] = [
    "/api/v1/policy",
    "/api/v1/access-rules",
    "/api/v1/approval-policies",
    "/api/v1/approval-requests",
    "/api/v1/audit",
    "/api/v1/approval",
    "/api/v1/mcp-servers",
    "/api/v1/tool-configurations",
    "/api/v1/users",
    "/api/v1/api-keys",
    "/api/v1/auth",
    "/api/v1/trackers",
    "/api/v1/issues",
    "/api/v1/projects",
    "/api/v1/organizations",
    "/hitl",
];

/// Whether `path` is `prefix` or lies under it.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// What in the OpenAPI document `doc` breaks the rule of [`TYPED_PATHS`], in words.
fn untyped_bodies(doc: &Value) -> Vec<String> {
    let schemas = &doc["components"]["schemas"];
    let named = |content: &Value| {
        content["application/json"]["schema"]["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .is_some_and(|name| schemas.get(name).is_some())
    };
    let mut problems = Vec::new();
    let mut covered = [false; TYPED_PATHS.len()];
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(index) = TYPED_PATHS.iter().position(|p| under(path, p)) else {
            problems.push(format!("{path} is under none of TYPED_PATHS"));
            continue;
        };
        covered[index] = true;
        for (method, operation) in item.as_object().unwrap() {
            if !["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            if let Some(body) = operation.get("requestBody")
                && !named(&body["content"])
            {
                problems.push(format!("{method} {path}: the request body names no schema"));
            }
            for (status, answer) in operation["responses"].as_object().unwrap() {
                if status.starts_with('2') && status != "204" && !named(&answer["content"]) {
                    problems.push(format!("{method} {path}: {status} names no body schema"));
                }
            }
        }
    }
    for (prefix, covered) in TYPED_PATHS.iter().zip(covered) {
        if !covered {
            problems.push(format!("no path under {prefix}"));
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organization_sees_nothing_and_unknown_methods_are_json_rpc_errors() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = start_gateway(data_dir.path(), CONFIG, &[]);
    let api = |path: &str| format!("{}/api/v1{path}", server.url);
    // A pending request in the default organization.
    let client = connect_url(&format!("{}/mcp/v1", server.url), Some(ADMIN_KEY))
        .await
        .unwrap();
    let pending: Value = serde_json::from_str(&text(
        &call(
            &client,
            "request_approval",
            json!({"operation": "wipe the cache", "approval_policy": "ops"}),
        )
        .await,
    ))
    .unwrap();
    let request_id = pending["request_id"].as_str().unwrap().to_owned();

    // Someone who registers gets a new organization and sees none of it.
    let outsider = register(&server.url, "mallory@example.com").await;
    for (method, path) in [
        (Method::GET, format!("/approval-requests/{request_id}")),
        (
            Method::POST,
            format!("/approval-requests/{request_id}/approve"),
        ),
        (
            Method::POST,
            format!("/approval-requests/{request_id}/decline"),
        ),
    ] {
        let (status, body) = rest(method.clone(), &api(&path), Some(&outsider), None).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    let (_, listed) = rest(
        Method::GET,
        &api("/approval-requests"),
        Some(&outsider),
        None,
    )
    .await;
    assert_eq!(listed["items"], json!([]));
    let (_, users) = rest(Method::GET, &api("/users"), Some(&outsider), None).await;
    assert_eq!(users["items"].as_array().unwrap().len(), 1, "{users}");
    let (status, _) = rest(Method::GET, &api("/audit/verify"), Some(&outsider), None).await;
    assert_eq!(status, 200, "their own (empty) chain verifies");
    let (_, audit) = rest(Method::GET, &api("/audit"), Some(&outsider), None).await;
    assert!(!audit.to_string().contains(&request_id), "{audit}");

    // An unknown JSON-RPC method is a JSON-RPC error, not an HTTP failure.
    let session = common::raw_session(&format!("{}/mcp/v1", server.url)).await;
    let (status, body) = common::raw_post(
        &format!("{}/mcp/v1", server.url),
        &session,
        json!({"jsonrpc": "2.0", "id": 9, "method": "tools/frobnicate"}),
    )
    .await;
    assert!(status == 200 || status == 400, "{status}: {body}");
    assert!(body.contains("-32601") || body.contains("-32600"), "{body}");
    client.cancel().await.unwrap();
}

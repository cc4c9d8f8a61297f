//! The tenant-isolation matrix: every REST route of `/openapi.json` and every MCP method, called
//! by each role of a second organization (and by nobody at all) against the first
//! organization's resources. Nothing of the first organization is shown, changed or decided:
//! routes naming its resources answer 4xx, listings carry none of its markers or ids, and its
//! state is the same afterwards.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

use preloop_testkit as common;

use common::{
    ADMIN_KEY, call, connect_url, raw_post_as, raw_session, raw_session_as, register, rest,
    start_gateway, start_upstream, text, user_with_key, wait_for_tool,
};
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// The first organization: the operator's.
const DEFAULT_ORGANIZATION: &str = "default";

/// Written into the first organization's resources; never to be seen by the second.
const MARKER: &str = "org-a-private-marker";

/// What the first organization has, by kind.
struct OrgA {
    request: String,
    server: String,
    user: String,
    key: String,
    rule: String,
    policy: String,
    tool: String,
    session: String,
    mcp_session: String,
}

impl OrgA {
    /// Every identifier that must not appear in the second organization's answers.
    fn secrets(&self) -> Vec<&str> {
        vec![
            MARKER,
            &self.request,
            &self.server,
            &self.user,
            &self.key,
            &self.rule,
            &self.session,
        ]
    }

    /// The value for a path parameter of `template`.
    fn parameter(&self, template: &str, name: &str) -> String {
        let value = match name {
            "name" => &self.policy,
            "tool" => &self.tool,
            "org_id" => return DEFAULT_ORGANIZATION.to_owned(),
            _ if template.contains("/approval-requests/") || template.contains("/approval/") => {
                &self.request
            }
            _ if template.contains("/mcp-servers/") => &self.server,
            _ if template.contains("/users/") => &self.user,
            _ if template.contains("/api-keys/") => &self.key,
            _ if template.contains("/access-rules/") => &self.rule,
            _ => &self.request,
        };
        value.clone()
    }
}

async fn created(method: Method, url: &str, token: &str, body: Value) -> Value {
    let (status, answer) = rest(method, url, Some(token), Some(body)).await;
    assert!((200..300).contains(&status), "{url}: {status} {answer}");
    answer
}

/// A user of the organization `admin` administers, and an API key of theirs.
async fn member(base: &str, admin: &str, email: &str, roles: &[&str]) -> (String, String) {
    let (user, _, secret) = user_with_key(base, admin, email, roles, email).await;
    (user, secret)
}

async fn organization_a(base: &str) -> OrgA {
    let api = |path: &str| format!("{base}/api/v1{path}");
    let (user, agent_key) = member(base, ADMIN_KEY, "agent-a@example.com", &["agent"]).await;
    created(
        Method::PATCH,
        &api(&format!("/users/{user}")),
        ADMIN_KEY,
        json!({"name": MARKER}),
    )
    .await;
    let (_, keys) = rest(Method::GET, &api("/api-keys"), Some(ADMIN_KEY), None).await;
    let key = keys["items"][0]["id"].as_str().unwrap().to_owned();
    let rule = created(
        Method::POST,
        &api("/access-rules"),
        ADMIN_KEY,
        json!({"id": "a-rule", "description": MARKER, "tools": ["up__delete_file"], "action": "deny", "message": MARKER}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    created(
        Method::PUT,
        &api("/tool-configurations/up__echo"),
        ADMIN_KEY,
        json!({"description": MARKER}),
    )
    .await;
    let (_, servers) = rest(Method::GET, &api("/mcp-servers"), Some(ADMIN_KEY), None).await;
    let server = servers["items"][0]["id"].as_str().unwrap().to_owned();
    let client = connect_url(&format!("{base}/mcp/v1"), Some(&agent_key))
        .await
        .unwrap();
    let pending: Value = serde_json::from_str(&text(
        &call(
            &client,
            "request_approval",
            json!({"operation": MARKER, "approval_policy": "a-policy"}),
        )
        .await,
    ))
    .unwrap();
    client.cancel().await.unwrap();
    let (status, _) = rest(
        Method::POST,
        &format!("{base}/hitl/register"),
        Some(ADMIN_KEY),
        Some(json!({"session_id": "a-session", "client_id": MARKER})),
    )
    .await;
    assert_eq!(status, 200);
    OrgA {
        request: pending["request_id"].as_str().unwrap().to_owned(),
        server,
        user,
        key,
        rule,
        policy: "a-policy".to_owned(),
        tool: "up__echo".to_owned(),
        session: "a-session".to_owned(),
        mcp_session: raw_session(&format!("{base}/mcp/v1")).await,
    }
}

/// The first organization's state, as its admin sees it: compared before and after.
async fn state_of_a(base: &str, a: &OrgA) -> Value {
    let api = |path: &str| format!("{base}/api/v1{path}");
    let mut state = serde_json::Map::new();
    for path in [
        format!("/approval-requests/{}", a.request),
        format!("/mcp-servers/{}", a.server),
        format!("/users/{}", a.user),
        "/api-keys".to_owned(),
        "/policy".to_owned(),
        format!("/organizations/{DEFAULT_ORGANIZATION}"),
        "/tool-configurations".to_owned(),
        "/users".to_owned(),
    ] {
        let (status, mut body) = rest(Method::GET, &api(&path), Some(ADMIN_KEY), None).await;
        assert_eq!(status, 200, "{path}: {body}");
        // When keys were last used changes with every request.
        if let Some(items) = body["items"].as_array_mut() {
            for item in items {
                if let Some(object) = item.as_object_mut() {
                    object.remove("last_used_at");
                }
            }
        }
        state.insert(path, body);
    }
    let (_, session) = rest(
        Method::GET,
        &format!("{base}/hitl/status?session_id={}", a.session),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    state.insert("hitl".to_owned(), session);
    let (_, verified) = rest(Method::GET, &api("/audit/verify"), Some(ADMIN_KEY), None).await;
    state.insert("audit_intact".to_owned(), verified["intact"].clone());
    Value::Object(state)
}

/// A body for each route that names the first organization's resources inside it.
fn body_for(template: &str, method: &Method, a: &OrgA) -> Value {
    match (method.as_str(), template) {
        ("POST", "/api/v1/api-keys") => json!({"name": "stolen", "user_id": a.user}),
        ("POST", "/hitl/request") => {
            json!({"session_id": a.session, "client_id": "c", "message": "m"})
        }
        ("POST", "/hitl/deactivate" | "/hitl/cancel") => {
            json!({"session_id": a.session, "request_id": a.request})
        }
        ("POST", "/access-rules/test" | "/api/v1/access-rules/test") => {
            json!({"tool": a.tool, "arguments": {}})
        }
        (_, path) if path.ends_with("/decide") => json!({"decision": "approve", "comment": "x"}),
        ("PUT", path) if path.starts_with("/api/v1/tool-configurations/") => {
            json!({"approval_policy": a.policy})
        }
        ("PATCH", _) => json!({"name": "changed", "disabled": true, "roles": ["agent"]}),
        ("POST", "/api/v1/organizations") => {
            json!({"name": "Shadow", "admin_email": "shadow@example.com"})
        }
        ("PUT", "/api/v1/organizations/{org_id}") => json!({"name": "stolen"}),
        ("PUT", "/api/v1/access-rules/order") => json!({"ids": [a.rule]}),
        ("PUT", "/api/v1/access-rules/{id}") => json!({"tools": ["*"], "action": "allow"}),
        ("PUT", "/api/v1/approval-policies/{name}") => {
            json!({"name": a.policy, "approvers": ["role:member"]})
        }
        ("PUT", "/api/v1/mcp-servers/{id}") => {
            json!({"name": "up", "transport": "http", "url": "https://example.com/mcp"})
        }
        _ => json!({}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organization_reaches_nothing_of_the_first_through_any_route_or_method() {
    let upstream = start_upstream();
    let config = format!(
        r#"
[[mcp_servers]]
name = "up"
transport = "http"
url = "{}"

[[approval_policies]]
name = "a-policy"
approvers = ["role:admin"]
mode = "async"

[policy]
default = "allow"
"#,
        upstream.url
    );
    let data = tempfile::tempdir().unwrap();
    let server = start_gateway(
        data.path(),
        &config,
        &[("SECRET_KEY", "the isolation test's secret key, 32+ chars")],
    );
    let base = server.url.clone();
    {
        let admin = connect_url(&format!("{base}/mcp/v1"), Some(ADMIN_KEY))
            .await
            .unwrap();
        wait_for_tool(&admin, "up__echo", true).await;
        admin.cancel().await.unwrap();
    }
    let a = organization_a(&base).await;
    let before = state_of_a(&base, &a).await;

    // The second organization: its admin and one of each other role.
    let b_admin = register(&base, "b-admin@example.com").await;
    let mut roles = vec![("admin", Some(b_admin.clone()))];
    for role in ["approver", "member", "agent"] {
        let (_, key) = member(&base, &b_admin, &format!("b-{role}@example.com"), &[role]).await;
        roles.push((role, Some(key)));
    }
    roles.push(("anonymous", None));

    let (_, openapi) = rest(Method::GET, &format!("{base}/openapi.json"), None, None).await;
    let paths = openapi["paths"].as_object().unwrap();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut tried = 0;
    for (template, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let mut path = template.clone();
            let mut query = Vec::new();
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                match parameter["in"].as_str() {
                    Some("path") => {
                        path = path.replace(&format!("{{{name}}}"), &a.parameter(template, name));
                    }
                    Some("query") if name == "session_id" => {
                        query.push(format!("{name}={}", a.session))
                    }
                    Some("query") if name == "token" => {
                        query.push("token=not-the-token".to_owned())
                    }
                    _ => {}
                }
            }
            let names_a = path != *template || !query.is_empty();
            let url = if query.is_empty() {
                format!("{base}{path}")
            } else {
                format!("{base}{path}?{}", query.join("&"))
            };
            let body = matches!(method.as_str(), "POST" | "PUT" | "PATCH")
                .then(|| body_for(template, &method, &a));
            for (role, token) in &roles {
                let (status, answer) =
                    rest(method.clone(), &url, token.as_deref(), body.clone()).await;
                tried += 1;
                *statuses.entry(status).or_default() += 1;
                assert!(status < 500, "{role} {method} {path}: {status} {answer}");
                let public = operation["security"] == json!([{}]);
                if token.is_none() && !public {
                    assert_eq!(status, 401, "anonymous {method} {path}: {answer}");
                }
                if names_a
                    || body.as_ref().is_some_and(|b| {
                        b.to_string().contains(&a.user) || b.to_string().contains(&a.session)
                    })
                {
                    assert!(
                        !(200..300).contains(&status) || template.ends_with("/access-rules/test"),
                        "{role} {method} {path} reached the other organization: {status} {answer}"
                    );
                }
                // An error may repeat what the caller sent (a path's id); anything else of the
                // first organization must not appear.
                let shown = answer.to_string();
                let sent = format!(
                    "{url} {}",
                    body.as_ref().map(Value::to_string).unwrap_or_default()
                );
                for secret in a.secrets().into_iter().filter(|s| !sent.contains(s)) {
                    assert!(
                        !shown.contains(secret),
                        "{role} {method} {path} showed `{secret}`: {answer}"
                    );
                }
            }
        }
    }

    // MCP, as each role of the second organization.
    for (role, token) in roles
        .iter()
        .filter_map(|(role, token)| Some((role, token.clone()?)))
    {
        let client = connect_url(&format!("{base}/mcp/v1"), Some(&token))
            .await
            .unwrap();
        let tools = client.list_all_tools().await.unwrap();
        assert!(
            tools.iter().all(|t| !t.name.starts_with("up__")),
            "{role} sees {tools:?}"
        );
        let unknown = client
            .call_tool(
                rmcp::model::CallToolRequestParams::new("up__echo")
                    .with_arguments(json!({"text": "x"}).as_object().unwrap().clone()),
            )
            .await;
        assert!(
            unknown.is_err(),
            "{role} called the other organization's tool: {unknown:?}"
        );
        let status = text(
            &call(
                &client,
                "get_approval_status",
                json!({"request_id": a.request}),
            )
            .await,
        );
        assert!(status.contains("not found"), "{role}: {status}");
        assert!(!status.contains(MARKER));
        client.cancel().await.unwrap();
        // The methods the gateway does not serve yet answer as errors, and show nothing.
        let session = raw_session_as(&format!("{base}/mcp/v1"), &token).await;
        for method in [
            "resources/list",
            "resources/templates/list",
            "prompts/list",
            "ping",
            "completion/complete",
        ] {
            let (status, answer) = raw_post_as(
                &format!("{base}/mcp/v1"),
                &token,
                &session,
                json!({"jsonrpc": "2.0", "id": 3, "method": method, "params": {}}),
            )
            .await;
            assert!(status < 500, "{role} {method}: {status} {answer}");
            assert!(!answer.contains(MARKER), "{role} {method}: {answer}");
        }
        // The first organization's MCP session, with its id, is no use either.
        let on_a_session = reqwest::Client::new()
            .post(format!("{base}/mcp/v1"))
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &a.mcp_session)
            .header("mcp-protocol-version", "2025-06-18")
            .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}))
            .send()
            .await
            .unwrap();
        assert_eq!(on_a_session.status(), 404, "{role}");
        tried += 6;
    }

    // The live WebSocket: the second organization's admin hears nothing of the first's.
    let ws_url = format!("{}/api/v1/ws/unified", base.replace("http://", "ws://"));
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            json!({"type": "auth", "token": b_admin}).to_string(),
        ))
        .await
        .unwrap();
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            json!({"type": "subscribe", "topics": ["approvals", "activity", "system"]}).to_string(),
        ))
        .await
        .unwrap();
    let agent = member(&base, ADMIN_KEY, "agent-a2@example.com", &["agent"])
        .await
        .1;
    let client = connect_url(&format!("{base}/mcp/v1"), Some(&agent))
        .await
        .unwrap();
    call(
        &client,
        "request_approval",
        json!({"operation": MARKER, "approval_policy": "a-policy"}),
    )
    .await;
    call(&client, "up__echo", json!({"text": MARKER})).await;
    client.cancel().await.unwrap();
    let listening = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(message)) = socket.next().await {
            assert!(
                !message.to_string().contains(MARKER),
                "the WebSocket leaked: {message}"
            );
        }
    })
    .await;
    assert!(listening.is_err(), "the socket stayed open and quiet");

    // Nothing of the first organization changed (a second request was added above, by it).
    let after = state_of_a(&base, &a).await;
    for (part, value) in before.as_object().unwrap() {
        if part == "/api-keys" || part == "/users" {
            // The first organization added a user and key of its own for the WebSocket check.
            continue;
        }
        assert_eq!(&after[part], value, "{part} changed");
    }
    assert_eq!(after["audit_intact"], json!(true));
    println!(
        "isolation matrix: {tried} requests ({} routes x {} callers, plus MCP); statuses {statuses:?}",
        paths
            .values()
            .map(|i| i.as_object().unwrap().len())
            .sum::<usize>(),
        roles.len()
    );
}

/// The operator (an admin of the default organization) creates an organization with its first
/// admin, who sees and renames only their own and can neither create nor close any; the
/// operator closes it, and its people and keys are shut out at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_creates_and_closes_organizations_their_admins_only_rename_their_own() {
    let data = tempfile::tempdir().unwrap();
    let server = start_gateway(
        data.path(),
        "",
        &[("SECRET_KEY", "the isolation test's secret key, 32+ chars")],
    );
    let api = |path: &str| format!("{}/api/v1{path}", server.url);
    let password = "initech's own first password";
    let new = json!({"name": "Initech", "admin_email": "Boss@Initech.example", "admin_password": password});
    let (status, answer) = rest(
        Method::POST,
        &api("/organizations"),
        Some(ADMIN_KEY),
        Some(new.clone()),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let id = answer["organization"]["id"].as_str().unwrap().to_owned();
    assert_eq!(answer["organization"]["name"], "Initech");
    assert_eq!(answer["admin"]["email"], "boss@initech.example");
    assert_eq!(answer["admin"]["roles"], json!(["admin"]));
    assert!(!answer.to_string().contains("argon2"), "{answer}");
    // The same admin twice, a blank name, an unknown field: clear refusals.
    for (body, expected) in [
        (new.clone(), 409),
        (
            json!({"name": "  ", "admin_email": "x@initech.example"}),
            422,
        ),
        (json!({"name": "X", "admin_email": "not-an-address"}), 422),
        (
            json!({"name": "X", "admin_email": "y@initech.example", "plan": "gold"}),
            400,
        ),
    ] {
        let (status, answer) = rest(
            Method::POST,
            &api("/organizations"),
            Some(ADMIN_KEY),
            Some(body),
        )
        .await;
        assert_eq!(status, expected, "{answer}");
    }

    let (status, tokens) = rest(
        Method::POST,
        &api("/auth/token"),
        None,
        Some(json!({"email": "boss@initech.example", "password": password})),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let boss = tokens["access_token"].as_str().unwrap().to_owned();
    let (_, key) = rest(
        Method::POST,
        &api("/api-keys"),
        Some(&boss),
        Some(json!({"name": "ci"})),
    )
    .await;
    let boss_key = key["secret"].as_str().unwrap().to_owned();

    // Their own organization only.
    let (status, listed) = rest(Method::GET, &api("/organizations"), Some(&boss), None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["items"][0]["id"], id.as_str());
    let (status, _) = rest(
        Method::GET,
        &api(&format!("/organizations/{DEFAULT_ORGANIZATION}")),
        Some(&boss),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, renamed) = rest(
        Method::PUT,
        &api(&format!("/organizations/{id}")),
        Some(&boss_key),
        Some(json!({"name": "Initech Ltd"})),
    )
    .await;
    assert_eq!(
        (status, renamed["name"].as_str()),
        (200, Some("Initech Ltd"))
    );
    let (status, _) = rest(
        Method::POST,
        &api("/organizations"),
        Some(&boss),
        Some(json!({"name": "Mine", "admin_email": "z@initech.example"})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = rest(
        Method::DELETE,
        &api(&format!("/organizations/{id}")),
        Some(&boss),
        None,
    )
    .await;
    assert_eq!(status, 403);

    // The operator sees every organization, cannot close their own, closes Initech.
    let (_, listed) = rest(Method::GET, &api("/organizations"), Some(ADMIN_KEY), None).await;
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&DEFAULT_ORGANIZATION) && ids.contains(&id.as_str()),
        "{listed}"
    );
    let (status, _) = rest(
        Method::DELETE,
        &api(&format!("/organizations/{DEFAULT_ORGANIZATION}")),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(status, 409);
    let (status, closed) = rest(
        Method::DELETE,
        &api(&format!("/organizations/{id}")),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(status, 200, "{closed}");
    assert!(closed["closed_at"].is_string(), "{closed}");
    for token in [&boss, &boss_key] {
        let (status, answer) = rest(Method::GET, &api("/users/me"), Some(token), None).await;
        assert_eq!(
            status, 401,
            "a closed organization's credential still works: {answer}"
        );
    }
    let (status, _) = rest(
        Method::POST,
        &api("/auth/token"),
        None,
        Some(json!({"email": "boss@initech.example", "password": password})),
    )
    .await;
    assert_eq!(status, 401);
    let (status, again) = rest(
        Method::GET,
        &api(&format!("/organizations/{id}")),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!((status, &again["closed_at"]), (200, &closed["closed_at"]));
}

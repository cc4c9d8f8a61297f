//! The review of a hostile tenant's reach, each finding tried as the reviewer tried it, against
//! the real binary: a self-registered organization's admin, its members and agents, and
//! someone with no account at all. Each test failed before its fix.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

use preloop_testkit as common;

use common::wait::{eventually, eventually_some, eventually_within};
use common::{
    ADMIN_KEY, Client, call, connect_url, connect_with, raw_session, register, rest, start_gateway,
    start_upstream, text, user_with_key, wait_for_tool,
};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The test upstream's path.
fn test_upstream() -> String {
    common::binary("preloop-test-upstream")
        .display()
        .to_string()
}
const SECRET_KEY: &str = "the e2e security test's secret key, 32+ characters";

/// A gateway whose operator runs the test upstream over stdio (`local`) with one configured
/// variable, and lets other organizations run exactly that program too.
fn operator_config() -> String {
    let upstream = test_upstream();
    format!(
        r#"
[[security.stdio_servers]]
command = "{upstream}"
args = ["--stdio"]
env = ["GREETING"]

[[mcp_servers]]
name = "local"
transport = "stdio"
command = "{upstream}"
args = ["--stdio"]
env = {{ GREETING = "hello" }}

[policy]
default = "allow"
"#
    )
}

fn start(data: &Path, config: &str) -> common::Process {
    start_gateway(data, config, &[("SECRET_KEY", SECRET_KEY)])
}

async fn mcp(base: &str, token: &str) -> Client {
    connect_url(&format!("{base}/mcp/v1"), Some(token))
        .await
        .unwrap()
}

/// The environment variable names a server's `environment` tool reports.
async fn environment_of(client: &Client, tool: &str) -> Vec<String> {
    serde_json::from_str(&text(&call(client, tool, json!({})).await)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_start_programs_and_children_get_only_their_environment() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), &operator_config());
    let api = |path: &str| format!("{}/api/v1{path}", server.url);

    // The operator's stdio server sees its configured variable and a minimal PATH: not the
    // gateway's SECRET_KEY, admin key or anything else of the server's environment.
    let operator = mcp(&server.url, ADMIN_KEY).await;
    wait_for_tool(&operator, "local__environment", true).await;
    assert_eq!(
        environment_of(&operator, "local__environment").await,
        ["GREETING", "PATH"]
    );

    // A stranger registers an organization and tries to run a shell.
    let tenant = register(&server.url, "mallory@example.com").await;
    let marker = data.path().join("pwned");
    let shell = json!({
        "name": "sh", "transport": "stdio", "command": "/bin/sh",
        "args": ["-c", format!("env > {}", marker.display())],
    });
    let (status, refused) = rest(
        Method::POST,
        &api("/mcp-servers"),
        Some(&tenant),
        Some(shell),
    )
    .await;
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may not start programs"),
        "{refused}"
    );
    // The allowed program with other arguments, or with a variable the operator did not allow
    // (LD_PRELOAD would load any library into it), is refused too.
    for (args, env) in [
        (json!(["--http", "127.0.0.1:0"]), json!({})),
        (json!(["--stdio"]), json!({"LD_PRELOAD": "/tmp/evil.so"})),
    ] {
        let body = json!({"name": "t", "transport": "stdio", "command": test_upstream(), "args": args, "env": env});
        let (status, refused) = rest(
            Method::POST,
            &api("/mcp-servers"),
            Some(&tenant),
            Some(body),
        )
        .await;
        assert_eq!(status, 403, "{refused}");
    }
    // Exactly the allowed program runs, with the tenant's own value of the allowed variable.
    let allowed = json!({"name": "t", "transport": "stdio", "command": test_upstream(), "args": ["--stdio"], "env": {"GREETING": "hi"}});
    let (status, created) = rest(
        Method::POST,
        &api("/mcp-servers"),
        Some(&tenant),
        Some(allowed),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let tenant_client = mcp(&server.url, &tenant).await;
    wait_for_tool(&tenant_client, "t__environment", true).await;
    assert_eq!(
        environment_of(&tenant_client, "t__environment").await,
        ["GREETING", "PATH"]
    );
    // And it cannot be turned into a shell afterwards.
    let id = created["id"].as_str().unwrap();
    let shell =
        json!({"name": "t", "transport": "stdio", "command": "/bin/sh", "args": ["-c", "id"]});
    let (status, _) = rest(
        Method::PUT,
        &api(&format!("/mcp-servers/{id}")),
        Some(&tenant),
        Some(shell),
    )
    .await;
    assert_eq!(status, 403);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!marker.exists(), "no shell ran");
    tenant_client.cancel().await.unwrap();
    operator.cancel().await.unwrap();
}

/// An HTTP server inside the network: answers every request 500 with a body that must never
/// reach a caller, and counts the requests.
async fn internal_service() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL-ONLY: db password is hunter2",
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("127.0.0.1:{port}"), hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_reaches_only_public_addresses_and_upstream_errors_echo_no_bodies() {
    let (internal, hits) = internal_service().await;
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), "[policy]\ndefault = \"allow\"\n");
    let api = |path: &str| format!("{}/api/v1{path}", server.url);

    // The operator may point a server inside the network; a failing scan tells the status,
    // never the internal service's answer.
    let body =
        json!({"name": "inside", "transport": "http", "url": format!("http://{internal}/mcp")});
    let (status, created) = rest(
        Method::POST,
        &api("/mcp-servers"),
        Some(ADMIN_KEY),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, failed) = rest(
        Method::POST,
        &api(&format!("/mcp-servers/{id}/scan")),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(status, 502, "{failed}");
    assert!(!failed.to_string().contains("INTERNAL-ONLY"), "{failed}");
    assert!(failed.to_string().contains("500"), "{failed}");

    // A tenant may not: loopback, the cloud metadata address, private and IPv6-local
    // literals are refused outright...
    let tenant = register(&server.url, "mallory@example.com").await;
    let port = internal.rsplit(':').next().unwrap();
    for url in [
        format!("http://{internal}/mcp"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://[::1]:{port}/mcp"),
        format!("http://[::ffff:127.0.0.1]:{port}/mcp"),
        "http://10.0.0.1/mcp".to_owned(),
        "http://192.168.0.1/mcp".to_owned(),
    ] {
        let body = json!({"name": "probe", "transport": "http", "url": url});
        let (status, refused) = rest(
            Method::POST,
            &api("/mcp-servers"),
            Some(&tenant),
            Some(body),
        )
        .await;
        assert_eq!(status, 403, "{url}: {refused}");
    }
    // ... and a name that resolves to one is refused when it resolves, on every connection.
    let before = hits.load(Ordering::SeqCst);
    let body = json!({"name": "probe", "transport": "http", "url": format!("http://localhost:{port}/mcp")});
    let (status, created) = rest(
        Method::POST,
        &api("/mcp-servers"),
        Some(&tenant),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, failed) = rest(
        Method::POST,
        &api(&format!("/mcp-servers/{id}/scan")),
        Some(&tenant),
        None,
    )
    .await;
    assert_eq!(status, 502, "{failed}");
    assert!(failed.to_string().contains("public addresses"), "{failed}");
    assert!(!failed.to_string().contains("INTERNAL-ONLY"), "{failed}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        before,
        "the internal service was never reached"
    );

    // A stored credential stays with its destination: `<redacted>` keeps it for the same
    // origin, and is refused once the URL points elsewhere.
    let body = json!({"name": "public", "transport": "http", "url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer tenant-secret"}});
    let (status, created) = rest(
        Method::POST,
        &api("/mcp-servers"),
        Some(&tenant),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let keep = json!({"name": "public", "transport": "http", "url": "https://mcp.example.com/other", "headers": {"Authorization": "<redacted>"}});
    let (status, kept) = rest(
        Method::PUT,
        &api(&format!("/mcp-servers/{id}")),
        Some(&tenant),
        Some(keep),
    )
    .await;
    assert_eq!(status, 200, "{kept}");
    let move_it = json!({"name": "public", "transport": "http", "url": "https://collector.example.net/mcp", "headers": {"Authorization": "<redacted>"}});
    let (status, refused) = rest(
        Method::PUT,
        &api(&format!("/mcp-servers/{id}")),
        Some(&tenant),
        Some(move_it),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_rules_are_refused_and_costly_ones_stall_nobody_else() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), &operator_config());
    let api = |path: &str| format!("{}/api/v1{path}", server.url);
    let tenant = register(&server.url, "mallory@example.com").await;
    let rule =
        |id: &str, when: &str| json!({"id": id, "tools": ["*"], "when": when, "action": "allow"});

    // A chain of 2,000 additions crashed the server when evaluated; it is refused when saved.
    let chain = format!("{} == 0", vec!["1"; 2000].join("+"));
    let (status, refused) = rest(
        Method::POST,
        &api("/access-rules"),
        Some(&tenant),
        Some(rule("crash", &chain)),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused.to_string().contains("operations deep"), "{refused}");
    // Three nested comprehensions took 3 s per call; refused when saved.
    let three = "args.l.all(x, args.l.all(y, args.l.all(z, x + y + z >= 0)))";
    let (status, refused) = rest(
        Method::POST,
        &api("/access-rules"),
        Some(&tenant),
        Some(rule("slow", three)),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused.to_string().contains("may cost"), "{refused}");
    let (status, health) = rest(Method::GET, &format!("{}/health", server.url), None, None).await;
    assert_eq!(status, 200, "{health}");

    // Two nested are allowed, but a call with a long list exhausts the evaluation budget and
    // fails closed; a burst of such calls holds up neither /health nor another organization.
    let two = "has(args.l) && args.l.all(x, args.l.all(y, x + y >= 0))";
    let (status, saved) = rest(
        Method::POST,
        &api("/access-rules"),
        Some(&tenant),
        Some(rule("heavy", two)),
    )
    .await;
    assert_eq!(status, 201, "{saved}");
    let allowed =
        json!({"name": "t", "transport": "stdio", "command": test_upstream(), "args": ["--stdio"]});
    let (status, _) = rest(
        Method::POST,
        &api("/mcp-servers"),
        Some(&tenant),
        Some(allowed),
    )
    .await;
    assert_eq!(status, 201);
    let attacker = Arc::new(mcp(&server.url, &tenant).await);
    wait_for_tool(&attacker, "t__echo", true).await;
    let operator = mcp(&server.url, ADMIN_KEY).await;
    wait_for_tool(&operator, "local__echo", true).await;
    let list: Vec<i64> = (0..3000).collect();
    let burst: Vec<_> = (0..16)
        .map(|_| {
            let attacker = attacker.clone();
            let list = list.clone();
            tokio::spawn(async move {
                text(&call(&attacker, "t__echo", json!({"text": "x", "l": list})).await)
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = Instant::now();
        let (status, _) = rest(Method::GET, &format!("{}/health", server.url), None, None).await;
        assert_eq!(status, 200);
        assert_eq!(
            text(&call(&operator, "local__echo", json!({"text": "still here"})).await),
            "still here"
        );
        slowest = slowest.max(started.elapsed());
    }
    for denied in burst {
        let message = denied.await.unwrap();
        assert!(message.contains("budget exhausted"), "{message}");
    }
    // Before the fix each of those calls took seconds on a worker thread; the bound here is
    // generous for a loaded 2-core machine.
    assert!(
        slowest < Duration::from_secs(2),
        "another organization waited {slowest:?}"
    );
    operator.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_key_cannot_widen_itself_and_passwords_need_a_person() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), "[policy]\ndefault = \"allow\"\n");
    let api = |path: &str| format!("{}/api/v1{path}", server.url);
    let password = "bob's first long password";
    let (status, bob) = rest(
        Method::POST,
        &api("/users"),
        Some(ADMIN_KEY),
        Some(
            json!({"email": "bob@example.com", "roles": ["admin", "agent"], "password": password}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{bob}");
    let bob_id = bob["id"].as_str().unwrap().to_owned();
    let sign_in = |password: &'static str| {
        let url = api("/auth/token");
        async move {
            rest(
                Method::POST,
                &url,
                None,
                Some(json!({"email": "bob@example.com", "password": password})),
            )
            .await
        }
    };
    let (status, session) = sign_in("bob's first long password").await;
    assert_eq!(status, 200, "{session}");
    let access = session["access_token"].as_str().unwrap().to_owned();
    let refresh = session["refresh_token"].as_str().unwrap().to_owned();
    let (status, scoped) = rest(
        Method::POST,
        &api("/api-keys"),
        Some(&access),
        Some(json!({"name": "agent", "scopes": ["agent"]})),
    )
    .await;
    assert_eq!(status, 201, "{scoped}");
    let agent_key = scoped["secret"].as_str().unwrap().to_owned();

    // The agent key asks for an unscoped key: it gets one no wider than itself.
    let (status, minted) = rest(
        Method::POST,
        &api("/api-keys"),
        Some(&agent_key),
        Some(json!({"name": "wider"})),
    )
    .await;
    assert_eq!(status, 201, "{minted}");
    assert_eq!(minted["scopes"], json!(["agent"]));
    // A key that expires makes only keys that expire no later.
    let soon = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (status, short) = rest(
        Method::POST,
        &api("/api-keys"),
        Some(&access),
        Some(json!({"name": "short", "scopes": ["agent"], "expires_at": soon})),
    )
    .await;
    assert_eq!(status, 201, "{short}");
    let (status, child) = rest(
        Method::POST,
        &api("/api-keys"),
        Some(short["secret"].as_str().unwrap()),
        Some(json!({"name": "forever"})),
    )
    .await;
    assert_eq!(status, 201, "{child}");
    let when = |key: &Value| {
        chrono::DateTime::parse_from_rfc3339(key["expires_at"].as_str().unwrap()).unwrap()
    };
    // The same instant (the stored one is kept to the microsecond).
    let apart = (when(&child) - when(&short))
        .num_microseconds()
        .unwrap()
        .abs();
    assert!(apart <= 1, "{child}");
    let (_, me) = rest(
        Method::GET,
        &api("/users/me"),
        Some(minted["secret"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(me["effective_roles"], json!(["agent"]));
    let (status, refused) = rest(
        Method::POST,
        &api("/api-keys"),
        Some(&agent_key),
        Some(json!({"name": "admin", "scopes": ["admin"]})),
    )
    .await;
    assert_eq!(status, 422, "{refused}");

    // It cannot set a password and sign in with everything bob may do; nor can any key.
    for key in [agent_key.as_str(), ADMIN_KEY] {
        let change = json!({"password": "a password the key chose", "current_password": password});
        let (status, refused) = rest(
            Method::PATCH,
            &api(&format!("/users/{bob_id}")),
            Some(key),
            Some(change),
        )
        .await;
        assert_eq!(status, 403, "{refused}");
    }
    assert_eq!(sign_in("a password the key chose").await.0, 401);

    // Bob himself, signed in, must give his current password.
    let (status, _) = rest(
        Method::PATCH,
        &api(&format!("/users/{bob_id}")),
        Some(&access),
        Some(json!({"password": "bob's second long password"})),
    )
    .await;
    assert_eq!(status, 403);
    let change = json!({"password": "bob's second long password", "current_password": password});
    let (status, changed) = rest(
        Method::PATCH,
        &api(&format!("/users/{bob_id}")),
        Some(&access),
        Some(change),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    // The tokens issued before the change stop working (within the credential cache's life).
    tokio::time::sleep(preloop_server::CACHE_TTL + Duration::from_millis(500)).await;
    let (status, _) = rest(Method::GET, &api("/users/me"), Some(&access), None).await;
    assert_eq!(status, 401, "the old access token is retired");
    let (status, _) = rest(
        Method::POST,
        &api("/auth/refresh"),
        None,
        Some(json!({"refresh_token": refresh})),
    )
    .await;
    assert_eq!(status, 401, "the old refresh token is retired");
    assert_eq!(sign_in("bob's second long password").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_selected_by_id_and_stored_name_selectors_are_migrated() {
    let upstream = start_upstream();
    let data = tempfile::tempdir().unwrap();
    // The restart below has no policy in its file, so the stored one stays in force.
    let servers = format!(
        "[[mcp_servers]]\nname = \"up\"\ntransport = \"http\"\nurl = \"{}\"\n",
        upstream.url
    );
    let config = format!(
        "{servers}\n[[approval_policies]]\nname = \"bot\"\napprovers = [\"role:admin\"]\nmode = \"async\"\n\n[policy]\ndefault = \"allow\"\n"
    );
    let server = start(data.path(), &config);
    let api = |path: &str| format!("{}/api/v1{path}", server.url);
    let base = server.url.clone();
    let (_, bot_key_id, bot_key) = user_with_key(
        &base,
        ADMIN_KEY,
        "bot@example.com",
        &["approver"],
        "release-bot",
    )
    .await;
    // A member names a key like the bot's.
    let (_, _, impostor_key) = user_with_key(
        &base,
        ADMIN_KEY,
        "member@example.com",
        &["member", "approver"],
        "release-bot",
    )
    .await;
    let (_, _, agent_key) =
        user_with_key(&base, ADMIN_KEY, "agent@example.com", &["agent"], "agent").await;

    // Selecting by name is refused with a pointer to ids.
    let by_name = json!({"name": "bot", "approvers": ["apikey:release-bot"], "mode": "async"});
    let (status, refused) = rest(
        Method::PUT,
        &api("/approval-policies/bot"),
        Some(ADMIN_KEY),
        Some(by_name),
    )
    .await;
    assert!(matches!(status, 400 | 422), "{status} {refused}");
    assert!(refused.to_string().contains("selected by id"), "{refused}");
    let by_id =
        json!({"name": "bot", "approvers": [format!("apikey:{bot_key_id}")], "mode": "async"});
    let (status, saved) = rest(
        Method::PUT,
        &api("/approval-policies/bot"),
        Some(ADMIN_KEY),
        Some(by_id),
    )
    .await;
    assert_eq!(status, 200, "{saved}");

    // The agent asks; the impostor's key is no approver, the bot's key is.
    let client = mcp(&server.url, &agent_key).await;
    let pending: Value = serde_json::from_str(&text(
        &call(
            &client,
            "request_approval",
            json!({"operation": "release", "approval_policy": "bot"}),
        )
        .await,
    ))
    .unwrap();
    let request = pending["request_id"].as_str().unwrap();
    let approve = api(&format!("/approval-requests/{request}/approve"));
    let (status, refused) = rest(Method::POST, &approve, Some(&impostor_key), None).await;
    assert!(matches!(status, 403 | 404), "{status} {refused}");
    let (status, approved) = rest(Method::POST, &approve, Some(&bot_key), None).await;
    assert_eq!(status, 200, "{approved}");
    client.cancel().await.unwrap();
    drop(server);

    // A database written before: selectors by name. At start the unique one becomes an id; an
    // ambiguous one cannot, and the organization's policy fails closed.
    let database = preloop_store::Database::open(&format!(
        "sqlite://{}",
        data.path().join("preloop.db").display()
    ))
    .await
    .unwrap();
    let legacy = preloop_core::policy::GovernanceDocument::parse(
        r#"
[[approval_policies]]
name = "bot"
approvers = ["apikey:agent"]
mode = "async"

[policy]
default = "allow"
[[policy.rules]]
id = "watch-the-bot"
tools = ["*"]
principals = ["apikey:release-bot"]
action = "deny"
"#,
        preloop_core::policy::Format::Toml,
    )
    .unwrap();
    use preloop_core::store::{CasOutcome, NO_POLICY_VERSION, PolicyStore};
    let version = database
        .load_policy("default")
        .await
        .unwrap()
        .map_or(NO_POLICY_VERSION, |stored| stored.version);
    assert_eq!(
        database
            .save_policy("default", version, &legacy, Vec::new())
            .await
            .unwrap(),
        CasOutcome::Stored
    );
    drop(database);
    let server = start(data.path(), &servers);
    let (status, document) = rest(
        Method::GET,
        &format!("{}/api/v1/policy", server.url),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(status, 200, "{document}");
    let approvers = &document["approval_policies"][0]["approvers"];
    assert!(
        approvers[0].as_str().unwrap().starts_with("apikey:") && approvers[0] != "apikey:agent",
        "{approvers}"
    );
    assert_eq!(
        document["policy"]["rules"][0]["principals"],
        json!(["apikey:release-bot"]),
        "two keys have that name"
    );
    // Every call is denied (and the denied tools are not even listed); the tool may take a
    // moment to be registered after the restart.
    let client = mcp(&server.url, &agent_key).await;
    let denied = eventually_some("up__echo becomes callable", async || {
        let arguments = json!({"text": "anything"}).as_object().cloned();
        let params =
            rmcp::model::CallToolRequestParams::new("up__echo").with_arguments(arguments.unwrap());
        client
            .call_tool(params)
            .await
            .ok()
            .map(|result| text(&result))
    })
    .await;
    assert!(denied.contains("invalid"), "{denied}");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_links_show_a_redacted_view_and_stop_voting_once_decided() {
    let upstream = start_upstream();
    let (hook, mut received) = common::webhook_receiver(false).await;
    let config = format!(
        r#"
[channels.webhook]
url = "{hook}"
secret = "a webhook secret"

[[mcp_servers]]
name = "up"
transport = "http"
url = "{}"

[[approval_policies]]
name = "by-link"
approvers = ["role:admin"]
mode = "async"
channels = ["webhook"]

[policy]
default = "allow"
[[policy.rules]]
tools = ["up__echo"]
action = "require_approval"
approval_policy = "by-link"
"#,
        upstream.url
    );
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), &config);
    let client = mcp(&server.url, ADMIN_KEY).await;
    wait_for_tool(&client, "up__echo", true).await;
    call(
        &client,
        "up__echo",
        json!({"text": "ship it", "password": "hunter2"}),
    )
    .await;
    let (_, delivery) = tokio::time::timeout(Duration::from_secs(20), received.recv())
        .await
        .unwrap()
        .unwrap();
    let delivery: Value = serde_json::from_slice(&delivery).unwrap();
    let data_link = delivery["links"]["data"].as_str().unwrap().to_owned();
    let decide_link = delivery["links"]["decide"].as_str().unwrap().to_owned();
    let page_link = delivery["links"]["page"].as_str().unwrap().to_owned();

    let (status, shown) = rest(Method::GET, &data_link, None, None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["pending"]["arguments"]["password"], "[redacted]");
    assert!(!shown.to_string().contains("hunter2"));
    assert!(!shown.to_string().contains("\"roles\""), "{shown}");
    let (status, _) = rest(
        Method::POST,
        &decide_link,
        None,
        Some(json!({"decision": "approve"})),
    )
    .await;
    assert_eq!(status, 200);
    // Decided: the link votes no more and shows the outcome only, in JSON and on the page.
    let (status, _) = rest(
        Method::POST,
        &decide_link,
        None,
        Some(json!({"decision": "approve"})),
    )
    .await;
    assert_eq!(status, 409);
    let (status, after) = rest(Method::GET, &data_link, None, None).await;
    assert_eq!(status, 200);
    assert!(after.get("pending").is_none(), "{after}");
    assert!(!after.to_string().contains("ship it"), "{after}");
    let page = reqwest::get(&page_link)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("ship it"), "{page}");
    let form = reqwest::Client::new()
        .post(&page_link)
        .form(&[("decision", "decline")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 409);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durations_past_a_year_are_refused_and_huge_numbers_crash_nothing() {
    let data = tempfile::tempdir().unwrap();
    let config = r#"
[[approval_policies]]
name = "ops"
default = true
approvers = ["role:admin"]
mode = "async"
allow_self_approval = true
grant = { max_duration = "30m" }

[policy]
default = "allow"
"#;
    let server = start(data.path(), config);
    let api = |path: &str| format!("{}/api/v1{path}", server.url);
    let health = || {
        let url = format!("{}/health", server.url);
        async move { assert_eq!(rest(Method::GET, &url, None, None).await.0, 200) }
    };
    for body in [
        json!({"name": "ops", "timeout": "1000000years"}),
        json!({"name": "ops", "on_timeout": "escalate", "escalation": [{"after": "1000000years", "approvers": ["role:admin"]}]}),
        json!({"name": "ops", "grant": {"max_duration": "400000days"}}),
    ] {
        let (status, refused) = rest(
            Method::PUT,
            &api("/approval-policies/ops"),
            Some(ADMIN_KEY),
            Some(body),
        )
        .await;
        assert!(matches!(status, 400 | 422), "{status} {refused}");
        assert!(refused.to_string().contains("limit"), "{refused}");
        health().await;
    }
    // A vote asking for an enormous grant, and a HITL request with an enormous timeout, are
    // answered, not crashed on.
    let client = mcp(&server.url, ADMIN_KEY).await;
    let pending: Value = serde_json::from_str(&text(
        &call(&client, "request_approval", json!({"operation": "x"})).await,
    ))
    .unwrap();
    let request = pending["request_id"].as_str().unwrap();
    let vote = json!({"grant_minutes": u64::MAX, "comment": "sure"});
    let (status, answer) = rest(
        Method::POST,
        &api(&format!("/approval-requests/{request}/approve")),
        Some(ADMIN_KEY),
        Some(vote),
    )
    .await;
    assert!(status < 500, "{status} {answer}");
    health().await;
    let hitl = |path: &str| format!("{}/hitl{path}", server.url);
    let (status, _) = rest(
        Method::POST,
        &hitl("/register"),
        Some(ADMIN_KEY),
        Some(json!({"session_id": "s", "client_id": "c"})),
    )
    .await;
    assert_eq!(status, 200);
    let ask =
        json!({"session_id": "s", "client_id": "c", "message": "ok?", "timeout_seconds": u64::MAX});
    let (status, asked) = rest(Method::POST, &hitl("/request"), Some(ADMIN_KEY), Some(ask)).await;
    assert_eq!(status, 200, "{asked}");
    health().await;
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_low_findings_hosts_hitl_sessions_sign_in_throttle_and_metrics() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), "[policy]\ndefault = \"allow\"\n");
    let api = |path: &str| format!("{}/api/v1{path}", server.url);
    let mcp_url = format!("{}/mcp/v1", server.url);

    // The fast path checks the Host header as the handshake does (DNS rebinding).
    let session = raw_session(&mcp_url).await;
    let rebound = reqwest::Client::new()
        .post(&mcp_url)
        .bearer_auth(ADMIN_KEY)
        .header("host", "attacker.example")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "request_approval", "arguments": {"operation": "x"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);

    // A HITL session belongs to whoever registered it, not to the organization.
    let mut keys = Vec::new();
    for email in ["one@example.com", "two@example.com"] {
        keys.push(
            user_with_key(&server.url, ADMIN_KEY, email, &["member"], "k")
                .await
                .2,
        );
    }
    let hitl = |path: &str| format!("{}/hitl{path}", server.url);
    let (status, _) = rest(
        Method::POST,
        &hitl("/register"),
        Some(&keys[0]),
        Some(json!({"session_id": "mine", "client_id": "c"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = rest(
        Method::POST,
        &hitl("/deactivate"),
        Some(&keys[1]),
        Some(json!({"session_id": "mine"})),
    )
    .await;
    assert_eq!(status, 404, "another member cannot deactivate it");
    let (status, _) = rest(
        Method::GET,
        &hitl("/status?session_id=mine"),
        Some(&keys[1]),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, session) = rest(
        Method::GET,
        &hitl("/status?session_id=mine"),
        Some(&keys[0]),
        None,
    )
    .await;
    assert_eq!((status, &session["active"]), (200, &json!(true)));

    // Sign-in is throttled: after five wrong passwords even the right one waits.
    let (status, _) = rest(Method::POST, &api("/users"), Some(ADMIN_KEY), Some(json!({"email": "eve@example.com", "roles": ["member"], "password": "the right long password"}))).await;
    assert_eq!(status, 201);
    let attempt = |password: &'static str| {
        reqwest::Client::new()
            .post(api("/auth/token"))
            .json(&json!({"email": "eve@example.com", "password": password}))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(attempt("a wrong password!").await.unwrap().status(), 401);
    }
    let throttled = attempt("a wrong password!").await.unwrap();
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().contains_key("retry-after"));
    assert_eq!(
        attempt("the right long password").await.unwrap().status(),
        429
    );

    // Metrics are the operator's.
    let metrics = format!("{}/metrics", server.url);
    assert_eq!(rest(Method::GET, &metrics, None, None).await.0, 401);
    let tenant = register(&server.url, "mallory@example.com").await;
    assert_eq!(
        rest(Method::GET, &metrics, Some(&tenant), None).await.0,
        403
    );
    assert_eq!(
        rest(Method::GET, &metrics, Some(&keys[0]), None).await.0,
        403
    );
    let (status, body) = rest(Method::GET, &metrics, Some(ADMIN_KEY), None).await;
    assert_eq!(status, 200);
    assert!(body.to_string().contains("preloop_http_requests_total"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_belong_to_their_owner_and_sizes_and_reads_are_bounded() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), "[policy]\ndefault = \"allow\"\n");
    let api = |path: &str| format!("{}/api/v1{path}", server.url);
    let mcp_url = format!("{}/mcp/v1", server.url);
    let (_, _, agent_key) = user_with_key(
        &server.url,
        ADMIN_KEY,
        "agent@example.com",
        &["agent"],
        "agent",
    )
    .await;

    // The admin's session, with its id, is no use to the agent (or to a stranger).
    let session = raw_session(&mcp_url).await;
    let tenant = register(&server.url, "mallory@example.com").await;
    let list = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"});
    let on_session = |token: String, id: String| {
        let (url, list) = (mcp_url.clone(), list.clone());
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-session-id", id)
                .header("mcp-protocol-version", "2025-06-18")
                .json(&list)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(on_session(ADMIN_KEY.to_owned(), session.clone()).await, 200);
    assert_eq!(on_session(agent_key.clone(), session.clone()).await, 404);
    assert_eq!(on_session(tenant.clone(), session.clone()).await, 404);
    let stream = reqwest::Client::new()
        .get(&mcp_url)
        .bearer_auth(&agent_key)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 404, "nobody else attaches to its stream");
    // An absurd session id is just not found.
    assert_eq!(
        on_session(ADMIN_KEY.to_owned(), "x".repeat(4096)).await,
        404
    );

    // Names and ids have limits.
    let (status, _) = rest(
        Method::POST,
        &api("/users"),
        Some(ADMIN_KEY),
        Some(json!({"email": "big@example.com", "name": "x".repeat(1 << 20), "roles": []})),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = rest(
        Method::POST,
        &format!("{}/hitl/register", server.url),
        Some(ADMIN_KEY),
        Some(json!({"session_id": "s".repeat(1 << 20), "client_id": "c"})),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = rest(
        Method::POST,
        &api("/api-keys"),
        Some(ADMIN_KEY),
        Some(json!({"name": "k".repeat(10_000)})),
    )
    .await;
    assert_eq!(status, 422);

    // Agents read neither the policy nor the servers (commands, arguments, internal URLs).
    for path in [
        "/policy",
        "/access-rules",
        "/approval-policies",
        "/mcp-servers",
        "/tool-configurations",
    ] {
        let (status, body) = rest(Method::GET, &api(path), Some(&agent_key), None).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
}

/// Counts `notifications/tools/list_changed`.
#[derive(Clone, Default)]
struct ListChanges(Arc<AtomicUsize>);

impl rmcp::ClientHandler for ListChanges {
    async fn on_tool_list_changed(
        &self,
        _context: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_waits_for_configured_upstreams_and_clients_hear_list_changed() {
    // An upstream that accepts connections and never answers: its first scan takes the whole
    // connection timeout, and until then the gateway is not ready.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = format!(
        "[[mcp_servers]]\nname = \"silent\"\ntransport = \"http\"\nurl = \"http://{}/mcp\"\n\n[policy]\ndefault = \"allow\"\n",
        silent.local_addr().unwrap()
    );
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), &config);
    let ready = format!("{}/ready", server.url);
    let (status, body) = rest(Method::GET, &ready, None, None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["waiting_for_upstreams"], 1, "how many, not which");
    eventually_within(Duration::from_secs(40), "ready", async || {
        (rest(Method::GET, &ready, None, None).await.0 == 200).then_some(())
    })
    .await;

    // A connected client hears that its tools changed when a server is added.
    let changes = ListChanges::default();
    let client = connect_with(
        &format!("{}/mcp/v1", server.url),
        Some(ADMIN_KEY),
        changes.clone(),
    )
    .await
    .unwrap();
    client.list_all_tools().await.unwrap();
    let upstream = start_upstream();
    let body = json!({"name": "late", "transport": "http", "url": upstream.url});
    let (status, _) = rest(
        Method::POST,
        &format!("{}/api/v1/mcp-servers", server.url),
        Some(ADMIN_KEY),
        Some(body),
    )
    .await;
    assert_eq!(status, 201);
    eventually("a tools/list_changed arrives", async || {
        changes.0.load(Ordering::SeqCst) != 0
    })
    .await;
    assert!(
        client
            .list_all_tools()
            .await
            .unwrap()
            .iter()
            .any(|t| t.name == "late__echo")
    );
    client.cancel().await.unwrap();
    drop(silent);
}

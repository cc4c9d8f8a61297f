//! Fixtures shared by the end-to-end tests and the gateway load tool. Test support, not
//! production: a fixture that cannot do its job panics (the test fails loudly).
//!
//! | module | holds |
//! |---|---|
//! | this root | [`binary`] (a workspace binary next to the running test), [`Process`] (a child killed when dropped, with the URL it printed) and [`spawn`], [`start_gateway`] and [`start_upstream`], MCP clients ([`connect_url`], [`connect_with`], [`Client`], [`call`], [`text`], [`wait_for_tool`]), raw MCP sessions ([`raw_session`], [`raw_post`]), REST ([`rest`]), users and keys ([`register`], [`user_with_key`]), and a webhook receiver ([`webhook_receiver`]) |
//! | [`gateway`] | [`Gateway`](gateway::Gateway): a gateway set up for approval tests (an upstream whose large additions need an admin's approval, a member and an agent user), with REST helpers |
//! | [`fakes`] | local stand-ins for chat platforms' APIs and webhooks ([`FakePlatform`](fakes::FakePlatform)) and SMTP ([`smtp_sink`](fakes::smtp_sink)), recording what they receive |
//! | [`github`] | a local stand-in for GitHub's REST API for one repository ([`FakeGitHub`](github::FakeGitHub)), refusing any other token |
//! | [`wait`] | waiting for what happens asynchronously: [`eventually`](wait::eventually) (a condition), [`eventually_some`](wait::eventually_some) (a value), [`eventually_within`](wait::eventually_within) (another deadline) |
//!
//! The test upstream MCP server is this crate's binary, `preloop-test-upstream` (stdio or
//! streamable HTTP; tools that echo, add, fail, sleep, stream progress, record calls and
//! "delete" files).
//!
//! What it keeps: every process it starts is killed when its handle is dropped; servers bind
//! port 0, so tests run in parallel; its polling waits have deadlines, so a test fails instead
//! of hanging. The binaries (`preloop`, `preloop-test-upstream`) are found next to the
//! running test or bench executable: `cargo test --workspace` and `cargo bench --workspace`
//! build them.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

pub mod fakes;
pub mod gateway;
pub mod github;
pub mod wait;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The path of the workspace binary `name`, built into the same profile directory as the running
/// test or bench (`target/<profile>/deps/<test>` runs; binaries are in `target/<profile>/`).
pub fn binary(name: &str) -> std::path::PathBuf {
    let test = std::env::current_exe().expect("the running executable's path");
    let profile = test
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let path = profile.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is not built: run the tests with `cargo test --workspace` (or build it with `cargo build -p preloop-server -p preloop-testkit --bins`)",
        path.display()
    );
    path
}

/// The admin API key the gateway is bootstrapped with.
pub const ADMIN_KEY: &str = "pl_e2e_admin_key_0123456789abcdef0123456789";

/// A child process, killed when dropped, with the URL it printed.
#[derive(Debug)]
pub struct Process {
    /// The process.
    pub child: Child,
    /// The URL it announced.
    pub url: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` and waits for the line starting with `marker`, whose next word is the URL.
pub fn spawn(command: &mut Command, marker: &str) -> Process {
    let mut child = command
        .stdout(Stdio::piped())
        // `E2E_LOGS=1` shows the children's logs, for debugging a failing test.
        .stderr(if std::env::var_os("E2E_LOGS").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("process starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the process prints its address")
            .expect("readable output");
        if let Some(rest) = line.strip_prefix(marker) {
            break rest
                .split_whitespace()
                .next()
                .expect("an address")
                .to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Process { child, url }
}

/// Starts the test upstream MCP server over streamable HTTP on a free port.
pub fn start_upstream() -> Process {
    spawn(
        Command::new(binary("preloop-test-upstream")).args(["--http", "127.0.0.1:0"]),
        "listening on ",
    )
}

/// Starts `preloop serve` on a free port with `config` (written to the data directory), the
/// admin key bootstrapped, and `env` set.
pub fn start_gateway(data_dir: &Path, config: &str, env: &[(&str, &str)]) -> Process {
    let config_path = data_dir.join("preloop.toml");
    std::fs::write(&config_path, config).expect("config written");
    spawn(
        Command::new(binary("preloop"))
            .args(["serve", "--bind", "127.0.0.1:0", "--config"])
            .arg(&config_path)
            .arg("--data-dir")
            .arg(data_dir)
            .env("PRELOOP_ADMIN_API_KEY", ADMIN_KEY)
            .env_remove("DATABASE_URL")
            .env_remove("SECRET_KEY")
            .envs(env.iter().copied()),
        "preloop listening on ",
    )
}

/// An MCP client session.
pub type Client = RunningService<RoleClient, ()>;

/// Why an MCP session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The handshake failed (refused credentials, say).
    #[error("the MCP handshake failed: {0}")]
    Handshake(#[from] Box<rmcp::service::ClientInitializeError>),
}

/// Opens an MCP session at `url` with an optional bearer token.
pub async fn connect_url(url: &str, token: Option<&str>) -> Result<Client, ConnectError> {
    connect_with(url, token, ()).await
}

/// Opens an MCP session whose notifications go to `handler`.
pub async fn connect_with<H: rmcp::ClientHandler>(
    url: &str,
    token: Option<&str>,
    handler: H,
) -> Result<RunningService<RoleClient, H>, ConnectError> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    config.auth_header = token.map(str::to_owned);
    // A pooled client (rmcp's default opens a connection per request), as the gateway uses for
    // its upstreams: the load tool measures both paths with the same client.
    let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
    Ok(handler
        .serve(StreamableHttpClientTransport::with_client(http, config))
        .await
        .map_err(Box::new)?)
}

/// Calls a tool with JSON-object arguments.
pub async fn call(client: &Client, tool: &str, arguments: Value) -> CallToolResult {
    let Value::Object(arguments) = arguments else {
        panic!("arguments must be an object")
    };
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments))
        .await
        .expect("the call gets a result")
}

/// The text items of a result, joined by newlines.
pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One REST call: `method` on `url` with a bearer token and an optional JSON body; returns the
/// status and the JSON body (`null` when there is none).
pub async fn rest(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a readable body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// The password [`register`] gives new organizations' admins.
pub const TENANT_PASSWORD: &str = "a long enough password";

/// Registers a new organization on the gateway at `base` with `email` as its admin, signs in,
/// and returns the admin's access token.
pub async fn register(base: &str, email: &str) -> String {
    let body = serde_json::json!({"email": email, "password": TENANT_PASSWORD});
    let (status, answer) = rest(
        reqwest::Method::POST,
        &format!("{base}/api/v1/auth/register"),
        None,
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let (status, tokens) = rest(
        reqwest::Method::POST,
        &format!("{base}/api/v1/auth/token"),
        None,
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    tokens["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// Waits until `tool` is (or, with `present: false`, is no longer) listed to `client`.
pub async fn wait_for_tool(client: &Client, tool: &str, present: bool) {
    wait_for_listing(client, tool, present).await;
}

/// Waits until any client's session lists `tool`.
pub async fn wait_for_tool_in<H: rmcp::ClientHandler>(
    client: &RunningService<RoleClient, H>,
    tool: &str,
) {
    wait_for_listing(client, tool, true).await;
}

async fn wait_for_listing<H: rmcp::ClientHandler>(
    client: &RunningService<RoleClient, H>,
    tool: &str,
    present: bool,
) {
    let what = format!(
        "`{tool}` is {}",
        if present { "listed" } else { "unlisted" }
    );
    wait::eventually(&what, async || {
        let listed = client
            .list_all_tools()
            .await
            .expect("tools/list answers")
            .iter()
            .any(|t| t.name == tool);
        listed == present
    })
    .await;
}

/// Starts an MCP session over plain HTTP (initialize, then `notifications/initialized`) and
/// returns its id, for tests that take a session somewhere else.
pub async fn raw_session(mcp_url: &str) -> String {
    raw_session_as(mcp_url, ADMIN_KEY).await
}

/// [`raw_session`] as the holder of `token`.
pub async fn raw_session_as(mcp_url: &str, token: &str) -> String {
    let http = reqwest::Client::new();
    let response = http
        .post(mcp_url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "raw-e2e", "version": "1"}}
        }))
        .send()
        .await
        .expect("initialize is answered");
    assert_eq!(response.status(), 200);
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .expect("a session id")
        .to_owned();
    let initialized = raw_post_as(
        mcp_url,
        token,
        &session,
        serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(initialized.0, 202);
    session
}

/// POSTs one JSON-RPC message in session `session`; returns the status and the body text.
pub async fn raw_post(mcp_url: &str, session: &str, message: Value) -> (u16, String) {
    raw_post_as(mcp_url, ADMIN_KEY, session, message).await
}

/// [`raw_post`] as the holder of `token`.
pub async fn raw_post_as(
    mcp_url: &str,
    token: &str,
    session: &str,
    message: Value,
) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(mcp_url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&message)
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Creates a user of the organization `admin` administers, and an API key of theirs; returns
/// the user's id, the key's id and the key's secret.
pub async fn user_with_key(
    base: &str,
    admin: &str,
    email: &str,
    roles: &[&str],
    key_name: &str,
) -> (String, String, String) {
    let (status, user) = rest(
        reqwest::Method::POST,
        &format!("{base}/api/v1/users"),
        Some(admin),
        Some(serde_json::json!({"email": email, "roles": roles})),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    let user_id = user["id"].as_str().expect("a user id").to_owned();
    let (status, key) = rest(
        reqwest::Method::POST,
        &format!("{base}/api/v1/api-keys"),
        Some(admin),
        Some(serde_json::json!({"name": key_name, "user_id": user_id})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let id = key["id"].as_str().expect("a key id").to_owned();
    let secret = key["secret"].as_str().expect("a secret").to_owned();
    (user_id, id, secret)
}

/// A receiver standing in for a webhook's consumer: every delivery's headers and body go to
/// the test; with `refuse_first`, the first delivery is answered 503 (so retries are tried).
pub async fn webhook_receiver(
    refuse_first: bool,
) -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(axum::http::HeaderMap, axum::body::Bytes)>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (sender, received) = tokio::sync::mpsc::unbounded_channel();
    let refused = std::sync::Arc::new(AtomicBool::new(!refuse_first));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (sender, refused) = (sender.clone(), refused.clone());
                async move {
                    if !refused.swap(true, Ordering::SeqCst) {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let _ = sender.send((headers, body));
                    axum::http::StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let url = format!("http://{}/hook", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

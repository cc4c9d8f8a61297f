//! The HTTP surface, in process: the whole server assembled over an in-memory database, and
//! each input sent as the body of one of the routes that parse what callers send (JSON-RPC on
//! the MCP endpoint, the chat platforms' callbacks with valid signatures, REST and HITL
//! bodies, sign-in). The server must answer every one without panicking and without a 5xx
//! (a 502 from an upstream, or a 503, are not the caller's fault and not bugs here).
//!
//! Input: one byte choosing the route, then the body.

#![no_main]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use preloop_server::config::{ConfigFile, Overrides, Settings};
use preloop_server::runtime::serve::{Assembled, ServeOptions, assemble};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use tower::ServiceExt;

const ADMIN_KEY: &str = "pl_fuzz_admin_key_0123456789abcdef0123456789";
const SLACK_SECRET: &str = "slack-signing-secret-for-fuzzing";
const TELEGRAM_SECRET: &str = "telegram-webhook-secret";

const CONFIG: &str = r#"
[channels]
organizations = ["*"]

[channels.slack]
webhook_url = "http://127.0.0.1:9/slack"
signing_secret = "slack-signing-secret-for-fuzzing"

[channels.mattermost]
webhook_url = "http://127.0.0.1:9/mattermost"

[channels.telegram]
bot_token = "123:fuzz"
chat_id = "1"
updates = "webhook"
webhook_secret = "telegram-webhook-secret"
api_url = "http://127.0.0.1:9"

[[approval_policies]]
name = "ops"
default = true
approvers = ["role:admin"]
mode = "async"
channels = ["web", "slack", "mattermost", "telegram"]

[policy]
default = "allow"
[[policy.rules]]
tools = ["request_approval"]
action = "require_approval"
"#;

struct Server {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    session: String,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let data = tempfile::tempdir().expect("a data directory").keep();
        let file: ConfigFile = toml::from_str(CONFIG).expect("the fuzzing configuration parses");
        let settings = Settings::resolve(
            file,
            Overrides {
                bind: Some("127.0.0.1:8000".to_owned()),
                data_dir: Some(data),
                database_url: Some("sqlite::memory:".to_owned()),
            },
        )
        .expect("the settings resolve");
        let options = ServeOptions {
            admin_api_key: Some(ADMIN_KEY.to_owned()),
            secret_key: Some("a secret key for fuzzing, 32+ characters long".to_owned()),
            registration_enabled: true,
        };
        let Assembled { router, .. } = runtime
            .block_on(assemble(&settings, options))
            .expect("the server assembles");
        let session = runtime.block_on(open_session(&router));
        Server {
            runtime,
            router,
            session,
        }
    })
}

fn mcp_request(session: Option<&str>, body: Vec<u8>) -> Request<Body> {
    let mut request = Request::post("/mcp/v1")
        .header("host", "127.0.0.1:8000")
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25");
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    request.body(Body::from(body)).expect("a request")
}

/// An initialized MCP session, for the fast path.
async fn open_session(router: &axum::Router) -> String {
    let initialize = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}}
    });
    let response = router
        .clone()
        .oneshot(mcp_request(None, initialize.to_string().into_bytes()))
        .await
        .expect("initialize is answered");
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_owned();
    let initialized = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    router
        .clone()
        .oneshot(mcp_request(Some(&session), initialized.to_string().into_bytes()))
        .await
        .expect("initialized is answered");
    session
}

fn json_post(path: &str, body: Vec<u8>, bearer: Option<&str>) -> Request<Body> {
    let mut request = Request::post(path)
        .header("host", "127.0.0.1:8000")
        .header("content-type", "application/json");
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.body(Body::from(body)).expect("a request")
}

fn request_for(route: u8, body: Vec<u8>, session: &str) -> Request<Body> {
    match route % 9 {
        0 => mcp_request(Some(session), body),
        1 => mcp_request(None, body),
        2 => {
            let timestamp = chrono::Utc::now().timestamp().to_string();
            let signature =
                preloop_server::signing::slack_signature(SLACK_SECRET, &timestamp, &body);
            Request::post("/api/v1/channels/slack/interactions")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-slack-request-timestamp", timestamp)
                .header("x-slack-signature", signature)
                .body(Body::from(body))
                .expect("a request")
        }
        3 => json_post("/api/v1/channels/mattermost/actions", body, None),
        4 => Request::post("/api/v1/channels/telegram/webhook")
            .header("content-type", "application/json")
            .header("x-telegram-bot-api-secret-token", TELEGRAM_SECRET)
            .body(Body::from(body))
            .expect("a request"),
        5 => json_post("/api/v1/access-rules", body, Some(ADMIN_KEY)),
        6 => json_post("/hitl/request", body, Some(ADMIN_KEY)),
        7 => json_post("/api/v1/auth/token", body, None),
        _ => json_post("/api/v1/approval-requests/00000000-0000-0000-0000-000000000000/decide", body, Some(ADMIN_KEY)),
    }
}

/// Answers by status class (2xx, 3xx, 4xx, 5xx), printed every 10,000 inputs.
static ANSWERS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

fn count(status: StatusCode) {
    let class = usize::from(status.as_u16() / 100).clamp(2, 5) - 2;
    let seen = ANSWERS[class].fetch_add(1, Ordering::Relaxed) + 1;
    let total: u64 = ANSWERS.iter().map(|a| a.load(Ordering::Relaxed)).sum();
    if total % 10_000 == 0 {
        let [ok, redirect, refused, failed] = ANSWERS.each_ref().map(|a| a.load(Ordering::Relaxed));
        eprintln!("http: {total} inputs answered: {ok} 2xx, {redirect} 3xx, {refused} 4xx, {failed} 5xx (last: {seen} in class {})", class + 2);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    let server = server();
    let request = request_for(route, body.to_vec(), &server.session);
    let path = request.uri().path().to_owned();
    let status = server
        .runtime
        .block_on(server.router.clone().oneshot(request))
        .map(|response| response.status())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    count(status);
    let not_the_callers_fault = matches!(status, StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !status.is_server_error() || not_the_callers_fault,
        "{path} answered {status} to a caller's input"
    );
});

//! `tools/call` on a streamable HTTP upstream without rmcp's client machinery.
//!
//! rmcp's client sends every request through its service task and its transport worker task,
//! and reads answers through a reconnecting SSE stream; per call that costs more than the HTTP
//! exchange itself. Tool calls are the hot path, so this caller makes them directly: one POST
//! on the (pooled, when `keep_alive`) HTTP client, in an MCP session of its own that it opens
//! with the `initialize` handshake when first needed and again when the server has forgotten
//! it (404). The answer is read as JSON or as an SSE stream, whose progress and log
//! notifications go to the call's observer in stream order; requests the upstream makes of the
//! client meanwhile (sampling, elicitation) are refused, since Preloop cannot relay them.
//!
//! Discovery and `notifications/tools/list_changed` stay on the rmcp connection
//! ([`crate::gateway::upstream::client`]).

use futures::{StreamExt, TryStreamExt};
use preloop_core::executor::ExecutionObserver;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::RwLock;

/// The protocol version this caller asks for.
const PROTOCOL_VERSION: &str = "2025-06-18";
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// Largest answer read from an upstream (a tool's result with its notifications).
pub const MAX_ANSWER_BYTES: usize = 32 << 20;

/// Why an upstream's answer could not be read.
#[derive(Debug, thiserror::Error)]
enum AnswerError {
    /// It was larger than [`MAX_ANSWER_BYTES`].
    #[error("the upstream's answer is larger than {} MiB", MAX_ANSWER_BYTES >> 20)]
    TooLarge,
    /// The connection failed.
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
}

/// An upstream's configured headers as HTTP headers, values marked sensitive (they may hold
/// credentials), or the first that does not parse.
pub fn parse_headers(headers: &BTreeMap<String, String>) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name: HeaderName = name.parse().map_err(|e| format!("header `{name}`: {e}"))?;
        let mut value: HeaderValue = value
            .parse()
            .map_err(|e| format!("header `{name}` value: {e}"))?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The upstream could not be reached or broke the protocol; the session is in doubt.
    #[error("{0}")]
    Transport(String),
    /// The upstream answered with a JSON-RPC error.
    #[error("the upstream refused the call: {0}")]
    Refused(String),
}

/// An MCP session with the upstream.
#[derive(Debug, Clone)]
struct Session {
    /// The id the server gave, if it keeps sessions.
    id: Option<HeaderValue>,
    /// The protocol version it agreed to.
    version: HeaderValue,
}

/// Calls tools on one streamable HTTP upstream.
#[derive(Debug)]
pub struct HttpCaller {
    http: reqwest::Client,
    url: String,
    headers: HeaderMap,
    session: RwLock<Option<Session>>,
    next_id: AtomicU64,
}

impl HttpCaller {
    /// A caller for the server at `url`, sending `headers` (credentials included) on every
    /// request.
    pub fn new(
        http: reqwest::Client,
        url: &str,
        headers: &BTreeMap<String, String>,
    ) -> Result<Self, String> {
        let mut map = parse_headers(headers)?;
        map.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Self {
            http,
            url: url.to_owned(),
            headers: map,
            session: RwLock::new(None),
            next_id: AtomicU64::new(1),
        })
    }

    /// Forgets the session, so the next call opens a new one (after a transport failure).
    pub async fn reset(&self) {
        self.session.write().await.take();
    }

    /// Calls tool `name`; returns the `CallToolResult` object. Progress and log messages go to
    /// `observer` as they arrive.
    pub async fn call(
        &self,
        name: &str,
        arguments: &Value,
        observer: Option<&Arc<dyn ExecutionObserver>>,
    ) -> Result<Value, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut params = json!({"name": name, "arguments": arguments});
        if observer.is_some() {
            params["_meta"] = json!({"progressToken": id});
        }
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
        let mut session = self.session().await.map_err(CallError::Transport)?;
        let mut response = self
            .post(&session, &request)
            .await
            .map_err(CallError::Transport)?;
        // The server forgot the session (it restarted): a new one, and the call again (a server
        // that does not know the session did not run the call).
        if response.status() == reqwest::StatusCode::NOT_FOUND && session.id.is_some() {
            self.forget(&session).await;
            session = self.session().await.map_err(CallError::Transport)?;
            response = self
                .post(&session, &request)
                .await
                .map_err(CallError::Transport)?;
        }
        let answer = self
            .answer(response, id, observer, Some(&session))
            .await
            .map_err(CallError::Transport)?;
        match (answer.get("result"), answer.get("error")) {
            (Some(result), _) => Ok(result.clone()),
            (None, Some(error)) => Err(CallError::Refused(
                error["message"].as_str().unwrap_or("no message").to_owned(),
            )),
            (None, None) => Err(CallError::Transport(
                "the upstream answered without a result".to_owned(),
            )),
        }
    }

    /// The current session, opening one if there is none.
    async fn session(&self) -> Result<Session, String> {
        if let Some(session) = self.session.read().await.as_ref() {
            return Ok(session.clone());
        }
        let mut slot = self.session.write().await;
        if let Some(session) = slot.as_ref() {
            return Ok(session.clone());
        }
        let session = self.initialize().await?;
        *slot = Some(session.clone());
        Ok(session)
    }

    /// Forgets `session` unless another call already replaced it.
    async fn forget(&self, session: &Session) {
        let mut slot = self.session.write().await;
        if slot.as_ref().is_some_and(|s| s.id == session.id) {
            slot.take();
        }
    }

    /// The `initialize` handshake: a session id (if the server keeps sessions) and the agreed
    /// protocol version, then `notifications/initialized`.
    async fn initialize(&self) -> Result<Session, String> {
        let request = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "preloop", "version": env!("CARGO_PKG_VERSION")},
        }});
        let unversioned = Session {
            id: None,
            version: HeaderValue::from_static(PROTOCOL_VERSION),
        };
        let response = self.post(&unversioned, &request).await?;
        let id = response.headers().get(SESSION_HEADER).cloned();
        let answer = self.answer(response, 0, None, None).await?;
        let version = answer["result"]["protocolVersion"]
            .as_str()
            .and_then(|v| HeaderValue::from_str(v).ok())
            .ok_or_else(|| {
                "the upstream did not initialize: its answer has no protocol version".to_owned()
            })?;
        let session = Session { id, version };
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let response = self.post(&session, &initialized).await?;
        if !response.status().is_success() {
            return Err(format!(
                "the upstream refused `notifications/initialized`: {}",
                response.status()
            ));
        }
        Ok(session)
    }

    async fn post(&self, session: &Session, body: &Value) -> Result<reqwest::Response, String> {
        let mut request = self
            .http
            .post(&self.url)
            .headers(self.headers.clone())
            .header(VERSION_HEADER, session.version.clone())
            .json(body);
        if let Some(id) = &session.id {
            request = request.header(SESSION_HEADER, id.clone());
        }
        request.send().await.map_err(|e| e.to_string())
    }

    /// The JSON-RPC answer with id `id`, from a JSON body or an SSE stream (passing the
    /// stream's notifications to `observer` on the way).
    async fn answer(
        &self,
        response: reqwest::Response,
        id: u64,
        observer: Option<&Arc<dyn ExecutionObserver>>,
        session: Option<&Session>,
    ) -> Result<Value, String> {
        let status = response.status();
        if !status.is_success() {
            // The body is not passed on: it could be an internal service's page.
            return Err(format!("the upstream answered {status}"));
        }
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        // INVARIANT (an upstream cannot exhaust the gateway's memory): no answer, JSON or
        // stream, is read past MAX_ANSWER_BYTES.
        let mut read = 0usize;
        let bounded = response.bytes_stream().map(move |chunk| {
            let chunk = chunk?;
            read = read.saturating_add(chunk.len());
            if read > MAX_ANSWER_BYTES {
                return Err(AnswerError::TooLarge);
            }
            Ok(chunk)
        });
        if !is_sse {
            let body: Vec<u8> = bounded
                .try_fold(Vec::new(), |mut body, chunk| async move {
                    body.extend_from_slice(&chunk);
                    Ok(body)
                })
                .await
                .map_err(|e| e.to_string())?;
            return serde_json::from_slice(&body).map_err(|e| e.to_string());
        }
        let mut events = sse_stream::SseStream::from_bytes_stream(bounded);
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| format!("the upstream's stream broke: {e}"))?;
            let Some(message) = event
                .data
                .as_deref()
                .and_then(|data| serde_json::from_str::<Value>(data).ok())
            else {
                continue;
            };
            if message.get("method").is_none() {
                if message["id"] == id {
                    return Ok(message);
                }
                continue;
            }
            if message.get("id").is_some() {
                self.refuse(&message, session).await;
            } else if let Some(observer) = observer {
                observe(observer, &message, id);
            }
        }
        Err("the upstream closed the stream without answering".to_owned())
    }

    /// Answers a request the upstream made of this client with "method not found".
    async fn refuse(&self, request: &Value, session: Option<&Session>) {
        let Some(session) = session else { return };
        let refusal = json!({"jsonrpc": "2.0", "id": request["id"], "error": {
            "code": -32601,
            "message": "Preloop does not relay requests from upstream servers to the client",
        }});
        if let Err(error) = self.post(session, &refusal).await {
            tracing::debug!(%error, "could not refuse an upstream request");
        }
    }
}

/// Passes a progress notification for this call, or a log message, to the observer.
fn observe(observer: &Arc<dyn ExecutionObserver>, message: &Value, id: u64) {
    let params = &message["params"];
    match message["method"].as_str() {
        Some("notifications/progress") if params["progressToken"] == id => {
            if let Some(progress) = params["progress"].as_f64() {
                observer.progress(
                    progress,
                    params["total"].as_f64(),
                    params["message"].as_str(),
                );
            }
        }
        Some("notifications/message") => observer.log(
            params["level"].as_str().unwrap_or("info"),
            params["logger"].as_str(),
            &params["data"],
        ),
        _ => {}
    }
}

//! An upstream's tools over streamable HTTP without rmcp's client machinery.
//!
//! rmcp's client sends every request through its service task and its transport worker task,
//! and reads answers through a reconnecting SSE stream; per call that costs more than the HTTP
//! exchange itself. Tool calls are the hot path, so this caller makes them directly: one POST
//! on the (pooled, when `keep_alive`) HTTP client, in an MCP session of its own that it opens
//! with the `initialize` handshake when first needed and again when the server has forgotten
//! it (404). The answer is read as JSON or as an SSE stream, decoded with rmcp's message
//! types; the stream's progress and log notifications go to the call's observer in stream
//! order ([`crate::wire::notifications`]); requests the upstream makes of the client meanwhile
//! (sampling, elicitation, roots) are asked of the calling client through the observer, and
//! its answers posted back. So that the upstream sees what the client can be asked, each set
//! of client capabilities gets its own upstream session (a handful at most: clients of one kind
//! declare the same). A stream the server closes before answering (SEP-1699 polling) is
//! resumed at once with a GET carrying `Last-Event-ID`, and the calling client told to pause too.
//!
//! `notifications/tools/list_changed` stays on the rmcp connection
//! ([`crate::gateway::upstream::connection`]).

use super::caller::{ToolRequest, UpstreamClient, method_and_params};
use super::error::UpstreamError;
use super::modern::ModernCaller;
use crate::wire::notifications::{audience, report};
use futures::{StreamExt, TryStreamExt};
use preloop_core::executor::{AskError, ExecutionObserver};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use rmcp::model::{
    ClientRequest, ErrorCode, ErrorData, InitializeResult, JsonRpcMessage, JsonRpcRequest,
    ListToolsResult, NumberOrString, ProgressToken, RequestId, ServerNotification, ServerRequest,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::RwLock;

/// The protocol version this caller asks for.
const PROTOCOL_VERSION: &str = "2025-11-25";
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// Largest answer read from an upstream (a tool's result with its notifications), per stream.
pub const MAX_ANSWER_BYTES: usize = 32 << 20;
/// Most times one answer's stream is resumed after the server closed it.
const MAX_RESUMES: usize = 10;

/// A message from the upstream, its result still JSON (decoded once its request is known).
pub(super) type UpstreamMessage = JsonRpcMessage<ServerRequest, Value, ServerNotification>;

/// An upstream's configured headers as HTTP headers, values marked sensitive (they may hold
/// credentials), or the first that does not parse.
pub fn parse_headers(headers: &BTreeMap<String, String>) -> Result<HeaderMap, UpstreamError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header: HeaderName = name.parse().map_err(|source| UpstreamError::HeaderName {
            name: name.clone(),
            source,
        })?;
        let mut value: HeaderValue =
            value.parse().map_err(|source| UpstreamError::HeaderValue {
                name: name.clone(),
                source,
            })?;
        value.set_sensitive(true);
        map.insert(header, value);
    }
    Ok(map)
}

/// An MCP session with the upstream.
#[derive(Debug, Clone)]
struct Session {
    /// The id the server gave, if it keeps sessions.
    id: Option<HeaderValue>,
    /// The protocol version it agreed to.
    version: HeaderValue,
}

/// Most upstream sessions kept at once (one per set of client capabilities); past it they
/// are all forgotten and opened again as needed.
const MAX_SESSIONS: usize = 16;

/// Calls tools on one streamable HTTP upstream.
#[derive(Debug)]
pub struct HttpCaller {
    http: reqwest::Client,
    url: String,
    headers: HeaderMap,
    /// Sessions by the client capabilities they declared (as JSON text).
    sessions: RwLock<HashMap<String, Session>>,
    next_id: AtomicI64,
}

impl HttpCaller {
    /// A caller for the server at `url`, sending `headers` (credentials included) on every
    /// request.
    pub fn new(
        http: reqwest::Client,
        url: &str,
        headers: &BTreeMap<String, String>,
    ) -> Result<Self, UpstreamError> {
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
            sessions: RwLock::new(HashMap::new()),
            next_id: AtomicI64::new(1),
        })
    }

    /// Asks the server whether it also speaks 2026-07-28, with the same headers; a stateless
    /// caller if it does ([`ModernCaller::discover`]).
    pub async fn discover_modern(&self) -> Result<Option<ModernCaller>, UpstreamError> {
        ModernCaller::discover(self.http.clone(), &self.url, self.headers.clone()).await
    }

    /// Sends request `method` with `params` in the session for the observer's client
    /// capabilities (a new one if the server forgot it) and returns its result; progress for
    /// `progress` and log messages go to `observer` as they arrive, and the upstream's
    /// questions to the client through it.
    async fn request(
        &self,
        method: &str,
        params: Value,
        observer: Option<(&ProgressToken, &Arc<dyn ExecutionObserver>)>,
    ) -> Result<Value, UpstreamError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let capabilities = observer.map_or_else(|| json!({}), |(_, o)| o.capabilities());
        let exchange = async {
            let mut session = self.session(&capabilities).await?;
            let mut response = self.post(&session, &request).await?;
            // The server forgot the session (it restarted): a new one, and the request again
            // (a server that does not know the session did not run it).
            if response.status() == reqwest::StatusCode::NOT_FOUND && session.id.is_some() {
                self.forget(&capabilities, &session).await;
                session = self.session(&capabilities).await?;
                response = self.post(&session, &request).await?;
            }
            self.answer(response, id, observer, Some(&session)).await
        };
        let Some((_, observer)) = observer else {
            return exchange.await;
        };
        tokio::select! {
            answered = exchange => answered,
            () = observer.cancelled() => {
                // The upstream is told in the session the request went in.
                if let Ok(session) = self.session(&capabilities).await {
                    let cancelled = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": id, "reason": "the caller cancelled the call"}});
                    if let Err(error) = self.post(&session, &cancelled).await {
                        tracing::debug!(%error, "could not tell an upstream of a cancellation");
                    }
                }
                Err(UpstreamError::Cancelled)
            }
        }
    }

    /// The session declaring `capabilities`, opening one if there is none.
    async fn session(&self, capabilities: &Value) -> Result<Session, UpstreamError> {
        let key = capabilities.to_string();
        if let Some(session) = self.sessions.read().await.get(&key) {
            return Ok(session.clone());
        }
        let mut sessions = self.sessions.write().await;
        if let Some(session) = sessions.get(&key) {
            return Ok(session.clone());
        }
        let session = self.initialize(capabilities).await?;
        if sessions.len() >= MAX_SESSIONS {
            sessions.clear();
        }
        sessions.insert(key, session.clone());
        Ok(session)
    }

    /// Forgets `session` unless another call already replaced it.
    async fn forget(&self, capabilities: &Value, session: &Session) {
        let key = capabilities.to_string();
        let mut sessions = self.sessions.write().await;
        if sessions.get(&key).is_some_and(|s| s.id == session.id) {
            sessions.remove(&key);
        }
    }

    /// The `initialize` handshake declaring `capabilities`: a session id (if the server
    /// keeps sessions) and the agreed protocol version, then `notifications/initialized`.
    async fn initialize(&self, capabilities: &Value) -> Result<Session, UpstreamError> {
        let request = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": capabilities,
            "clientInfo": {"name": "preloop", "version": env!("CARGO_PKG_VERSION")},
        }});
        let unversioned = Session {
            id: None,
            version: HeaderValue::from_static(PROTOCOL_VERSION),
        };
        let response = self.post(&unversioned, &request).await?;
        let id = response.headers().get(SESSION_HEADER).cloned();
        let result = self.answer(response, 0, None, None).await?;
        let result: InitializeResult =
            serde_json::from_value(result).map_err(|e| UpstreamError::NotInitialized {
                reason: format!("its answer is not an initialize result: {e}"),
            })?;
        let version = HeaderValue::from_str(result.protocol_version.as_str()).map_err(|_| {
            UpstreamError::NotInitialized {
                reason: "its protocol version cannot be sent back".to_owned(),
            }
        })?;
        let session = Session { id, version };
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let response = self.post(&session, &initialized).await?;
        if !response.status().is_success() {
            return Err(UpstreamError::NotInitialized {
                reason: format!(
                    "it refused `notifications/initialized`: {}",
                    response.status()
                ),
            });
        }
        Ok(session)
    }

    async fn post(
        &self,
        session: &Session,
        body: &impl serde::Serialize,
    ) -> Result<reqwest::Response, UpstreamError> {
        let request = self
            .in_session(self.http.post(&self.url), session)
            .json(body);
        request.send().await.map_err(UpstreamError::Http)
    }

    /// `request` with the configured headers and those of `session`.
    fn in_session(
        &self,
        request: reqwest::RequestBuilder,
        session: &Session,
    ) -> reqwest::RequestBuilder {
        let request = request
            .headers(self.headers.clone())
            .header(VERSION_HEADER, session.version.clone());
        match &session.id {
            Some(id) => request.header(SESSION_HEADER, id.clone()),
            None => request,
        }
    }

    /// The result of the request with id `id`, from a JSON body or an SSE stream (passing the
    /// stream's notifications to `observer` on the way).
    async fn answer(
        &self,
        response: reqwest::Response,
        id: i64,
        observer: Option<(&ProgressToken, &Arc<dyn ExecutionObserver>)>,
        session: Option<&Session>,
    ) -> Result<Value, UpstreamError> {
        let status = response.status();
        if !status.is_success() {
            // The body is not passed on: it could be an internal service's page.
            return Err(UpstreamError::Status { status });
        }
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let id = RequestId::Number(id);
        if !is_sse {
            let body: Vec<u8> = bounded(response)
                .try_fold(Vec::new(), |mut body, chunk| async move {
                    body.extend_from_slice(&chunk);
                    Ok(body)
                })
                .await?;
            let message: UpstreamMessage =
                serde_json::from_slice(&body).map_err(UpstreamError::Unreadable)?;
            return result_of(message, &id).unwrap_or(Err(UpstreamError::Unanswered));
        }
        let mut stream = response;
        let mut position = StreamPosition::default();
        for _ in 0..=MAX_RESUMES {
            if let Some(result) = self
                .read_stream(stream, &id, observer, session, &mut position)
                .await?
            {
                return Ok(result);
            }
            // The server closed the stream before answering (SEP-1699 polling): the answer
            // comes on a GET that resumes after the last event seen.
            let (Some(last), Some(session)) = (position.last_event_id.take(), session) else {
                break;
            };
            // The caller's client may be told to do the same. The gateway itself resumes at
            // once, whatever `retry` asked: a server holds a resuming GET open until it has
            // something to send, and some (the TypeScript SDK's) keep nothing they sent while
            // no stream was open, so waiting loses the answer.
            if let Some((_, observer)) = observer {
                observer.paused(position.retry);
            }
            stream = self.resume(session, &last).await?;
            if !stream.status().is_success() {
                return Err(UpstreamError::Status {
                    status: stream.status(),
                });
            }
        }
        Err(UpstreamError::Unanswered)
    }

    /// Reads one SSE stream until the answer to `id` (`None` if it ends first), passing the
    /// notifications to `observer` and its questions to the client, and noting the last event
    /// id and retry delay in `position`.
    async fn read_stream(
        &self,
        response: reqwest::Response,
        id: &RequestId,
        observer: Option<(&ProgressToken, &Arc<dyn ExecutionObserver>)>,
        session: Option<&Session>,
        position: &mut StreamPosition,
    ) -> Result<Option<Value>, UpstreamError> {
        let mut events = sse_stream::SseStream::from_bytes_stream(bounded(response));
        while let Some(event) = events.next().await {
            let event = event.map_err(UpstreamError::Stream)?;
            if let Some(event_id) = event.id.filter(|i| !i.is_empty()) {
                position.last_event_id = Some(event_id);
            }
            if let Some(retry) = event.retry {
                position.retry = Duration::from_millis(retry);
            }
            let Some(message) = event
                .data
                .as_deref()
                .and_then(|data| serde_json::from_str::<UpstreamMessage>(data).ok())
            else {
                continue;
            };
            match message {
                JsonRpcMessage::Request(request) => {
                    let asker = observer.map(|(_, observer)| &**observer);
                    self.ask(request, asker, session).await;
                }
                JsonRpcMessage::Notification(notification) => {
                    let Some((token, observer)) = observer else {
                        continue;
                    };
                    let notification = &notification.notification;
                    if audience(notification).includes(token) {
                        report(&**observer, notification);
                    }
                }
                answer => {
                    if let Some(result) = result_of(answer, id) {
                        return result.map(Some);
                    }
                }
            }
        }
        Ok(None)
    }

    /// The session's stream again, from after event `last_event_id`.
    async fn resume(
        &self,
        session: &Session,
        last_event_id: &str,
    ) -> Result<reqwest::Response, UpstreamError> {
        let last = HeaderValue::from_str(last_event_id).map_err(|_| UpstreamError::Unanswered)?;
        let request = self
            .in_session(self.http.get(&self.url), session)
            .header(ACCEPT, HeaderValue::from_static("text/event-stream"))
            .header("last-event-id", last);
        request.send().await.map_err(UpstreamError::Http)
    }

    /// Asks the calling client (through `observer`) the request the upstream made of it, and
    /// posts its answer back in `session`; without an observer, or for a question the client
    /// cannot be asked, the upstream hears "method not found".
    async fn ask(
        &self,
        request: JsonRpcRequest<ServerRequest>,
        observer: Option<&dyn ExecutionObserver>,
        session: Option<&Session>,
    ) {
        let Some(session) = session else { return };
        let mut message = serde_json::to_value(&request.request).unwrap_or_default();
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let params = message
            .get_mut("params")
            .map_or_else(|| json!({}), Value::take);
        let answer = match observer {
            Some(observer) => observer.ask(&method, params).await,
            None => Err(AskError::Unsupported { method }),
        };
        let reply = match answer {
            Ok(result) => json!({"jsonrpc": "2.0", "id": request.id, "result": result}),
            Err(AskError::Refused(error)) => {
                json!({"jsonrpc": "2.0", "id": request.id, "error": error})
            }
            Err(AskError::Unsupported { method }) => json!({"jsonrpc": "2.0", "id": request.id,
                "error": ErrorData::new(ErrorCode::METHOD_NOT_FOUND,
                    format!("the client Preloop serves cannot be asked `{method}`"), None)}),
            Err(error) => json!({"jsonrpc": "2.0", "id": request.id,
                "error": ErrorData::internal_error(error.to_string(), None)}),
        };
        if let Err(error) = self.post(session, &reply).await {
            tracing::debug!(%error, "could not answer an upstream request");
        }
    }
}

/// Where an SSE stream had got to: what resuming it needs.
#[derive(Debug)]
struct StreamPosition {
    last_event_id: Option<String>,
    /// How long to wait before resuming (the stream's `retry`, else the SSE default).
    retry: Duration,
}

impl Default for StreamPosition {
    fn default() -> Self {
        Self {
            last_event_id: None,
            retry: Duration::from_secs(1),
        }
    }
}

/// `response`'s body, failing past [`MAX_ANSWER_BYTES`].
///
/// INVARIANT (an upstream cannot exhaust the gateway's memory): no answer, JSON or stream, is
/// read past MAX_ANSWER_BYTES.
pub(super) fn bounded(
    response: reqwest::Response,
) -> impl futures::Stream<Item = Result<axum::body::Bytes, UpstreamError>> {
    let mut read = 0usize;
    response.bytes_stream().map(move |chunk| {
        let chunk = chunk.map_err(UpstreamError::Http)?;
        read = read.saturating_add(chunk.len());
        if read > MAX_ANSWER_BYTES {
            return Err(UpstreamError::TooLarge);
        }
        Ok(chunk)
    })
}

/// The outcome `message` gives the request with id `id`, if it answers it.
pub(super) fn result_of(
    message: UpstreamMessage,
    id: &RequestId,
) -> Option<Result<Value, UpstreamError>> {
    match message {
        JsonRpcMessage::Response(response) if &response.id == id => Some(Ok(response.result)),
        JsonRpcMessage::Error(error) if error.id.as_ref() == Some(id) => {
            Some(Err(UpstreamError::Refused(error.error)))
        }
        _ => None,
    }
}

#[async_trait::async_trait]
impl UpstreamClient for HttpCaller {
    async fn list_tools_page(
        &self,
        cursor: Option<String>,
    ) -> Result<ListToolsResult, UpstreamError> {
        let params = cursor.map_or_else(|| json!({}), |cursor| json!({"cursor": cursor}));
        let page = self.request("tools/list", params, None).await?;
        serde_json::from_value(page).map_err(UpstreamError::Unreadable)
    }

    async fn call_tool(&self, call: ToolRequest) -> Result<Value, UpstreamError> {
        let mut params = json!({"name": call.name, "arguments": call.arguments});
        let token = call.observer.as_ref().map(|_| {
            ProgressToken(NumberOrString::Number(
                self.next_id.fetch_add(1, Ordering::Relaxed),
            ))
        });
        if let Some(token) = &token {
            params["_meta"] = json!({ "progressToken": token });
        }
        let observed = token.as_ref().zip(call.observer.as_ref());
        self.request("tools/call", params, observed).await
    }

    async fn forward(
        &self,
        request: ClientRequest,
        _observer: Option<&Arc<dyn ExecutionObserver>>,
    ) -> Result<Value, UpstreamError> {
        let (method, params) = method_and_params(&request)?;
        self.request(&method, params, None).await
    }

    async fn reset(&self) {
        self.sessions.write().await.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap as Headers, StatusCode};
    use axum::response::IntoResponse;
    use std::sync::Mutex;

    /// An upstream that answers `tools/call` by closing its stream after a priming event, and
    /// sends the result on the GET that resumes after it (what SEP-1699 allows).
    async fn polling_upstream(resumed: Arc<Mutex<Vec<String>>>) -> String {
        let post = |body: axum::body::Bytes| async move {
            let request: Value = serde_json::from_slice(&body).unwrap_or_default();
            let sse = [(CONTENT_TYPE, "text/event-stream")];
            match request["method"].as_str() {
                Some("initialize") => (
                    [
                        (SESSION_HEADER, "s-1"),
                        ("content-type", "application/json"),
                    ],
                    json!({"jsonrpc": "2.0", "id": 0, "result": {
                        "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                        "serverInfo": {"name": "polling", "version": "1"}}})
                    .to_string(),
                )
                    .into_response(),
                Some("tools/call") => (sse, "id: e-1\nretry: 10\ndata: \n\n").into_response(),
                _ => StatusCode::ACCEPTED.into_response(),
            }
        };
        let get = move |headers: Headers| async move {
            let last = headers
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            resumed.lock().unwrap().push(last);
            let result = json!({"jsonrpc": "2.0", "id": 1, "result": {
                "content": [{"type": "text", "text": "after the pause"}]}});
            (
                [(CONTENT_TYPE, "text/event-stream")],
                format!("id: e-2\ndata: {result}\n\n"),
            )
        };
        let app = axum::Router::new().route("/mcp", axum::routing::post(post).get(get));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn a_stream_closed_before_the_answer_is_resumed_after_its_last_event() {
        let resumed = Arc::new(Mutex::new(Vec::new()));
        let url = polling_upstream(resumed.clone()).await;
        let caller = HttpCaller::new(reqwest::Client::new(), &url, &BTreeMap::new()).unwrap();
        let result = caller
            .call_tool(ToolRequest::new("wait", rmcp::model::JsonObject::new()))
            .await
            .unwrap();
        assert_eq!(result["content"][0]["text"], "after the pause");
        assert_eq!(*resumed.lock().unwrap(), ["e-1"]);
    }
}

//! An upstream that speaks the 2026-07-28 generation of MCP, called the way that generation
//! asks: no handshake and no session, every request a POST of its own carrying the calling
//! client's context in `_meta` (protocol version, capabilities, identity, the log level it
//! wants, a progress token) and the headers that mirror its body (SEP-2243,
//! [`crate::wire::headers`]). The answer is one JSON body (the reference server writes the
//! request's notifications before it, a JSON text per line) or an SSE stream scoped to the
//! request; servers of this generation ask no questions during a request, they answer
//! `input_required` instead, which goes back to the caller as the result it is. A refusal the
//! server sends with an HTTP error status (a header mismatch, a missing client capability)
//! is read from the body and kept as the server's own JSON-RPC error.
//!
//! Whether a server speaks this generation is asked once per scan with `server/discover`
//! ([`ModernCaller::discover`]); a server that does not answer it is called in sessions
//! ([`super::http`], [`super::connection`]).

// MCP logging is deprecated by SEP-2577, but clients still use it and upstreams still send it.
#![allow(deprecated)]

use super::caller::{ToolRequest, UpstreamClient, method_and_params};
use super::error::UpstreamError;
use super::http::{UpstreamMessage, bounded, result_of};
use crate::wire::headers;
use crate::wire::notifications::{audience, report};
use futures::{StreamExt, TryStreamExt};
use preloop_core::executor::ExecutionObserver;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use rmcp::model::{
    ClientCapabilities, ClientRequest, Implementation, JsonObject, JsonRpcMessage, ListToolsResult,
    LoggingLevel, NumberOrString, ProgressToken, ProtocolVersion, RequestId, RequestMetaObject,
    ServerNotification,
};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

const VERSION_HEADER: &str = "mcp-protocol-version";
/// Largest error body read from an upstream's HTTP error answer.
const MAX_ERROR_BYTES: usize = 64 << 10;

/// Calls one upstream statelessly, in the 2026-07-28 generation.
#[derive(Debug)]
pub struct ModernCaller {
    http: reqwest::Client,
    url: String,
    /// The configured headers (credentials included), `Accept` and `Content-Type`.
    headers: HeaderMap,
    next_id: AtomicI64,
    /// The capabilities its `server/discover` declared.
    capabilities: Value,
}

impl ModernCaller {
    /// Asks the server at `url` (with `headers`, the configured ones plus `Accept` and
    /// `Content-Type`) whether it speaks 2026-07-28: a caller if it does, `None` if it
    /// answers in any other way (a server of the earlier generation refuses a request without
    /// a session, or does not know the method). Fails only when the server cannot be reached.
    pub async fn discover(
        http: reqwest::Client,
        url: &str,
        headers: HeaderMap,
    ) -> Result<Option<Self>, UpstreamError> {
        let caller = Self {
            http,
            url: url.to_owned(),
            headers,
            next_id: AtomicI64::new(1),
            capabilities: Value::Null,
        };
        let answer = match caller.send("server/discover", json!({}), None, None).await {
            Ok(answer) => answer,
            Err(UpstreamError::Http(error)) => return Err(UpstreamError::Http(error)),
            Err(_) => return Ok(None),
        };
        let speaks_modern = answer
            .get("supportedVersions")
            .and_then(Value::as_array)
            .is_some_and(|versions| {
                versions
                    .iter()
                    .any(|v| v.as_str() == Some(ProtocolVersion::V_2026_07_28.as_str()))
            });
        if !speaks_modern {
            return Ok(None);
        }
        Ok(Some(Self {
            capabilities: answer.get("capabilities").cloned().unwrap_or_default(),
            ..caller
        }))
    }

    /// Whether its discovery declared `capability` with `flag` set (e.g. `tools` /
    /// `listChanged`).
    fn declares(&self, capability: &str, flag: &str) -> bool {
        self.capabilities
            .get(capability)
            .and_then(|declared| declared.get(flag))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The `subscriptions/listen` filter asking for every list change the server declares;
    /// `None` when it declares none.
    pub fn list_changes(&self) -> Option<Value> {
        let mut filter = Map::new();
        for (capability, field) in [
            ("tools", "toolsListChanged"),
            ("prompts", "promptsListChanged"),
            ("resources", "resourcesListChanged"),
        ] {
            if self.declares(capability, "listChanged") {
                filter.insert(field.to_owned(), Value::Bool(true));
            }
        }
        (!filter.is_empty()).then_some(Value::Object(filter))
    }

    /// Listens (`subscriptions/listen` with `filter`) and hands every notification the stream
    /// carries to `heard`, until the stream ends: the server ended it, it broke, or it grew
    /// past [`super::http::MAX_ANSWER_BYTES`] (the caller listens again).
    pub async fn listen(
        &self,
        filter: Value,
        heard: &(dyn Fn(&ServerNotification) + Send + Sync),
    ) -> Result<(), UpstreamError> {
        let response = self
            .post(
                "subscriptions/listen",
                json!({"notifications": filter}),
                None,
                None,
            )
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(refusal(response)
                .await
                .unwrap_or(UpstreamError::Status { status }));
        }
        let hear = |message: UpstreamMessage| {
            if let JsonRpcMessage::Notification(notification) = message {
                heard(&notification.notification);
            }
        };
        if is_sse(&response) {
            let mut events = sse_stream::SseStream::from_bytes_stream(bounded(response));
            while let Some(event) = events.next().await {
                let event = event.map_err(UpstreamError::Stream)?;
                if let Some(message) = event
                    .data
                    .as_deref()
                    .and_then(|data| serde_json::from_str::<UpstreamMessage>(data).ok())
                {
                    hear(message);
                }
            }
            return Ok(());
        }
        // One JSON text per line, as they come.
        let mut chunks = bounded(response);
        let mut pending = Vec::new();
        while let Some(chunk) = chunks.next().await {
            pending.extend_from_slice(&chunk?);
            while let Some(end) = pending.iter().position(|byte| *byte == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if let Ok(message) = serde_json::from_slice::<UpstreamMessage>(&line) {
                    hear(message);
                }
            }
        }
        Ok(())
    }

    /// Sends request `method` with `params` for the client `observer` speaks for, and returns
    /// its result; the request's progress and log notifications go to the observer. `schema`
    /// is the called tool's input schema, for its `Mcp-Param-*` headers.
    async fn send(
        &self,
        method: &str,
        params: Value,
        observer: Option<&Arc<dyn ExecutionObserver>>,
        schema: Option<&Map<String, Value>>,
    ) -> Result<Value, UpstreamError> {
        let token = observer.map(|_| {
            ProgressToken(NumberOrString::Number(
                self.next_id.fetch_add(1, Ordering::Relaxed),
            ))
        });
        let exchange = async {
            let (id, response) = self
                .post_with_id(method, params, observer, token.as_ref(), schema)
                .await?;
            let observed = token.as_ref().zip(observer);
            answer(response, &RequestId::Number(id), observed).await
        };
        let Some(observer) = observer else {
            return exchange.await;
        };
        // Closing the request's stream is how a 2026-07-28 request is cancelled.
        tokio::select! {
            answered = exchange => answered,
            () = observer.cancelled() => Err(UpstreamError::Cancelled),
        }
    }

    /// Posts request `method` with `params` (no observer, no progress), for its response.
    async fn post(
        &self,
        method: &str,
        params: Value,
        observer: Option<&Arc<dyn ExecutionObserver>>,
        schema: Option<&Map<String, Value>>,
    ) -> Result<reqwest::Response, UpstreamError> {
        self.post_with_id(method, params, observer, None, schema)
            .await
            .map(|(_, response)| response)
    }

    /// Posts request `method` with `params` and the `_meta` of the client `observer` speaks
    /// for (with progress `token`); its id and the response.
    async fn post_with_id(
        &self,
        method: &str,
        params: Value,
        observer: Option<&Arc<dyn ExecutionObserver>>,
        token: Option<&ProgressToken>,
        schema: Option<&Map<String, Value>>,
    ) -> Result<(i64, reqwest::Response), UpstreamError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut params = match params {
            Value::Object(params) => params,
            _ => Map::new(),
        };
        let meta = request_meta(observer.map(|o| &**o), token);
        params.insert(
            "_meta".to_owned(),
            serde_json::to_value(meta).map_err(UpstreamError::Unreadable)?,
        );
        let params = Value::Object(params);
        let mut request = self
            .http
            .post(&self.url)
            .headers(self.headers.clone())
            .header(
                VERSION_HEADER,
                HeaderValue::from_static(ProtocolVersion::V_2026_07_28.as_str()),
            );
        for (name, value) in headers::mirrored(method, &params, schema) {
            request = request.header(name, value);
        }
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let response = request
            .json(&body)
            .send()
            .await
            .map_err(UpstreamError::Http)?;
        Ok((id, response))
    }
}

/// The `_meta` of a request made for the client `observer` speaks for: protocol version, what
/// it can be asked, Preloop as the client, the log level it wants and the progress token.
fn request_meta(
    observer: Option<&dyn ExecutionObserver>,
    token: Option<&ProgressToken>,
) -> RequestMetaObject {
    let capabilities: ClientCapabilities = observer
        .and_then(|o| serde_json::from_value(o.capabilities()).ok())
        .unwrap_or_default();
    let mut meta = RequestMetaObject::with_client_context(
        ProtocolVersion::V_2026_07_28,
        Implementation::new("preloop", env!("CARGO_PKG_VERSION")),
        capabilities,
    );
    let level = observer
        .and_then(ExecutionObserver::log_level)
        .and_then(|level| serde_json::from_value::<LoggingLevel>(Value::String(level)).ok());
    if let Some(level) = level {
        meta.set_log_level(level);
    }
    if let Some(token) = token {
        meta.set_progress_token(token.clone());
    }
    meta
}

/// The result of request `id` from `response`: its body's messages (one JSON text or several,
/// or an SSE stream) read in order, notifications passed to `observed` on the way. An error
/// status with a JSON-RPC error in its body is that error.
async fn answer(
    response: reqwest::Response,
    id: &RequestId,
    observed: Option<(&ProgressToken, &Arc<dyn ExecutionObserver>)>,
) -> Result<Value, UpstreamError> {
    let status = response.status();
    if !status.is_success() {
        return Err(refusal(response)
            .await
            .unwrap_or(UpstreamError::Status { status }));
    }
    if is_sse(&response) {
        let mut events = sse_stream::SseStream::from_bytes_stream(bounded(response));
        while let Some(event) = events.next().await {
            let event = event.map_err(UpstreamError::Stream)?;
            let Some(message) = event
                .data
                .as_deref()
                .and_then(|data| serde_json::from_str::<UpstreamMessage>(data).ok())
            else {
                continue;
            };
            if let Some(result) = take(message, id, observed) {
                return result;
            }
        }
        return Err(UpstreamError::Unanswered);
    }
    let body: Vec<u8> = bounded(response)
        .try_fold(Vec::new(), |mut body, chunk| async move {
            body.extend_from_slice(&chunk);
            Ok(body)
        })
        .await?;
    for message in serde_json::Deserializer::from_slice(&body).into_iter::<UpstreamMessage>() {
        let message = message.map_err(UpstreamError::Unreadable)?;
        if let Some(result) = take(message, id, observed) {
            return result;
        }
    }
    Err(UpstreamError::Unanswered)
}

/// Whether `response` is an SSE stream.
fn is_sse(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// What `message` means for request `id`: its outcome if it answers it; otherwise a
/// notification is reported to the call's observer, and a request (which servers of this
/// generation must not send) is ignored.
fn take(
    message: UpstreamMessage,
    id: &RequestId,
    observed: Option<(&ProgressToken, &Arc<dyn ExecutionObserver>)>,
) -> Option<Result<Value, UpstreamError>> {
    match message {
        JsonRpcMessage::Notification(notification) => {
            if let Some((token, observer)) = observed
                && audience(&notification.notification).includes(token)
            {
                report(&**observer, &notification.notification);
            }
            None
        }
        JsonRpcMessage::Request(request) => {
            tracing::debug!(id = ?request.id, "ignoring a request an upstream sent during a stateless request");
            None
        }
        answer => result_of(answer, id),
    }
}

/// The JSON-RPC error in an error answer's body, if it holds one.
async fn refusal(response: reqwest::Response) -> Option<UpstreamError> {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        body.extend_from_slice(&chunk.ok()?);
        if body.len() > MAX_ERROR_BYTES {
            return None;
        }
    }
    match serde_json::from_slice::<UpstreamMessage>(&body).ok()? {
        JsonRpcMessage::Error(error) => Some(UpstreamError::Refused(error.error)),
        _ => None,
    }
}

#[async_trait::async_trait]
impl UpstreamClient for ModernCaller {
    async fn list_tools_page(
        &self,
        cursor: Option<String>,
    ) -> Result<ListToolsResult, UpstreamError> {
        let params = cursor.map_or_else(|| json!({}), |cursor| json!({"cursor": cursor}));
        let page = self.send("tools/list", params, None, None).await?;
        serde_json::from_value(page).map_err(UpstreamError::Unreadable)
    }

    async fn call_tool(&self, call: ToolRequest) -> Result<Value, UpstreamError> {
        let mut params = json!({"name": call.name, "arguments": call.arguments});
        if let Some(answers) = call.answers {
            if let Some(responses) = answers.responses {
                params["inputResponses"] = responses;
            }
            if let Some(state) = answers.state {
                params["requestState"] = Value::String(state);
            }
        }
        let schema: Option<&JsonObject> = call.schema.as_deref();
        self.send("tools/call", params, call.observer.as_ref(), schema)
            .await
    }

    async fn forward(
        &self,
        request: ClientRequest,
        observer: Option<&Arc<dyn ExecutionObserver>>,
    ) -> Result<Value, UpstreamError> {
        let (method, params) = method_and_params(&request)?;
        self.send(&method, params, observer, None).await
    }

    /// Nothing to forget: no request depends on another.
    async fn reset(&self) {}
}

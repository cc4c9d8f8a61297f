//! `tools/call` on an established MCP session, answered without rmcp's session machinery.
//!
//! rmcp's streamable HTTP service hands each request to the session's worker task, which spawns
//! a handler task and answers through a channel onto an SSE stream. For the one request agents
//! make over and over, those hops cost more than the governor itself. This layer (inside
//! authentication, in front of rmcp) answers a `tools/call` on a session the server knows
//! ([`Sessions`]: from its handshake here, or restored from the database) with the same
//! [`crate::gateway::server::call_tool`] the rmcp handler uses: as one JSON body when the result comes
//! within [`JSON_WAIT`] with nothing before it, otherwise as an SSE stream carrying the call's
//! progress and log notifications, keep-alive comments, and then the result. Both are answers
//! the MCP streamable HTTP transport allows for a POSTed request.
//!
//! Everything else goes to rmcp untouched: other methods, notifications, unknown sessions
//! (rmcp restores them from the database, which makes them known), and requests with anything
//! this layer does not interpret (an unknown `MCP-Protocol-Version`, SEP-2243 method headers, a
//! per-request protocol version, multi-round-trip fields).
//!
//! The call runs in its own task, as under rmcp: a client that disconnects does not cut a call
//! off between its decision and its audit record.

use crate::gateway::calls::{Caller, Calls};
use crate::gateway::cancels::Cancels;
use crate::gateway::questions::{Questions, Reply, ResponseStream};
use crate::gateway::relay::ClientView;
use crate::gateway::sessions::{KnownClient, Sessions, session_id};
use crate::gateway::streams::{self, CallStream, Outgoing, Resumable};
use crate::http::bounds;
use crate::wire::json_rpc_error;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use preloop_core::Principal;
use preloop_core::governor::Governor;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientJsonRpcMessage, ClientRequest, ErrorData,
    GetMeta, ProgressToken, ProtocolVersion, RequestId, ServerJsonRpcMessage, ServerResult,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long a call may take and still be answered as one JSON body; slower calls get an SSE
/// stream, so a call held for approval keeps its connection alive.
pub const JSON_WAIT: Duration = Duration::from_secs(1);

/// What the fast path needs.
#[derive(Clone)]
pub struct FastPath {
    /// Runs the calls.
    pub calls: Calls,
    /// The sessions it may serve.
    pub sessions: Sessions,
    /// The questions its calls asked their clients, waiting for answers.
    pub questions: Questions,
    /// Its SSE answers whose connection ended before the call did.
    pub resumable: Resumable,
    /// Its calls in flight, for the clients' cancellations.
    pub cancels: Cancels,
    /// Ends open SSE answers at shutdown.
    pub shutdown: CancellationToken,
}

impl std::fmt::Debug for FastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FastPath")
    }
}

/// A `tools/call` this layer will answer.
struct Call {
    id: RequestId,
    params: CallToolRequestParams,
    progress: Option<ProgressToken>,
}

/// Middleware: answers `tools/call` on a known session, and resumes its answers; passes
/// everything else on to rmcp.
pub async fn serve(State(fast): State<FastPath>, request: Request, next: Next) -> Response {
    if let Some(resumed) = resume(&fast, &request) {
        return resumed;
    }
    let Some(known) = servable(&fast.sessions, &request) else {
        return next.run(request).await;
    };
    let Some(principal) = request.extensions().get::<Principal>().cloned() else {
        return next.run(request).await;
    };
    // A client that can be asked inline, in an organization whose approvals may ask it: only
    // rmcp's session can send it the question and route its answer back.
    if known.elicits && asks_inline(&fast.calls.governor, &principal.organization_id) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Some(session) = session_id(&parts.headers).map(str::to_owned) else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let Ok(bytes) = axum::body::to_bytes(body, bounds::BODY).await else {
        return too_large();
    };
    if let Some(reply) = Reply::parse(&bytes)
        && fast.questions.answer(&session, reply)
    {
        return StatusCode::ACCEPTED.into_response();
    }
    if fast.cancels.cancel(&session, &bytes) {
        return StatusCode::ACCEPTED.into_response();
    }
    let Some(call) = tools_call(&bytes) else {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    };
    // Clients of 2025-11-25 on can resume a stream (SEP-1699); earlier ones get no priming
    // event, which they would not understand.
    let resumes = parts
        .headers
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|version| version >= ProtocolVersion::V_2025_11_25.as_str());
    answer(fast, principal, session, known, call, resumes).await
}

/// Whether an approval policy of the organization uses the elicitation channel.
fn asks_inline(governor: &Governor, organization_id: &str) -> bool {
    governor
        .governance(organization_id)
        .is_some_and(|governance| {
            governance
                .document()
                .approval_policies
                .iter()
                .any(|policy| {
                    policy
                        .channels
                        .iter()
                        .chain(policy.escalation.iter().flat_map(|s| s.channels.iter()))
                        .any(|c| c == crate::gateway::elicitation::CHANNEL)
                })
        })
}

/// The session's client, if this layer may answer the request.
fn servable(sessions: &Sessions, request: &Request) -> Option<KnownClient> {
    let headers = request.headers();
    if request.method() != Method::POST
        || !is_json(headers)
        || !accepts_json_and_sse(headers)
        || headers.contains_key("mcp-method")
        || headers.contains_key("mcp-name")
    {
        return None;
    }
    if let Some(version) = headers.get("mcp-protocol-version") {
        let version = version.to_str().ok()?;
        if !ProtocolVersion::KNOWN_VERSIONS
            .iter()
            .any(|known| known.as_str() == version)
        {
            return None;
        }
    }
    sessions.client(session_id(headers)?)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split(';').next().unwrap_or_default();
            essence.trim().eq_ignore_ascii_case("application/json")
        })
}

fn accepts_json_and_sse(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for value in headers.get_all(header::ACCEPT) {
        for media in value.to_str().unwrap_or_default().split(',') {
            let essence = media.split(';').next().unwrap_or_default().trim();
            json |= essence.eq_ignore_ascii_case("application/json");
            sse |= essence.eq_ignore_ascii_case("text/event-stream");
        }
    }
    json && sse
}

/// The body as a `tools/call` this layer interprets, or `None` for rmcp to handle.
fn tools_call(body: &[u8]) -> Option<Call> {
    let ClientJsonRpcMessage::Request(request) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    // rmcp moves a request's `_meta` into its extensions.
    let meta = request.request.get_meta();
    let progress = meta.get_progress_token();
    let per_request_version = meta.protocol_version().is_some();
    let ClientRequest::CallToolRequest(call) = request.request else {
        return None;
    };
    let params = call.params;
    if per_request_version || params.input_responses.is_some() || params.request_state.is_some() {
        return None;
    }
    Some(Call {
        id: request.id,
        params,
        progress,
    })
}

/// Runs the call in its own task and answers with its messages.
async fn answer(
    fast: FastPath,
    principal: Principal,
    session: String,
    client: KnownClient,
    call: Call,
    resumes: bool,
) -> Response {
    let (sender, mut messages) = mpsc::unbounded_channel();
    let calls = fast.calls.clone();
    let questions = fast.questions.clone();
    let asked = session.clone();
    let (cancel, tracked) = fast.cancels.track(&session, &call.id);
    tokio::spawn(async move {
        let _tracked = tracked;
        let notify = Arc::new(ResponseStream {
            messages: sender.clone(),
            questions,
            session: asked,
            resumes,
        });
        let caller = Caller {
            client: client.client,
            progress: call.progress,
            notify,
            elicit: None,
            view: ClientView {
                capabilities: client.capabilities,
                answers_later: false,
                tasks: false,
                logs: client.logs,
            },
            cancel,
        };
        let result = calls.call_tool(&principal, caller, call.params).await;
        let _ = sender.send(Outgoing::Message(final_message(result, call.id)));
    });
    let first = match tokio::time::timeout(JSON_WAIT, messages.recv()).await {
        Ok(Some(Outgoing::Message(message))) if is_final(&message) => {
            return json_response(&message);
        }
        Ok(Some(first)) => Some(first),
        Ok(None) => {
            return json_response(&ServerJsonRpcMessage::error(
                ErrorData::internal_error("the call ended without a result", None),
                None,
            ));
        }
        Err(_) => None,
    };
    let stream = CallStream::new(session, messages);
    streams::response(first, stream, resumes, fast.resumable, fast.shutdown)
}

/// Continues, for a GET with `Last-Event-ID`, the stream of a call this layer answered whose
/// connection ended before its answer; `None` if there is no such stream of this session.
fn resume(fast: &FastPath, request: &Request) -> Option<Response> {
    if request.method() != Method::GET {
        return None;
    }
    let headers = request.headers();
    let last = headers.get("last-event-id")?.to_str().ok()?;
    let stream = fast.resumable.resume(session_id(headers)?, last);
    tracing::debug!(%last, found = stream.is_some(), "resuming an answer");
    let stream = stream?;
    Some(streams::response(
        None,
        stream,
        false,
        fast.resumable.clone(),
        fast.shutdown.clone(),
    ))
}

/// The JSON-RPC answer to the call, shaped as rmcp shapes it for session (pre-2026-07-28)
/// clients.
fn final_message(
    result: Result<CallToolResponse, ErrorData>,
    id: RequestId,
) -> ServerJsonRpcMessage {
    match result {
        Ok(result) => {
            let mut result = ServerResult::from(result);
            result.strip_result_type_for_legacy_peer();
            ServerJsonRpcMessage::response(result, id)
        }
        Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
    }
}

fn is_final(message: &ServerJsonRpcMessage) -> bool {
    matches!(
        message,
        ServerJsonRpcMessage::Response(_) | ServerJsonRpcMessage::Error(_)
    )
}

fn json_response(message: &ServerJsonRpcMessage) -> Response {
    match serde_json::to_vec(message) {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot serialize a tool call's answer");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn too_large() -> Response {
    let message = format!("the request body is larger than {} bytes", bounds::BODY);
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        axum::Json(json_rpc_error(-32600, &message)),
    )
        .into_response()
}

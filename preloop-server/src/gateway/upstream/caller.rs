//! What the gateway asks of an upstream MCP server, whatever its transport and protocol
//! generation: one trait with an implementation per way of talking to it (rmcp's client over
//! stdio or HTTP in [`super::connection`], the direct HTTP caller in sessions of the earlier
//! revisions in [`super::http`], stateless 2026-07-28 requests in [`super::modern`]), so
//! discovery and the executor each have one path. Everything else a client may ask of an
//! upstream (prompts, resources, completion, subscriptions) is [`UpstreamClient::forward`]ed
//! as is.

use super::error::UpstreamError;
use preloop_core::executor::{ExecutionObserver, InputAnswers};
use rmcp::model::{ClientRequest, JsonObject, ListToolsResult, Tool};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;

/// Most tools taken from one server's listing, and most pages read for it: an upstream that
/// offers more (or pages forever) gets the first of them.
pub const MAX_TOOLS: usize = 5_000;
/// See [`MAX_TOOLS`].
pub const MAX_PAGES: usize = 100;

/// One `tools/call` for an upstream.
#[derive(Clone)]
pub struct ToolRequest {
    /// The tool's name (the server's own).
    pub name: String,
    /// Its arguments.
    pub arguments: JsonObject,
    /// Hears the call's progress and log notifications, asks the calling client the server's
    /// questions, and says what that client declared; none for a call nobody watches.
    pub observer: Option<Arc<dyn ExecutionObserver>>,
    /// The calling client's answers to an earlier round's questions (2026-07-28 only).
    pub answers: Option<InputAnswers>,
    /// The tool's input schema, for the headers that mirror annotated arguments (2026-07-28
    /// only: `Mcp-Param-*`).
    pub schema: Option<Arc<JsonObject>>,
}

impl std::fmt::Debug for ToolRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRequest")
            .field("name", &self.name)
            .field("observed", &self.observer.is_some())
            .field("answers", &self.answers.is_some())
            .finish_non_exhaustive()
    }
}

impl ToolRequest {
    /// A call of `name` with `arguments`, unobserved.
    pub fn new(name: impl Into<String>, arguments: JsonObject) -> Self {
        Self {
            name: name.into(),
            arguments,
            observer: None,
            answers: None,
            schema: None,
        }
    }
}

/// An MCP client of one upstream server.
#[async_trait::async_trait]
pub trait UpstreamClient: Send + Sync {
    /// One page of the server's tools, from `cursor` (the first page without one).
    async fn list_tools_page(
        &self,
        cursor: Option<String>,
    ) -> Result<ListToolsResult, UpstreamError>;

    /// Calls a tool and returns the server's result as it wrote it: finished, or (2026-07-28)
    /// `input_required` with questions for the calling client. With an observer the call asks
    /// for progress, and its progress and log notifications are reported to it as they arrive.
    async fn call_tool(&self, call: ToolRequest) -> Result<Value, UpstreamError>;

    /// Sends `request` (anything but a tool call) for the client `observer` speaks for (if
    /// any), and returns its result as the upstream wrote it.
    async fn forward(
        &self,
        request: ClientRequest,
        observer: Option<&Arc<dyn ExecutionObserver>>,
    ) -> Result<Value, UpstreamError>;

    /// Forgets the connection or session, so the next request starts a new one (after a
    /// failure that leaves it in doubt).
    async fn reset(&self);
}

/// The result of `request`, decoded.
pub async fn ask<R: DeserializeOwned>(
    client: &dyn UpstreamClient,
    request: ClientRequest,
) -> Result<R, UpstreamError> {
    let result = client.forward(request, None).await?;
    serde_json::from_value(result).map_err(UpstreamError::Unreadable)
}

/// The server's tools, page by page, within [`MAX_TOOLS`] and [`MAX_PAGES`].
pub async fn list_tools(client: &dyn UpstreamClient) -> Result<Vec<Tool>, UpstreamError> {
    let mut tools = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let page = client.list_tools_page(cursor).await?;
        tools.extend(page.tools);
        cursor = page.next_cursor;
        if cursor.is_none() || tools.len() >= MAX_TOOLS {
            break;
        }
    }
    tools.truncate(MAX_TOOLS);
    Ok(tools)
}

/// The method and parameters of a request to forward (`{}` when it has none).
pub fn method_and_params(request: &ClientRequest) -> Result<(String, Value), UpstreamError> {
    let method = request.method().to_owned();
    let mut message = serde_json::to_value(request).map_err(UpstreamError::Unreadable)?;
    let params = message
        .get_mut("params")
        .map_or_else(|| Value::Object(serde_json::Map::new()), Value::take);
    Ok((method, params))
}

/// Whether `result` is a 2026-07-28 `input_required` result rather than a finished one.
pub fn asks_for_input(result: &Value) -> bool {
    result.get("resultType").and_then(Value::as_str) == Some("input_required")
}

/// Whether `result` is a task the call runs as (the 2026-07-28 tasks extension) rather than a
/// finished result.
pub fn is_task(result: &Value) -> bool {
    result.get("resultType").and_then(Value::as_str) == Some("task")
}

//! What the gateway asks of an upstream MCP server, whatever its transport: one trait with an
//! implementation per way of talking to it (rmcp's client over stdio or HTTP in
//! [`super::connection`], the direct HTTP caller in [`super::http`]), so discovery and the
//! executor each have one path. Everything else a client may ask of an upstream (prompts,
//! resources, completion, subscriptions, log levels) is [`UpstreamClient::forward`]ed as is.

use super::error::UpstreamError;
use preloop_core::executor::ExecutionObserver;
use rmcp::model::{CallToolResult, ClientRequest, JsonObject, ListToolsResult, Tool};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// Most tools taken from one server's listing, and most pages read for it: an upstream that
/// offers more (or pages forever) gets the first of them.
pub const MAX_TOOLS: usize = 5_000;
/// See [`MAX_TOOLS`].
pub const MAX_PAGES: usize = 100;

/// An MCP client of one upstream server.
#[async_trait::async_trait]
pub trait UpstreamClient: Send + Sync {
    /// One page of the server's tools, from `cursor` (the first page without one).
    async fn list_tools_page(
        &self,
        cursor: Option<String>,
    ) -> Result<ListToolsResult, UpstreamError>;

    /// Calls tool `name` (the server's own name for it). With an `observer`, the call asks for
    /// progress and its progress and log notifications are reported to it as they arrive.
    async fn call_tool(
        &self,
        name: &str,
        arguments: JsonObject,
        observer: Option<Arc<dyn ExecutionObserver>>,
    ) -> Result<CallToolResult, UpstreamError>;

    /// Sends `request` (anything but a tool call) and returns its result as the upstream
    /// wrote it.
    async fn forward(&self, request: ClientRequest) -> Result<serde_json::Value, UpstreamError>;

    /// Forgets the connection or session, so the next request starts a new one (after a
    /// failure that leaves it in doubt).
    async fn reset(&self);
}

/// The result of `request`, decoded.
pub async fn ask<R: DeserializeOwned>(
    client: &dyn UpstreamClient,
    request: ClientRequest,
) -> Result<R, UpstreamError> {
    let result = client.forward(request).await?;
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

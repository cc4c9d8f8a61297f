//! One upstream MCP server: a pooled rmcp client (streamable HTTP or a child process over stdio),
//! its tools discovered into the registry as `{prefix}__{tool}` (and into the store, so they are
//! known before the server answers after a restart), refreshed on
//! `notifications/tools/list_changed`, and an executor that calls it with a timeout, a
//! concurrency bound, and a reconnect after a failure.

use super::observed::Observed;
use crate::events::EventBus;
use crate::gateway::upstream::egress::{Egress, child_environment};
use crate::gateway::upstream::http::{CallError, HttpCaller, parse_headers};
use chrono::Utc;
use preloop_core::documents::{DiscoveredTool, McpServer, McpTransport};
use preloop_core::executor::ExecutionObserver;
use preloop_core::executor::{ExecutionContext, ExecutionError, ToolExecutor, ToolOutput};
use preloop_core::registry::{
    RegisteredTool, Registry, ToolAnnotations, ToolDescriptor, ToolSource, exposed_name,
};
use preloop_core::store::DocumentStore;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientRequest, ProgressToken,
    ServerNotification, ServerResult,
};
use rmcp::service::PeerRequestOptions;
use rmcp::service::{NotificationContext, RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, ServiceExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;

/// How long connecting (initialize handshake included) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest pause between retries of a server that is down.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

type Client = RunningService<RoleClient, UpstreamHandler>;

/// An upstream error as callers may see it: an HTTP error's status, never the body that came
/// with it (it could be an internal service's page, echoed to whoever asked for the scan), and
/// without the Rust type names rmcp puts in brackets.
pub fn without_response_body(error: impl std::fmt::Display) -> String {
    let mut text = error.to_string();
    while let Some(start) = text.find('[') {
        let Some(length) = text[start..].find(']') else {
            break;
        };
        if !text[start..start + length].contains("::") {
            break;
        }
        text.replace_range(start..=start + length, "");
    }
    let text = text.replace("  ", " ");
    match text.find("HTTP ") {
        Some(at) => {
            let rest = &text[at + 5..];
            let status: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if status.len() == 3 {
                format!("{}HTTP {status}", &text[..at])
            } else {
                text
            }
        }
        None => text,
    }
}

/// Most tools taken from one server's listing, and most pages read for it: an upstream that
/// offers more (or pages forever) gets the first of them.
const MAX_TOOLS: usize = 5_000;
const MAX_PAGES: usize = 100;

/// The server's tools, page by page, within [`MAX_TOOLS`] and [`MAX_PAGES`].
async fn list_tools(client: &Client) -> Result<Vec<rmcp::model::Tool>, rmcp::ServiceError> {
    let mut tools = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let page = client
            .list_tools(Some(
                rmcp::model::PaginatedRequestParams::default().with_cursor(cursor),
            ))
            .await?;
        tools.extend(page.tools);
        cursor = page.next_cursor;
        if cursor.is_none() || tools.len() >= MAX_TOOLS {
            break;
        }
    }
    tools.truncate(MAX_TOOLS);
    Ok(tools)
}

/// Where discovered tools are kept.
pub type ToolCatalog = Arc<dyn DocumentStore<DiscoveredTool>>;

/// One upstream server and its (lazily re-established) connection.
pub struct UpstreamServer {
    server: McpServer,
    registry: Arc<Registry>,
    catalog: ToolCatalog,
    /// Where its state changes are published.
    events: EventBus,
    /// Its HTTP client (for its organization: see [`Egress::http_client`]).
    http: reqwest::Client,
    /// What its organization may reach.
    egress: Egress,
    connection: Mutex<Option<Arc<Client>>>,
    /// Makes tool calls on an HTTP server (rmcp's connection still discovers its tools).
    caller: Option<HttpCaller>,
    /// Observers of calls in flight, by the progress token rmcp gave each request.
    in_flight: Mutex<HashMap<ProgressToken, Arc<dyn ExecutionObserver>>>,
    permits: Semaphore,
    stopped: CancellationToken,
    /// Cancelled once the first scan has been tried (successful or not).
    first_scan: CancellationToken,
}

impl std::fmt::Debug for UpstreamServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamServer")
            .field("name", &self.server.name)
            .field("organization", &self.server.organization_id)
            .finish_non_exhaustive()
    }
}

/// Receives the upstream's notifications.
#[derive(Debug, Clone)]
pub struct UpstreamHandler {
    server: Weak<UpstreamServer>,
}

impl ClientHandler for UpstreamHandler {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Some(server) = self.server.upgrade() {
            tokio::spawn(async move {
                if let Err(error) = server.scan().await {
                    tracing::warn!(server = %server.server.name, %error, "refreshing tools failed");
                }
            });
        }
    }
}

impl UpstreamServer {
    /// A server whose tools will be registered in `registry` and recorded in `catalog`.
    pub fn new(
        server: McpServer,
        registry: Arc<Registry>,
        catalog: ToolCatalog,
        events: EventBus,
        egress: &Egress,
    ) -> Arc<Self> {
        let http = egress.http_client(&server.organization_id, server.keep_alive);
        let permits = Semaphore::new(server.max_concurrency.max(1) as usize);
        // Headers that do not parse leave the calls to rmcp, which reports them at connection.
        let caller = match &server.transport {
            McpTransport::Http { url, headers } => HttpCaller::new(http.clone(), url, headers).ok(),
            McpTransport::Stdio { .. } => None,
        };
        Arc::new(Self {
            server,
            registry,
            catalog,
            events,
            http,
            egress: egress.clone(),
            connection: Mutex::new(None),
            caller,
            in_flight: Mutex::new(HashMap::new()),
            permits,
            stopped: CancellationToken::new(),
            first_scan: CancellationToken::new(),
        })
    }

    /// The stored server this runs.
    pub fn document(&self) -> &McpServer {
        &self.server
    }

    /// Whether its first scan has been tried.
    pub fn first_scan_tried(&self) -> bool {
        self.first_scan.is_cancelled()
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.server.timeout_seconds)
    }

    fn prefix(&self) -> &str {
        self.server
            .tool_prefix
            .as_deref()
            .unwrap_or(&self.server.name)
    }

    /// Passes a notification from the upstream to the calls it concerns: progress to the call
    /// with that progress token, log messages (tied to no request) to every call in flight.
    #[allow(
        deprecated,
        reason = "MCP logging is deprecated (SEP-2577) but upstreams still send it"
    )]
    pub(super) async fn observe(&self, notification: &ServerNotification) {
        match notification {
            ServerNotification::ProgressNotification(progress) => {
                let params = &progress.params;
                let observer = self
                    .in_flight
                    .lock()
                    .await
                    .get(&params.progress_token)
                    .cloned();
                if let Some(observer) = observer {
                    observer.progress(params.progress, params.total, params.message.as_deref());
                }
            }
            ServerNotification::LoggingMessageNotification(log) => {
                let params = &log.params;
                let observers: Vec<Arc<dyn ExecutionObserver>> =
                    self.in_flight.lock().await.values().cloned().collect();
                let level = serde_json::to_value(params.level)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "info".to_owned());
                for observer in observers {
                    observer.log(&level, params.logger.as_deref(), &params.data);
                }
            }
            _ => {}
        }
    }

    /// Calls a tool on `client`. With an observer, the request's progress token is registered
    /// before the request can be answered (the map stays locked while it is sent), so no
    /// notification is missed; it is removed when the call ends, however it ends.
    async fn call(
        self: &Arc<Self>,
        client: &Client,
        params: CallToolRequestParams,
        context: &ExecutionContext,
    ) -> Result<CallToolResult, String> {
        let Some(observer) = context.observer.clone() else {
            return client
                .call_tool(params)
                .await
                .map_err(without_response_body);
        };
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let handle = {
            let mut in_flight = self.in_flight.lock().await;
            let handle = client
                .peer()
                .send_request_with_option(request, PeerRequestOptions::no_options())
                .await
                .map_err(without_response_body)?;
            in_flight.insert(handle.progress_token.clone(), observer);
            handle
        };
        let token = handle.progress_token.clone();
        let registration = InFlight {
            server: self.clone(),
            token: Some(token),
        };
        let response = handle.await_response().await;
        drop(registration);
        match response.map_err(without_response_body)? {
            ServerResult::CallToolResult(result) => Ok(result),
            _ => Err(
                "the upstream asked for interactive input or a task, which Preloop does not relay"
                    .to_owned(),
            ),
        }
    }

    /// Stops the server: its tools disappear, its connection closes, background scans end.
    pub async fn stop(&self) {
        self.stopped.cancel();
        self.registry
            .remove_server(Some(&self.server.organization_id), &self.server.name);
        self.reset().await;
    }

    /// The live connection, connecting first if there is none or it closed.
    async fn client(self: &Arc<Self>) -> Result<Arc<Client>, String> {
        let mut connection = self.connection.lock().await;
        if let Some(client) = connection.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        let handler = UpstreamHandler {
            server: Arc::downgrade(self),
        };
        let connecting = async {
            self.egress
                .check_resolved(&self.server)
                .await
                .map_err(|e| e.to_string())?;
            match &self.server.transport {
                McpTransport::Http { url, headers } => {
                    let mut config = StreamableHttpClientTransportConfig::with_uri(url.clone());
                    for (name, value) in parse_headers(headers)? {
                        let Some(name) = name else { continue };
                        let bearer = (name == reqwest::header::AUTHORIZATION)
                            .then(|| value.to_str().ok()?.strip_prefix("Bearer "))
                            .flatten();
                        match bearer {
                            // rmcp sends its own `Authorization` from this.
                            Some(token) => config.auth_header = Some(token.to_owned()),
                            None => {
                                config.custom_headers.insert(name, value);
                            }
                        }
                    }
                    let transport =
                        StreamableHttpClientTransport::with_client(self.http.clone(), config);
                    handler
                        .serve(Observed::new(transport, self))
                        .await
                        .map_err(without_response_body)
                }
                McpTransport::Stdio { command, args, env } => {
                    let mut process = tokio::process::Command::new(command);
                    // INVARIANT (no secret reaches a child): the server's own environment
                    // holds SECRET_KEY; children get exactly their configuration's.
                    process.args(args).env_clear().envs(child_environment(env));
                    let transport = TokioChildProcess::new(process)
                        .map_err(|e| format!("cannot start `{command}`: {e}"))?;
                    handler
                        .serve(Observed::new(transport, self))
                        .await
                        .map_err(without_response_body)
                }
            }
        };
        let client = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| format!("connecting timed out after {} s", CONNECT_TIMEOUT.as_secs()))??;
        let client = Arc::new(client);
        *connection = Some(client.clone());
        Ok(client)
    }

    /// Drops the connection so the next call reconnects.
    async fn reset(&self) {
        self.connection.lock().await.take();
    }

    /// Registers tools found by an earlier scan (at start, before the server answers).
    pub fn register_known(self: &Arc<Self>, known: Vec<DiscoveredTool>) -> Result<(), String> {
        let descriptors = known.into_iter().map(|t| t.descriptor).collect();
        self.register(descriptors)
    }

    fn register(self: &Arc<Self>, descriptors: Vec<ToolDescriptor>) -> Result<(), String> {
        if self.stopped.is_cancelled() {
            return Ok(());
        }
        let executor: Arc<dyn ToolExecutor> = Arc::new(UpstreamExecutor {
            server: self.clone(),
        });
        let registered = descriptors
            .into_iter()
            .map(|descriptor| RegisteredTool::new(descriptor, executor.clone()))
            .collect();
        self.registry
            .replace_server_tools(
                Some(&self.server.organization_id),
                &self.server.name,
                registered,
            )
            .map_err(without_response_body)
    }

    /// Discovers the server's tools and replaces its registered tools with them; tools the
    /// server no longer lists disappear. Returns how many it has.
    pub async fn scan(self: &Arc<Self>) -> Result<usize, String> {
        let client = self.client().await?;
        let tools = match tokio::time::timeout(self.timeout(), list_tools(&client)).await {
            Ok(Ok(tools)) => tools,
            Ok(Err(error)) => {
                self.reset().await;
                return Err(without_response_body(error));
            }
            Err(_) => return Err("listing tools timed out".to_owned()),
        };
        let descriptors: Vec<ToolDescriptor> = tools
            .iter()
            .map(|tool| {
                let annotations = tool
                    .annotations
                    .as_ref()
                    .and_then(|a| serde_json::to_value(a).ok())
                    .and_then(|v| serde_json::from_value::<ToolAnnotations>(v).ok())
                    .unwrap_or_default();
                ToolDescriptor::new(
                    &self.server.name,
                    tool.name.to_string(),
                    ToolSource::Upstream,
                )
                .with_exposed_name(exposed_name(self.prefix(), &tool.name))
                .with_description(tool.description.as_deref().unwrap_or_default())
                .with_input_schema(Value::Object((*tool.input_schema).clone()))
                .with_annotations(annotations)
            })
            .collect();
        let count = descriptors.len();
        let now = Utc::now();
        let discovered: Vec<DiscoveredTool> = descriptors
            .iter()
            .map(|descriptor| DiscoveredTool {
                organization_id: self.server.organization_id.clone(),
                server_id: self.server.id,
                descriptor: descriptor.clone(),
                discovered_at: now,
            })
            .collect();
        self.register(descriptors)?;
        if let Err(error) = self
            .catalog
            .replace_children(
                &self.server.organization_id,
                &self.server.id.to_string(),
                &discovered,
            )
            .await
        {
            // The live registry is right; only the start-up cache is stale.
            tracing::warn!(server = %self.server.name, %error, "cannot record discovered tools");
        }
        tracing::info!(server = %self.server.name, tools = count, "upstream tools registered");
        self.events.system(
            Some(&self.server.organization_id),
            "upstream_tools_registered",
            json!({"server": self.server.name, "tools": count}),
        );
        Ok(count)
    }

    /// Scans until it succeeds or the server is stopped, backing off between attempts (for
    /// servers down at start).
    pub fn scan_in_background(self: &Arc<Self>) {
        let server = self.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_secs(1);
            loop {
                let attempt = tokio::select! {
                    () = server.stopped.cancelled() => return,
                    attempt = server.scan() => attempt,
                };
                server.first_scan.cancel();
                let Err(error) = attempt else { return };
                tracing::warn!(server = %server.server.name, %error, retry_in = ?delay, "upstream unavailable");
                server.events.system(
                    Some(&server.server.organization_id),
                    "upstream_unavailable",
                    json!({"server": server.server.name, "error": error, "retry_in_seconds": delay.as_secs()}),
                );
                tokio::select! {
                    () = server.stopped.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
        });
    }
}

/// Removes a call's observer when the call ends (also when its future is dropped on timeout).
struct InFlight {
    server: Arc<UpstreamServer>,
    token: Option<ProgressToken>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            // `try_lock` is almost always free; otherwise remove it from a task.
            match self.server.in_flight.try_lock() {
                Ok(mut in_flight) => {
                    in_flight.remove(&token);
                }
                Err(_) => {
                    let server = self.server.clone();
                    tokio::spawn(async move {
                        server.in_flight.lock().await.remove(&token);
                    });
                }
            }
        }
    }
}

/// Calls `tool` on an HTTP upstream through its [`HttpCaller`].
async fn call_over_http(
    caller: &HttpCaller,
    server: &str,
    tool: &ToolDescriptor,
    arguments: &Value,
    context: &ExecutionContext,
) -> Result<ToolOutput, ExecutionError> {
    match caller
        .call(&tool.name, arguments, context.observer.as_ref())
        .await
    {
        Ok(result) => serde_json::from_value(result)
            .map_err(|e| ExecutionError::Other(format!("unreadable result from `{server}`: {e}"))),
        Err(CallError::Refused(message)) => Err(ExecutionError::Other(format!(
            "`{server}` refused the call: {message}"
        ))),
        Err(CallError::Transport(error)) => {
            // The session is in doubt: the next call opens a new one.
            caller.reset().await;
            Err(ExecutionError::Unavailable(format!("`{server}`: {error}")))
        }
    }
}

/// Runs a tool on its upstream server.
struct UpstreamExecutor {
    server: Arc<UpstreamServer>,
}

#[async_trait::async_trait]
impl ToolExecutor for UpstreamExecutor {
    async fn execute(
        &self,
        tool: &ToolDescriptor,
        arguments: Value,
        context: &ExecutionContext,
    ) -> Result<ToolOutput, ExecutionError> {
        let name = &self.server.server.name;
        let timeout = self.server.timeout();
        let started = std::time::Instant::now();
        let call =
            async {
                // Waiting for a free slot counts against the call's timeout.
                let _permit =
                    self.server.permits.acquire().await.map_err(|_| {
                        ExecutionError::Unavailable(format!("`{name}` was removed"))
                    })?;
                if let Some(caller) = &self.server.caller {
                    return call_over_http(caller, name, tool, &arguments, context).await;
                }
                let client = self
                    .server
                    .client()
                    .await
                    .map_err(ExecutionError::Unavailable)?;
                let mut params = CallToolRequestParams::new(tool.name.clone());
                if let Value::Object(arguments) = arguments {
                    params = params.with_arguments(arguments);
                }
                match self.server.call(&client, params, context).await {
                    Ok(result) => serde_json::to_value(&result)
                        .and_then(serde_json::from_value)
                        .map_err(|e| {
                            ExecutionError::Other(format!("unreadable result from `{name}`: {e}"))
                        }),
                    Err(error) => {
                        // A transport or protocol failure: reconnect on the next call.
                        self.server.reset().await;
                        Err(ExecutionError::Unavailable(format!("`{name}`: {error}")))
                    }
                }
            };
        let result =
            tokio::time::timeout(timeout, call)
                .await
                .unwrap_or(Err(ExecutionError::Timeout {
                    seconds: timeout.as_secs(),
                }));
        let label = match &result {
            Ok(_) => "ok",
            Err(ExecutionError::Timeout { .. }) => "timeout",
            Err(_) => "error",
        };
        crate::metrics::upstream_call(name, label, started.elapsed());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::without_response_body;

    #[test]
    fn upstream_errors_keep_the_status_and_lose_the_body() {
        assert_eq!(
            without_response_body(
                "Transport error: unexpected server response: HTTP 500: <html>internal</html>"
            ),
            "Transport error: unexpected server response: HTTP 500"
        );
        assert_eq!(
            without_response_body("connection refused"),
            "connection refused"
        );
        assert_eq!(
            without_response_body("Transport [a::B<c::D>] error: refused"),
            "Transport error: refused"
        );
    }
}

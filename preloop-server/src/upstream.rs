//! Upstream MCP servers: one pooled rmcp client per server (streamable HTTP or a child process
//! over stdio), their tools discovered into the registry as `{prefix}__{tool}`, refreshed on
//! `notifications/tools/list_changed`, and an executor that calls them with a timeout and
//! reconnects after a failure.

use crate::config::McpServerEntry;
use preloop_core::documents::McpTransport;
use preloop_core::executor::{ExecutionContext, ExecutionError, ToolExecutor, ToolOutput};
use preloop_core::registry::{
    RegisteredTool, Registry, ToolAnnotations, ToolDescriptor, ToolSource, exposed_name,
};
use rmcp::model::CallToolRequestParams;
use rmcp::service::{NotificationContext, RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, ServiceExt};
use serde_json::Value;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Mutex;

/// How long connecting (initialize handshake included) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest pause between retries of a server that is down.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// What Preloop needs to reach an upstream server.
#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    /// Unique name.
    pub name: String,
    /// Transport.
    pub transport: McpTransport,
    /// Exposed-name prefix (the name unless set; `""` keeps upstream names).
    pub tool_prefix: Option<String>,
    /// Per-call timeout.
    pub timeout: Duration,
}

impl UpstreamSpec {
    /// The spec of a `[[mcp_servers]]` entry; the error names what is missing.
    pub fn from_entry(entry: &McpServerEntry) -> Result<Self, String> {
        let transport = match entry.transport.as_str() {
            "stdio" => McpTransport::Stdio {
                command: entry.command.clone().ok_or_else(|| {
                    format!(
                        "mcp server `{}`: transport \"stdio\" needs `command`",
                        entry.name
                    )
                })?,
                args: entry.args.clone(),
                env: entry.env.clone(),
            },
            "http" => McpTransport::Http {
                url: entry.url.clone().ok_or_else(|| {
                    format!(
                        "mcp server `{}`: transport \"http\" needs `url`",
                        entry.name
                    )
                })?,
                headers: entry.headers.clone(),
            },
            other => {
                return Err(format!(
                    "mcp server `{}`: unknown transport `{other}` (use \"stdio\" or \"http\")",
                    entry.name
                ));
            }
        };
        Ok(Self {
            name: entry.name.clone(),
            transport,
            tool_prefix: entry.tool_prefix.clone(),
            timeout: Duration::from_secs(entry.timeout_seconds.unwrap_or(60)),
        })
    }
}

type Client = RunningService<RoleClient, UpstreamHandler>;

/// One upstream server and its (lazily re-established) connection.
pub struct UpstreamServer {
    spec: UpstreamSpec,
    registry: Arc<Registry>,
    connection: Mutex<Option<Arc<Client>>>,
}

impl std::fmt::Debug for UpstreamServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamServer")
            .field("name", &self.spec.name)
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
                    tracing::warn!(server = %server.spec.name, %error, "refreshing tools failed");
                }
            });
        }
    }
}

impl UpstreamServer {
    /// A server whose tools will be registered in `registry`.
    pub fn new(spec: UpstreamSpec, registry: Arc<Registry>) -> Arc<Self> {
        Arc::new(Self {
            spec,
            registry,
            connection: Mutex::new(None),
        })
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
            match &self.spec.transport {
                McpTransport::Http { url, headers } => {
                    let mut config = StreamableHttpClientTransportConfig::with_uri(url.clone());
                    for (name, value) in headers {
                        match (
                            name.eq_ignore_ascii_case("authorization"),
                            value.strip_prefix("Bearer "),
                        ) {
                            (true, Some(token)) => config.auth_header = Some(token.to_owned()),
                            _ => {
                                let name =
                                    name.parse().map_err(|e| format!("header `{name}`: {e}"))?;
                                let value =
                                    value.parse().map_err(|e| format!("header value: {e}"))?;
                                config.custom_headers.insert(name, value);
                            }
                        }
                    }
                    handler
                        .serve(StreamableHttpClientTransport::from_config(config))
                        .await
                        .map_err(|e| e.to_string())
                }
                McpTransport::Stdio { command, args, env } => {
                    let mut process = tokio::process::Command::new(command);
                    process.args(args).envs(env);
                    let transport = TokioChildProcess::new(process)
                        .map_err(|e| format!("cannot start `{command}`: {e}"))?;
                    handler.serve(transport).await.map_err(|e| e.to_string())
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

    /// Discovers the server's tools and replaces its registered tools with them; tools the
    /// server no longer lists disappear. Returns how many it has.
    pub async fn scan(self: &Arc<Self>) -> Result<usize, String> {
        let client = self.client().await?;
        let tools = match tokio::time::timeout(self.spec.timeout, client.list_all_tools()).await {
            Ok(Ok(tools)) => tools,
            Ok(Err(error)) => {
                self.reset().await;
                return Err(error.to_string());
            }
            Err(_) => return Err("listing tools timed out".to_owned()),
        };
        let prefix = self.spec.tool_prefix.as_deref().unwrap_or(&self.spec.name);
        let executor: Arc<dyn ToolExecutor> = Arc::new(UpstreamExecutor {
            server: self.clone(),
        });
        let registered: Vec<RegisteredTool> = tools
            .iter()
            .map(|tool| {
                let annotations = tool
                    .annotations
                    .as_ref()
                    .and_then(|a| serde_json::to_value(a).ok())
                    .and_then(|v| serde_json::from_value::<ToolAnnotations>(v).ok())
                    .unwrap_or_default();
                let descriptor = ToolDescriptor::new(
                    &self.spec.name,
                    tool.name.to_string(),
                    ToolSource::Upstream,
                )
                .with_exposed_name(exposed_name(prefix, &tool.name))
                .with_description(tool.description.as_deref().unwrap_or_default())
                .with_input_schema(Value::Object((*tool.input_schema).clone()))
                .with_annotations(annotations);
                RegisteredTool::new(descriptor, executor.clone())
            })
            .collect();
        let count = registered.len();
        self.registry
            .replace_server_tools(&self.spec.name, registered)
            .map_err(|e| e.to_string())?;
        tracing::info!(server = %self.spec.name, tools = count, "upstream tools registered");
        Ok(count)
    }

    /// Scans until it succeeds, backing off between attempts (for servers down at start).
    pub fn scan_in_background(self: &Arc<Self>) {
        let server = self.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_secs(1);
            while let Err(error) = server.scan().await {
                tracing::warn!(server = %server.spec.name, %error, retry_in = ?delay, "upstream unavailable");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
        });
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
        _context: &ExecutionContext,
    ) -> Result<ToolOutput, ExecutionError> {
        let client = self
            .server
            .client()
            .await
            .map_err(ExecutionError::Unavailable)?;
        let mut params = CallToolRequestParams::new(tool.name.clone());
        if let Value::Object(arguments) = arguments {
            params = params.with_arguments(arguments);
        }
        let timeout = self.server.spec.timeout;
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(timeout, client.call_tool(params)).await;
        let label = match &result {
            Ok(Ok(_)) => "ok",
            Ok(Err(_)) => "error",
            Err(_) => "timeout",
        };
        crate::metrics::upstream_call(&self.server.spec.name, label, started.elapsed());
        match result {
            Ok(Ok(result)) => serde_json::to_value(&result)
                .and_then(serde_json::from_value)
                .map_err(|e| {
                    ExecutionError::Other(format!(
                        "unreadable result from `{}`: {e}",
                        self.server.spec.name
                    ))
                }),
            Ok(Err(error)) => {
                // A transport or protocol failure: reconnect on the next call.
                self.server.reset().await;
                Err(ExecutionError::Unavailable(format!(
                    "`{}`: {error}",
                    self.server.spec.name
                )))
            }
            Err(_) => Err(ExecutionError::Timeout {
                seconds: timeout.as_secs(),
            }),
        }
    }
}

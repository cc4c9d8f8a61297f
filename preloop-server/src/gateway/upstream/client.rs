//! One upstream MCP server: its tools discovered into the registry as `{prefix}__{tool}` (and
//! into the store, so they are known before the server answers after a restart), refreshed on
//! `notifications/tools/list_changed`, and an executor that calls it with a timeout, a
//! concurrency bound, and a reconnect after a failure. Both go through one
//! [`UpstreamClient`]: the direct HTTP caller for HTTP servers ([`super::http`]), rmcp's
//! connection otherwise ([`super::connection`]), which for HTTP servers still carries the
//! server's own notifications.

use super::caller::{UpstreamClient, list_tools};
use super::connection::RmcpConnection;
use super::error::UpstreamError;
use super::offerings::{Naming, Offerings};
use super::{Announced, Announcement};
use crate::events::EventBus;
use crate::gateway::upstream::egress::Egress;
use crate::gateway::upstream::http::HttpCaller;
use crate::wire::convert;
use chrono::Utc;
use preloop_core::documents::{DiscoveredTool, McpServer, McpTransport};
use preloop_core::executor::{ExecutionContext, ExecutionError, ToolExecutor, ToolOutput};
use preloop_core::registry::{RegisteredTool, Registry, ToolDescriptor, ToolSource, exposed_name};
use preloop_core::store::DocumentStore;
use serde_json::{Value, json};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Longest pause between retries of a server that is down.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// Where discovered tools are kept.
pub type ToolCatalog = Arc<dyn DocumentStore<DiscoveredTool>>;

/// One upstream server and its (lazily re-established) connection.
pub struct UpstreamServer {
    server: McpServer,
    registry: Arc<Registry>,
    catalog: ToolCatalog,
    /// Where its state changes are published.
    events: EventBus,
    /// rmcp's client: stdio servers' only one; HTTP servers' notifications.
    connection: Arc<RmcpConnection>,
    /// Lists and calls an HTTP server's tools directly.
    caller: Option<HttpCaller>,
    permits: Semaphore,
    stopped: CancellationToken,
    /// Cancelled once the first scan has been tried (successful or not).
    first_scan: CancellationToken,
    /// Its prompts and resources, as the last scan found them.
    offerings: RwLock<Arc<Offerings>>,
    /// Where it tells its organization's sessions that they changed.
    announcements: tokio::sync::broadcast::Sender<Announcement>,
}

impl std::fmt::Debug for UpstreamServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamServer")
            .field("name", &self.server.name)
            .field("organization", &self.server.organization_id)
            .finish_non_exhaustive()
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
        announcements: tokio::sync::broadcast::Sender<Announcement>,
    ) -> Arc<Self> {
        let http = egress.http_client(&server.organization_id, server.keep_alive);
        let permits = Semaphore::new(server.max_concurrency.max(1) as usize);
        // Headers that do not parse leave everything to rmcp, which reports them at connection.
        let caller = match &server.transport {
            McpTransport::Http { url, headers } => HttpCaller::new(http.clone(), url, headers).ok(),
            McpTransport::Stdio { .. } => None,
        };
        Arc::new_cyclic(|this: &Weak<Self>| {
            let this = this.clone();
            let rescan = Arc::new(move || {
                let Some(server) = this.upgrade() else { return };
                tokio::spawn(async move {
                    if let Err(error) = server.scan().await {
                        tracing::warn!(server = %server.server.name, %error, "refreshing tools failed");
                    }
                });
            });
            let organization_id = server.organization_id.clone();
            let naming = Naming::new(prefix(&server));
            let announce = announcements.clone();
            let updated = Arc::new(move |uri: &str| {
                let _ = announce.send(Announcement {
                    organization_id: organization_id.clone(),
                    what: Announced::ResourceUpdated(naming.uri(uri)),
                });
            });
            let notices = super::connection::Notices {
                lists_changed: rescan,
                resource_updated: updated,
            };
            Self {
                connection: RmcpConnection::new(server.clone(), http, egress.clone(), notices),
                server,
                registry,
                catalog,
                events,
                caller,
                permits,
                stopped: CancellationToken::new(),
                first_scan: CancellationToken::new(),
                offerings: RwLock::default(),
                announcements,
            }
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

    /// How agents see its prompts' names and its resources' URIs.
    pub fn naming(&self) -> Naming {
        Naming::new(prefix(&self.server))
    }

    /// Its prompts and resources, as the last scan found them.
    pub fn offerings(&self) -> Arc<Offerings> {
        self.offerings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Keeps `offerings` as the server's, announcing what changed (also at the first scan:
    /// sessions opened before it heard of none).
    fn replace_offerings(&self, offerings: Offerings) {
        let offerings = Arc::new(offerings);
        let previous = std::mem::replace(
            &mut *self
                .offerings
                .write()
                .unwrap_or_else(PoisonError::into_inner),
            offerings.clone(),
        );
        let changes = [
            (
                previous.prompts != offerings.prompts,
                Announced::PromptsChanged,
            ),
            (
                previous.resources != offerings.resources
                    || previous.templates != offerings.templates,
                Announced::ResourcesChanged,
            ),
        ];
        for (changed, what) in changes {
            if changed {
                let _ = self.announcements.send(Announcement {
                    organization_id: self.server.organization_id.clone(),
                    what,
                });
            }
        }
    }

    /// Sends `request` to the server within its timeout and concurrency bound, and returns
    /// its result as the server wrote it.
    pub async fn forward(
        &self,
        request: rmcp::model::ClientRequest,
    ) -> Result<Value, UpstreamError> {
        self.bounded(self.client().forward(request)).await
    }

    /// Sends `request` on the connection that carries the server's own notifications (a
    /// subscription must be made in the session its updates arrive in).
    pub async fn forward_on_notified(
        &self,
        request: rmcp::model::ClientRequest,
    ) -> Result<Value, UpstreamError> {
        self.bounded(self.connection.forward(request)).await
    }

    /// `request` within the server's timeout and concurrency bound.
    async fn bounded(
        &self,
        request: impl std::future::Future<Output = Result<Value, UpstreamError>>,
    ) -> Result<Value, UpstreamError> {
        let timeout = self.timeout();
        let bounded = async {
            let _permit = self.permits.acquire().await.map_err(|_| {
                UpstreamError::Client(format!("`{}` was removed", self.server.name))
            })?;
            request.await
        };
        tokio::time::timeout(timeout, bounded)
            .await
            .unwrap_or(Err(UpstreamError::RequestTimeout { after: timeout }))
    }

    /// How its tools are listed and called.
    fn client(&self) -> &dyn UpstreamClient {
        match &self.caller {
            Some(caller) => caller,
            None => &self.connection,
        }
    }

    /// Stops the server: its tools disappear, its connection closes, background scans end.
    pub async fn stop(&self) {
        self.stopped.cancel();
        self.registry
            .remove_server(Some(&self.server.organization_id), &self.server.name);
        self.connection.disconnect().await;
        if let Some(caller) = &self.caller {
            caller.reset().await;
        }
    }

    /// Registers tools found by an earlier scan (at start, before the server answers).
    pub fn register_known(
        self: &Arc<Self>,
        known: Vec<DiscoveredTool>,
    ) -> Result<(), UpstreamError> {
        let descriptors = known.into_iter().map(|t| t.descriptor).collect();
        self.register(descriptors)
    }

    fn register(self: &Arc<Self>, descriptors: Vec<ToolDescriptor>) -> Result<(), UpstreamError> {
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
            .map_err(UpstreamError::from)
    }

    /// Discovers the server's tools and replaces its registered tools with them; tools the
    /// server no longer lists disappear. Returns how many it has.
    pub async fn scan(self: &Arc<Self>) -> Result<usize, UpstreamError> {
        // Connected first also for HTTP servers: the connection carries their notifications.
        self.connection.client().await?;
        let tools = match tokio::time::timeout(self.timeout(), list_tools(self.client())).await {
            Ok(Ok(tools)) => tools,
            Ok(Err(error)) => {
                self.client().reset().await;
                return Err(error);
            }
            Err(_) => return Err(UpstreamError::ListTimeout),
        };
        let descriptors: Vec<ToolDescriptor> = tools
            .iter()
            .map(|tool| {
                let annotations = tool
                    .annotations
                    .as_ref()
                    .map(convert::annotations)
                    .unwrap_or_default();
                ToolDescriptor::new(
                    &self.server.name,
                    tool.name.to_string(),
                    ToolSource::Upstream,
                )
                .with_exposed_name(exposed_name(prefix(&self.server), &tool.name))
                .with_description(tool.description.as_deref().unwrap_or_default())
                .with_input_schema(Value::Object((*tool.input_schema).clone()))
                .with_annotations(annotations)
            })
            .collect();
        let count = descriptors.len();
        // Prompts and resources are optional: a server without them (or too slow to list
        // them) still has its tools.
        match tokio::time::timeout(self.timeout(), Offerings::discover(self.client())).await {
            Ok(offerings) => self.replace_offerings(offerings),
            Err(_) => {
                tracing::warn!(server = %self.server.name, "listing prompts and resources timed out");
            }
        }
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
                    json!({"server": server.server.name, "error": error.to_string(), "retry_in_seconds": delay.as_secs()}),
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

/// The prefix of `server`'s tools and prompts: its `tool_prefix`, else its name.
fn prefix(server: &McpServer) -> &str {
    server.tool_prefix.as_deref().unwrap_or(&server.name)
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
                let arguments = match arguments {
                    Value::Object(arguments) => arguments,
                    _ => serde_json::Map::new(),
                };
                let called = self
                    .server
                    .client()
                    .call_tool(&tool.name, arguments, context.observer.clone())
                    .await;
                match called {
                    Ok(result) => convert::tool_output(result).map_err(|e| {
                        ExecutionError::Other(format!("unreadable result from `{name}`: {e}"))
                    }),
                    Err(UpstreamError::Refused(error)) => Err(ExecutionError::Other(format!(
                        "`{name}` refused the call: {}",
                        error.message
                    ))),
                    Err(error) => {
                        // The client's connection or session is in doubt: its next request
                        // starts anew (an HTTP server's notification stream is not affected).
                        self.server.client().reset().await;
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

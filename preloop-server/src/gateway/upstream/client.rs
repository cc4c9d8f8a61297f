//! One upstream MCP server: its tools discovered into the registry as `{prefix}__{tool}` (and
//! into the store, so they are known before the server answers after a restart), refreshed on
//! `notifications/tools/list_changed`, and an executor that calls it with a timeout, a
//! concurrency bound, and a reconnect after a failure. Both go through an
//! [`UpstreamClient`]: in sessions, the direct HTTP caller for HTTP servers ([`super::http`])
//! and rmcp's connection otherwise ([`super::connection`], which for HTTP servers still
//! carries the server's own notifications); statelessly ([`super::modern`]) for an HTTP server
//! that speaks 2026-07-28, in the generation [`Eras`] picks for each request.

use super::caller::{UpstreamClient, list_tools};
use super::connection::{Listed, Notices, RmcpConnection};
use super::eras::{Era, Eras};
use super::error::UpstreamError;
use super::executor::{Routed, UpstreamExecutor};
use super::modern::ModernCaller;
use super::offerings::{Naming, Offerings};
use super::{Announced, Announcement};
use crate::events::EventBus;
use crate::gateway::upstream::egress::Egress;
use crate::gateway::upstream::http::HttpCaller;
use crate::wire::convert;
use chrono::Utc;
use preloop_core::documents::{DiscoveredTool, McpServer, McpTransport};
use preloop_core::executor::{ExecutionObserver, ToolExecutor};
use preloop_core::registry::{
    OperationKind, RegisteredTool, Registry, ToolDescriptor, ToolSource, exposed_name,
};
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
    /// Lists and calls an HTTP server's tools directly, in sessions.
    caller: Option<HttpCaller>,
    /// Calls it statelessly, when its last scan found it speaks 2026-07-28.
    modern: RwLock<Option<Arc<ModernCaller>>>,
    /// What to do when it says something changed.
    notices: Notices,
    /// Ends the task that listens to its 2026-07-28 list changes, while one runs.
    listening: std::sync::Mutex<Option<CancellationToken>>,
    /// What it offers in which generation, as its last scan found.
    eras: RwLock<Arc<Eras>>,
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
            let rescan = Arc::new(move |listed: Listed| {
                let Some(server) = this.upgrade() else { return };
                tokio::spawn(async move {
                    if let Err(error) = server.scan_after(Some(listed)).await {
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
            let notices = Notices {
                lists_changed: rescan,
                resource_updated: updated,
            };
            Self {
                connection: RmcpConnection::new(
                    server.clone(),
                    http,
                    egress.clone(),
                    notices.clone(),
                ),
                notices,
                listening: std::sync::Mutex::default(),
                server,
                registry,
                catalog,
                events,
                caller,
                modern: RwLock::default(),
                eras: RwLock::new(Arc::new(Eras::new(false, true))),
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

    pub(super) fn timeout(&self) -> Duration {
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
    /// sessions opened before it heard of none) and what the server said changed (`told`),
    /// whatever the gateway's view of it.
    fn replace_offerings(&self, offerings: Offerings, told: Option<Listed>) {
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
                previous.prompts != offerings.prompts || told == Some(Listed::Prompts),
                Announced::PromptsChanged,
            ),
            (
                previous.resources != offerings.resources
                    || previous.templates != offerings.templates
                    || told == Some(Listed::Resources),
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

    /// Sends `request` to the server in generation `era`, within its timeout and concurrency
    /// bound, for the client `observer` speaks for, and returns its result as the server wrote
    /// it.
    pub async fn forward(
        &self,
        request: rmcp::model::ClientRequest,
        era: Era,
        observer: Option<&Arc<dyn ExecutionObserver>>,
    ) -> Result<Value, UpstreamError> {
        let client = self.client_in(era);
        self.bounded(client.as_client().forward(request, observer))
            .await
    }

    /// The generation to ask for the `kind` the server calls `own`, on behalf of a client of
    /// generation `client`.
    pub fn route(&self, kind: OperationKind, own: &str, client: Era) -> Era {
        self.eras
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .route(kind, own, client)
    }

    /// The client that asks in `era` (in sessions when the server does not speak it).
    pub(super) fn client_in(&self, era: Era) -> Routed<'_> {
        let modern = match era {
            Era::Modern => self
                .modern
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            Era::Legacy => None,
        };
        match modern {
            Some(modern) => Routed::Modern(modern),
            None => Routed::Sessions(self.client()),
        }
    }

    /// Sends `request` on the connection that carries the server's own notifications (a
    /// subscription must be made in the session its updates arrive in).
    pub async fn forward_on_notified(
        &self,
        request: rmcp::model::ClientRequest,
    ) -> Result<Value, UpstreamError> {
        self.bounded(self.connection.forward(request, None)).await
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

    /// How its tools are listed and called in sessions.
    pub(super) fn client(&self) -> &dyn UpstreamClient {
        match &self.caller {
            Some(caller) => caller,
            None => &self.connection,
        }
    }

    /// A slot of its concurrency bound, while it runs; an error once the server is removed.
    pub(super) async fn permit(
        &self,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, tokio::sync::AcquireError> {
        self.permits.acquire().await
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
        self.modern
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// The tool agents call `exposed`, if the server forwards calls of tools it does not list
    /// (`forward_unlisted`) and the name is one of its own (its prefix, or none when it keeps
    /// the upstream's names): no schema or annotations are known of it.
    pub fn unlisted(self: &Arc<Self>, exposed: &str) -> Option<RegisteredTool> {
        if !self.server.forward_unlisted || !self.server.enabled {
            return None;
        }
        let own = match prefix(&self.server) {
            "" => exposed,
            prefix => exposed.strip_prefix(prefix)?.strip_prefix("__")?,
        };
        (!own.is_empty()).then(|| {
            let descriptor = ToolDescriptor::new(&self.server.name, own, ToolSource::Upstream)
                .with_exposed_name(exposed)
                .with_input_schema(json!({"type": "object"}));
            RegisteredTool::new(
                descriptor,
                Arc::new(UpstreamExecutor {
                    server: self.clone(),
                }),
            )
        })
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

    /// Discovers the server's tools (in each generation it speaks) and replaces its registered
    /// tools with them; tools the server no longer lists disappear. Returns how many it has.
    pub async fn scan(self: &Arc<Self>) -> Result<usize, UpstreamError> {
        self.scan_after(None).await
    }

    /// [`Self::scan`], after the server said its `told` list changed (announced to the
    /// organization's sessions even when the gateway's view of it did not change).
    async fn scan_after(self: &Arc<Self>, told: Option<Listed>) -> Result<usize, UpstreamError> {
        let modern = self.discover_modern().await;
        let legacy = self.list_in_sessions().await;
        let modern_tools = match &modern {
            Some(modern) => Some(self.listed(list_tools(&**modern)).await),
            None => None,
        };
        let (mut eras, modern_tools, legacy_tools) = match (legacy, modern_tools) {
            (Ok(legacy), Some(Ok(modern))) => (Eras::new(true, true), modern, legacy),
            (Ok(legacy), _) => (Eras::new(false, true), Vec::new(), legacy),
            (Err(error), Some(Ok(modern))) => {
                tracing::debug!(server = %self.server.name, %error, "no session: the server speaks 2026-07-28 only");
                (Eras::new(true, false), modern, Vec::new())
            }
            (Err(error), _) => return Err(error),
        };
        let tools = eras.merge(OperationKind::Tool, modern_tools, legacy_tools, |tool| {
            tool.name.as_ref()
        });
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
        // Prompts and resources are optional: a server without them (or too slow to list
        // them) still has its tools.
        let offerings = async {
            let legacy = match eras.speaks_legacy() {
                true => Offerings::discover(self.client()).await,
                false => Offerings::default(),
            };
            let modern = match &modern {
                Some(modern) if eras.speaks_modern() => Offerings::discover(&**modern).await,
                _ => Offerings::default(),
            };
            (modern, legacy)
        };
        match tokio::time::timeout(self.timeout(), offerings).await {
            Ok((modern, legacy)) => {
                let offerings = Offerings::merge(&mut eras, modern, legacy);
                self.replace_offerings(offerings, told);
            }
            Err(_) => {
                tracing::warn!(server = %self.server.name, "listing prompts and resources timed out");
            }
        }
        let modern = modern.filter(|_| eras.speaks_modern());
        self.follow_list_changes(modern.as_ref());
        *self.modern.write().unwrap_or_else(PoisonError::into_inner) = modern;
        *self.eras.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(eras);
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

    /// Keeps one `subscriptions/listen` stream open to a 2026-07-28 server that declares list
    /// changes (its changes reach the gateway nowhere else), opened again after it ends, with
    /// a growing pause; none once the server is stopped or no longer speaks 2026-07-28.
    fn follow_list_changes(self: &Arc<Self>, modern: Option<&Arc<ModernCaller>>) {
        let mut listening = self
            .listening
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let filter = modern.and_then(|modern| modern.list_changes());
        let (Some(modern), Some(filter)) = (modern, filter) else {
            if let Some(listener) = listening.take() {
                listener.cancel();
            }
            return;
        };
        if listening.as_ref().is_some_and(|l| !l.is_cancelled()) {
            return;
        }
        let stop = self.stopped.child_token();
        *listening = Some(stop.clone());
        let modern = modern.clone();
        let notices = self.notices.clone();
        let name = self.server.name.clone();
        tokio::spawn(async move {
            let mut pause = Duration::from_secs(1);
            loop {
                let heard = |notification: &rmcp::model::ServerNotification| {
                    notices.hear(notification);
                };
                let started = std::time::Instant::now();
                let ended = tokio::select! {
                    () = stop.cancelled() => return,
                    ended = modern.listen(filter.clone(), &heard) => ended,
                };
                if let Err(error) = ended {
                    tracing::debug!(server = %name, %error, "listening to list changes failed");
                }
                if started.elapsed() > MAX_RETRY_DELAY {
                    pause = Duration::from_secs(1);
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(MAX_RETRY_DELAY);
            }
        });
    }

    /// A stateless caller, if the server (an HTTP one) speaks 2026-07-28.
    async fn discover_modern(&self) -> Option<Arc<ModernCaller>> {
        let caller = self.caller.as_ref()?;
        match tokio::time::timeout(self.timeout(), caller.discover_modern()).await {
            Ok(Ok(modern)) => modern.map(Arc::new),
            Ok(Err(error)) => {
                tracing::debug!(server = %self.server.name, %error, "2026-07-28 discovery failed");
                None
            }
            Err(_) => None,
        }
    }

    /// Its tools as a session lists them (connected first, also for HTTP servers: the
    /// connection carries their notifications).
    async fn list_in_sessions(&self) -> Result<Vec<rmcp::model::Tool>, UpstreamError> {
        self.connection.client().await?;
        let listed = self.listed(list_tools(self.client())).await;
        if listed.is_err() {
            self.client().reset().await;
        }
        listed
    }

    /// A listing within the server's timeout.
    async fn listed(
        &self,
        listing: impl std::future::Future<Output = Result<Vec<rmcp::model::Tool>, UpstreamError>>,
    ) -> Result<Vec<rmcp::model::Tool>, UpstreamError> {
        tokio::time::timeout(self.timeout(), listing)
            .await
            .unwrap_or(Err(UpstreamError::ListTimeout))
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

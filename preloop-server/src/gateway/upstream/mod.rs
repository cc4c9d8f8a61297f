//! The running upstream servers of every organization: started at boot and whenever the API
//! creates or changes one, stopped when it is deleted or disabled. [`client`] is one running
//! server (stdio through rmcp; HTTP through [`http`] in sessions and [`modern`] statelessly,
//! in the generations [`eras`] says it speaks); [`egress`] says what each organization's
//! servers may run and reach.

pub mod caller;
pub mod client;
mod connection;
pub mod egress;
pub mod eras;
pub mod error;
mod executor;
pub mod http;
pub mod modern;
mod observed;
pub mod offerings;
pub mod rounds;

use crate::events::EventBus;
use crate::gateway::upstream::client::{ToolCatalog, UpstreamServer};
use crate::gateway::upstream::egress::Egress;
use preloop_core::documents::McpServer;
use preloop_core::registry::Registry;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;
use uuid::Uuid;

/// Something an upstream announced that concerns its organization's sessions.
#[derive(Debug, Clone)]
pub struct Announcement {
    /// The upstream's organization.
    pub organization_id: String,
    /// What changed.
    pub what: Announced,
}

/// What an upstream announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announced {
    /// A resource changed (`notifications/resources/updated`); its URI as agents see it.
    ResourceUpdated(String),
    /// The prompts it offers changed.
    PromptsChanged,
    /// The resources or resource templates it offers changed.
    ResourcesChanged,
}

/// Most announcements queued for the sessions to hear; a slower listener misses the oldest.
const ANNOUNCEMENT_QUEUE: usize = 1024;

/// Every running upstream server, by id.
pub struct Upstreams {
    registry: Arc<Registry>,
    catalog: ToolCatalog,
    events: EventBus,
    egress: Egress,
    announcements: tokio::sync::broadcast::Sender<Announcement>,
    running: Mutex<HashMap<Uuid, Arc<UpstreamServer>>>,
    created: std::time::Instant,
}

/// How long after start `/ready` waits for the operator's servers' first scans.
pub const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams").finish_non_exhaustive()
    }
}

impl Upstreams {
    /// No server running yet; tools go to `registry`, discovered tools to `catalog`.
    /// Their state changes are published on `events`; `egress` says what each organization's
    /// servers may run and reach.
    pub fn new(
        registry: Arc<Registry>,
        catalog: ToolCatalog,
        events: EventBus,
        egress: Egress,
    ) -> Self {
        Self {
            registry,
            catalog,
            events,
            egress,
            announcements: tokio::sync::broadcast::channel(ANNOUNCEMENT_QUEUE).0,
            running: Mutex::new(HashMap::new()),
            created: std::time::Instant::now(),
        }
    }

    /// Starts `server` (stopping the previous version of it, if running): the tools its last
    /// scan found are registered at once, and a scan runs in the background until the server
    /// answers. A disabled server is only stopped.
    pub async fn start(&self, server: McpServer) {
        let mut running = self.running.lock().await;
        if let Some(previous) = running.remove(&server.id) {
            previous.stop().await;
        }
        if !server.enabled {
            return;
        }
        // INVARIANT (tenants start no programs): checked here as well as where servers are
        // registered, so a server stored before a rule tightened does not start either.
        if let Err(error) = self.egress.check(&server) {
            tracing::error!(server = %server.name, organization = %server.organization_id, %error, "upstream server refused");
            return;
        }
        let known = self
            .catalog
            .list_documents(&server.organization_id, Some(&server.id.to_string()))
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(server = %server.name, %error, "cannot read the tools found earlier");
                Vec::new()
            });
        let id = server.id;
        let upstream = UpstreamServer::new(
            server,
            self.registry.clone(),
            self.catalog.clone(),
            self.events.clone(),
            &self.egress,
            self.announcements.clone(),
        );
        if let Err(error) = upstream.register_known(known) {
            tracing::warn!(server = %upstream.document().name, %error, "cannot register the tools found earlier");
        }
        upstream.scan_in_background();
        running.insert(id, upstream);
    }

    /// Brings the organization's running servers in line with `servers` (after reloading them
    /// from the store): new and changed ones start, removed and disabled ones stop, unchanged
    /// ones keep their connections.
    pub async fn sync(&self, organization_id: &str, servers: Vec<McpServer>) {
        let running: Vec<(Uuid, McpServer)> = self
            .running
            .lock()
            .await
            .iter()
            .filter(|(_, s)| s.document().organization_id == organization_id)
            .map(|(id, s)| (*id, s.document().clone()))
            .collect();
        for (id, _) in running
            .iter()
            .filter(|(id, _)| !servers.iter().any(|s| s.id == *id))
        {
            self.stop(organization_id, *id).await;
        }
        for server in servers {
            let unchanged = running
                .iter()
                .any(|(id, doc)| *id == server.id && same_settings(doc, &server));
            if !unchanged {
                self.start(server).await;
            }
        }
    }

    /// Stops the organization's server `id`; returns whether it was running.
    pub async fn stop(&self, organization_id: &str, id: Uuid) -> bool {
        let mut running = self.running.lock().await;
        match running.get(&id) {
            Some(server) if server.document().organization_id == organization_id => {
                server.stop().await;
                running.remove(&id);
                true
            }
            _ => false,
        }
    }

    /// The operator's servers whose first scan has not been tried yet, while the server is
    /// younger than [`READY_WAIT`] (after that nothing is waited for): until then a client
    /// that connects might find their tools missing.
    pub async fn awaited(&self) -> Vec<String> {
        if self.created.elapsed() > READY_WAIT {
            return Vec::new();
        }
        let mut names: Vec<String> = self
            .running
            .lock()
            .await
            .values()
            .filter(|s| {
                crate::tenancy::is_operator(&s.document().organization_id) && !s.first_scan_tried()
            })
            .map(|s| s.document().name.clone())
            .collect();
        names.sort();
        names
    }

    /// What the servers announce from now on.
    pub fn announcements(&self) -> tokio::sync::broadcast::Receiver<Announcement> {
        self.announcements.subscribe()
    }

    /// What each organization's servers may run and reach.
    pub fn egress(&self) -> &Egress {
        &self.egress
    }

    /// The organization's running servers, by name.
    pub async fn of_organization(&self, organization_id: &str) -> Vec<Arc<UpstreamServer>> {
        let mut servers: Vec<Arc<UpstreamServer>> = self
            .running
            .lock()
            .await
            .values()
            .filter(|s| s.document().organization_id == organization_id)
            .cloned()
            .collect();
        servers.sort_by(|a, b| a.document().name.cmp(&b.document().name));
        servers
    }

    /// The tool agents call `exposed` in the organization, when no server lists it but one
    /// forwards calls of tools it does not list ([`UpstreamServer::unlisted`]): by its prefix,
    /// or the only such server keeping the upstream's names.
    pub async fn unlisted_tool(
        &self,
        organization_id: &str,
        exposed: &str,
    ) -> Option<preloop_core::registry::RegisteredTool> {
        let found: Vec<_> = self
            .of_organization(organization_id)
            .await
            .iter()
            .filter_map(|server| server.unlisted(exposed))
            .collect();
        match <[_; 1]>::try_from(found) {
            Ok([tool]) => Some(tool),
            Err(_) => None,
        }
    }

    /// The organization's running server `id`.
    pub async fn get(&self, organization_id: &str, id: Uuid) -> Option<Arc<UpstreamServer>> {
        self.running
            .lock()
            .await
            .get(&id)
            .filter(|s| s.document().organization_id == organization_id)
            .cloned()
    }
}

/// Whether two versions of a server differ only in what does not need a restart.
fn same_settings(running: &McpServer, stored: &McpServer) -> bool {
    McpServer {
        last_scanned_at: stored.last_scanned_at,
        ..running.clone()
    } == *stored
}

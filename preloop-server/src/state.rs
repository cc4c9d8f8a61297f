//! What every route shares: the governor, the store, the running upstreams, the application
//! services, authentication and the channels, behind one reference count; and how the
//! services reach authentication and the upstreams, which lie above them.

use crate::app::servers::Cause;
use crate::app::{
    Accounts, Approvals, Guards, Policies, Replicas, Servers, TrackerReach, Trackers,
    UpstreamControl,
};
use crate::auth::Authenticator;
use crate::auth::throttle::{Throttles, client_key};
use crate::channels::Callbacks;
use crate::gateway::upstream::Upstreams;
use crate::gateway::upstream::egress::{Egress, MAX_TENANT_SERVERS};
use preloop_core::documents::McpServer;
use preloop_core::governor::Governor;
use preloop_store::Database;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// What the routes need, shared: every request clones the state (once per layer), so it is one
/// reference count, not a copy of each field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Shares `shared` with every route.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The contents of [`AppState`].
pub struct Shared {
    /// The governor.
    pub governor: Arc<Governor>,
    /// The store: accounts, policies, approvals, configuration documents, audit.
    pub store: Arc<Database>,
    /// The running upstream servers.
    pub upstreams: Arc<Upstreams>,
    /// Bearer authentication.
    pub authenticator: Authenticator,
    /// Signs access and refresh tokens.
    pub tokens: crate::auth::tokens::TokenKeys,
    /// The server's public base URL (approval links, trackers' webhook URLs).
    pub public_url: String,
    /// Whether `POST /api/v1/auth/register` creates accounts.
    pub registration_enabled: bool,
    /// Votes, and running what they approve.
    pub approvals: Approvals,
    /// Reading and changing governance documents.
    pub policies: Policies,
    /// Upstream MCP servers and tool configurations.
    pub servers: Servers,
    /// Users, API keys, passwords, sign-in and registration.
    pub accounts: Accounts,
    /// Organizations: listed, renamed, created and closed.
    pub organizations: crate::app::Organizations,
    /// Issue trackers, their synchronization, webhooks and tools.
    pub trackers: Trackers,
    /// Announcing configuration changes to the other replicas.
    pub replicas: Replicas,
    /// Per-principal request rate limits.
    pub limits: crate::auth::limits::RateLimits,
    /// The approval channels (their callbacks come back through the router).
    pub channels: Arc<crate::channels::Channels>,
    /// Live events for the WebSocket.
    pub events: crate::events::EventBus,
    /// Between WebSocket heartbeats.
    pub websocket_heartbeat: std::time::Duration,
    /// Throttles of sign-in and registration (shared with [`Accounts`] through
    /// [`AccountGuards`]).
    pub throttles: Arc<Throttles>,
}

impl Shared {
    /// What the channels' callbacks (chat buttons, polled updates) need to record votes.
    pub fn channel_callbacks(&self) -> Callbacks {
        Callbacks {
            channels: self.channels.clone(),
            approvals: self.approvals.clone(),
            store: self.store.clone(),
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppState")
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

#[async_trait::async_trait]
impl UpstreamControl for Upstreams {
    fn permit(&self, server: &McpServer) -> Result<(), Cause> {
        Ok(self.egress().check(server)?)
    }

    fn server_limit(&self, organization_id: &str) -> Option<usize> {
        (!crate::tenancy::is_operator(organization_id)).then_some(MAX_TENANT_SERVERS)
    }

    async fn start(&self, server: McpServer) {
        Upstreams::start(self, server).await;
    }

    async fn stop(&self, organization_id: &str, id: Uuid) {
        Upstreams::stop(self, organization_id, id).await;
    }

    async fn rescan(&self, organization_id: &str, id: Uuid) -> Option<Result<usize, Cause>> {
        Some(
            self.get(organization_id, id)
                .await?
                .scan()
                .await
                .map_err(Cause::from),
        )
    }
}

impl TrackerReach for Egress {
    fn permit(&self, organization_id: &str, url: &str) -> Result<(), Cause> {
        Ok(self.permit_url(organization_id, url)?)
    }

    fn client(&self, organization_id: &str) -> reqwest::Client {
        self.http_client(organization_id, true)
    }
}

/// What [`Accounts`] needs of authentication: the sign-in and registration throttles, and the
/// authenticator's cache of verified credentials.
#[derive(Debug)]
pub struct AccountGuards {
    /// The throttles.
    pub throttles: Arc<Throttles>,
    /// Whose cache to clear.
    pub authenticator: Authenticator,
}

impl Guards for AccountGuards {
    fn password_wait(&self, address: IpAddr, email: &str) -> Option<Duration> {
        self.throttles
            .password_blocked(&Throttles::password_keys(address, email))
    }

    fn wrong_password(&self, address: IpAddr, email: &str) -> Result<(), Duration> {
        self.throttles
            .wrong_password(&Throttles::password_keys(address, email))
    }

    fn existing_account_wait(&self, organization_id: &str) -> Option<Duration> {
        self.throttles.existing_accounts.blocked(organization_id)
    }

    fn existing_account(&self, organization_id: &str) -> Result<(), Duration> {
        self.throttles.existing_accounts.spend(organization_id)
    }

    fn registration(&self, address: IpAddr) -> Result<(), Duration> {
        self.throttles.registration.spend(&client_key(address))
    }

    fn forget_user(&self, user_id: &str) {
        self.authenticator.forget_user(user_id);
    }

    fn forget_key(&self, key_id: Uuid) {
        self.authenticator.forget(key_id);
    }
}

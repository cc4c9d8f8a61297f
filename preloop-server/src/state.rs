//! What every route shares: the governor, the store, the running upstreams, the application
//! services, authentication and the channels, behind one reference count.

use crate::app::{Approvals, Policies, Replicas};
use crate::auth::Authenticator;
use crate::channels::Callbacks;
use crate::gateway::upstream::Upstreams;
use preloop_core::governor::Governor;
use preloop_store::Database;
use std::sync::Arc;

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
    /// Whether `POST /api/v1/auth/register` creates accounts.
    pub registration_enabled: bool,
    /// Votes, and running what they approve.
    pub approvals: Approvals,
    /// Reading and changing governance documents.
    pub policies: Policies,
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
    /// Throttles of sign-in and registration.
    pub throttles: crate::auth::throttle::Throttles,
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

//! Building the adapter of a stored tracker, with the organization's HTTP client.

use crate::app::servers::Cause;
use preloop_core::documents::TrackerConfig;
use preloop_core::tracker::{Tracker, TrackerError};
use preloop_trackers::Connection;
use preloop_trackers::http::ClientOptions;
use std::sync::Arc;

/// What trackers may reach, and how: the gateway's egress rules implement it (see `state`),
/// so a tenant's tracker URL gets the same refusal of private addresses as its MCP servers.
pub trait TrackerReach: Send + Sync {
    /// Refuses a URL the organization may not reach.
    fn permit(&self, organization_id: &str, url: &str) -> Result<(), Cause>;
    /// The HTTP client for the organization's trackers (no redirects; tenants' resolve only
    /// to permitted addresses).
    fn client(&self, organization_id: &str) -> reqwest::Client;
}

/// The adapter for `config`.
pub fn adapter(
    config: &TrackerConfig,
    reach: &dyn TrackerReach,
) -> Result<Arc<dyn Tracker>, TrackerError> {
    let connection = Connection {
        url: config.base_url.clone(),
        token: config.token.clone(),
        username: config.username.clone(),
    };
    let options = ClientOptions {
        client: reach.client(&config.organization_id),
        ..ClientOptions::default()
    };
    preloop_trackers::connect(config.kind, &connection, options)
}

//! The Preloop server: the MCP gateway in front of the governor, the REST API, the approval
//! channels, the console and the `preloop` command line. It assembles the other crates and holds
//! as little logic as it can.
//!
//! What it holds, by layer, lowest first: each module imports only modules of the rows above
//! it (`tests/module_graph.rs` checks it against the same list).
//!
//! | module | holds |
//! |---|---|
//! | `tenancy`, `events`, `metrics`, `wire` | leaves: the operator's organization, the live-event bus, Prometheus metrics, the MCP wire format |
//! | `app` | the application services: approvals, policies, servers and tools, accounts, replicas |
//! | `http` | the REST error type, extractors and size bounds |
//! | `auth` | bearer authentication, access and refresh tokens, identity-provider keys, rate limits and sign-in throttles |
//! | `gateway` | MCP in (rmcp handler, fast path, sessions, `Host` guard) and out (upstream servers and what they may reach) |
//! | `channels` | approval channels (e-mail, Slack, Mattermost, Telegram, webhooks) and their callbacks |
//! | `state` | `AppState`, what every route shares |
//! | `web` | the console, the decision page and the WebSocket |
//! | [`config`] | the configuration file and environment |
//! | `api` | the REST API |
//! | `router` | the HTTP surface: layers and routes |
//! | [`runtime`] | bootstrap, start-up loading, `serve`, and the administrative commands |

#![deny(missing_docs)]

mod api;
mod app;
mod auth;
mod channels;
pub mod config;
mod events;
mod gateway;
mod http;
mod metrics;
mod router;
pub mod runtime;
mod state;
mod tenancy;
mod web;
mod wire;

pub use auth::CACHE_TTL;
pub use gateway::upstream::egress::Egress;

/// What a client must produce to be believed: chat platforms' request signatures, Preloop's
/// webhook signatures, and the claims of access tokens (for integrations and tests that act as
/// those clients).
pub mod signing {
    pub use crate::auth::tokens::{Claims, TokenKind, credentials_stamp};
    pub use crate::channels::{sign, slack_signature};
}

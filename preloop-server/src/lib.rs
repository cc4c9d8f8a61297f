//! The Preloop server: the MCP endpoint (rmcp streamable HTTP) in front of the governor, API-key
//! authentication, first-start bootstrap, health checks and the `preloop` CLI. It assembles the
//! other crates and holds as little logic as it can.

#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod bootstrap;
pub mod builtins;
pub mod channels;
pub mod commands;
pub mod config;
pub mod console;
pub mod decision_page;
pub mod decisions;
pub mod egress;
pub mod elicitation;
pub mod events;
pub mod fastpath;
pub mod hitl;
pub mod hosts;
pub mod http;
pub mod jwks;
pub mod limits;
pub mod listeners;
pub mod mcp;
pub mod metrics;
pub mod relay;
pub mod serve;
pub mod sessions;
pub mod startup;
pub mod throttle;
pub mod tokens;
pub mod upstream;
pub mod upstream_http;
pub mod upstreams;
pub mod ws;

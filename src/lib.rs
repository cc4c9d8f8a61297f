//! Preloop: a governance layer for AI agents' tool calls.
//!
//! This facade re-exports the member crates:
//! - [`core`] (`preloop-core`): policy, approvals, registry, audit and the governor pipeline.
//! - [`store`] (`preloop-store`): SQLite and PostgreSQL storage for the core's store traits.
//! - [`trackers`] (`preloop-trackers`): GitHub, GitLab and Jira adapters.
//!
//! The server binary (`preloop`) lives in `preloop-server`.

#![deny(missing_docs)]

pub use preloop_core as core;
pub use preloop_store as store;
pub use preloop_trackers as trackers;

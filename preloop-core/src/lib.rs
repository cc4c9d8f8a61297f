//! The pure governance core of Preloop: decide whether an AI agent's tool call is allowed,
//! denied, or needs a human, route it through approval, run it at most once, and record every
//! step in a hash-chained audit log. No network, no database, no async runtime: the edges
//! implement the traits defined here, and in-memory implementations make the core usable alone.
//!
//! ```
//! use std::sync::Arc;
//! use preloop_core::executor::{FnExecutor, ToolOutput};
//! use preloop_core::governor::{Governor, Outcome, ToolCall};
//! use preloop_core::policy::{Format, GovernanceDocument};
//! use preloop_core::registry::{RegisteredTool, Registry, ToolDescriptor, ToolSource};
//! use preloop_core::Principal;
//!
//! let registry = Arc::new(Registry::new());
//! registry.register(RegisteredTool::new(
//!     ToolDescriptor::new("fs", "delete_file", ToolSource::Embedded),
//!     Arc::new(FnExecutor::new(|_, _| Ok(ToolOutput::text("deleted")))),
//! ))?;
//! let governor = Governor::builder(registry).build();
//! governor.set_policy("acme", &GovernanceDocument::parse(
//!     "[[policy.rules]]\ntools = [\"*__delete_*\"]\naction = \"deny\"\nmessage = \"no deletions\"",
//!     Format::Toml,
//! )?)?;
//! let agent = Principal::new("agent-1", "acme").with_role("agent");
//! let outcome = futures::executor::block_on(
//!     governor.call(&agent, ToolCall::new("fs__delete_file", serde_json::json!({"path": "/"}))),
//! )?;
//! assert!(matches!(outcome, Outcome::Denied { ref message, .. } if message == "no deletions"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules: [`policy`] (rules and decisions), [`approval`] (the request state machine),
//! [`registry`] (tools), [`audit`] (the hash chain), [`governor`] (the pipeline), [`store`]
//! (storage traits and the in-memory store), [`executor`] (running tools), [`tracker`] (the
//! issue-tracker interface), [`clock`] (injected time).

#![deny(missing_docs)]

pub mod accounts;
pub mod approval;
pub mod audit;
pub mod clock;
pub mod documents;
pub mod executor;
pub mod governor;
pub mod policy;
pub mod principal;
pub mod registry;
pub mod store;
pub mod tracker;

pub use principal::{ClientInfo, Principal, PrincipalSelector};

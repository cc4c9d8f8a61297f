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
//! What it holds, module by module:
//!
//! | module | holds |
//! |---|---|
//! | [`governor`] | the pipeline every call goes through ([`Governor::call`](governor::Governor::call): visibility, policy, approval, execution, audit), built by [`GovernorBuilder`](governor::GovernorBuilder); deciding, waiting for and executing approvals; push-based wake-ups; the [`Notifier`](governor::Notifier) and [`DecisionRunner`](governor::DecisionRunner) traits; the [`Outcome`](governor::Outcome) of a call |
//! | [`policy`] | the policy document (TOML/YAML), name patterns, CEL conditions with their cost limits and evaluation budget, the compiled [`PolicySet`](policy::PolicySet) and [`Governance`](policy::Governance) (rules plus approval policies), and the [`Decision`](policy::Decision) that explains itself |
//! | [`approval`] | approval policies, the [`ApprovalRequest`](approval::ApprovalRequest) and its pure state machine ([`transition`](approval::transition)), standing grants, decision-link tokens, validation of edited arguments |
//! | [`registry`] | the tools of every organization ([`Registry`](registry::Registry), [`RegisteredTool`](registry::RegisteredTool)), per-principal visibility, administrator settings, which organizations' tool lists changed |
//! | [`audit`] | audit events, their SHA-256 chain and the verifier ([`verify_chain`](audit::verify_chain)) |
//! | [`store`] | the storage traits, one per aggregate ([`ApprovalStore`](store::ApprovalStore), [`AuditStore`](store::AuditStore), [`PolicyStore`](store::PolicyStore), [`DocumentStore`](store::DocumentStore), ...), and [`MemoryStore`](store::MemoryStore), which implements them all |
//! | [`accounts`] | organizations, users (argon2id passwords) and API keys (stored as SHA-256) |
//! | [`documents`] | configuration documents: MCP servers and their tools, tool configurations, trackers, projects, flows, HITL sessions, channel messages (secrets redacted in `Debug`) |
//! | [`executor`] | the [`ToolExecutor`](executor::ToolExecutor) trait, [`FnExecutor`](executor::FnExecutor) for closures, and the observer of a running tool's progress and logs |
//! | [`principal`] | who calls ([`Principal`]), with which client ([`ClientInfo`]), and the selectors rules and approval policies name them by ([`PrincipalSelector`]) |
//! | [`clock`] | injected time ([`Clock`](clock::Clock), [`SystemClock`](clock::SystemClock), [`ManualClock`](clock::ManualClock)), saturating time arithmetic ([`later`](clock::later)) and durations bounded to a year |
//! | [`tracker`] | the issue-tracker interface ([`Tracker`](tracker::Tracker)) and its models; the adapters live elsewhere |
//!
//! The invariants it keeps:
//! - **No I/O.** No network, no database, no file and no async runtime: the edges implement the
//!   traits, and futures are runtime-agnostic (the example above runs on `block_on`).
//! - **Fail closed.** A store error, a missing approval policy, a rule that does not evaluate or
//!   a condition whose evaluation budget runs out never lets a call through.
//! - **Execution at most once.** An approved call runs only for the caller whose
//!   `Approved -> Executing` compare-and-set is stored.
//! - **Every step audited** in a per-organization hash chain, written with the change it records.
//! - **Organizations are isolated.** Every store method takes the organization it is scoped to,
//!   and the registry shows an organization only its own tools and the shared built-ins.
//! - **Time is injected and bounded**: durations past a year are refused when parsed, and adding
//!   one to a time saturates instead of overflowing.

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

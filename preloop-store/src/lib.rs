//! Storage for Preloop on diesel + diesel-async: an embedded SQLite file by default, PostgreSQL
//! (with pgvector) to scale out. [`Database`] implements the store traits of `preloop-core`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use preloop_store::Database;
//! // Created and migrated on first use.
//! let database = Database::open("sqlite://.preloop/preloop.db").await?;
//! # let _ = database;
//! # Ok(())
//! # }
//! ```
//!
//! Both backends run the same query code: each store method's body is written once and expanded
//! for each connection type by [`with_connection!`], so the two cannot drift apart. Times are
//! stored as microseconds since the Unix epoch and documents as JSON text, identically on both.
//!
//! The entry type is [`Database`] ([`Database::open`]: pools, then migrations; its
//! [`Backend`]); [`OpenError`] says why it did not open; [`ApprovalChanges`] and
//! [`Subscription`] are the listening side of cross-replica notifications. The modules, all
//! private, one aggregate or concern each:
//!
//! | module | holds |
//! |---|---|
//! | `connect` | [`Database::open`]: the URL, the pools of both backends, `with_connection!` |
//! | `migrate` | the embedded migrations of each backend, run at open; a schema newer than this build is refused ([`OpenError::NewerSchema`]) |
//! | `sqlite_runtime` | where SQLite work runs: tokio's blocking pool, or inline on the calling thread for the audit append; WAL checkpoints on their own thread and connection |
//! | `approvals` | approval requests as JSON beside their indexed columns; the version compare-and-set; claiming due work with a 30 s lease |
//! | `audit` | the per-organization hash chain, appended inside the caller's transaction under a lock on its head |
//! | `grants` | standing grants |
//! | `policies` | one policy document per organization, changed by compare-and-set on its version |
//! | `accounts` | organizations, users and API keys |
//! | `documents` | configuration documents: one table per aggregate, one `DocumentStore` implementation for all |
//! | `issues` | issues and their embeddings: pgvector with HNSW on PostgreSQL, f32 blobs scanned exactly on SQLite |
//! | `notify` | `LISTEN`/`NOTIFY` on PostgreSQL: approval updates and configuration changes reach other replicas |
//! | `sessions` | MCP session state (opaque text) and each session's owner |
//! | `schema`, `time`, `error` | the table definitions, the microsecond timestamps, start-up errors and the mapping of diesel's errors to the core's `StoreError` |
//!
//! The invariants it keeps:
//! - **One source for both backends**; where they really differ (pgvector, `pg_notify`,
//!   `FOR UPDATE SKIP LOCKED`) a small per-connection trait or macro argument holds the difference.
//! - **Execution at most once**: an approval request's version compare-and-set is one `UPDATE`,
//!   so of two replicas claiming the same request one wins.
//! - **One audit chain, no forks**: the chain's head is locked (PostgreSQL) or the
//!   `(organization_id, sequence)` key refuses a second successor (SQLite), and events are
//!   appended in the same transaction as the change they record.
//! - **Stored bytes round-trip**: audit hashes verify after storage on either backend.
//! - **Organization-scoped**: every query of an organization's data filters on it (MCP sessions,
//!   which grant nothing by themselves, are the exception).
//! - **Never a schema half-understood**: a database migrated by a newer build is not opened.

#![deny(missing_docs)]

mod accounts;
mod approvals;
mod audit;
mod connect;
mod documents;
mod error;
mod grants;
mod issue_search;
mod issues;
mod leases;
mod migrate;
mod notify;
mod policies;
mod schema;
mod sessions;
mod sqlite_runtime;
mod time;

pub use connect::{Backend, Database};
pub use error::OpenError;
pub use notify::{APPROVAL_CHANNEL, ApprovalChanges, CONFIG_CHANNEL, Subscription};

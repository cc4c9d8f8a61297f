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

#![deny(missing_docs)]

mod accounts;
mod approvals;
mod audit;
mod connect;
mod documents;
mod error;
mod grants;
mod issues;
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

//! The application layer: what several entry points do, written once. REST handlers, the chat
//! channels, the decision page, the HITL API and the command line call these services; none of
//! them orchestrates the governor and the store itself.
//!
//! - [`Approvals`]: votes (by a principal or through a decision link), and running the call once
//!   a vote approves it.
//! - [`Policies`]: reading and changing an organization's governance document (compile, store
//!   with an audit entry, put in force, tell the other replicas).
//! - [`Replicas`]: telling the other replicas that an organization's configuration changed.

mod approvals;
mod policies;
mod replicas;

pub use approvals::Approvals;
pub use policies::{Policies, PolicyChangeError, rewrite_stored};
pub use replicas::Replicas;

//! The application layer: what several entry points do, written once. REST handlers, the chat
//! channels, the decision page, the HITL API and the command line call these services; none of
//! them orchestrates the governor and the store itself.
//!
//! - [`Approvals`]: votes (by a principal or through a decision link), and running the call once
//!   a vote approves it.
//! - [`Policies`]: reading and changing an organization's governance document (compile, store
//!   with an audit entry, put in force, tell the other replicas).
//! - [`Servers`]: organizations' upstream MCP servers (checked against what the organization
//!   may run and reach, stored, started, rescanned, stopped) and their tools' configurations
//!   (stored, put in force in the registry), each change told to the other replicas.
//! - [`Trackers`]: organizations' issue trackers (checked, stored, connected, synchronized into
//!   the issue index, their webhooks received) and the issue tools they bring.
//! - [`Accounts`]: users, API keys, passwords, sign-in and registration, with their rules.
//! - [`Organizations`]: organizations listed and renamed by their admins, created and closed
//!   by the operator (a closed one's users disabled, keys revoked, configuration out of force).
//! - [`audit`]: the audit chain paged and filtered, and verified page by page.
//! - [`Replicas`]: telling the other replicas that an organization's configuration changed.
//!
//! The services sit below authentication and the gateway: what they need of those (throttles
//! and the credential cache, the running upstreams) they name as traits ([`Guards`],
//! [`UpstreamControl`]) that `state` implements.

pub mod accounts;
mod approvals;
pub mod audit;
pub mod organizations;
mod policies;
mod replicas;
pub mod servers;
pub mod trackers;

pub use accounts::{AccountError, Accounts, Guards};
pub use approvals::Approvals;
pub use organizations::{NewOrganization, Organizations, Reload};
pub use policies::{Policies, PolicyChangeError, rewrite_stored};
pub use replicas::Replicas;
pub use servers::{ServerError, Servers, UpstreamControl};
pub use trackers::{TrackerChangeError, TrackerInput, TrackerReach, Trackers};

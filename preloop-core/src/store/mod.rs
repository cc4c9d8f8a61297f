//! Storage traits the governor runs on, one per aggregate, and an in-memory implementation of all
//! of them ([`MemoryStore`]) so the core is complete without a database.
//!
//! Every method takes the organization it is scoped to; an implementation never returns or
//! changes another organization's rows.

mod combining;
mod issues;
mod memory;

pub use combining::GroupCommitAudit;
pub use issues::{
    EMBEDDING_DIMENSIONS, IssueHit, IssueStore, SimilarIssue, SimilarityFilter, StoredIssue,
    TextSearch, check_embedding, cosine, cosine_similarity, search_terms, searchable_text,
};
pub use memory::MemoryStore;

use crate::accounts::{ApiKey, Organization, User};
use crate::approval::{ApprovalRequest, ApprovalState, Grant};
use crate::audit::{AuditEntry, AuditEvent};
use crate::documents::Document;
use crate::policy::GovernanceDocument;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A storage failure. The governor fails closed on every one of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend cannot be reached.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A row that must exist does not (in the caller's organization).
    #[error("not found")]
    NotFound,
    /// A row with the same identity exists already.
    #[error("already exists")]
    AlreadyExists,
    /// The input cannot be stored (e.g. an embedding of the wrong dimension).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Anything else the backend reports.
    #[error("store error: {0}")]
    Backend(String),
}

/// How long [`ApprovalStore::due_requests`] keeps a claimed request from other workers.
pub const DUE_CLAIM_LEASE: chrono::Duration = chrono::Duration::seconds(30);

/// Whether a compare-and-set won.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// The row had the expected version and now holds the new one.
    Stored,
    /// Someone else changed the row first; re-read and retry.
    Conflict,
}

/// Which approval requests to list.
#[derive(Debug, Clone, Default)]
pub struct ApprovalFilter {
    /// Only requests in this state.
    pub state: Option<ApprovalState>,
    /// Only requests by this principal.
    pub requester_id: Option<String>,
    /// At most this many, newest first (0: no limit).
    pub limit: usize,
}

/// Approval requests.
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Stores a new request together with its audit entries (atomically).
    async fn insert_request(
        &self,
        request: &ApprovalRequest,
        audit: Vec<AuditEntry>,
    ) -> Result<(), StoreError>;

    /// The request with `id` in `organization_id`.
    async fn get_request(
        &self,
        organization_id: &str,
        id: Uuid,
    ) -> Result<Option<ApprovalRequest>, StoreError>;

    /// The request with `id` in whatever organization holds it. Only for callers that prove
    /// their right to it by other means (a decision-link token); everything else goes through
    /// [`ApprovalStore::get_request`].
    async fn find_request(&self, id: Uuid) -> Result<Option<ApprovalRequest>, StoreError>;

    /// Replaces the stored request if its version is still `expected_version`, appending the
    /// audit entries in the same transaction: both happen or neither does.
    async fn update_request(
        &self,
        expected_version: u64,
        request: &ApprovalRequest,
        audit: Vec<AuditEntry>,
    ) -> Result<CasOutcome, StoreError>;

    /// Requests of `organization_id` matching `filter`, newest first.
    async fn list_requests(
        &self,
        organization_id: &str,
        filter: &ApprovalFilter,
    ) -> Result<Vec<ApprovalRequest>, StoreError>;

    /// Claims pending requests of every organization whose next deadline (escalation or timeout)
    /// is at or before `now`, oldest deadline first, at most `limit`, for a lease of
    /// [`DUE_CLAIM_LEASE`]: until the lease ends or the request changes, no other caller (on any
    /// replica) is handed the same request. Workers apply a tick to each; if a worker dies, the
    /// lease runs out and another worker takes over.
    async fn due_requests(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ApprovalRequest>, StoreError>;

    /// How many requests are pending, in every organization (for the metrics gauge).
    async fn count_pending(&self) -> Result<u64, StoreError>;
}

/// Standing grants.
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Stores a grant with its audit entries (atomically).
    async fn insert_grant(&self, grant: &Grant, audit: Vec<AuditEntry>) -> Result<(), StoreError>;

    /// An unexpired, unrevoked grant for this principal and tool, if any.
    async fn find_grant(
        &self,
        organization_id: &str,
        principal_id: &str,
        tool: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Grant>, StoreError>;

    /// Revokes a grant; `NotFound` if it is not in the organization.
    async fn revoke_grant(&self, organization_id: &str, id: Uuid) -> Result<(), StoreError>;
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Chains and appends entries (each to its organization's chain), returning the stored events.
    async fn append(&self, entries: Vec<AuditEntry>) -> Result<Vec<AuditEvent>, StoreError>;

    /// Events of `organization_id` with sequence numbers from `from_sequence` on, at most
    /// `limit` (0: no limit), in order.
    async fn events(
        &self,
        organization_id: &str,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError>;
}

#[async_trait]
impl<T: AuditStore + ?Sized> AuditStore for std::sync::Arc<T> {
    async fn append(&self, entries: Vec<AuditEntry>) -> Result<Vec<AuditEvent>, StoreError> {
        (**self).append(entries).await
    }

    async fn events(
        &self,
        organization_id: &str,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        (**self).events(organization_id, from_sequence, limit).await
    }
}

/// A governance document as stored, with the version a later change must name.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPolicy {
    /// The document.
    pub document: GovernanceDocument,
    /// Its version: 1 for the first saved document, one more for every change.
    pub version: u64,
}

/// The version to name when changing an organization that has no stored document yet.
pub const NO_POLICY_VERSION: u64 = 0;

/// Policy documents: the declarative source the governor compiles. A change is a
/// compare-and-set on the stored version, so two replicas editing at once cannot lose either
/// edit silently: one wins, the other is told to re-read and retry.
#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// The organization's governance document and its version, if one was saved.
    async fn load_policy(&self, organization_id: &str) -> Result<Option<StoredPolicy>, StoreError>;

    /// Stores `document` as the organization's governance document with its audit entries
    /// (atomically), if the stored version is still `expected_version`
    /// ([`NO_POLICY_VERSION`] when none was stored). On [`CasOutcome::Conflict`] nothing was
    /// written, the audit entries included.
    async fn save_policy(
        &self,
        organization_id: &str,
        expected_version: u64,
        document: &GovernanceDocument,
        audit: Vec<AuditEntry>,
    ) -> Result<CasOutcome, StoreError>;
}

/// Organizations, users and API keys.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates an organization; `AlreadyExists` if the id is taken.
    async fn create_organization(&self, organization: &Organization) -> Result<(), StoreError>;

    /// An organization by id.
    async fn get_organization(&self, id: &str) -> Result<Option<Organization>, StoreError>;

    /// Every organization, sorted by id (for start-up, which loads each one's configuration).
    async fn list_organizations(&self) -> Result<Vec<Organization>, StoreError>;

    /// Replaces an organization's name and closing time; `NotFound` if it does not exist.
    async fn update_organization(&self, organization: &Organization) -> Result<(), StoreError>;

    /// Creates a user; `AlreadyExists` if the id or the e-mail address is taken (in any
    /// organization: the address is the sign-in name).
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;

    /// A user of the organization by id.
    async fn get_user(&self, organization_id: &str, id: &str) -> Result<Option<User>, StoreError>;

    /// The user signing in with `email` (case-insensitive), in whichever organization.
    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;

    /// Users of the organization, by e-mail address.
    async fn list_users(&self, organization_id: &str) -> Result<Vec<User>, StoreError>;

    /// Replaces a user's roles, password hash and disabled flag; `NotFound` outside its organization.
    async fn update_user(&self, user: &User) -> Result<(), StoreError>;

    /// How many users exist in all (0 means a fresh installation to bootstrap).
    async fn count_users(&self) -> Result<u64, StoreError>;

    /// Stores a new API key (its hash, never the secret).
    async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError>;

    /// The key whose secret hashes to `hash`, in whichever organization (the key identifies it).
    async fn find_api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError>;

    /// Keys of the organization, newest first.
    async fn list_api_keys(&self, organization_id: &str) -> Result<Vec<ApiKey>, StoreError>;

    /// Records that a key was used.
    async fn touch_api_key(&self, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Revokes a key; `NotFound` outside its organization.
    async fn revoke_api_key(&self, organization_id: &str, id: Uuid) -> Result<(), StoreError>;
}

/// Stores one kind of configuration [`Document`], scoped by organization.
#[async_trait]
pub trait DocumentStore<T: Document>: Send + Sync {
    /// Stores a new document; `AlreadyExists` if its id, or its name under its parent, is taken.
    async fn insert_document(&self, document: &T) -> Result<(), StoreError>;

    /// A document of the organization by id.
    async fn get_document(&self, organization_id: &str, id: &str) -> Result<Option<T>, StoreError>;

    /// Documents of the organization (under `parent_id`, if given), sorted by name.
    async fn list_documents(
        &self,
        organization_id: &str,
        parent_id: Option<&str>,
    ) -> Result<Vec<T>, StoreError>;

    /// Replaces a document; `NotFound` outside its organization, `AlreadyExists` on a name clash.
    async fn update_document(&self, document: &T) -> Result<(), StoreError>;

    /// Deletes a document; `NotFound` outside its organization.
    async fn delete_document(&self, organization_id: &str, id: &str) -> Result<(), StoreError>;

    /// Replaces every document under `parent_id` with `documents`, atomically (a server's tools
    /// after a scan).
    async fn replace_children(
        &self,
        organization_id: &str,
        parent_id: &str,
        documents: &[T],
    ) -> Result<(), StoreError>;
}

/// Named leases: work that must run on one replica at a time (a tracker's sync) is done by
/// whoever holds its lease. A lease is free once its time ran out, so a replica that dies
/// holding one delays the work by at most the lease's length.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes the lease `name` for `holder` until `until`, if at `now` it is free or already
    /// `holder`'s (renewing it); whether `holder` holds it now.
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Gives the lease up, if `holder` holds it.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;

    /// Forgets every lease that ended before `before`; how many.
    async fn prune_leases(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

//! In-memory implementation of every store trait: one mutex over all state, so every operation
//! (a change plus its audit entries) is atomic.

use super::{
    ApprovalFilter, ApprovalStore, AuditStore, CasOutcome, DUE_CLAIM_LEASE, DocumentStore,
    GrantStore, NO_POLICY_VERSION, PolicyStore, StoreError, StoredPolicy,
};
use crate::accounts::{ApiKey, Organization, User};
use crate::approval::{ApprovalRequest, ApprovalState, Grant};
use crate::audit::{AuditEntry, AuditEvent};
use crate::documents::Document;
use crate::policy::GovernanceDocument;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use uuid::Uuid;

mod accounts;
mod issues;

use issues::IndexedIssue;

#[derive(Debug, Default)]
struct State {
    requests: HashMap<Uuid, ApprovalRequest>,
    claimed_until: HashMap<Uuid, DateTime<Utc>>,
    grants: Vec<Grant>,
    audit: HashMap<String, Vec<AuditEvent>>,
    policies: HashMap<String, StoredPolicy>,
    issues: HashMap<IssueKey, IndexedIssue>,
    /// Leases by name: holder and end.
    leases: HashMap<String, (String, DateTime<Utc>)>,
    organizations: HashMap<String, Organization>,
    users: HashMap<String, User>,
    api_keys: HashMap<Uuid, ApiKey>,
    documents: HashMap<DocumentKey, StoredDocument>,
}

/// (kind, organization, id).
type DocumentKey = (&'static str, String, String);

#[derive(Debug)]
struct StoredDocument {
    parent_id: String,
    name: String,
    body: serde_json::Value,
}

impl State {
    /// Whether another document of the kind already uses `name` under `parent_id`.
    fn name_taken(
        &self,
        kind: &'static str,
        org: &str,
        parent_id: &str,
        name: &str,
        id: &str,
    ) -> bool {
        self.documents.iter().any(|((k, o, i), d)| {
            *k == kind && o == org && i != id && d.parent_id == parent_id && d.name == name
        })
    }
}

fn stored<T: Document>(document: &T) -> Result<StoredDocument, StoreError> {
    Ok(StoredDocument {
        parent_id: document.parent_id().unwrap_or_default(),
        name: document.name(),
        body: serde_json::to_value(document).map_err(|e| StoreError::Backend(e.to_string()))?,
    })
}

fn restore<T: Document>(document: &StoredDocument) -> Result<T, StoreError> {
    serde_json::from_value(document.body.clone()).map_err(|e| StoreError::Backend(e.to_string()))
}

/// (organization, tracker, issue key).
type IssueKey = (String, String, String);

impl State {
    fn append(&mut self, entries: Vec<AuditEntry>) -> Vec<AuditEvent> {
        entries
            .into_iter()
            .map(|entry| {
                let chain = self.audit.entry(entry.organization_id.clone()).or_default();
                let event = AuditEvent::chain(chain.last(), entry);
                chain.push(event.clone());
                event
            })
            .collect()
    }
}

/// Everything in memory; for embedding, tests and examples.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl ApprovalStore for MemoryStore {
    async fn insert_request(
        &self,
        request: &ApprovalRequest,
        audit: Vec<AuditEntry>,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.requests.contains_key(&request.id) {
            return Err(StoreError::AlreadyExists);
        }
        state.requests.insert(request.id, request.clone());
        state.append(audit);
        Ok(())
    }

    async fn get_request(
        &self,
        organization_id: &str,
        id: Uuid,
    ) -> Result<Option<ApprovalRequest>, StoreError> {
        Ok(self
            .state()
            .requests
            .get(&id)
            .filter(|r| r.organization_id == organization_id)
            .cloned())
    }

    async fn find_request(&self, id: Uuid) -> Result<Option<ApprovalRequest>, StoreError> {
        Ok(self.state().requests.get(&id).cloned())
    }

    async fn update_request(
        &self,
        expected_version: u64,
        request: &ApprovalRequest,
        audit: Vec<AuditEntry>,
    ) -> Result<CasOutcome, StoreError> {
        let mut state = self.state();
        let Some(stored) = state
            .requests
            .get_mut(&request.id)
            .filter(|r| r.organization_id == request.organization_id)
        else {
            return Err(StoreError::NotFound);
        };
        if stored.version != expected_version {
            return Ok(CasOutcome::Conflict);
        }
        *stored = request.clone();
        state.claimed_until.remove(&request.id);
        state.append(audit);
        Ok(CasOutcome::Stored)
    }

    async fn list_requests(
        &self,
        organization_id: &str,
        filter: &ApprovalFilter,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        let state = self.state();
        let mut found: Vec<ApprovalRequest> = state
            .requests
            .values()
            .filter(|r| r.organization_id == organization_id)
            .filter(|r| filter.state.is_none_or(|s| r.state == s))
            .filter(|r| {
                filter
                    .requester_id
                    .as_ref()
                    .is_none_or(|id| r.requester.id == *id)
            })
            .cloned()
            .collect();
        found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        if filter.limit > 0 {
            found.truncate(filter.limit);
        }
        Ok(found)
    }

    async fn due_requests(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        let mut state = self.state();
        let mut due: Vec<(DateTime<Utc>, ApprovalRequest)> = state
            .requests
            .values()
            .filter(|r| r.state == ApprovalState::Pending)
            .filter(|r| {
                state
                    .claimed_until
                    .get(&r.id)
                    .is_none_or(|until| *until < now)
            })
            .filter_map(|r| {
                r.next_deadline()
                    .filter(|d| *d <= now)
                    .map(|d| (d, r.clone()))
            })
            .collect();
        due.sort_by_key(|(deadline, _)| *deadline);
        due.truncate(limit);
        for (_, request) in &due {
            state
                .claimed_until
                .insert(request.id, now + DUE_CLAIM_LEASE);
        }
        Ok(due.into_iter().map(|(_, r)| r).collect())
    }

    async fn count_pending(&self) -> Result<u64, StoreError> {
        let state = self.state();
        Ok(state
            .requests
            .values()
            .filter(|r| r.state == ApprovalState::Pending)
            .count() as u64)
    }
}

#[async_trait]
impl GrantStore for MemoryStore {
    async fn insert_grant(&self, grant: &Grant, audit: Vec<AuditEntry>) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.grants.iter().any(|g| g.id == grant.id) {
            return Err(StoreError::AlreadyExists);
        }
        state.grants.push(grant.clone());
        state.append(audit);
        Ok(())
    }

    async fn find_grant(
        &self,
        organization_id: &str,
        principal_id: &str,
        tool: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Grant>, StoreError> {
        Ok(self
            .state()
            .grants
            .iter()
            .find(|g| g.covers(organization_id, principal_id, tool, now))
            .cloned())
    }

    async fn revoke_grant(&self, organization_id: &str, id: Uuid) -> Result<(), StoreError> {
        let mut state = self.state();
        let grant = state
            .grants
            .iter_mut()
            .find(|g| g.id == id && g.organization_id == organization_id)
            .ok_or(StoreError::NotFound)?;
        grant.revoked = true;
        Ok(())
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn append(&self, entries: Vec<AuditEntry>) -> Result<Vec<AuditEvent>, StoreError> {
        Ok(self.state().append(entries))
    }

    async fn events(
        &self,
        organization_id: &str,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let state = self.state();
        let events = state
            .audit
            .get(organization_id)
            .map_or(&[][..], Vec::as_slice);
        let start = usize::try_from(from_sequence.saturating_sub(1)).unwrap_or(usize::MAX);
        let tail = events.get(start..).unwrap_or_default();
        let take = if limit == 0 { tail.len() } else { limit };
        Ok(tail.iter().take(take).cloned().collect())
    }
}

#[async_trait]
impl PolicyStore for MemoryStore {
    async fn load_policy(&self, organization_id: &str) -> Result<Option<StoredPolicy>, StoreError> {
        Ok(self.state().policies.get(organization_id).cloned())
    }

    async fn save_policy(
        &self,
        organization_id: &str,
        expected_version: u64,
        document: &GovernanceDocument,
        audit: Vec<AuditEntry>,
    ) -> Result<CasOutcome, StoreError> {
        let mut state = self.state();
        let stored = state
            .policies
            .get(organization_id)
            .map_or(NO_POLICY_VERSION, |stored| stored.version);
        if stored != expected_version {
            return Ok(CasOutcome::Conflict);
        }
        state.policies.insert(
            organization_id.to_owned(),
            StoredPolicy {
                document: document.clone(),
                version: stored + 1,
            },
        );
        state.append(audit);
        Ok(CasOutcome::Stored)
    }
}

#[async_trait]
impl<T: Document> DocumentStore<T> for MemoryStore {
    async fn insert_document(&self, document: &T) -> Result<(), StoreError> {
        let org = document.organization_id().to_owned();
        let key = (T::KIND, org.clone(), document.id());
        let entry = stored(document)?;
        let mut state = self.state();
        if state.documents.contains_key(&key)
            || state.name_taken(T::KIND, &org, &entry.parent_id, &entry.name, &key.2)
        {
            return Err(StoreError::AlreadyExists);
        }
        state.documents.insert(key, entry);
        Ok(())
    }

    async fn get_document(&self, organization_id: &str, id: &str) -> Result<Option<T>, StoreError> {
        let key = (T::KIND, organization_id.to_owned(), id.to_owned());
        self.state().documents.get(&key).map(restore).transpose()
    }

    async fn list_documents(
        &self,
        organization_id: &str,
        parent_id: Option<&str>,
    ) -> Result<Vec<T>, StoreError> {
        let state = self.state();
        let mut found: Vec<&StoredDocument> = state
            .documents
            .iter()
            .filter(|((kind, org, _), d)| {
                *kind == T::KIND
                    && org == organization_id
                    && parent_id.is_none_or(|p| d.parent_id == p)
            })
            .map(|(_, d)| d)
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found.into_iter().map(restore).collect()
    }

    async fn update_document(&self, document: &T) -> Result<(), StoreError> {
        let org = document.organization_id().to_owned();
        let key = (T::KIND, org.clone(), document.id());
        let entry = stored(document)?;
        let mut state = self.state();
        if !state.documents.contains_key(&key) {
            return Err(StoreError::NotFound);
        }
        if state.name_taken(T::KIND, &org, &entry.parent_id, &entry.name, &key.2) {
            return Err(StoreError::AlreadyExists);
        }
        state.documents.insert(key, entry);
        Ok(())
    }

    async fn delete_document(&self, organization_id: &str, id: &str) -> Result<(), StoreError> {
        let key = (T::KIND, organization_id.to_owned(), id.to_owned());
        self.state()
            .documents
            .remove(&key)
            .map(drop)
            .ok_or(StoreError::NotFound)
    }

    async fn replace_children(
        &self,
        organization_id: &str,
        parent_id: &str,
        documents: &[T],
    ) -> Result<(), StoreError> {
        let entries = documents
            .iter()
            .map(|d| Ok(((T::KIND, organization_id.to_owned(), d.id()), stored(d)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        if entries
            .iter()
            .any(|((_, _, _), e)| e.parent_id != parent_id)
            || documents
                .iter()
                .any(|d| d.organization_id() != organization_id)
        {
            return Err(StoreError::Invalid(
                "every document must belong to the parent and organization".to_owned(),
            ));
        }
        let mut state = self.state();
        // Check everything before changing anything, so a clash leaves the old children in place.
        let mut names = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        for (key, entry) in &entries {
            let id_elsewhere = state
                .documents
                .get(key)
                .is_some_and(|d| d.parent_id != parent_id);
            if !names.insert(entry.name.clone()) || !ids.insert(key.2.clone()) || id_elsewhere {
                return Err(StoreError::AlreadyExists);
            }
        }
        state.documents.retain(|(kind, org, _), d| {
            !(*kind == T::KIND && org == organization_id && d.parent_id == parent_id)
        });
        state.documents.extend(entries);
        Ok(())
    }
}

//! Organizations' governance documents: read, changed, put in force.

use super::Replicas;
use chrono::Utc;
use preloop_core::Principal;
use preloop_core::audit::{AuditEntry, AuditEventKind};
use preloop_core::governor::Governor;
use preloop_core::policy::{Governance, GovernanceDocument, GovernanceError};
use preloop_core::store::{PolicyStore, StoreError};
use preloop_store::Database;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Why a policy change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PolicyChangeError<E> {
    /// The edit itself was refused (a rule that does not exist, a duplicate id, ...).
    #[error(transparent)]
    Edit(E),
    /// The edited document does not compile; nothing was stored.
    #[error(transparent)]
    Invalid(#[from] GovernanceError),
    /// The store failed; nothing was put in force.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The compilation could not run (the blocking pool is shutting down).
    #[error("the policy could not be compiled now; try again")]
    Unavailable,
}

/// Reads and changes governance documents. A change is compiled first (on the blocking pool:
/// a large policy takes a while), then stored with an audit entry, then put in force on this
/// replica and announced to the others.
#[derive(Debug, Clone)]
pub struct Policies {
    governor: Arc<Governor>,
    store: Arc<Database>,
    replicas: Replicas,
    locks: Arc<OrganizationLocks>,
}

impl Policies {
    /// Policies kept in `store`, in force in `governor`.
    pub fn new(governor: Arc<Governor>, store: Arc<Database>, replicas: Replicas) -> Self {
        Self {
            governor,
            store,
            replicas,
            locks: Arc::default(),
        }
    }

    /// The organization's document (the default one if none was saved), every rule named.
    pub async fn document(&self, organization_id: &str) -> Result<GovernanceDocument, StoreError> {
        let mut document = self
            .store
            .load_policy(organization_id)
            .await?
            .unwrap_or_default();
        name_rules(&mut document);
        Ok(document)
    }

    /// Read-modify-write of `principal`'s organization's document: `edit` changes it, then it
    /// is compiled, stored with an audit entry naming `principal`, and put in force.
    pub async fn modify<T, E>(
        &self,
        principal: &Principal,
        edit: impl FnOnce(&mut GovernanceDocument) -> Result<T, E>,
    ) -> Result<T, PolicyChangeError<E>> {
        let organization_id = principal.organization_id.as_str();
        let _serialized = self.locks.lock(organization_id).await;
        let mut document = self.document(organization_id).await?;
        let answer = edit(&mut document).map_err(PolicyChangeError::Edit)?;
        let text = document.clone();
        let compiled = tokio::task::spawn_blocking(move || Governance::compile(&text))
            .await
            .map_err(|_| PolicyChangeError::Unavailable)??;
        let change = AuditEntry::new(
            organization_id,
            Utc::now(),
            AuditEventKind::PolicyChanged {
                changed_by: principal.display_name(),
                rules: document.policy.rules.len(),
            },
        );
        self.store
            .save_policy(organization_id, &document, vec![change])
            .await?;
        self.governor.install_policy(organization_id, compiled);
        self.replicas.announce(organization_id).await;
        Ok(answer)
    }
}

/// Gives every unnamed rule the id evaluation already calls it by (`rule-<position>`), so the
/// API can address it and the id survives reordering.
fn name_rules(document: &mut GovernanceDocument) {
    for (index, rule) in document.policy.rules.iter_mut().enumerate() {
        if rule.id.is_none() {
            rule.id = Some(format!("rule-{}", index + 1));
        }
    }
}

/// One lock per organization, made when first asked for.
#[derive(Debug, Default)]
struct OrganizationLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl OrganizationLocks {
    /// Waits for the organization's lock.
    async fn lock(&self, organization_id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            // Forget the locks nobody holds, so the map stays as small as the busy organizations.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            Arc::clone(locks.entry(organization_id.to_owned()).or_default())
        };
        lock.lock_owned().await
    }
}

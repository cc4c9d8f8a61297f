//! Configuration changes announced to the other replicas.

use preloop_store::Database;
use std::sync::Arc;

/// Tells the other replicas (through the store's change feed) that an organization's policy,
/// tools or servers changed, so they reload them.
#[derive(Debug, Clone)]
pub struct Replicas {
    store: Arc<Database>,
}

impl Replicas {
    /// Announces through `store`.
    pub fn new(store: Arc<Database>) -> Self {
        Self { store }
    }

    /// Announces a change of `organization_id`'s configuration. A failure is logged: this
    /// replica has the change, the others get it at their next start.
    pub async fn announce(&self, organization_id: &str) {
        if let Err(error) = self.store.announce_config_change(organization_id).await {
            tracing::warn!(%error, organization = organization_id, "could not tell other replicas about a configuration change");
        }
    }
}

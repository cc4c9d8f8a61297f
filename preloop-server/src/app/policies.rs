//! Organizations' governance documents: read, changed, put in force.

use super::Replicas;
use chrono::Utc;
use preloop_core::audit::{AuditEntry, AuditEventKind};
use preloop_core::governor::{Governor, GovernorError, ToolCall};
use preloop_core::policy::{
    Decision, EvaluationInput, Governance, GovernanceDocument, GovernanceError,
};
use preloop_core::registry::{ToolDescriptor, ToolSource};
use preloop_core::store::{CasOutcome, NO_POLICY_VERSION, PolicyStore, StoreError, StoredPolicy};
use preloop_core::{ClientInfo, Principal};
use preloop_store::Database;
use serde_json::{Value, json};
use std::sync::Arc;

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
    /// Another change (on this replica or another) was stored after this one read the
    /// document; nothing was stored. Read it again and retry.
    #[error(
        "the policy was changed by someone else meanwhile; nothing was stored: read it again and retry"
    )]
    Conflict,
}

/// How often a change with nobody to hand a conflict back to (start-up, the command line)
/// re-reads and re-applies itself before giving up.
const REWRITE_ATTEMPTS: usize = 10;

/// Reads and changes governance documents. A change is compiled first (on the blocking pool:
/// a large policy takes a while), then stored with an audit entry if the document is still the
/// version it read (a compare-and-set: of two replicas editing at once, one wins and the other
/// gets [`PolicyChangeError::Conflict`]), then put in force on this replica and announced to the
/// others.
#[derive(Debug, Clone)]
pub struct Policies {
    governor: Arc<Governor>,
    store: Arc<Database>,
    replicas: Replicas,
}

impl Policies {
    /// Policies kept in `store`, in force in `governor`.
    pub fn new(governor: Arc<Governor>, store: Arc<Database>, replicas: Replicas) -> Self {
        Self {
            governor,
            store,
            replicas,
        }
    }

    /// The organization's document (the default one if none was saved), every rule named.
    pub async fn document(&self, organization_id: &str) -> Result<GovernanceDocument, StoreError> {
        Ok(self.versioned(organization_id).await?.document)
    }

    /// The organization's document with its rules named, and the version it was read at.
    async fn versioned(&self, organization_id: &str) -> Result<StoredPolicy, StoreError> {
        let mut stored = self
            .store
            .load_policy(organization_id)
            .await?
            .unwrap_or(StoredPolicy {
                document: GovernanceDocument::default(),
                version: NO_POLICY_VERSION,
            });
        name_rules(&mut stored.document);
        Ok(stored)
    }

    /// Read-modify-write of `principal`'s organization's document: `edit` changes it, then it
    /// is compiled, stored with an audit entry naming `principal`, and put in force.
    pub async fn modify<T, E>(
        &self,
        principal: &Principal,
        edit: impl FnOnce(&mut GovernanceDocument) -> Result<T, E>,
    ) -> Result<T, PolicyChangeError<E>> {
        let organization_id = principal.organization_id.as_str();
        let StoredPolicy {
            mut document,
            version,
        } = self.versioned(organization_id).await?;
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
        let outcome = self
            .store
            .save_policy(organization_id, version, &document, vec![change])
            .await?;
        if outcome == CasOutcome::Conflict {
            return Err(PolicyChangeError::Conflict);
        }
        self.governor.install_policy(organization_id, compiled);
        self.replicas.announce(organization_id).await;
        Ok(answer)
    }

    /// The decision the organization's policy in force makes on a hypothetical call of `tool`
    /// with `arguments` by `caller`; nothing runs and nothing is recorded. A tool that is not
    /// registered (yet) is evaluated by its name (`server__tool`, else a `preloop` tool). Made
    /// on the blocking pool: a hypothetical call may carry large arguments and meet costly
    /// rules, like a real one.
    pub async fn explain(
        &self,
        caller: Principal,
        tool: String,
        arguments: Value,
    ) -> Result<Decision, GovernorError> {
        let governor = self.governor.clone();
        tokio::task::spawn_blocking(move || explain(&governor, &caller, tool, arguments))
            .await
            .map_err(|_| GovernorError::DecisionUnavailable)?
    }
}

/// [`Policies::explain`], on the calling thread.
fn explain(
    governor: &Governor,
    caller: &Principal,
    tool: String,
    arguments: Value,
) -> Result<Decision, GovernorError> {
    let call = ToolCall::new(tool.clone(), arguments.clone());
    match governor.explain(caller, &call) {
        Err(GovernorError::UnknownTool(_)) => {
            let governance = governor
                .governance(&caller.organization_id)
                .ok_or(GovernorError::DecisionUnavailable)?;
            let (server, name) = tool.split_once("__").unwrap_or(("preloop", tool.as_str()));
            let descriptor = ToolDescriptor::new(server, name, ToolSource::Upstream)
                .with_exposed_name(tool.as_str());
            let arguments = if arguments.is_null() {
                json!({})
            } else {
                arguments
            };
            Ok(governance.policy().evaluate(&EvaluationInput {
                tool: &descriptor,
                args: &arguments,
                principal: caller,
                client: &ClientInfo::named("policy-test"),
                now: Utc::now(),
            }))
        }
        answer => answer,
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

/// Applies `edit` to the organization's stored document (`None` if none is stored) and stores
/// what it returns (the new document and its audit entries), re-reading and re-applying it when
/// another writer changed the document in between; `edit` returns `None` to leave it alone.
/// For changes with nobody to hand a conflict back to (start-up migrations, the configuration
/// file, the command line). Answers whether a document was stored.
pub async fn rewrite_stored(
    store: &Database,
    organization_id: &str,
    mut edit: impl FnMut(Option<GovernanceDocument>) -> Option<(GovernanceDocument, Vec<AuditEntry>)>,
) -> Result<bool, StoreError> {
    for _ in 0..REWRITE_ATTEMPTS {
        let stored = store.load_policy(organization_id).await?;
        let version = stored.as_ref().map_or(NO_POLICY_VERSION, |s| s.version);
        let Some((document, audit)) = edit(stored.map(|s| s.document)) else {
            return Ok(false);
        };
        let outcome = store
            .save_policy(organization_id, version, &document, audit)
            .await?;
        if outcome == CasOutcome::Stored {
            return Ok(true);
        }
    }
    Err(StoreError::Unavailable(format!(
        "the policy of {organization_id} changed {REWRITE_ATTEMPTS} times while being rewritten; try again"
    )))
}

//! Building a governor: its stores, notifier, clock, decision runner and timing.

use super::{DecisionRunner, Governor, InlineDecisions, NoNotifier, Notifier, Wakeups};
use crate::clock::{Clock, SystemClock};
use crate::policy::{Governance, GovernanceDocument};
use crate::registry::Registry;
use crate::store::{ApprovalStore, AuditStore, GrantStore, GroupCommitAudit, MemoryStore};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Timing knobs of the governor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GovernorConfig {
    /// Longest a blocking call waits before returning `pending_approval`.
    pub blocking_timeout: Duration,
    /// How often a blocking call reports progress.
    pub progress_interval: Duration,
    /// Polling interval suggested to agents in `pending_approval` results.
    pub poll_after: Duration,
    /// Compare-and-set retries before giving up with [`GovernorError::Contended`].
    pub max_retries: usize,
}

impl Default for GovernorConfig {
    fn default() -> Self {
        Self {
            blocking_timeout: Duration::from_secs(300),
            progress_interval: Duration::from_secs(10),
            poll_after: Duration::from_secs(5),
            max_retries: 32,
        }
    }
}

/// Builds a [`Governor`]; everything but the registry has an in-memory or system default.
pub struct GovernorBuilder {
    registry: Arc<Registry>,
    approvals: Option<Arc<dyn ApprovalStore>>,
    grants: Option<Arc<dyn GrantStore>>,
    audit: Option<Arc<dyn AuditStore>>,
    notifier: Arc<dyn Notifier>,
    clock: Arc<dyn Clock>,
    decisions: Arc<dyn DecisionRunner>,
    config: GovernorConfig,
}

impl std::fmt::Debug for GovernorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GovernorBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl GovernorBuilder {
    /// Nothing chosen yet: no stores (in-memory ones), no notifier, the system clock, decisions
    /// made inline, the default timing.
    pub(super) fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            approvals: None,
            grants: None,
            audit: None,
            notifier: Arc::new(NoNotifier),
            clock: Arc::new(SystemClock),
            decisions: Arc::new(InlineDecisions),
            config: GovernorConfig::default(),
        }
    }

    /// Uses one store for approvals, grants and audit (e.g. [`MemoryStore`] or a database store).
    /// Audit appends of concurrent calls are group-committed ([`GroupCommitAudit`]).
    #[must_use]
    pub fn store<S: ApprovalStore + GrantStore + AuditStore + 'static>(
        mut self,
        store: Arc<S>,
    ) -> Self {
        self.approvals = Some(store.clone());
        self.grants = Some(store.clone());
        self.audit = Some(Arc::new(GroupCommitAudit::new(store)));
        self
    }

    /// Sends audit entries to `audit` instead of the store given to [`GovernorBuilder::store`]
    /// (call it after `store`); appends are not group-committed unless `audit` does it.
    #[must_use]
    pub fn audit(mut self, audit: Arc<dyn AuditStore>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Sets the notifier.
    #[must_use]
    pub fn notifier(mut self, notifier: Arc<dyn Notifier>) -> Self {
        self.notifier = notifier;
        self
    }

    /// Sets the clock.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets where costly policy decisions run (default: [`InlineDecisions`]).
    #[must_use]
    pub fn decisions(mut self, decisions: Arc<dyn DecisionRunner>) -> Self {
        self.decisions = decisions;
        self
    }

    /// Sets the timing configuration.
    #[must_use]
    pub fn config(mut self, config: GovernorConfig) -> Self {
        self.config = config;
        self
    }

    /// Builds the governor. Organizations without a policy get the empty document's: allow.
    pub fn build(self) -> Governor {
        let memory = Arc::new(MemoryStore::new());
        let empty = Governance::compile(&GovernanceDocument::default());
        Governor {
            registry: self.registry,
            approvals: self.approvals.unwrap_or_else(|| memory.clone()),
            grants: self.grants.unwrap_or_else(|| memory.clone()),
            audit: self.audit.unwrap_or(memory),
            notifier: self.notifier,
            clock: self.clock,
            decisions: self.decisions,
            config: self.config,
            governance: RwLock::new(HashMap::new()),
            fallback: empty.ok().map(Arc::new),
            wakeups: Wakeups::default(),
        }
    }
}

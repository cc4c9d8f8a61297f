//! Audit events and their hashing.

use crate::approval::{ApprovalState, VoteDecision};
use crate::policy::ActionKind;
use crate::registry::OperationKind;
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The previous hash of the first event of a chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditEventKind {
    /// A tool call arrived.
    CallReceived {
        /// Call id.
        call_id: Uuid,
        /// Caller.
        principal_id: String,
        /// Exposed tool name (for a prompt its name, for a resource its URI).
        tool: String,
        /// Arguments as sent.
        arguments: Value,
        /// A tool call (left out), a prompt got or a resource read.
        #[serde(default, skip_serializing_if = "OperationKind::is_tool")]
        kind: OperationKind,
    },
    /// A call was refused before policy: the tool does not exist or is not visible.
    CallRejected {
        /// Call id.
        call_id: Uuid,
        /// Why.
        reason: String,
    },
    /// The policy decided.
    Decision {
        /// Call id.
        call_id: Uuid,
        /// The enforced action.
        action: ActionKind,
        /// The deciding rule, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
        /// The explanation.
        explanation: String,
        /// What shadow rules would have done, if anything.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shadow_action: Option<ActionKind>,
        /// The shadow rule that would have decided.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shadow_rule: Option<String>,
    },
    /// A standing grant satisfied an approval requirement.
    GrantUsed {
        /// Call id.
        call_id: Uuid,
        /// The grant.
        grant_id: Uuid,
    },
    /// An approval request was opened.
    ApprovalRequested {
        /// Request id.
        request_id: Uuid,
        /// Call id.
        call_id: Uuid,
        /// Approval policy name.
        approval_policy: String,
    },
    /// An approver voted.
    ApprovalVoted {
        /// Request id.
        request_id: Uuid,
        /// Approver.
        approver_id: String,
        /// Their decision.
        decision: VoteDecision,
        /// Their comment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
        /// Whether they edited the arguments.
        edited: bool,
    },
    /// An escalation stage started.
    ApprovalEscalated {
        /// Request id.
        request_id: Uuid,
        /// 0-based stage.
        stage: usize,
    },
    /// The request left `Pending` (approved, declined, expired or cancelled).
    ApprovalDecided {
        /// Request id.
        request_id: Uuid,
        /// The new state.
        state: ApprovalState,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resolution: Option<String>,
    },
    /// A standing grant was given.
    GrantCreated {
        /// Grant id.
        grant_id: Uuid,
        /// Request it was given with.
        request_id: Uuid,
        /// Principal it is for.
        principal_id: String,
        /// Tool.
        tool: String,
        /// Expiry.
        expires_at: DateTime<Utc>,
    },
    /// The tool ran (it may still have reported a tool error).
    Executed {
        /// Call id.
        call_id: Uuid,
        /// The approval request, if the call needed one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<Uuid>,
        /// Whether the tool reported an error.
        is_error: bool,
    },
    /// The tool could not be run.
    ExecutionFailed {
        /// Call id.
        call_id: Uuid,
        /// The approval request, if the call needed one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<Uuid>,
        /// Why.
        error: String,
    },
    /// The policy of the organization changed.
    PolicyChanged {
        /// Who changed it.
        changed_by: String,
        /// Number of rules in the new policy.
        rules: usize,
    },
}

/// An event to append, before the store chains it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Organization whose chain it joins.
    pub organization_id: String,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// What happened.
    pub kind: AuditEventKind,
}

impl AuditEntry {
    /// An entry for `organization_id` at `timestamp`, truncated to microseconds so the hash
    /// survives every storage backend's timestamp precision.
    pub fn new(
        organization_id: impl Into<String>,
        timestamp: DateTime<Utc>,
        kind: AuditEventKind,
    ) -> Self {
        Self {
            organization_id: organization_id.into(),
            timestamp: timestamp.trunc_subsecs(6),
            kind,
        }
    }
}

/// A chained audit event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Organization.
    pub organization_id: String,
    /// 1-based position in the organization's chain.
    pub sequence: u64,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// What happened.
    pub kind: AuditEventKind,
    /// Hash of the previous event ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and this event's content, hex.
    pub hash: String,
}

/// The hashed content of an event: everything but the hash itself.
#[derive(Serialize)]
struct Hashed<'a> {
    organization_id: &'a str,
    sequence: u64,
    timestamp: &'a DateTime<Utc>,
    kind: &'a AuditEventKind,
}

impl AuditEvent {
    /// Chains `entry` after `previous` (the organization's last event, or `None` for the first).
    pub fn chain(previous: Option<&AuditEvent>, entry: AuditEntry) -> Self {
        match previous {
            Some(previous) => Self::chain_after(previous.sequence, &previous.hash, entry),
            None => Self::chain_after(0, GENESIS_HASH, entry),
        }
    }

    /// Chains `entry` after the event with `sequence` and `hash` (0 and [`GENESIS_HASH`] for an
    /// empty chain): what a store needs when it keeps only the chain's head.
    pub fn chain_after(sequence: u64, hash: &str, entry: AuditEntry) -> Self {
        let mut event = Self {
            organization_id: entry.organization_id,
            sequence: sequence + 1,
            timestamp: entry.timestamp,
            kind: entry.kind,
            prev_hash: hash.to_owned(),
            hash: String::new(),
        };
        event.hash = event.compute_hash();
        event
    }

    /// Recomputes the hash from the content: SHA-256 of the previous hash, a newline, and the
    /// content's JSON (fields in declaration order, object keys sorted).
    pub fn compute_hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.as_bytes());
        hasher.update(b"\n");
        let content = Hashed {
            organization_id: &self.organization_id,
            sequence: self.sequence,
            timestamp: &self.timestamp,
            kind: &self.kind,
        };
        // Serializing these types to JSON cannot fail: every map key is a string.
        let json = serde_json::to_vec(&content).unwrap_or_default();
        hasher.update(&json);
        hex::encode(hasher.finalize())
    }
}

//! The audit chain as the REST API shows it. An event's frame (sequence, time, hashes) is chosen
//! field by field; what happened (`kind`) is shown exactly as the core wrote it, because that
//! JSON is what the event's hash covers: anyone holding the chain can recompute every hash from
//! what this API returns.

use chrono::{DateTime, Utc};
use preloop_core::audit::{AuditEvent, AuditEventKind, ChainBreak, ChainSummary};
use serde::Serialize;
use utoipa::ToSchema;

/// One event of the organization's hash chain.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct AuditEventView {
    /// The organization.
    organization_id: String,
    /// 1-based position in the organization's chain.
    sequence: u64,
    /// When it happened.
    timestamp: DateTime<Utc>,
    /// What happened, tagged by `type` (`call_received`, `call_rejected`, `decision`,
    /// `grant_used`, `approval_requested`, `approval_voted`, `approval_escalated`,
    /// `approval_decided`, `grant_created`, `executed`, `execution_failed`,
    /// `policy_changed`), with that type's fields. Exactly the JSON the hash covers.
    #[schema(value_type = Object)]
    kind: AuditEventKind,
    /// Hash of the previous event (64 zeros for the first).
    prev_hash: String,
    /// SHA-256 (hex) of `prev_hash`, a newline and the JSON of `organization_id`,
    /// `sequence`, `timestamp` and `kind`.
    hash: String,
}

impl From<AuditEvent> for AuditEventView {
    fn from(event: AuditEvent) -> Self {
        Self {
            organization_id: event.organization_id,
            sequence: event.sequence,
            timestamp: event.timestamp,
            kind: event.kind,
            prev_hash: event.prev_hash,
            hash: event.hash,
        }
    }
}

/// A page of the audit chain.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct AuditPage {
    /// The matching events, in chain order.
    items: Vec<AuditEventView>,
    /// The cursor to continue from (`after`); `null` at the end of the chain.
    next: Option<u64>,
}

impl AuditPage {
    /// `events`, and where the next page starts (`None` at the end of the chain).
    pub(in crate::api) fn new(events: Vec<AuditEvent>, next: Option<u64>) -> Self {
        Self {
            items: events.into_iter().map(Into::into).collect(),
            next,
        }
    }
}

/// The verdict on the organization's chain.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct ChainCheck {
    /// Whether every event links to the one before and its hash matches its content.
    intact: bool,
    /// Events verified (intact chains).
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<u64>,
    /// The last event's hash (intact chains).
    #[serde(skip_serializing_if = "Option::is_none")]
    head: Option<String>,
    /// Where and how the chain breaks (broken chains).
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

impl From<Result<ChainSummary, ChainBreak>> for ChainCheck {
    fn from(verdict: Result<ChainSummary, ChainBreak>) -> Self {
        match verdict {
            Ok(summary) => Self {
                intact: true,
                events: Some(summary.events),
                head: Some(summary.head),
                problem: None,
            },
            Err(broken) => Self {
                intact: false,
                events: None,
                head: None,
                problem: Some(broken.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use preloop_core::audit::{AuditEntry, GENESIS_HASH, verify_chain};
    use serde_json::json;

    #[test]
    fn events_and_verdicts_keep_their_json() {
        let entry = AuditEntry::new(
            "org",
            Utc::now(),
            AuditEventKind::PolicyChanged {
                changed_by: "admin@example.com".to_owned(),
                rules: 2,
            },
        );
        let first = AuditEvent::chain(None, entry.clone());
        let second = AuditEvent::chain(Some(&first), entry);
        let page = AuditPage::new(vec![first.clone(), second.clone()], Some(2));
        assert_eq!(
            serde_json::to_value(page).unwrap(),
            json!({"items": [first, second], "next": 2})
        );
        let end = AuditPage::new(Vec::new(), None);
        assert_eq!(
            serde_json::to_value(end).unwrap(),
            json!({"items": [], "next": null})
        );

        let summary = verify_chain([&first, &second]).unwrap();
        assert_eq!(
            serde_json::to_value(ChainCheck::from(Ok(summary.clone()))).unwrap(),
            json!({"intact": true, "events": summary.events, "head": summary.head})
        );
        let mut forged = second;
        forged.prev_hash = GENESIS_HASH.to_owned();
        let broken = verify_chain([&first, &forged]).unwrap_err();
        assert_eq!(
            serde_json::to_value(ChainCheck::from(Err(broken.clone()))).unwrap(),
            json!({"intact": false, "problem": broken.to_string()})
        );
    }
}

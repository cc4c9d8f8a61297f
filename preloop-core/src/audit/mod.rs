//! The audit log: an append-only, per-organization chain of events where each event carries the
//! SHA-256 hash of the one before it, so removing, reordering or editing any event is detectable.
//!
//! Stores compute the chain with [`AuditEvent::chain`] when they append (inside the same
//! transaction as the change being recorded) and [`verify_chain`] finds the first broken link.

mod event;

pub use event::{AuditEntry, AuditEvent, AuditEventKind, GENESIS_HASH};

use serde::Serialize;

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChainBreak {
    /// Sequence numbers skip: events are missing.
    #[error("event {expected} is missing (found event {found} in its place)")]
    Missing {
        /// The sequence number that should come next.
        expected: u64,
        /// The one that does.
        found: u64,
    },
    /// An event's recorded previous hash is not the hash of the event before it.
    #[error("event {sequence} does not link to the event before it")]
    BrokenLink {
        /// The event.
        sequence: u64,
    },
    /// An event's content does not match its hash: it was edited.
    #[error("event {sequence} was altered: its content does not match its hash")]
    Tampered {
        /// The event.
        sequence: u64,
    },
    /// Events of another organization are mixed in.
    #[error("event {sequence} belongs to another organization")]
    ForeignEvent {
        /// The event.
        sequence: u64,
    },
}

/// The result of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainSummary {
    /// Events verified.
    pub events: u64,
    /// Hash of the last event (the genesis hash for an empty chain).
    pub head: String,
}

/// Verifies a whole chain from its first event (sequence 1): continuity, links and hashes.
pub fn verify_chain<'a>(
    events: impl IntoIterator<Item = &'a AuditEvent>,
) -> Result<ChainSummary, ChainBreak> {
    verify_from(events, 1, GENESIS_HASH)
}

/// Verifies a segment starting at `first_sequence`, whose predecessor had hash `previous_hash`
/// (lets a store verify in pages without loading the whole chain).
pub fn verify_from<'a>(
    events: impl IntoIterator<Item = &'a AuditEvent>,
    first_sequence: u64,
    previous_hash: &str,
) -> Result<ChainSummary, ChainBreak> {
    let mut previous = previous_hash.to_owned();
    let mut organization: Option<&str> = None;
    let mut count = 0;
    for (expected, event) in (first_sequence..).zip(events) {
        if event.sequence != expected {
            return Err(ChainBreak::Missing {
                expected,
                found: event.sequence,
            });
        }
        match organization {
            Some(org) if org != event.organization_id => {
                return Err(ChainBreak::ForeignEvent {
                    sequence: event.sequence,
                });
            }
            _ => organization = Some(&event.organization_id),
        }
        if event.prev_hash != previous {
            return Err(ChainBreak::BrokenLink {
                sequence: event.sequence,
            });
        }
        if event.compute_hash() != event.hash {
            return Err(ChainBreak::Tampered {
                sequence: event.sequence,
            });
        }
        previous.clone_from(&event.hash);
        count += 1;
    }
    Ok(ChainSummary {
        events: count,
        head: previous,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;
    use uuid::Uuid;

    fn chain(n: usize) -> Vec<AuditEvent> {
        let mut events: Vec<AuditEvent> = Vec::new();
        for i in 0..n {
            let entry = AuditEntry::new(
                "org",
                Utc::now(),
                AuditEventKind::CallReceived {
                    call_id: Uuid::new_v4(),
                    principal_id: format!("p{i}"),
                    tool: "fs__read".into(),
                    arguments: json!({"path": i}),
                    kind: crate::registry::OperationKind::Tool,
                },
            );
            let previous = events.last();
            events.push(AuditEvent::chain(previous, entry));
        }
        events
    }

    #[test]
    fn an_intact_chain_verifies() {
        let events = chain(5);
        let summary = verify_chain(&events).unwrap();
        assert_eq!(summary.events, 5);
        assert_eq!(summary.head, events[4].hash);
        assert_eq!(verify_chain(&[]).unwrap().head, GENESIS_HASH);
        assert_eq!(
            verify_from(&events[2..], 3, &events[1].hash)
                .unwrap()
                .events,
            3
        );
    }

    #[test]
    fn the_first_tampered_event_is_found() {
        let mut events = chain(5);
        if let AuditEventKind::CallReceived { arguments, .. } = &mut events[2].kind {
            *arguments = json!({"path": "/etc/shadow"});
        }
        assert_eq!(
            verify_chain(&events),
            Err(ChainBreak::Tampered { sequence: 3 })
        );
    }

    #[test]
    fn a_missing_event_is_found() {
        let mut events = chain(5);
        events.remove(1);
        assert_eq!(
            verify_chain(&events),
            Err(ChainBreak::Missing {
                expected: 2,
                found: 3
            })
        );
        // Dropping the tail cannot be seen from the events alone, but the head hash changes.
        let events = chain(5);
        assert_ne!(verify_chain(&events[..4]).unwrap().head, events[4].hash);
    }

    #[test]
    fn a_rehashed_edit_still_breaks_the_next_link() {
        let mut events = chain(4);
        events[1].timestamp += chrono::Duration::seconds(1);
        events[1].hash = events[1].compute_hash();
        assert_eq!(
            verify_chain(&events),
            Err(ChainBreak::BrokenLink { sequence: 3 })
        );
    }

    #[test]
    fn events_round_trip_through_json_with_the_same_hash() {
        let events = chain(3);
        let text = serde_json::to_string(&events).unwrap();
        let back: Vec<AuditEvent> = serde_json::from_str(&text).unwrap();
        assert_eq!(verify_chain(&back).unwrap().head, events[2].hash);
    }
}

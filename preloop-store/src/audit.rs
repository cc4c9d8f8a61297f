//! The audit log: per-organization hash chains, appended under a lock on the chain's head row.

use crate::connect::{Database, with_connection};
use crate::error::{TxError, backend, corrupt};
use crate::schema::audit_events;
use crate::time::from_micros;
use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use preloop_core::audit::{AuditEntry, AuditEvent};
use preloop_core::store::{AuditStore, StoreError};

/// Appends `$entries` (an iterator of `AuditEntry`) to their chains on `$conn`, inside the
/// caller's transaction; evaluates to `Result<Vec<AuditEvent>, diesel::result::Error>`.
///
/// INVARIANT (one chain, no forks): the head row is locked by an `UPDATE ... RETURNING` before the
/// next event is chained, so concurrent appenders (on any replica) queue behind each other.
macro_rules! append_audit {
    ($conn:expr, $entries:expr) => {
        async {
            use diesel::prelude::*;
            use diesel_async::RunQueryDsl;
            use $crate::schema::{audit_events, audit_heads};
            let mut stored = Vec::new();
            for entry in $entries {
                let entry: preloop_core::audit::AuditEntry = entry;
                let org = entry.organization_id.clone();
                diesel::insert_into(audit_heads::table)
                    .values((
                        audit_heads::organization_id.eq(&org),
                        audit_heads::sequence.eq(0_i64),
                        audit_heads::hash.eq(preloop_core::audit::GENESIS_HASH),
                    ))
                    .on_conflict_do_nothing()
                    .execute($conn)
                    .await?;
                let (sequence, hash): (i64, String) = diesel::update(audit_heads::table.find(&org))
                    .set(audit_heads::sequence.eq(audit_heads::sequence))
                    .returning((audit_heads::sequence, audit_heads::hash))
                    .get_result($conn)
                    .await?;
                let event = preloop_core::audit::AuditEvent::chain_after(
                    u64::try_from(sequence).unwrap_or_default(),
                    &hash,
                    entry,
                );
                let body = serde_json::to_string(&event.kind)
                    .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
                let kind = serde_json::to_value(&event.kind)
                    .ok()
                    .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
                    .unwrap_or_default();
                let next = i64::try_from(event.sequence).unwrap_or(i64::MAX);
                diesel::insert_into(audit_events::table)
                    .values((
                        audit_events::organization_id.eq(&org),
                        audit_events::sequence.eq(next),
                        audit_events::timestamp.eq($crate::time::to_micros(event.timestamp)),
                        audit_events::kind.eq(kind),
                        audit_events::body.eq(body),
                        audit_events::prev_hash.eq(&event.prev_hash),
                        audit_events::hash.eq(&event.hash),
                    ))
                    .execute($conn)
                    .await?;
                diesel::update(audit_heads::table.find(&org))
                    .set((
                        audit_heads::sequence.eq(next),
                        audit_heads::hash.eq(&event.hash),
                    ))
                    .execute($conn)
                    .await?;
                stored.push(event);
            }
            Ok::<_, diesel::result::Error>(stored)
        }
    };
}
pub(crate) use append_audit;

type EventRow = (String, i64, i64, String, String, String);

fn to_event(row: EventRow) -> Result<AuditEvent, StoreError> {
    let (organization_id, sequence, timestamp, body, prev_hash, hash) = row;
    Ok(AuditEvent {
        organization_id,
        sequence: u64::try_from(sequence).unwrap_or_default(),
        timestamp: from_micros(timestamp),
        kind: serde_json::from_str(&body).map_err(|e| corrupt("audit event", e))?,
        prev_hash,
        hash,
    })
}

#[async_trait]
impl AuditStore for Database {
    async fn append(&self, entries: Vec<AuditEntry>) -> Result<Vec<AuditEvent>, StoreError> {
        with_connection!(self, |conn| {
            conn.transaction::<_, TxError, _>(async |conn| Ok(append_audit!(conn, entries).await?))
                .await
                .map_err(StoreError::from)
        })
    }

    async fn events(
        &self,
        organization_id: &str,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let from = i64::try_from(from_sequence).unwrap_or(i64::MAX);
        let limit = if limit == 0 {
            i64::MAX
        } else {
            i64::try_from(limit).unwrap_or(i64::MAX)
        };
        let rows: Vec<EventRow> = with_connection!(self, |conn| {
            audit_events::table
                .filter(audit_events::organization_id.eq(organization_id))
                .filter(audit_events::sequence.ge(from))
                .order(audit_events::sequence.asc())
                .limit(limit)
                .select((
                    audit_events::organization_id,
                    audit_events::sequence,
                    audit_events::timestamp,
                    audit_events::body,
                    audit_events::prev_hash,
                    audit_events::hash,
                ))
                .load(conn)
                .await
                .map_err(backend)?
        });
        rows.into_iter().map(to_event).collect()
    }
}

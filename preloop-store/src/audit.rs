//! The audit log: per-organization hash chains, appended under a lock on the chain's head row.

use crate::connect::{Database, Pools, SqliteConn, with_connection};
use crate::error::{TxError, backend, corrupt, unavailable};
use crate::schema::audit_events;
use crate::sqlite_runtime::inline;
use crate::time::from_micros;
use async_trait::async_trait;
use diesel::prelude::{ExpressionMethods, Insertable, QueryDsl, SqliteConnection};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use preloop_core::audit::{AuditEntry, AuditEvent};
use preloop_core::store::{AuditStore, StoreError};
use std::future::Future;
use std::pin::Pin;

/// Appends `$entries` (a `Vec<AuditEntry>`) to their chains on `$conn`, inside the caller's
/// transaction; evaluates to `Result<Vec<AuditEvent>, diesel::result::Error>`. Entries are grouped
/// by organization (keeping their order): per organization one head lock, one insert of the rows
/// and one head update, however many entries.
///
/// `append_audit!(conn, entries)` is a future for async connections; `append_audit!(sync conn,
/// entries)` runs at once on a synchronous connection (SQLite's hot path runs a whole
/// transaction in one blocking task instead of one task per statement).
///
/// INVARIANT (one chain, no forks): the head row is locked by an upsert `... RETURNING` before the
/// next events are chained, so concurrent appenders (on any replica) queue behind each other.
macro_rules! append_audit {
    (sync $conn:expr, $entries:expr) => {{
        use diesel::prelude::*;
        (|| $crate::audit::append_audit!(@chain $conn, $entries, []))()
    }};
    ($conn:expr, $entries:expr) => {
        async {
            use diesel::prelude::*;
            use diesel_async::RunQueryDsl;
            $crate::audit::append_audit!(@chain $conn, $entries, [.await])
        }
    };
    (@chain $conn:expr, $entries:expr, [$($wait:tt)*]) => {{
        use $crate::schema::audit_heads;
        let mut stored = Vec::new();
        for (org, entries) in $crate::audit::group_by_organization($entries) {
            // Creates the head on first use and locks it in one statement: the no-op update
            // takes the row lock and RETURNING yields the current head.
            let (sequence, hash): (i64, String) = diesel::insert_into(audit_heads::table)
                .values((
                    audit_heads::organization_id.eq(&org),
                    audit_heads::sequence.eq(0_i64),
                    audit_heads::hash.eq(preloop_core::audit::GENESIS_HASH),
                ))
                .on_conflict(audit_heads::organization_id)
                .do_update()
                .set(audit_heads::sequence.eq(audit_heads::sequence))
                .returning((audit_heads::sequence, audit_heads::hash))
                .get_result($conn)
                $($wait)*?;
            let events = $crate::audit::chain(sequence, hash, entries);
            let rows = events
                .iter()
                .map($crate::audit::EventRow::of)
                .collect::<Result<Vec<_>, _>>()?;
            let head = rows.last().map(|row| (row.sequence, row.hash.clone()));
            $crate::audit::InsertEvents::insert_events($conn, rows)$($wait)*?;
            if let Some((sequence, hash)) = head {
                diesel::update(audit_heads::table.find(&org))
                    .set((
                        audit_heads::sequence.eq(sequence),
                        audit_heads::hash.eq(hash),
                    ))
                    .execute($conn)
                    $($wait)*?;
            }
            stored.extend(events);
        }
        Ok::<_, diesel::result::Error>(stored)
    }};
}
pub(crate) use append_audit;

/// Entries grouped by organization, in order of first appearance, each group in input order.
pub(crate) fn group_by_organization(entries: Vec<AuditEntry>) -> Vec<(String, Vec<AuditEntry>)> {
    let mut groups: Vec<(String, Vec<AuditEntry>)> = Vec::new();
    for entry in entries {
        match groups
            .iter_mut()
            .find(|(org, _)| *org == entry.organization_id)
        {
            Some((_, group)) => group.push(entry),
            None => groups.push((entry.organization_id.clone(), vec![entry])),
        }
    }
    groups
}

/// Chains `entries` after the head (`sequence`, `hash`).
pub(crate) fn chain(sequence: i64, hash: String, entries: Vec<AuditEntry>) -> Vec<AuditEvent> {
    let mut head = (u64::try_from(sequence).unwrap_or_default(), hash);
    entries
        .into_iter()
        .map(|entry| {
            let event = AuditEvent::chain_after(head.0, &head.1, entry);
            head = (event.sequence, event.hash.clone());
            event
        })
        .collect()
}

/// Inserts event rows: one multi-row statement on PostgreSQL; one statement per row on SQLite.
/// `Inserted` is a future on async connections and the result itself on synchronous ones.
pub(crate) trait InsertEvents {
    type Inserted<'a>
    where
        Self: 'a;
    fn insert_events(&mut self, rows: Vec<EventRow>) -> Self::Inserted<'_>;
}

type InsertFuture<'a> = Pin<Box<dyn Future<Output = diesel::QueryResult<()>> + Send + 'a>>;

impl InsertEvents for AsyncPgConnection {
    type Inserted<'a> = InsertFuture<'a>;
    fn insert_events(&mut self, rows: Vec<EventRow>) -> InsertFuture<'_> {
        Box::pin(async move {
            diesel_async::RunQueryDsl::execute(
                diesel::insert_into(audit_events::table).values(rows),
                self,
            )
            .await?;
            Ok(())
        })
    }
}

impl InsertEvents for SqliteConn {
    type Inserted<'a> = InsertFuture<'a>;
    fn insert_events(&mut self, rows: Vec<EventRow>) -> InsertFuture<'_> {
        Box::pin(async move {
            for row in rows {
                diesel_async::RunQueryDsl::execute(
                    diesel::insert_into(audit_events::table).values(row),
                    self,
                )
                .await?;
            }
            Ok(())
        })
    }
}

impl InsertEvents for SqliteConnection {
    type Inserted<'a> = diesel::QueryResult<()>;
    /// One single-row statement per row: its prepared form is cached, where a multi-row
    /// statement (a different one for each row count) would be parsed anew each time.
    fn insert_events(&mut self, rows: Vec<EventRow>) -> diesel::QueryResult<()> {
        for row in rows {
            diesel::RunQueryDsl::execute(
                diesel::insert_into(audit_events::table).values(row),
                self,
            )?;
        }
        Ok(())
    }
}

/// An event as a row of `audit_events`.
#[derive(Insertable)]
#[diesel(table_name = audit_events)]
pub(crate) struct EventRow {
    organization_id: String,
    pub(crate) sequence: i64,
    timestamp: i64,
    kind: String,
    body: String,
    prev_hash: String,
    pub(crate) hash: String,
}

impl EventRow {
    pub(crate) fn of(event: &AuditEvent) -> Result<Self, diesel::result::Error> {
        let body = serde_json::to_value(&event.kind)
            .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
        Ok(Self {
            organization_id: event.organization_id.clone(),
            sequence: i64::try_from(event.sequence).unwrap_or(i64::MAX),
            timestamp: crate::time::to_micros(event.timestamp),
            kind: body
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or_default()
                .to_owned(),
            body: serde_json::to_string(&event.kind)
                .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?,
            prev_hash: event.prev_hash.clone(),
            hash: event.hash.clone(),
        })
    }
}

type StoredRow = (String, i64, i64, String, String, String);

fn to_event(row: StoredRow) -> Result<AuditEvent, StoreError> {
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
        match &*self.pools {
            Pools::Postgres(pool) => {
                let mut pooled = pool.get().await.map_err(unavailable)?;
                let conn: &mut AsyncPgConnection = &mut pooled;
                conn.transaction::<_, TxError, _>(async |conn| {
                    Ok(append_audit!(conn, entries).await?)
                })
                .await
                .map_err(StoreError::from)
            }
            // The whole transaction at once on this thread: every tool call takes this path,
            // and a hand-off to a blocking thread and back costs several times SQLite's own
            // work. It holds the only pooled connection, so it waits on no other work here.
            Pools::Sqlite(pool) => {
                let mut conn = pool.get().await.map_err(unavailable)?;
                let appended = inline(|| {
                    conn.spawn_blocking(move |conn| {
                        conn.immediate_transaction(|conn| append_audit!(sync conn, entries))
                    })
                });
                appended.await.map_err(backend)
            }
        }
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
        use diesel_async::RunQueryDsl;
        let rows: Vec<StoredRow> = with_connection!(self, |conn| {
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

//! The audit log: per-organization hash chains, appended under a lock on the chain's head row.

use crate::connect::{Database, Pools, SqliteConn, with_connection};
use crate::error::{TxError, backend, corrupt, unavailable};
use crate::schema::audit_events;
use crate::sqlite_runtime::inline;
use crate::time::from_micros;
use async_trait::async_trait;
use diesel::prelude::{ExpressionMethods, Insertable, QueryDsl, SqliteConnection};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use preloop_core::audit::{AuditEntry, AuditEvent, GENESIS_HASH};
use preloop_core::store::{AuditStore, StoreError};
use std::future::Future;
use std::pin::Pin;

/// Appends `$entries` (a `Vec<AuditEntry>`) to their chains on `$conn`, inside the caller's
/// transaction; evaluates to `Result<Vec<AuditEvent>, diesel::result::Error>`. Entries are grouped
/// by organization (keeping their order): per organization the head is locked once and the rows
/// inserted, however many entries.
///
/// `append_audit!(conn, entries)` is a future for async connections; `append_audit!(sync conn,
/// entries)` runs at once on a synchronous connection (SQLite's hot path runs a whole
/// transaction in one go instead of one task per statement).
///
/// INVARIANT (one chain, no forks): the head is locked ([`ChainHead`]) before the next events
/// are chained, so concurrent appenders (on any replica) queue behind each other.
macro_rules! append_audit {
    (sync $conn:expr, $entries:expr) => {{ (|| $crate::audit::append_audit!(@chain $conn, $entries, []))() }};
    ($conn:expr, $entries:expr) => {
        async { $crate::audit::append_audit!(@chain $conn, $entries, [.await]) }
    };
    (@chain $conn:expr, $entries:expr, [$($wait:tt)*]) => {{
        use $crate::audit::{ChainHead, InsertEvents};
        let mut stored = Vec::new();
        for (org, entries) in $crate::audit::group_by_organization($entries) {
            let (sequence, hash) = $conn.lock_head(&org)$($wait)*?;
            let events = $crate::audit::chain(sequence, hash, entries);
            let rows = events
                .iter()
                .map($crate::audit::EventRow::of)
                .collect::<Result<Vec<_>, _>>()?;
            let head = rows.last().map(|row| (row.sequence, row.hash.clone()));
            $conn.insert_events(rows)$($wait)*?;
            if let Some((sequence, hash)) = head {
                $conn.move_head(&org, sequence, hash)$($wait)*?;
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

/// The head of an organization's chain: the sequence number and hash the next event follows.
///
/// PostgreSQL keeps heads in `audit_heads`: `lock_head` creates the row on first use and locks
/// it in one statement (the no-op upsert takes the row lock, `RETURNING` yields the head), so
/// concurrent appenders on any replica queue behind each other, and `move_head` advances it.
/// SQLite has one writer at a time (appends run in `BEGIN IMMEDIATE` transactions), so the head
/// is simply the organization's last event, and nothing has to be moved: two statements fewer
/// per append, and the primary key `(organization_id, sequence)` still refuses a fork.
/// `Locked`/`Moved` are futures on async connections and results on synchronous ones.
pub(crate) trait ChainHead {
    type Locked<'a>
    where
        Self: 'a;
    type Moved<'a>
    where
        Self: 'a;
    fn lock_head<'a>(&'a mut self, organization_id: &'a str) -> Self::Locked<'a>;
    fn move_head<'a>(
        &'a mut self,
        organization_id: &'a str,
        sequence: i64,
        hash: String,
    ) -> Self::Moved<'a>;
}

/// Statements run for their effect, on an async connection.
type StatementFuture<'a> = Pin<Box<dyn Future<Output = diesel::QueryResult<()>> + Send + 'a>>;
/// The head read by [`ChainHead::lock_head`], on an async connection.
type HeadFuture<'a> = Pin<Box<dyn Future<Output = diesel::QueryResult<(i64, String)>> + Send + 'a>>;

impl ChainHead for AsyncPgConnection {
    type Locked<'a> = HeadFuture<'a>;
    type Moved<'a> = StatementFuture<'a>;
    fn lock_head<'a>(&'a mut self, organization_id: &'a str) -> HeadFuture<'a> {
        use crate::schema::audit_heads;
        Box::pin(diesel_async::RunQueryDsl::get_result(
            diesel::insert_into(audit_heads::table)
                .values((
                    audit_heads::organization_id.eq(organization_id),
                    audit_heads::sequence.eq(0_i64),
                    audit_heads::hash.eq(GENESIS_HASH),
                ))
                .on_conflict(audit_heads::organization_id)
                .do_update()
                .set(audit_heads::sequence.eq(audit_heads::sequence))
                .returning((audit_heads::sequence, audit_heads::hash)),
            self,
        ))
    }
    fn move_head<'a>(
        &'a mut self,
        organization_id: &'a str,
        sequence: i64,
        hash: String,
    ) -> StatementFuture<'a> {
        use crate::schema::audit_heads;
        Box::pin(async move {
            diesel_async::RunQueryDsl::execute(
                diesel::update(audit_heads::table.find(organization_id)).set((
                    audit_heads::sequence.eq(sequence),
                    audit_heads::hash.eq(hash),
                )),
                self,
            )
            .await?;
            Ok(())
        })
    }
}

/// An organization's events, newest first.
type NewestFirst<'a> = diesel::dsl::Order<
    diesel::dsl::Filter<
        audit_events::table,
        diesel::dsl::Eq<audit_events::organization_id, &'a str>,
    >,
    diesel::dsl::Desc<audit_events::sequence>,
>;

/// The query for an organization's last event, as `(sequence, hash)`.
type LastEvent<'a> = diesel::dsl::Limit<
    diesel::dsl::Select<NewestFirst<'a>, (audit_events::sequence, audit_events::hash)>,
>;

/// The organization's last event, as `(sequence, hash)`.
fn last_event(organization_id: &str) -> LastEvent<'_> {
    audit_events::table
        .filter(audit_events::organization_id.eq(organization_id))
        .order(audit_events::sequence.desc())
        .select((audit_events::sequence, audit_events::hash))
        .limit(1)
}

/// The head after `last`: the genesis of an organization with no events yet.
fn head_after(last: Option<(i64, String)>) -> (i64, String) {
    last.unwrap_or_else(|| (0, GENESIS_HASH.to_owned()))
}

impl ChainHead for SqliteConn {
    type Locked<'a> = HeadFuture<'a>;
    type Moved<'a> = StatementFuture<'a>;
    fn lock_head<'a>(&'a mut self, organization_id: &'a str) -> HeadFuture<'a> {
        Box::pin(async move {
            use diesel::OptionalExtension;
            let last = diesel_async::RunQueryDsl::get_result(last_event(organization_id), self)
                .await
                .optional()?;
            Ok(head_after(last))
        })
    }
    fn move_head<'a>(&'a mut self, _: &'a str, _: i64, _: String) -> StatementFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

impl ChainHead for SqliteConnection {
    type Locked<'a> = diesel::QueryResult<(i64, String)>;
    type Moved<'a> = diesel::QueryResult<()>;
    fn lock_head<'a>(&'a mut self, organization_id: &'a str) -> Self::Locked<'a> {
        use diesel::OptionalExtension;
        let last = diesel::RunQueryDsl::get_result(last_event(organization_id), self).optional()?;
        Ok(head_after(last))
    }
    fn move_head<'a>(&'a mut self, _: &'a str, _: i64, _: String) -> Self::Moved<'a> {
        Ok(())
    }
}

/// Inserts event rows: one multi-row statement on PostgreSQL; one statement per row on SQLite.
/// `Inserted` is a future on async connections and the result itself on synchronous ones.
pub(crate) trait InsertEvents {
    type Inserted<'a>
    where
        Self: 'a;
    fn insert_events(&mut self, rows: Vec<EventRow>) -> Self::Inserted<'_>;
}

impl InsertEvents for AsyncPgConnection {
    type Inserted<'a> = StatementFuture<'a>;
    fn insert_events(&mut self, rows: Vec<EventRow>) -> StatementFuture<'_> {
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
    type Inserted<'a> = StatementFuture<'a>;
    fn insert_events(&mut self, rows: Vec<EventRow>) -> StatementFuture<'_> {
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

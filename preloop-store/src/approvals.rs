//! Approval requests: the full request as JSON beside the columns queries filter and sort on.

use crate::audit::append_audit;
use crate::connect::{Database, Pools, SqliteConn, with_connection};
use crate::error::{TxError, backend, corrupt, unavailable};
use crate::notify::AnnounceChange;
use crate::schema::approval_requests as requests;
use crate::time::to_micros;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use preloop_core::approval::{ApprovalRequest, ApprovalState};
use preloop_core::audit::AuditEntry;
use preloop_core::store::{ApprovalFilter, ApprovalStore, CasOutcome, DUE_CLAIM_LEASE, StoreError};
use uuid::Uuid;

/// The columns of a request, derived from it.
struct Columns {
    state: &'static str,
    token_hash: Option<String>,
    escalation_stage: i64,
    expires_at: i64,
    next_deadline: Option<i64>,
    version: i64,
    body: String,
}

fn columns(request: &ApprovalRequest) -> Result<Columns, StoreError> {
    Ok(Columns {
        state: request.state.as_str(),
        token_hash: request.token_hash.clone(),
        escalation_stage: i64::try_from(request.escalation_stage).unwrap_or(i64::MAX),
        expires_at: to_micros(request.expires_at),
        next_deadline: request.next_deadline().map(to_micros),
        version: i64::try_from(request.version).unwrap_or(i64::MAX),
        body: serde_json::to_string(request).map_err(|e| StoreError::Backend(e.to_string()))?,
    })
}

fn parse(body: &str) -> Result<ApprovalRequest, StoreError> {
    serde_json::from_str(body).map_err(|e| corrupt("approval request", e))
}

fn parse_all(bodies: Vec<String>) -> Result<Vec<ApprovalRequest>, StoreError> {
    bodies.iter().map(|b| parse(b)).collect()
}

/// Claims due requests on `$conn`: selects pending requests past their deadline whose lease is
/// free (locking them with `$lock` where the backend can skip rows others hold), leases them,
/// and evaluates to their bodies. Every update of a request releases its lease.
macro_rules! claim_due {
    ($conn:expr, $now:expr, $limit:expr, $($lock:tt)*) => {
        $conn
            .transaction::<_, TxError, _>(async |conn| {
                let now = to_micros($now);
                let ids: Vec<String> = requests::table
                    .filter(requests::state.eq(ApprovalState::Pending.as_str()))
                    .filter(requests::next_deadline.le(now))
                    .filter(requests::claimed_until.is_null().or(requests::claimed_until.lt(now)))
                    .order(requests::next_deadline.asc())
                    .limit($limit)
                    .select(requests::id)
                    $($lock)*
                    .load(conn)
                    .await?;
                let lease = to_micros($now + DUE_CLAIM_LEASE);
                diesel::update(requests::table.filter(requests::id.eq_any(&ids)))
                    .set(requests::claimed_until.eq(lease))
                    .execute(conn)
                    .await?;
                let mut bodies: Vec<(Option<i64>, String)> = requests::table
                    .filter(requests::id.eq_any(&ids))
                    .select((requests::next_deadline, requests::body))
                    .load(conn)
                    .await?;
                bodies.sort_by_key(|(deadline, _)| *deadline);
                Ok(bodies.into_iter().map(|(_, body)| body).collect::<Vec<String>>())
            })
            .await
    };
}

#[async_trait]
impl ApprovalStore for Database {
    async fn insert_request(
        &self,
        request: &ApprovalRequest,
        audit: Vec<AuditEntry>,
    ) -> Result<(), StoreError> {
        let c = columns(request)?;
        with_connection!(self, |conn| {
            conn.transaction::<_, TxError, _>(async |conn| {
                diesel::insert_into(requests::table)
                    .values((
                        requests::id.eq(request.id.to_string()),
                        requests::organization_id.eq(&request.organization_id),
                        requests::call_id.eq(request.call_id.to_string()),
                        requests::state.eq(c.state),
                        requests::requester_id.eq(&request.requester.id),
                        requests::tool.eq(&request.tool.exposed_name),
                        requests::token_hash.eq(&c.token_hash),
                        requests::escalation_stage.eq(c.escalation_stage),
                        requests::created_at.eq(to_micros(request.created_at)),
                        requests::expires_at.eq(c.expires_at),
                        requests::next_deadline.eq(c.next_deadline),
                        requests::version.eq(c.version),
                        requests::body.eq(&c.body),
                    ))
                    .execute(conn)
                    .await?;
                append_audit!(conn, audit).await?;
                Ok(())
            })
            .await
            .map_err(StoreError::from)
        })
    }

    async fn get_request(
        &self,
        organization_id: &str,
        id: Uuid,
    ) -> Result<Option<ApprovalRequest>, StoreError> {
        let body: Option<String> = with_connection!(self, |conn| {
            requests::table
                .filter(requests::id.eq(id.to_string()))
                .filter(requests::organization_id.eq(organization_id))
                .select(requests::body)
                .first(conn)
                .await
                .optional()
                .map_err(backend)?
        });
        body.as_deref().map(parse).transpose()
    }

    async fn find_request(&self, id: Uuid) -> Result<Option<ApprovalRequest>, StoreError> {
        let body: Option<String> = with_connection!(self, |conn| {
            requests::table
                .filter(requests::id.eq(id.to_string()))
                .select(requests::body)
                .first(conn)
                .await
                .optional()
                .map_err(backend)?
        });
        body.as_deref().map(parse).transpose()
    }

    async fn update_request(
        &self,
        expected_version: u64,
        request: &ApprovalRequest,
        audit: Vec<AuditEntry>,
    ) -> Result<CasOutcome, StoreError> {
        let c = columns(request)?;
        let expected = i64::try_from(expected_version).unwrap_or(i64::MAX);
        let id = request.id.to_string();
        let org = request.organization_id.as_str();
        with_connection!(self, |conn| {
            conn.transaction::<_, TxError, _>(async |conn| {
                // INVARIANT (execution at most once): the version compare-and-set is one UPDATE, so
                // of any number of concurrent writers exactly one moves each version forward.
                let updated = diesel::update(
                    requests::table
                        .filter(requests::id.eq(&id))
                        .filter(requests::organization_id.eq(org))
                        .filter(requests::version.eq(expected)),
                )
                .set((
                    requests::state.eq(c.state),
                    requests::token_hash.eq(&c.token_hash),
                    requests::escalation_stage.eq(c.escalation_stage),
                    requests::expires_at.eq(c.expires_at),
                    requests::next_deadline.eq(c.next_deadline),
                    requests::claimed_until.eq(None::<i64>),
                    requests::version.eq(c.version),
                    requests::body.eq(&c.body),
                ))
                .execute(conn)
                .await?;
                if updated == 0 {
                    let exists: i64 = requests::table
                        .filter(requests::id.eq(&id))
                        .filter(requests::organization_id.eq(org))
                        .count()
                        .get_result(conn)
                        .await?;
                    return if exists == 0 {
                        Err(TxError::Store(StoreError::NotFound))
                    } else {
                        Ok(CasOutcome::Conflict)
                    };
                }
                append_audit!(conn, audit).await?;
                conn.announce_change(&id).await?;
                Ok(CasOutcome::Stored)
            })
            .await
            .map_err(StoreError::from)
        })
    }

    async fn list_requests(
        &self,
        organization_id: &str,
        filter: &ApprovalFilter,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        let limit = if filter.limit == 0 {
            i64::MAX
        } else {
            i64::try_from(filter.limit).unwrap_or(i64::MAX)
        };
        let state = filter.state.map(ApprovalState::as_str);
        let bodies: Vec<String> = with_connection!(self, |conn| {
            let mut query = requests::table
                .filter(requests::organization_id.eq(organization_id))
                .select(requests::body)
                .order((requests::created_at.desc(), requests::id.desc()))
                .limit(limit)
                .into_boxed();
            if let Some(state) = state {
                query = query.filter(requests::state.eq(state));
            }
            if let Some(requester) = &filter.requester_id {
                query = query.filter(requests::requester_id.eq(requester));
            }
            query.load(conn).await.map_err(backend)?
        });
        parse_all(bodies)
    }

    async fn due_requests(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let bodies = match &*self.pools {
            Pools::Postgres(pool) => {
                let conn: &mut AsyncPgConnection = &mut *pool.get().await.map_err(unavailable)?;
                claim_due!(conn, now, limit, .for_update().skip_locked())
            }
            Pools::Sqlite(pool) => {
                let conn: &mut SqliteConn = &mut *pool.get().await.map_err(unavailable)?;
                claim_due!(conn, now, limit,)
            }
        };
        parse_all(bodies.map_err(StoreError::from)?)
    }

    async fn count_pending(&self) -> Result<u64, StoreError> {
        let count: i64 = with_connection!(self, |conn| {
            requests::table
                .filter(requests::state.eq(ApprovalState::Pending.as_str()))
                .count()
                .get_result(conn)
                .await
                .map_err(backend)?
        });
        Ok(u64::try_from(count).unwrap_or_default())
    }
}

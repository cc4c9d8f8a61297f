//! Standing grants.

use crate::audit::append_audit;
use crate::connect::{Database, with_connection};
use crate::error::{TxError, backend};
use crate::schema::grants;
use crate::time::{from_micros, to_micros};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use preloop_core::approval::Grant;
use preloop_core::audit::AuditEntry;
use preloop_core::store::{GrantStore, StoreError};
use uuid::Uuid;

type GrantRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    bool,
);

fn to_grant(row: GrantRow) -> Result<Grant, StoreError> {
    let (
        id,
        organization_id,
        principal_id,
        tool,
        request_id,
        granted_by,
        created_at,
        expires_at,
        revoked,
    ) = row;
    let uuid = |text: &str| Uuid::parse_str(text).map_err(|e| crate::error::corrupt("grant", e));
    Ok(Grant {
        id: uuid(&id)?,
        organization_id,
        principal_id,
        tool,
        granted_by,
        request_id: uuid(&request_id)?,
        created_at: from_micros(created_at),
        expires_at: from_micros(expires_at),
        revoked,
    })
}

#[async_trait]
impl GrantStore for Database {
    async fn insert_grant(&self, grant: &Grant, audit: Vec<AuditEntry>) -> Result<(), StoreError> {
        with_connection!(self, |conn| {
            conn.transaction::<_, TxError, _>(async |conn| {
                diesel::insert_into(grants::table)
                    .values((
                        grants::id.eq(grant.id.to_string()),
                        grants::organization_id.eq(&grant.organization_id),
                        grants::principal_id.eq(&grant.principal_id),
                        grants::tool.eq(&grant.tool),
                        grants::request_id.eq(grant.request_id.to_string()),
                        grants::granted_by.eq(&grant.granted_by),
                        grants::created_at.eq(to_micros(grant.created_at)),
                        grants::expires_at.eq(to_micros(grant.expires_at)),
                        grants::revoked.eq(grant.revoked),
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

    async fn find_grant(
        &self,
        organization_id: &str,
        principal_id: &str,
        tool: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Grant>, StoreError> {
        let row: Option<GrantRow> = with_connection!(self, |conn| {
            grants::table
                .filter(grants::organization_id.eq(organization_id))
                .filter(grants::principal_id.eq(principal_id))
                .filter(grants::tool.eq(tool))
                .filter(grants::revoked.eq(false))
                .filter(grants::expires_at.gt(to_micros(now)))
                .order(grants::expires_at.desc())
                .select((
                    grants::id,
                    grants::organization_id,
                    grants::principal_id,
                    grants::tool,
                    grants::request_id,
                    grants::granted_by,
                    grants::created_at,
                    grants::expires_at,
                    grants::revoked,
                ))
                .first(conn)
                .await
                .optional()
                .map_err(backend)?
        });
        row.map(to_grant).transpose()
    }

    async fn revoke_grant(&self, organization_id: &str, id: Uuid) -> Result<(), StoreError> {
        let updated = with_connection!(self, |conn| {
            diesel::update(
                grants::table
                    .filter(grants::id.eq(id.to_string()))
                    .filter(grants::organization_id.eq(organization_id)),
            )
            .set(grants::revoked.eq(true))
            .execute(conn)
            .await
            .map_err(backend)?
        });
        if updated == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }
}

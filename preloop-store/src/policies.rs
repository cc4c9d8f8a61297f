//! Policy documents, one per organization.

use crate::audit::append_audit;
use crate::connect::{Database, with_connection};
use crate::error::{TxError, backend, corrupt};
use crate::schema::policy_documents as documents;
use crate::time::to_micros;
use async_trait::async_trait;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncConnection, RunQueryDsl};
use preloop_core::audit::AuditEntry;
use preloop_core::policy::GovernanceDocument;
use preloop_core::store::{PolicyStore, StoreError};

#[async_trait]
impl PolicyStore for Database {
    async fn load_policy(
        &self,
        organization_id: &str,
    ) -> Result<Option<GovernanceDocument>, StoreError> {
        let text: Option<String> = with_connection!(self, |conn| {
            documents::table
                .find(organization_id)
                .select(documents::document)
                .first(conn)
                .await
                .optional()
                .map_err(backend)?
        });
        text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt("policy document", e)))
            .transpose()
    }

    async fn save_policy(
        &self,
        organization_id: &str,
        document: &GovernanceDocument,
        audit: Vec<AuditEntry>,
    ) -> Result<(), StoreError> {
        let text =
            serde_json::to_string(document).map_err(|e| StoreError::Backend(e.to_string()))?;
        let now = to_micros(chrono::Utc::now());
        with_connection!(self, |conn| {
            conn.transaction::<_, TxError, _>(async |conn| {
                diesel::insert_into(documents::table)
                    .values((
                        documents::organization_id.eq(organization_id),
                        documents::document.eq(&text),
                        documents::updated_at.eq(now),
                    ))
                    .on_conflict(documents::organization_id)
                    .do_update()
                    .set((
                        documents::document.eq(excluded(documents::document)),
                        documents::updated_at.eq(excluded(documents::updated_at)),
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
}

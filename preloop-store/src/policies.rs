//! Policy documents, one per organization, each changed by compare-and-set on its version.

use crate::audit::append_audit;
use crate::connect::{Database, with_connection};
use crate::error::{TxError, backend, corrupt};
use crate::schema::policy_documents as documents;
use crate::time::to_micros;
use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use preloop_core::audit::AuditEntry;
use preloop_core::policy::GovernanceDocument;
use preloop_core::store::{CasOutcome, NO_POLICY_VERSION, PolicyStore, StoreError, StoredPolicy};

#[async_trait]
impl PolicyStore for Database {
    async fn load_policy(&self, organization_id: &str) -> Result<Option<StoredPolicy>, StoreError> {
        let row: Option<(String, i64)> = with_connection!(self, |conn| {
            documents::table
                .find(organization_id)
                .select((documents::document, documents::version))
                .first(conn)
                .await
                .optional()
                .map_err(backend)?
        });
        row.map(|(text, version)| {
            Ok(StoredPolicy {
                document: serde_json::from_str(&text).map_err(|e| corrupt("policy document", e))?,
                version: u64::try_from(version).map_err(|e| corrupt("policy version", e))?,
            })
        })
        .transpose()
    }

    async fn save_policy(
        &self,
        organization_id: &str,
        expected_version: u64,
        document: &GovernanceDocument,
        audit: Vec<AuditEntry>,
    ) -> Result<CasOutcome, StoreError> {
        let text =
            serde_json::to_string(document).map_err(|e| StoreError::Backend(e.to_string()))?;
        let expected = i64::try_from(expected_version)
            .map_err(|_| StoreError::Invalid("policy version out of range".into()))?;
        let now = to_micros(chrono::Utc::now());
        with_connection!(self, |conn| {
            conn.transaction::<_, TxError, _>(async |conn| {
                // One statement decides: of concurrent writers naming the same version, exactly
                // one inserts (or moves the version forward); the others change no row.
                let written = if expected_version == NO_POLICY_VERSION {
                    diesel::insert_into(documents::table)
                        .values((
                            documents::organization_id.eq(organization_id),
                            documents::document.eq(&text),
                            documents::updated_at.eq(now),
                            documents::version.eq(1),
                        ))
                        .on_conflict_do_nothing()
                        .execute(conn)
                        .await?
                } else {
                    diesel::update(
                        documents::table
                            .find(organization_id)
                            .filter(documents::version.eq(expected)),
                    )
                    .set((
                        documents::document.eq(&text),
                        documents::updated_at.eq(now),
                        documents::version.eq(documents::version + 1),
                    ))
                    .execute(conn)
                    .await?
                };
                if written == 0 {
                    return Ok(CasOutcome::Conflict);
                }
                append_audit!(conn, audit).await?;
                Ok(CasOutcome::Stored)
            })
            .await
            .map_err(StoreError::from)
        })
    }
}

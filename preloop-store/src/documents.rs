//! Configuration documents: one table per aggregate, one implementation for all of them.

use crate::connect::{Database, with_connection};
use crate::error::{TxError, backend, corrupt};
use crate::schema::{
    channel_messages, flow_executions, flows, hitl_sessions, mcp_server_tools, mcp_servers,
    projects, tool_configurations, trackers,
};
use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use preloop_core::documents::{
    ChannelMessage, DiscoveredTool, Document, Flow, FlowExecution, HitlSession, McpServer, Project,
    ToolConfiguration, TrackerConfig,
};
use preloop_core::store::{DocumentStore, StoreError};

/// A document as the columns of its table.
struct Row {
    organization_id: String,
    id: String,
    parent_id: String,
    name: String,
    body: String,
    updated_at: i64,
}

impl Row {
    fn of<T: Document>(document: &T) -> Result<Self, StoreError> {
        Ok(Self {
            organization_id: document.organization_id().to_owned(),
            id: document.id(),
            parent_id: document.parent_id().unwrap_or_default(),
            name: document.name(),
            body: serde_json::to_string(document)
                .map_err(|e| StoreError::Backend(e.to_string()))?,
            updated_at: crate::time::to_micros(chrono::Utc::now()),
        })
    }
}

fn parse<T: Document>(body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|e| corrupt(T::KIND, e))
}

fn found(changed: usize) -> Result<(), StoreError> {
    if changed == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// Implements [`DocumentStore`] for a document type over its table (all tables share a shape).
macro_rules! document_table {
    ($table:ident, $document:ty) => {
        #[async_trait]
        impl DocumentStore<$document> for Database {
            async fn insert_document(&self, document: &$document) -> Result<(), StoreError> {
                let row = Row::of(document)?;
                with_connection!(self, |conn| {
                    diesel::insert_into($table::table)
                        .values((
                            $table::organization_id.eq(&row.organization_id),
                            $table::id.eq(&row.id),
                            $table::parent_id.eq(&row.parent_id),
                            $table::name.eq(&row.name),
                            $table::body.eq(&row.body),
                            $table::updated_at.eq(row.updated_at),
                        ))
                        .execute(conn)
                        .await
                        .map_err(backend)?;
                });
                Ok(())
            }

            async fn get_document(
                &self,
                organization_id: &str,
                id: &str,
            ) -> Result<Option<$document>, StoreError> {
                let body: Option<String> = with_connection!(self, |conn| {
                    $table::table
                        .find((organization_id, id))
                        .select($table::body)
                        .first(conn)
                        .await
                        .optional()
                        .map_err(backend)?
                });
                body.as_deref().map(parse).transpose()
            }

            async fn list_documents(
                &self,
                organization_id: &str,
                parent_id: Option<&str>,
            ) -> Result<Vec<$document>, StoreError> {
                let bodies: Vec<String> = with_connection!(self, |conn| {
                    let mut query = $table::table
                        .filter($table::organization_id.eq(organization_id))
                        .order($table::name.asc())
                        .select($table::body)
                        .into_boxed();
                    if let Some(parent) = parent_id {
                        query = query.filter($table::parent_id.eq(parent));
                    }
                    query.load(conn).await.map_err(backend)?
                });
                bodies.iter().map(|b| parse(b)).collect()
            }

            async fn update_document(&self, document: &$document) -> Result<(), StoreError> {
                let row = Row::of(document)?;
                let changed = with_connection!(self, |conn| {
                    diesel::update($table::table.find((&row.organization_id, &row.id)))
                        .set((
                            $table::parent_id.eq(&row.parent_id),
                            $table::name.eq(&row.name),
                            $table::body.eq(&row.body),
                            $table::updated_at.eq(row.updated_at),
                        ))
                        .execute(conn)
                        .await
                        .map_err(backend)?
                });
                found(changed)
            }

            async fn delete_document(
                &self,
                organization_id: &str,
                id: &str,
            ) -> Result<(), StoreError> {
                let changed = with_connection!(self, |conn| {
                    diesel::delete($table::table.find((organization_id, id)))
                        .execute(conn)
                        .await
                        .map_err(backend)?
                });
                found(changed)
            }

            async fn replace_children(
                &self,
                organization_id: &str,
                parent_id: &str,
                documents: &[$document],
            ) -> Result<(), StoreError> {
                let rows = documents
                    .iter()
                    .map(Row::of)
                    .collect::<Result<Vec<_>, _>>()?;
                if rows
                    .iter()
                    .any(|r| r.parent_id != parent_id || r.organization_id != organization_id)
                {
                    return Err(StoreError::Invalid(
                        "every document must belong to the parent and organization".to_owned(),
                    ));
                }
                with_connection!(self, |conn| {
                    conn.transaction::<_, TxError, _>(async |conn| {
                        diesel::delete(
                            $table::table
                                .filter($table::organization_id.eq(organization_id))
                                .filter($table::parent_id.eq(parent_id)),
                        )
                        .execute(conn)
                        .await?;
                        for row in &rows {
                            diesel::insert_into($table::table)
                                .values((
                                    $table::organization_id.eq(&row.organization_id),
                                    $table::id.eq(&row.id),
                                    $table::parent_id.eq(&row.parent_id),
                                    $table::name.eq(&row.name),
                                    $table::body.eq(&row.body),
                                    $table::updated_at.eq(row.updated_at),
                                ))
                                .execute(conn)
                                .await?;
                        }
                        Ok(())
                    })
                    .await
                    .map_err(StoreError::from)
                })
            }
        }
    };
}

document_table!(mcp_servers, McpServer);
document_table!(mcp_server_tools, DiscoveredTool);
document_table!(tool_configurations, ToolConfiguration);
document_table!(trackers, TrackerConfig);
document_table!(projects, Project);
document_table!(flows, Flow);
document_table!(flow_executions, FlowExecution);
document_table!(hitl_sessions, HitlSession);
document_table!(channel_messages, ChannelMessage);

//! MCP session state, opaque to the store (JSON text the server writes), so that any replica or
//! a restarted server can resume a session. Not organization-scoped: a session id grants
//! nothing by itself, as every request is authenticated on its own.

use crate::connect::{Database, with_connection};
use crate::error::backend;
use crate::schema::mcp_sessions;
use crate::time::to_micros;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use preloop_core::store::StoreError;

impl Database {
    /// The stored state of session `id`.
    pub async fn load_session(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(with_connection!(self, |conn| {
            mcp_sessions::table
                .find(id)
                .select(mcp_sessions::state)
                .first::<String>(conn)
                .await
                .optional()
                .map_err(backend)?
        }))
    }

    /// Stores (or replaces) the state of session `id`.
    pub async fn save_session(
        &self,
        id: &str,
        state: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let row = (
            mcp_sessions::id.eq(id),
            mcp_sessions::state.eq(state),
            mcp_sessions::updated_at.eq(to_micros(now)),
        );
        with_connection!(self, |conn| {
            diesel::insert_into(mcp_sessions::table)
                .values(row)
                .on_conflict(mcp_sessions::id)
                .do_update()
                .set((
                    mcp_sessions::state.eq(state),
                    mcp_sessions::updated_at.eq(to_micros(now)),
                ))
                .execute(conn)
                .await
                .map_err(backend)?
        });
        Ok(())
    }

    /// Forgets session `id`.
    pub async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        with_connection!(self, |conn| {
            diesel::delete(mcp_sessions::table.find(id))
                .execute(conn)
                .await
                .map_err(backend)?
        });
        Ok(())
    }

    /// Forgets sessions stored before `cutoff` (clients that left without ending them);
    /// returns how many.
    pub async fn prune_sessions(&self, cutoff: DateTime<Utc>) -> Result<usize, StoreError> {
        Ok(with_connection!(self, |conn| {
            diesel::delete(
                mcp_sessions::table.filter(mcp_sessions::updated_at.lt(to_micros(cutoff))),
            )
            .execute(conn)
            .await
            .map_err(backend)?
        }))
    }
}

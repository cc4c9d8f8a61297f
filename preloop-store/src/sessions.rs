//! MCP session state, opaque to the store (JSON text the server writes), so that any replica or
//! a restarted server can resume a session, and the session's owner (who opened it), so that
//! no one else can use it. Not organization-scoped: a session id grants nothing by itself, as
//! every request is authenticated on its own and must come from the owner.

use crate::connect::{Database, with_connection};
use crate::error::backend;
use crate::schema::{mcp_session_owners, mcp_sessions};
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

    /// Records who opened session `id`.
    pub async fn set_session_owner(
        &self,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let row = (
            mcp_session_owners::id.eq(id),
            mcp_session_owners::owner.eq(owner),
            mcp_session_owners::created_at.eq(to_micros(now)),
        );
        with_connection!(self, |conn| {
            diesel::insert_into(mcp_session_owners::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(conn)
                .await
                .map_err(backend)?
        });
        Ok(())
    }

    /// Who opened session `id`, if that is known.
    pub async fn session_owner(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(with_connection!(self, |conn| {
            mcp_session_owners::table
                .find(id)
                .select(mcp_session_owners::owner)
                .first::<String>(conn)
                .await
                .optional()
                .map_err(backend)?
        }))
    }

    /// Forgets session `id` and its owner.
    pub async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        with_connection!(self, |conn| {
            diesel::delete(mcp_sessions::table.find(id))
                .execute(conn)
                .await
                .map_err(backend)?;
            diesel::delete(mcp_session_owners::table.find(id))
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
            let pruned = diesel::delete(
                mcp_sessions::table.filter(mcp_sessions::updated_at.lt(to_micros(cutoff))),
            )
            .execute(conn)
            .await
            .map_err(backend)?;
            // Owners of sessions that are gone (and old enough not to be still opening).
            diesel::delete(
                mcp_session_owners::table
                    .filter(mcp_session_owners::created_at.lt(to_micros(cutoff)))
                    .filter(diesel::dsl::not(diesel::dsl::exists(
                        mcp_sessions::table.filter(mcp_sessions::id.eq(mcp_session_owners::id)),
                    ))),
            )
            .execute(conn)
            .await
            .map_err(backend)?;
            pruned
        }))
    }
}

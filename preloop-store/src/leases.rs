//! Named leases: one upsert that takes a lease only when it is free or already the caller's.

use crate::connect::{Database, Pools, with_connection};
use crate::error::backend;
use crate::time::to_micros;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use preloop_core::store::{LeaseStore, StoreError};

const TAKE_SQLITE: &str = "INSERT INTO leases (name, holder, until) VALUES (?1, ?2, ?3) \
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
     WHERE leases.until <= ?4 OR leases.holder = excluded.holder";
const TAKE_POSTGRES: &str = "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3) \
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
     WHERE leases.until <= $4 OR leases.holder = excluded.holder";
const RELEASE_SQLITE: &str = "DELETE FROM leases WHERE name = ?1 AND holder = ?2";
const RELEASE_POSTGRES: &str = "DELETE FROM leases WHERE name = $1 AND holder = $2";
const PRUNE_SQLITE: &str = "DELETE FROM leases WHERE until < ?1";
const PRUNE_POSTGRES: &str = "DELETE FROM leases WHERE until < $1";

impl Database {
    /// The statement for this backend's placeholders.
    fn dialect(&self, sqlite: &'static str, postgres: &'static str) -> &'static str {
        match &*self.pools {
            Pools::Sqlite(_) => sqlite,
            Pools::Postgres(_) => postgres,
        }
    }
}

#[async_trait]
impl LeaseStore for Database {
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let query = diesel::sql_query(self.dialect(TAKE_SQLITE, TAKE_POSTGRES))
            .bind::<Text, _>(name.to_owned())
            .bind::<Text, _>(holder.to_owned())
            .bind::<BigInt, _>(to_micros(until))
            .bind::<BigInt, _>(to_micros(now));
        // The upsert changes a row exactly when the lease was free or the holder's own.
        let changed = with_connection!(self, |conn| query.execute(conn).await.map_err(backend)?);
        Ok(changed == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let query = diesel::sql_query(self.dialect(RELEASE_SQLITE, RELEASE_POSTGRES))
            .bind::<Text, _>(name.to_owned())
            .bind::<Text, _>(holder.to_owned());
        with_connection!(self, |conn| query.execute(conn).await.map_err(backend)?);
        Ok(())
    }

    async fn prune_leases(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let query = diesel::sql_query(self.dialect(PRUNE_SQLITE, PRUNE_POSTGRES))
            .bind::<BigInt, _>(to_micros(before));
        let pruned = with_connection!(self, |conn| query.execute(conn).await.map_err(backend)?);
        Ok(u64::try_from(pruned).unwrap_or_default())
    }
}

//! Named leases: one upsert that takes a lease only when it is free or already the caller's.

use crate::connect::{Database, Pools};
use crate::error::{backend, unavailable};
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

#[async_trait]
impl LeaseStore for Database {
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let sql = match &*self.pools {
            Pools::Sqlite(_) => TAKE_SQLITE,
            Pools::Postgres(_) => TAKE_POSTGRES,
        };
        let query = diesel::sql_query(sql)
            .bind::<Text, _>(name.to_owned())
            .bind::<Text, _>(holder.to_owned())
            .bind::<BigInt, _>(to_micros(until))
            .bind::<BigInt, _>(to_micros(now));
        // The upsert changes a row exactly when the lease was free or the holder's own.
        let changed = match &*self.pools {
            Pools::Postgres(pool) => {
                let mut conn = pool.get().await.map_err(unavailable)?;
                query.execute(&mut conn).await.map_err(backend)?
            }
            Pools::Sqlite(pool) => {
                let mut conn = pool.get().await.map_err(unavailable)?;
                query.execute(&mut conn).await.map_err(backend)?
            }
        };
        Ok(changed == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let sql = match &*self.pools {
            Pools::Sqlite(_) => RELEASE_SQLITE,
            Pools::Postgres(_) => RELEASE_POSTGRES,
        };
        let query = diesel::sql_query(sql)
            .bind::<Text, _>(name.to_owned())
            .bind::<Text, _>(holder.to_owned());
        match &*self.pools {
            Pools::Postgres(pool) => {
                let mut conn = pool.get().await.map_err(unavailable)?;
                query.execute(&mut conn).await.map_err(backend)?;
            }
            Pools::Sqlite(pool) => {
                let mut conn = pool.get().await.map_err(unavailable)?;
                query.execute(&mut conn).await.map_err(backend)?;
            }
        }
        Ok(())
    }
}

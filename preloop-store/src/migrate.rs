//! Embedded migrations, one folder per backend, run at open. A schema newer than this build is
//! refused instead of being used half-understood.

use crate::connect::{Database, Pools};
use crate::error::{OpenError, redact};
use diesel::backend::Backend as DieselBackend;
use diesel::migration::MigrationSource;
use diesel_async::AsyncMigrationHarness;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::collections::HashSet;

const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

pub(crate) async fn run(database: &Database) -> Result<(), OpenError> {
    let unreachable = |source| OpenError::Unreachable {
        url: redact(database.url()),
        source,
    };
    // The harness blocks (diesel's migrations are synchronous), so it runs on a blocking thread.
    let outcome = match &*database.pools {
        Pools::Postgres(pool) => {
            let connection = pool.get().await.map_err(unreachable)?;
            tokio::task::spawn_blocking(move || {
                apply(AsyncMigrationHarness::new(connection), POSTGRES)
            })
            .await
        }
        Pools::Sqlite(pool) => {
            let connection = pool.get().await.map_err(unreachable)?;
            tokio::task::spawn_blocking(move || {
                apply(AsyncMigrationHarness::new(connection), SQLITE)
            })
            .await
        }
    };
    outcome.map_err(|source| OpenError::Migration {
        source: Box::new(source),
    })?
}

fn apply<DB: DieselBackend>(
    mut harness: impl MigrationHarness<DB>,
    migrations: EmbeddedMigrations,
) -> Result<(), OpenError>
where
    EmbeddedMigrations: MigrationSource<DB>,
{
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| OpenError::Migration { source };
    let known: HashSet<String> = MigrationSource::<DB>::migrations(&migrations)
        .map_err(failed)?
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    let mut unknown: Vec<String> = harness
        .applied_migrations()
        .map_err(failed)?
        .into_iter()
        .map(|v| v.to_string())
        .filter(|v| !known.contains(v))
        .collect();
    if !unknown.is_empty() {
        unknown.sort();
        return Err(OpenError::NewerSchema { unknown });
    }
    harness.run_pending_migrations(migrations).map_err(failed)?;
    Ok(())
}

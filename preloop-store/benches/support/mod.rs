//! What the store's load tools share: the databases they run on (an SQLite file in a temporary
//! directory; a fresh database on `PRELOOP_TEST_DATABASE_URL`'s server) and percentiles.

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use preloop_store::Database;
use std::path::{Path, PathBuf};
use std::time::Duration;
use uuid::Uuid;

/// How results on SQLite are labelled.
pub const SQLITE: &str = "SQLite (file, WAL)";
/// How results on PostgreSQL are labelled.
pub const POSTGRES: &str = "PostgreSQL 16 + pgvector (loopback)";

/// An SQLite database in a new temporary directory, and the directory (to remove afterwards).
pub async fn sqlite() -> (Database, PathBuf) {
    let dir = std::env::temp_dir().join(format!("preloop-load-{}", Uuid::new_v4().simple()));
    let db = Database::open(&format!("sqlite://{}/load.db", dir.display()))
        .await
        .unwrap();
    (db, dir)
}

/// Removes what [`sqlite`] created, once its database is dropped.
pub fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// A new, empty database on the server `PRELOOP_TEST_DATABASE_URL` names, or `None` (with a
/// line saying so) when it is not set.
pub async fn postgres() -> Option<Database> {
    let Ok(server) = std::env::var("PRELOOP_TEST_DATABASE_URL") else {
        println!("PostgreSQL: skipped (run under scripts/test-postgres)");
        return None;
    };
    let name = format!("load_{}", Uuid::new_v4().simple());
    let mut admin = AsyncPgConnection::establish(&server).await.unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
    Some(Database::open(&format!("{base}/{name}")).await.unwrap())
}

/// A raw connection to a PostgreSQL [`Database`] the load tool created (its URL carries no
/// password), for maintenance statements the store does not offer.
pub async fn raw_postgres(db: &Database) -> AsyncPgConnection {
    AsyncPgConnection::establish(&db.redacted_url())
        .await
        .unwrap()
}

/// The `p` quantile (0 to 1) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

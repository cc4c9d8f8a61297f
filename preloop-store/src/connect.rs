//! Opening a database from its URL: the connection pools of both backends.

use crate::error::{OpenError, redact};
use crate::migrate;
use crate::sqlite_runtime::{Checkpointer, SqliteRuntime};
use diesel::SqliteConnection;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures::FutureExt;
use std::path::Path;

/// A pooled SQLite connection; its work runs on tokio's blocking pool, or inline
/// ([`crate::sqlite_runtime`]).
pub(crate) type SqliteConn = SyncConnectionWrapper<SqliteConnection, SqliteRuntime>;

/// Which backend a database runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file (one process).
    Sqlite,
    /// PostgreSQL (several replicas may share it).
    Postgres,
}

pub(crate) enum Pools {
    Postgres(Pool<AsyncPgConnection>),
    Sqlite(Pool<SqliteConn>),
}

/// An open, migrated database. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Database {
    pub(crate) pools: std::sync::Arc<Pools>,
    url: String,
    /// Checkpoints a SQLite file's WAL while any clone of the database is open.
    _checkpointer: Option<std::sync::Arc<Checkpointer>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend())
            .field("url", &redact(&self.url))
            .finish()
    }
}

/// Connections kept open to PostgreSQL.
const POSTGRES_POOL_SIZE: usize = 16;

/// Runs `$body` with `$conn` bound to a pooled connection of whichever backend the database
/// uses. The body is expanded once per backend, so one source serves both.
macro_rules! with_connection {
    ($database:expr, |$conn:ident| $body:expr) => {
        match &*$database.pools {
            $crate::connect::Pools::Postgres(pool) => {
                let mut pooled = pool.get().await.map_err($crate::error::unavailable)?;
                let $conn: &mut diesel_async::AsyncPgConnection = &mut pooled;
                $body
            }
            $crate::connect::Pools::Sqlite(pool) => {
                let mut pooled = pool.get().await.map_err($crate::error::unavailable)?;
                let $conn: &mut $crate::connect::SqliteConn = &mut pooled;
                $body
            }
        }
    };
}
pub(crate) use with_connection;

impl Database {
    /// Opens (creating and migrating if needed) the database at `url`:
    /// `sqlite://PATH` (relative or absolute; `sqlite::memory:` for a private in-memory database)
    /// or `postgres://...` / `postgresql://...`.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        let mut checkpointer = None;
        let pools = if let Some(rest) = url
            .strip_prefix("postgres://")
            .or(url.strip_prefix("postgresql://"))
        {
            if rest.is_empty() {
                return Err(invalid(url, "the host is missing"));
            }
            // Fast recycling: a connection known to be broken is discarded, but checkouts do not
            // cost a `SELECT 1` round trip each (that doubled the statements of short operations).
            let mut config = ManagerConfig::default();
            config.recycling_method = RecyclingMethod::Fast;
            let manager =
                AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
            let pool = Pool::builder(manager)
                .max_size(POSTGRES_POOL_SIZE)
                .build()
                .map_err(|e| invalid(url, &e.to_string()))?;
            Pools::Postgres(pool)
        } else if let Some(path) = url
            .strip_prefix("sqlite://")
            .or(url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(invalid(url, "the file path is missing"));
            }
            if path != ":memory:" {
                create_parent(path)?;
                let started =
                    Checkpointer::start(path).map_err(|source| OpenError::Checkpointer {
                        path: path.to_owned(),
                        source,
                    })?;
                checkpointer = Some(std::sync::Arc::new(started));
            }
            let mut config = ManagerConfig::default();
            config.custom_setup = Box::new(|path| open_sqlite(path.to_owned()).boxed());
            // A checkout verified by a `SELECT 1` would cost a blocking-thread round trip per
            // operation; a file connection does not go stale like a network one.
            config.recycling_method = RecyclingMethod::Fast;
            // One connection: SQLite serializes writers anyway, and a single connection never
            // meets SQLITE_BUSY on a lock upgrade. Operations take microseconds.
            let pool = Pool::builder(AsyncDieselConnectionManager::<SqliteConn>::new_with_config(
                path, config,
            ))
            .max_size(1)
            .build()
            .map_err(|e| invalid(url, &e.to_string()))?;
            Pools::Sqlite(pool)
        } else {
            return Err(invalid(
                url,
                "use sqlite://PATH, sqlite::memory:, postgres://... or postgresql://...",
            ));
        };
        let database = Self {
            pools: std::sync::Arc::new(pools),
            url: url.to_owned(),
            _checkpointer: checkpointer,
        };
        migrate::run(&database).await?;
        Ok(database)
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        match &*self.pools {
            Pools::Postgres(_) => Backend::Postgres,
            Pools::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The URL, with any password removed.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

fn invalid(url: &str, reason: &str) -> OpenError {
    OpenError::InvalidUrl {
        url: redact(url),
        reason: reason.to_owned(),
    }
}

fn create_parent(path: &str) -> Result<(), OpenError> {
    let Some(parent) = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    else {
        return Ok(());
    };
    std::fs::create_dir_all(parent).map_err(|source| OpenError::DataDirectory {
        path: parent.display().to_string(),
        source,
    })
}

/// Opens one SQLite connection with the settings every connection needs. Reads go through the
/// memory-mapped file; the page cache stays at SQLite's default 2 MiB (a 64 MiB cache grew the
/// server's heap with the database under load, to no measurable gain).
async fn open_sqlite(path: String) -> diesel::ConnectionResult<SqliteConn> {
    let mut connection = SqliteConn::establish(&path).await?;
    connection
        .batch_execute(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA wal_autocheckpoint = 0; \
             PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
             PRAGMA mmap_size = 1073741824; PRAGMA cache_size = -2000;",
        )
        .await
        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
    Ok(connection)
}

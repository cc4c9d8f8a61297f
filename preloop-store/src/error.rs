//! Errors at start-up and their mapping to the core's `StoreError`.

use preloop_core::store::StoreError;

/// Why the database could not be opened. Each names what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL is not one this build understands.
    #[error("invalid database URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL, with any password removed.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The database could not be reached or opened.
    #[error("cannot connect to the database at `{url}`: {source}")]
    Unreachable {
        /// The URL, with any password removed.
        url: String,
        /// The pool's error (the driver's, when it could not connect).
        #[source]
        source: diesel_async::pooled_connection::deadpool::PoolError,
    },
    /// The database has migrations this binary does not know: it was created by a newer version.
    #[error(
        "the database schema is newer than this preloop build (unknown migrations: {}); upgrade preloop",
        .unknown.join(", ")
    )]
    NewerSchema {
        /// The unknown migration versions.
        unknown: Vec<String>,
    },
    /// A migration failed.
    #[error("database migration failed: {source}")]
    Migration {
        /// The migration harness's error (or its thread's).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The data directory could not be created.
    #[error("cannot create the data directory `{path}`: {source}")]
    DataDirectory {
        /// The directory.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The SQLite file's WAL checkpoint thread could not be started.
    #[error("cannot start the WAL checkpoint thread for `{path}`: {source}")]
    Checkpointer {
        /// The database file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Maps a diesel error to the core's store error.
pub(crate) fn backend(error: diesel::result::Error) -> StoreError {
    match error {
        diesel::result::Error::NotFound => StoreError::NotFound,
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ) => StoreError::AlreadyExists,
        other => StoreError::Backend(other.to_string()),
    }
}

/// Maps a pool error (the database is down or overloaded) to the core's store error.
pub(crate) fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// A row whose JSON no longer parses: reported, never silently skipped.
pub(crate) fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("stored {what} is unreadable: {error}"))
}

/// Removes the password from a URL for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact("postgres://app:s3cret@db:5432/p"),
            "postgres://app:***@db:5432/p"
        );
        assert_eq!(super::redact("postgres://db/p"), "postgres://db/p");
        assert_eq!(super::redact("sqlite://x.db"), "sqlite://x.db");
    }
}

/// The error type inside transactions: diesel's, or a store verdict that rolls back.
#[derive(Debug)]
pub(crate) enum TxError {
    Diesel(diesel::result::Error),
    Store(StoreError),
}

impl From<diesel::result::Error> for TxError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Diesel(error)
    }
}

impl From<TxError> for StoreError {
    fn from(error: TxError) -> Self {
        match error {
            TxError::Diesel(error) => backend(error),
            TxError::Store(error) => error,
        }
    }
}

//! Bad start-up input is a clear error, never a panic.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

use diesel::{Connection, RunQueryDsl, SqliteConnection};
use preloop_store::{Backend, Database, OpenError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_schemes_and_empty_urls_are_invalid() {
    for url in [
        "mysql://localhost/db",
        "preloop.db",
        "sqlite://",
        "postgres://",
    ] {
        let error = Database::open(url).await.unwrap_err();
        assert!(
            matches!(error, OpenError::InvalidUrl { .. }),
            "{url}: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_named_without_its_password() {
    let error = Database::open("postgres://app:hunter2@127.0.0.1:1/preloop")
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, OpenError::Unreachable { .. }), "{message}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_that_cannot_exist_is_reported() {
    let error = Database::open("sqlite:///dev/null/sub/preloop.db")
        .await
        .unwrap_err();
    assert!(matches!(error, OpenError::DataDirectory { .. }), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("preloop.db");
    let url = format!("sqlite://{}", path.display());
    let database = Database::open(&url).await.unwrap();
    assert_eq!(database.backend(), Backend::Sqlite);
    drop(database);
    let mut raw = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    diesel::sql_query("INSERT INTO __diesel_schema_migrations (version) VALUES ('29991231000000')")
        .execute(&mut raw)
        .unwrap();
    let error = Database::open(&url).await.unwrap_err();
    assert!(
        matches!(error, OpenError::NewerSchema { ref unknown } if unknown == &["29991231000000"]),
        "{error}"
    );
    assert!(error.to_string().contains("upgrade preloop"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_twice_migrates_once_and_memory_databases_work() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/p.db", dir.path().display());
    Database::open(&url).await.unwrap();
    Database::open(&url).await.unwrap();
    Database::open("sqlite::memory:").await.unwrap();
}

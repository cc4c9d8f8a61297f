//! MCP session state on both database backends: stored, replaced, loaded, deleted, pruned; and
//! who opened each session.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use chrono::{Duration, Utc};
use preloop_store::Database;

async fn sessions_round_trip(database: Database) {
    let now = Utc::now();
    assert_eq!(database.load_session("s1").await.unwrap(), None);
    database.save_session("s1", "{\"v\":1}", now).await.unwrap();
    database.save_session("s1", "{\"v\":2}", now).await.unwrap();
    database
        .save_session("old", "{}", now - Duration::days(30))
        .await
        .unwrap();
    assert_eq!(
        database.load_session("s1").await.unwrap().as_deref(),
        Some("{\"v\":2}")
    );
    assert_eq!(
        database
            .prune_sessions(now - Duration::days(7))
            .await
            .unwrap(),
        1
    );
    assert_eq!(database.load_session("old").await.unwrap(), None);
    // Owners: recorded once (the first owner stays), gone with their session, and pruned
    // with it when old.
    assert_eq!(database.session_owner("s1").await.unwrap(), None);
    database
        .set_session_owner("s1", "acme/u1/key", now)
        .await
        .unwrap();
    database
        .set_session_owner("s1", "evil/u9/key", now)
        .await
        .unwrap();
    assert_eq!(
        database.session_owner("s1").await.unwrap().as_deref(),
        Some("acme/u1/key")
    );
    database
        .set_session_owner("gone", "acme/u1/key", now - Duration::days(30))
        .await
        .unwrap();
    database
        .prune_sessions(now - Duration::days(7))
        .await
        .unwrap();
    assert_eq!(database.session_owner("gone").await.unwrap(), None);
    assert!(
        database.session_owner("s1").await.unwrap().is_some(),
        "its session is alive"
    );
    database.delete_session("s1").await.unwrap();
    assert_eq!(database.load_session("s1").await.unwrap(), None);
    assert_eq!(database.session_owner("s1").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    sessions_round_trip(Database::open(&url).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_sessions() {
    if let Some(url) = common::fresh_postgres_database().await {
        sessions_round_trip(Database::open(&url).await.unwrap()).await;
    }
}

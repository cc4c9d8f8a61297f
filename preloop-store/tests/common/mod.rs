//! Shared test fixtures: a fresh PostgreSQL database per test.

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use std::io::Write as _;
use uuid::Uuid;

/// A new, empty database on the server of `PRELOOP_TEST_DATABASE_URL`, as a URL. Without that
/// variable: `None` and a visible skip message, or a failure under CI.
pub async fn fresh_postgres_database() -> Option<String> {
    let Ok(url) = std::env::var("PRELOOP_TEST_DATABASE_URL") else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "PostgreSQL tests were skipped in CI: PRELOOP_TEST_DATABASE_URL is not set (run them under scripts/test-postgres)"
            );
        }
        // Written to the stderr handle directly: libtest captures `eprintln!`.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: a PostgreSQL test (set PRELOOP_TEST_DATABASE_URL, or run `scripts/test-postgres cargo test -p preloop-store`)"
        );
        return None;
    };
    let name = format!("t_{}", Uuid::new_v4().simple());
    let mut admin = AsyncPgConnection::establish(&url)
        .await
        .expect("the test server is reachable");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    let base = url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base);
    Some(format!("{base}/{name}"))
}

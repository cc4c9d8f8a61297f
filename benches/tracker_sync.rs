//! Tracker sync load tool: the real GitHub adapter and `sync_project` against a local GitHub
//! stand-in holding 10,000 issues, into an in-memory index (the adapter's and HTTP's share
//! alone), SQLite and (when `PRELOOP_TEST_DATABASE_URL` is set) PostgreSQL.
//!
//! ```text
//! scripts/test-postgres cargo bench --bench tracker_sync
//! ```
//!
//! For each index: a first full sync, an incremental sync with nothing changed, and one after
//! 100 issues changed, each with its time, the requests the stand-in received and the issues
//! indexed. Set `TRACKER_SYNC_ISSUES` to change the number of issues (default 10000).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a load tool fails loudly"
)]

#[path = "tracker_sync/stand_in.rs"]
mod stand_in;

use chrono::{DateTime, Utc};
use preloop::core::store::{IssueStore, MemoryStore};
use preloop::store::Database;
use preloop::trackers::Connection;
use preloop::trackers::github::GitHub;
use preloop::trackers::http::ClientOptions;
use preloop::trackers::sync::{SyncTarget, sync_project};
use stand_in::{Served, StandIn};
use std::time::{Duration, Instant};

const OWNER: &str = "acme";
const REPO: &str = "api";
const TRACKER_ID: &str = "github";
/// Issues edited between the second and third sync.
const CHANGED: usize = 100;

/// One sync, measured.
#[derive(Debug)]
struct Measured {
    elapsed: Duration,
    served: Served,
    indexed: u64,
    newest: Option<DateTime<Utc>>,
}

/// Syncs the stand-in's repository into `index` from `since`, timing it and counting what the
/// stand-in served meanwhile.
async fn sync(
    github: &GitHub,
    index: &dyn IssueStore,
    organization_id: &str,
    stand_in: &StandIn,
    since: Option<DateTime<Utc>>,
) -> Measured {
    let project = format!("{OWNER}/{REPO}");
    let target = SyncTarget {
        organization_id,
        tracker_id: TRACKER_ID,
        project: &project,
    };
    let before = stand_in.served();
    let started = Instant::now();
    let report = sync_project(github, index, target, since, |_| {})
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let served = stand_in.served() - before;
    assert_eq!(
        report.issues, served.issues,
        "indexed exactly what was served"
    );
    assert_eq!(report.pages, served.requests, "one request a page");
    Measured {
        elapsed,
        served,
        indexed: report.issues,
        newest: report.newest,
    }
}

fn print(step: &str, m: &Measured) {
    println!(
        "  {step:<26} {:>6} issues indexed  {:>4} requests  {:>10.1} ms  {:>8.0} issues/s",
        m.indexed,
        m.served.requests,
        m.elapsed.as_secs_f64() * 1e3,
        m.indexed as f64 / m.elapsed.as_secs_f64()
    );
}

/// The three syncs into `index`, against a fresh stand-in.
async fn run(label: &str, index: &dyn IssueStore, issues: u64) {
    println!("{label}:");
    let stand_in = StandIn::start(OWNER, REPO, issues).await;
    let connection = Connection {
        url: stand_in.base().to_owned(),
        token: "ghp_load".to_owned(),
        username: None,
    };
    let github = GitHub::new(&connection, ClientOptions::default()).unwrap();
    // A fresh organization, so a shared database's earlier rows are not counted.
    let organization_id = format!("sync-{}", uuid::Uuid::new_v4().simple());

    let full = sync(&github, index, &organization_id, &stand_in, None).await;
    print("first full sync", &full);
    assert_eq!(
        index
            .count_issues(&organization_id, Some(TRACKER_ID))
            .await
            .unwrap(),
        issues
    );

    let unchanged = sync(&github, index, &organization_id, &stand_in, full.newest).await;
    print("incremental, no change", &unchanged);

    let changed = stand_in.change(CHANGED);
    let after = sync(
        &github,
        index,
        &organization_id,
        &stand_in,
        unchanged.newest,
    )
    .await;
    print(&format!("incremental, {} changed", changed.len()), &after);
    for (number, title) in &changed {
        let key = format!("{OWNER}/{REPO}#{number}");
        let stored = index
            .get_issue(&organization_id, TRACKER_ID, &key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&stored.issue.title, title, "{key} re-indexed");
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let issues: u64 = std::env::var("TRACKER_SYNC_ISSUES")
        .map(|v| v.parse().expect("TRACKER_SYNC_ISSUES is a number"))
        .unwrap_or(10_000);
    println!(
        "GitHub sync of {issues} issues from a loopback stand-in (pages of 100), \
         requests counted by the stand-in:"
    );
    runtime.block_on(async {
        run(
            "in-memory index (adapter and HTTP alone)",
            &MemoryStore::new(),
            issues,
        )
        .await;

        let dir = tempfile::tempdir().unwrap();
        let sqlite = Database::open(&format!("sqlite://{}/sync.db", dir.path().display()))
            .await
            .unwrap();
        run("SQLite (file, WAL)", &sqlite, issues).await;

        match std::env::var("PRELOOP_TEST_DATABASE_URL") {
            Ok(url) => {
                let postgres = Database::open(&url).await.unwrap();
                run("PostgreSQL 16 (loopback)", &postgres, issues).await;
            }
            Err(_) => println!("PostgreSQL: skipped (run under scripts/test-postgres)"),
        }
    });
}

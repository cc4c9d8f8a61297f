//! Faults: the gateway is killed with SIGKILL at random moments while agents make governed
//! calls, some held for approval, and an admin approves, then restarted, fifty times, on SQLite
//! and on PostgreSQL. After every restart: the audit chain verifies, every approval request a
//! client was told about still exists, no call ran twice (the upstream writes each execution
//! to a file, durably), and no call ran without its decision in the audit log.
//!
//! The seed of each run is printed; `FAULTS_SEED=<n>` replays one.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

use preloop_testkit as common;
#[path = "../preloop-store/tests/common/mod.rs"]
mod postgres;

use common::{ADMIN_KEY, Client, Process, connect_url, rest, spawn, start_gateway};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROUNDS: usize = 50;
const SECRET_KEY: &str = "the fault test's secret key, 32+ characters";

/// A small deterministic generator (xorshift), so a failing run can be replayed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

fn seed() -> u64 {
    std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

fn config(upstream: &str) -> String {
    format!(
        r#"
[server]
requests_per_second = 100000
burst = 100000

[[mcp_servers]]
name = "up"
transport = "http"
url = "{upstream}"
keep_alive = true

[[approval_policies]]
name = "ops"
default = true
approvers = ["role:admin"]
mode = "async"
timeout = "1h"

[policy]
default = "allow"
[[policy.rules]]
id = "held"
tools = ["up__record"]
when = 'args.id.startsWith("held-")'
action = "require_approval"
"#
    )
}

/// What clients were told while the gateway ran.
#[derive(Default)]
struct Observed {
    /// Approval requests the held calls were given.
    requests: BTreeSet<String>,
    /// Requests not approved yet.
    unapproved: Vec<String>,
    /// Calls answered as executed.
    executed: BTreeSet<String>,
}

async fn agent_calls(client: Arc<Client>, prefix: String, observed: Arc<Mutex<Observed>>) {
    for n in 0.. {
        let id = format!("{prefix}-{n}");
        let arguments = json!({"id": id}).as_object().cloned().unwrap();
        let params =
            rmcp::model::CallToolRequestParams::new("up__record").with_arguments(arguments);
        let Ok(result) = client.call_tool(params).await else {
            return;
        };
        let answer = common::text(&result);
        let held = answer.contains("request_id");
        {
            let mut observed = observed.lock().unwrap();
            if answer == format!("recorded {id}") {
                observed.executed.insert(id);
            } else if let Ok(pending) = serde_json::from_str::<Value>(&answer)
                && let Some(request) = pending["request_id"].as_str()
            {
                observed.requests.insert(request.to_owned());
                observed.unapproved.push(request.to_owned());
            }
        }
        // Held calls pile up requests faster than anyone approves them: fewer of those.
        if held {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn approvals(base: String, observed: Arc<Mutex<Observed>>) {
    let http = reqwest::Client::new();
    loop {
        let next = observed.lock().unwrap().unapproved.pop();
        let Some(request) = next else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let sent = http
            .post(format!("{base}/api/v1/approval-requests/{request}/approve"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await;
        if sent.is_err() {
            return;
        }
    }
}

/// Collects the test's call ids (`"id": "ok-..."` / `"held-..."`) anywhere in an audit event.
fn call_ids(value: &Value, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                match field.as_str() {
                    Some(id)
                        if name == "id" && (id.starts_with("ok-") || id.starts_with("held-")) =>
                    {
                        into.insert(id.to_owned());
                    }
                    _ => call_ids(field, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| call_ids(item, into)),
        _ => {}
    }
}

/// What the checks have read so far: each restart reads only what is new.
#[derive(Default)]
struct Checked {
    /// The call ids the audit log names, up to event `after`.
    audited: BTreeSet<String>,
    after: u64,
    /// Requests already found after a restart.
    requests: BTreeSet<String>,
}

impl Checked {
    /// Reads the audit events appended since the last call.
    async fn read_audit(&mut self, base: &str) {
        loop {
            let (status, page) = rest(
                Method::GET,
                &format!("{base}/api/v1/audit?after={}&limit=1000", self.after),
                Some(ADMIN_KEY),
                None,
            )
            .await;
            assert_eq!(status, 200, "{page}");
            let items = page["items"].as_array().unwrap();
            if items.is_empty() {
                return;
            }
            for item in items {
                self.after = self.after.max(item["sequence"].as_u64().unwrap());
                call_ids(item, &mut self.audited);
            }
        }
    }

    /// The checks after a restart. Requests found once are found again at the end.
    async fn check(
        &mut self,
        base: &str,
        record: &Path,
        observed: &Observed,
        round: usize,
        all: bool,
    ) {
        let (status, verified) = rest(
            Method::GET,
            &format!("{base}/api/v1/audit/verify"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
        assert_eq!(status, 200, "{verified}");
        assert_eq!(verified["intact"], true, "round {round}: {verified}");
        for request in &observed.requests {
            if !all && self.requests.contains(request) {
                continue;
            }
            let (status, found) = rest(
                Method::GET,
                &format!("{base}/api/v1/approval-requests/{request}"),
                Some(ADMIN_KEY),
                None,
            )
            .await;
            assert_eq!(
                status, 200,
                "round {round}: request {request} was lost: {found}"
            );
            self.requests.insert(request.clone());
        }
        let runs = std::fs::read_to_string(record).unwrap_or_default();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for id in runs.lines() {
            *counts.entry(id).or_default() += 1;
        }
        let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            twice.is_empty(),
            "round {round}: calls ran twice: {twice:?}"
        );
        for id in &observed.executed {
            assert!(
                counts.contains_key(id.as_str()),
                "round {round}: {id} answered but never ran"
            );
        }
        self.read_audit(base).await;
        for id in counts.keys() {
            assert!(
                self.audited.contains(*id),
                "round {round}: {id} ran without its call and decision in the audit log"
            );
        }
    }
}

async fn run_faults(database: Option<&str>, label: &str) {
    let seed = seed();
    println!("{label}: seed {seed}");
    let mut random = Random(seed);
    let work = tempfile::tempdir().unwrap();
    let record = work.path().join("executions.log");
    let upstream: Process = spawn(
        Command::new(common::binary("preloop-test-upstream"))
            .args(["--http", "127.0.0.1:0"])
            .env("PRELOOP_TEST_RECORD", &record),
        "listening on ",
    );
    let config = config(&upstream.url);
    let mut env = vec![("SECRET_KEY", SECRET_KEY)];
    if let Some(url) = database {
        env.push(("DATABASE_URL", url));
    }
    let observed = Arc::new(Mutex::new(Observed::default()));
    let mut checked = Checked::default();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let server = start_gateway(work.path(), &config, &env);
        let base = server.url.clone();
        if round > 0 {
            let seen = std::mem::take(&mut *observed.lock().unwrap());
            checked.check(&base, &record, &seen, round, false).await;
            *observed.lock().unwrap() = seen;
        }
        let client = Arc::new(
            connect_url(&format!("{base}/mcp/v1"), Some(ADMIN_KEY))
                .await
                .unwrap(),
        );
        let mut load = Vec::new();
        for (kind, count) in [("ok", 2), ("held", 1)] {
            for task in 0..count {
                load.push(tokio::spawn(agent_calls(
                    client.clone(),
                    format!("{kind}-{round}-{task}"),
                    observed.clone(),
                )));
            }
        }
        load.push(tokio::spawn(approvals(base.clone(), observed.clone())));
        // The upstream's tools may take a moment after a restart; then a random moment.
        tokio::time::sleep(Duration::from_millis(150 + random.below(600))).await;
        drop(server); // SIGKILL
        // Calls in flight get no answer; the clients would retry for a while: stop them.
        for task in load {
            task.abort();
            let _ = task.await;
        }
    }
    // One more start to check the last kill, every request again.
    let server = start_gateway(work.path(), &config, &env);
    let observed = std::mem::take(&mut *observed.lock().unwrap());
    checked
        .check(&server.url, &record, &observed, ROUNDS, true)
        .await;
    println!(
        "{label}: {ROUNDS} kills in {:?}; {} calls answered as run, {} approval requests, {} executions recorded",
        started.elapsed(),
        observed.executed.len(),
        observed.requests.len(),
        std::fs::read_to_string(&record)
            .unwrap_or_default()
            .lines()
            .count(),
    );
    assert!(
        !observed.executed.is_empty() && !observed.requests.is_empty(),
        "the load ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_on_sqlite_nothing_is_lost_or_run_twice() {
    run_faults(None, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_on_postgresql_nothing_is_lost_or_run_twice() {
    let Some(database) = postgres::fresh_postgres_database().await else {
        return;
    };
    run_faults(Some(&database), "postgresql").await;
}

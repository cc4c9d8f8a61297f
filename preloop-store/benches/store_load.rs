//! Store load tool: approval round trips, audit append throughput and similarity search over
//! 100,000 384-dimension embeddings, on SQLite and (when `PRELOOP_TEST_DATABASE_URL` is set)
//! PostgreSQL, in one run.
//!
//! ```text
//! scripts/test-postgres cargo bench -p preloop-store --bench store_load
//! ```
//!
//! Set `STORE_LOAD_ISSUES` to change the number of embeddings (default 100000), and
//! `STORE_LOAD_DATA=random` for uniform random vectors instead of clustered ones.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a load tool fails loudly"
)]

use chrono::Utc;
mod support;

use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use preloop_core::Principal;
use preloop_core::approval::{
    ApprovalEvent, ApprovalPolicy, ApprovalRequest, NewApprovalRequest, RequestContext,
    RequestedTool, VoteCast, transition,
};
use preloop_core::audit::{AuditEntry, AuditEventKind};
use preloop_core::store::{
    ApprovalStore, AuditStore, EMBEDDING_DIMENSIONS, IssueStore, SimilarityFilter,
    cosine_similarity,
};
use preloop_core::tracker::{Issue, IssueState};
use preloop_store::{Backend, Database};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::time::{Duration, Instant};
use uuid::Uuid;

const ROUND_TRIPS: usize = 1000;
const AUDIT_APPENDS: usize = 2000;
const QUERIES: usize = 100;

fn entry(org: &str) -> AuditEntry {
    AuditEntry::new(
        org,
        Utc::now(),
        AuditEventKind::ApprovalRequested {
            request_id: Uuid::new_v4(),
            call_id: Uuid::new_v4(),
            approval_policy: "ops".into(),
        },
    )
}

fn request() -> ApprovalRequest {
    ApprovalRequest::open(
        NewApprovalRequest {
            call_id: Uuid::new_v4(),
            requester: Principal::new("agent", "acme"),
            tool: RequestedTool {
                exposed_name: "github__create_issue".into(),
                server: "github".into(),
                name: "create_issue".into(),
                input_schema: json!({"type": "object"}),
            },
            arguments: json!({"repo": "acme/api", "title": "Crash on start", "labels": ["bug"]}),
            context: RequestContext::default(),
            policy: ApprovalPolicy::new("ops"),
            matched_rule: Some("rule-1".into()),
        },
        Utc::now(),
    )
}

/// Create, read, approve: three statements and two transactions, each with an audit entry.
async fn approval_round_trips(db: &Database) -> f64 {
    let admin = Principal::new("admin", "acme").with_role("admin");
    let started = Instant::now();
    for _ in 0..ROUND_TRIPS {
        let pending = request();
        db.insert_request(&pending, vec![entry("acme")])
            .await
            .unwrap();
        let stored = db.get_request("acme", pending.id).await.unwrap().unwrap();
        let approved = transition(
            &stored,
            ApprovalEvent::Vote(VoteCast::approve(admin.clone())),
            Utc::now(),
        )
        .unwrap();
        db.update_request(stored.version, &approved.request, vec![entry("acme")])
            .await
            .unwrap();
    }
    ROUND_TRIPS as f64 / started.elapsed().as_secs_f64()
}

async fn audit_appends(db: &Database, batch: usize) -> f64 {
    let started = Instant::now();
    for _ in 0..AUDIT_APPENDS / batch {
        db.append((0..batch).map(|_| entry("audit-load")).collect())
            .await
            .unwrap();
    }
    AUDIT_APPENDS as f64 / started.elapsed().as_secs_f64()
}

fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn random_unit(rng: &mut SmallRng) -> Vec<f32> {
    normalized(
        (0..EMBEDDING_DIMENSIONS)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect(),
    )
}

/// Embeddings of real text cluster by topic; uniform random vectors are the worst case for an
/// approximate index. `STORE_LOAD_DATA=random` measures that worst case instead.
fn dataset(rng: &mut SmallRng, count: usize, queries: usize) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    if std::env::var("STORE_LOAD_DATA").as_deref() == Ok("random") {
        println!("data: uniform random unit vectors (worst case for HNSW)");
        let vectors = (0..count).map(|_| random_unit(rng)).collect();
        return (vectors, (0..queries).map(|_| random_unit(rng)).collect());
    }
    println!(
        "data: 1,000 topic centroids, each vector a centroid plus noise (like sentence embeddings)"
    );
    let topics: Vec<Vec<f32>> = (0..1000).map(|_| random_unit(rng)).collect();
    let near = |rng: &mut SmallRng| {
        let topic = &topics[rng.random_range(0..topics.len())];
        normalized(
            topic
                .iter()
                .map(|x| x + rng.random_range(-0.08..0.08))
                .collect(),
        )
    };
    let vectors = (0..count).map(|_| near(rng)).collect();
    let queries = (0..queries).map(|_| near(rng)).collect();
    (vectors, queries)
}

fn issue(i: usize) -> Issue {
    Issue {
        id: i.to_string(),
        key: format!("LOAD-{i}"),
        project: format!("p{}", i % 10),
        title: format!("Issue {i}"),
        body: "Load test issue".into(),
        state: if i.is_multiple_of(3) {
            IssueState::Closed
        } else {
            IssueState::Open
        },
        status: None,
        labels: vec![],
        assignees: vec![],
        author: None,
        priority: None,
        url: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

/// Bulk-loads embeddings. PostgreSQL: drop the HNSW index, insert through `unnest`, rebuild the
/// index with enough maintenance memory and refresh the statistics (what an operator, or
/// autovacuum soon after, does for a large initial sync; without statistics the planner may
/// prefer an exact scan).
async fn load_embeddings(db: &Database, vectors: &[Vec<f32>]) -> Duration {
    let started = Instant::now();
    match db.backend() {
        Backend::Sqlite => {
            for (i, vector) in vectors.iter().enumerate() {
                db.upsert_issue("acme", "jira", &issue(i), Some(vector))
                    .await
                    .unwrap();
            }
        }
        Backend::Postgres => {
            let mut conn = support::raw_postgres(db).await;
            conn.batch_execute("DROP INDEX issues_embedding")
                .await
                .unwrap();
            for chunk_start in (0..vectors.len()).step_by(1000) {
                let end = (chunk_start + 1000).min(vectors.len());
                let (mut ids, mut keys, mut projects, mut states, mut bodies, mut embeddings) =
                    (vec![], vec![], vec![], vec![], vec![], vec![]);
                for (i, vector) in vectors.iter().enumerate().take(end).skip(chunk_start) {
                    let issue = issue(i);
                    ids.push(Uuid::new_v4().to_string());
                    keys.push(issue.key.clone());
                    projects.push(issue.project.clone());
                    states.push(
                        if issue.state == IssueState::Open {
                            "open"
                        } else {
                            "closed"
                        }
                        .to_owned(),
                    );
                    bodies.push(serde_json::to_string(&issue).unwrap());
                    let items: Vec<String> = vector.iter().map(f32::to_string).collect();
                    embeddings.push(format!("[{}]", items.join(",")));
                }
                use diesel::sql_types::{Array, Text};
                diesel::sql_query(
                    "INSERT INTO issues (id, organization_id, tracker_id, key, project, state, updated_at, body, embedding) \
                     SELECT id, 'acme', 'jira', key, project, state, 0, body, embedding::vector \
                     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) \
                       AS t(id, key, project, state, body, embedding)",
                )
                .bind::<Array<Text>, _>(ids)
                .bind::<Array<Text>, _>(keys)
                .bind::<Array<Text>, _>(projects)
                .bind::<Array<Text>, _>(states)
                .bind::<Array<Text>, _>(bodies)
                .bind::<Array<Text>, _>(embeddings)
                .execute(&mut conn)
                .await
                .unwrap();
            }
            let index_started = Instant::now();
            conn.batch_execute(
                "SET maintenance_work_mem = '1GB'; \
                 CREATE INDEX issues_embedding ON issues USING hnsw (embedding vector_cosine_ops); \
                 ANALYZE issues",
            )
            .await
            .unwrap();
            println!(
                "    (HNSW index build: {:.1} s)",
                index_started.elapsed().as_secs_f64()
            );
        }
    }
    started.elapsed()
}

async fn similarity(db: &Database, vectors: &[Vec<f32>], queries: &[Vec<f32>]) {
    let load = load_embeddings(db, vectors).await;
    println!(
        "  loaded {} embeddings in {:.1} s",
        vectors.len(),
        load.as_secs_f64()
    );
    let mut latencies = Vec::new();
    let mut recall = 0.0;
    for query in queries {
        let started = Instant::now();
        let hits = db
            .search_similar("acme", query, 10, &SimilarityFilter::default())
            .await
            .unwrap();
        latencies.push(started.elapsed());
        let mut exact: Vec<(f32, usize)> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (cosine_similarity(query, v), i))
            .collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0));
        let truth: Vec<String> = exact[..10]
            .iter()
            .map(|(_, i)| format!("LOAD-{i}"))
            .collect();
        recall += hits.iter().filter(|h| truth.contains(&h.issue.key)).count() as f64 / 10.0;
    }
    latencies.sort();
    println!(
        "  similarity top-10 over {} x {EMBEDDING_DIMENSIONS}: p50 {:.2} ms, p99 {:.2} ms, recall@10 {:.3} ({} queries)",
        vectors.len(),
        support::percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        support::percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        recall / queries.len() as f64,
        queries.len()
    );
}

async fn run(label: &str, db: &Database, vectors: &[Vec<f32>], queries: &[Vec<f32>]) {
    println!("{label}:");
    println!(
        "  approval create + read + decide: {:.0} round trips/s",
        approval_round_trips(db).await
    );
    println!(
        "  audit append, 1 event per transaction: {:.0} events/s",
        audit_appends(db, 1).await
    );
    println!(
        "  audit append, 10 events per transaction: {:.0} events/s",
        audit_appends(db, 10).await
    );
    similarity(db, vectors, queries).await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let count: usize = std::env::var("STORE_LOAD_ISSUES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        let mut rng = SmallRng::seed_from_u64(7);
        let (vectors, queries) = dataset(&mut rng, count, QUERIES);

        let (sqlite, dir) = support::sqlite().await;
        run(support::SQLITE, &sqlite, &vectors, &queries).await;
        drop(sqlite);
        support::remove(&dir);

        if let Some(postgres) = support::postgres().await {
            run(support::POSTGRES, &postgres, &vectors, &queries).await;
        }
    });
}

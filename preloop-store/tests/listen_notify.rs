//! Two independent pools on one PostgreSQL database: a decision stored through one wakes a
//! listener on the other within milliseconds.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

mod common;

use chrono::Utc;
use preloop_core::Principal;
use preloop_core::approval::{
    ApprovalEvent, ApprovalPolicy, ApprovalRequest, NewApprovalRequest, RequestContext,
    RequestedTool, VoteCast, transition,
};
use preloop_core::store::{ApprovalStore, CasOutcome};
use preloop_store::Database;
use serde_json::json;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_on_one_replica_wakes_a_listener_on_another() {
    let Some(url) = common::fresh_postgres_database().await else {
        return;
    };
    let waiter_replica = Database::open(&url).await.unwrap();
    let decider_replica = Database::open(&url).await.unwrap();
    let mut changes = waiter_replica
        .approval_changes()
        .await
        .unwrap()
        .expect("postgres listens");

    let request = ApprovalRequest::open(
        NewApprovalRequest {
            call_id: Uuid::new_v4(),
            requester: Principal::new("agent", "acme"),
            tool: RequestedTool {
                exposed_name: "fs__delete".into(),
                server: "fs".into(),
                name: "delete".into(),
                input_schema: json!({"type": "object"}),
            },
            arguments: json!({}),
            context: RequestContext::default(),
            policy: ApprovalPolicy::new("ops"),
            matched_rule: None,
        },
        Utc::now(),
    );
    decider_replica
        .insert_request(&request, vec![])
        .await
        .unwrap();
    let mut latencies = Vec::new();
    let mut current = request;
    for vote in [VoteCast::approve(
        Principal::new("admin", "acme").with_role("admin"),
    )] {
        let next = transition(&current, ApprovalEvent::Vote(vote), Utc::now())
            .unwrap()
            .request;
        let decided_at = Instant::now();
        assert_eq!(
            decider_replica
                .update_request(current.version, &next, vec![])
                .await
                .unwrap(),
            CasOutcome::Stored
        );
        let woken = tokio::time::timeout(Duration::from_secs(5), changes.next())
            .await
            .expect("woken in time");
        latencies.push(decided_at.elapsed());
        assert_eq!(woken.unwrap().unwrap(), next.id);
        current = next;
    }
    println!("notification latency after commit: {latencies:?}");
    assert!(latencies[0] < Duration::from_secs(1), "{latencies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_has_no_cross_process_listener() {
    let dir = tempfile::tempdir().unwrap();
    let database = Database::open(&format!("sqlite://{}/p.db", dir.path().display()))
        .await
        .unwrap();
    assert!(database.approval_changes().await.unwrap().is_none());
}

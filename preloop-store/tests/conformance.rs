//! One conformance suite for every store backend: the in-memory store of `preloop-core`, SQLite
//! and PostgreSQL run the same test functions.
//!
//! PostgreSQL tests need `PRELOOP_TEST_DATABASE_URL` (a server where the tests may create
//! databases); `scripts/test-postgres` provisions one. Without it they are skipped with a message,
//! and under CI (`CI` set) they fail instead.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly; the lints are for production code"
)]

mod common;

/// Every document kind's store.
trait AllDocuments:
    DocumentStore<McpServer>
    + DocumentStore<DiscoveredTool>
    + DocumentStore<ToolConfiguration>
    + DocumentStore<TrackerConfig>
    + DocumentStore<Project>
    + DocumentStore<Flow>
    + DocumentStore<FlowExecution>
{
}
impl<
    T: DocumentStore<McpServer>
        + DocumentStore<DiscoveredTool>
        + DocumentStore<ToolConfiguration>
        + DocumentStore<TrackerConfig>
        + DocumentStore<Project>
        + DocumentStore<Flow>
        + DocumentStore<FlowExecution>,
> AllDocuments for T
{
}

use async_trait::async_trait;
use chrono::{Duration as ChronoDuration, TimeZone, Utc};
use preloop_core::Principal;
use preloop_core::accounts::{ApiKey, Organization, User};
use preloop_core::approval::{
    ApprovalEvent, ApprovalPolicy, ApprovalRequest, ApprovalState, Grant, NewApprovalRequest,
    RequestContext, RequestedTool, VoteCast, transition,
};
use preloop_core::audit::{AuditEntry, AuditEventKind, verify_chain};
use preloop_core::documents::{
    DiscoveredTool, Flow, FlowExecution, FlowExecutionState, FlowTrigger, McpServer, McpTransport,
    Project, ToolConfiguration, TrackerConfig, TrackerKind,
};
use preloop_core::policy::{Format, GovernanceDocument};
use preloop_core::registry::{ToolDescriptor, ToolSource};
use preloop_core::store::{
    AccountStore, ApprovalFilter, ApprovalStore, AuditStore, CasOutcome, DocumentStore,
    EMBEDDING_DIMENSIONS, GrantStore, IssueHit, IssueStore, LeaseStore, MemoryStore,
    NO_POLICY_VERSION, PolicyStore, SimilarityFilter, StoreError, StoredPolicy, TextSearch,
};
use preloop_core::tracker::{Issue, IssueState};
use preloop_store::Database;
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

trait Stores:
    ApprovalStore
    + GrantStore
    + AuditStore
    + PolicyStore
    + IssueStore
    + LeaseStore
    + AccountStore
    + AllDocuments
    + 'static
{
}
impl<
    T: ApprovalStore
        + GrantStore
        + AuditStore
        + PolicyStore
        + IssueStore
        + LeaseStore
        + AccountStore
        + AllDocuments
        + 'static,
> Stores for T
{
}

/// A backend under test: opens its store, and reopens the same data where it is durable.
#[async_trait]
trait Backend: Send + Sync {
    type Store: Stores;
    async fn open(&self) -> Arc<Self::Store>;
    fn durable(&self) -> bool;
}

struct Memory;

#[async_trait]
impl Backend for Memory {
    type Store = MemoryStore;
    async fn open(&self) -> Arc<MemoryStore> {
        Arc::new(MemoryStore::new())
    }
    fn durable(&self) -> bool {
        false
    }
}

struct Sqlite(tempfile::TempDir);

#[async_trait]
impl Backend for Sqlite {
    type Store = Database;
    async fn open(&self) -> Arc<Database> {
        let url = format!("sqlite://{}/nested/preloop.db", self.0.path().display());
        Arc::new(Database::open(&url).await.expect("sqlite opens"))
    }
    fn durable(&self) -> bool {
        true
    }
}

/// A fresh PostgreSQL database per test, on the server of `PRELOOP_TEST_DATABASE_URL`.
struct Postgres(String);

#[async_trait]
impl Backend for Postgres {
    type Store = Database;
    async fn open(&self) -> Arc<Database> {
        Arc::new(Database::open(&self.0).await.expect("postgres opens"))
    }
    fn durable(&self) -> bool {
        true
    }
}

async fn sqlite() -> Option<Sqlite> {
    Some(Sqlite(tempfile::tempdir().expect("temp dir")))
}

async fn memory() -> Option<Memory> {
    Some(Memory)
}

async fn postgres() -> Option<Postgres> {
    common::fresh_postgres_database().await.map(Postgres)
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod memory_store { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $test() { if let Some(b) = super::memory().await { super::$test(&b).await } } )* }
        mod sqlite_store { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $test() { if let Some(b) = super::sqlite().await { super::$test(&b).await } } )* }
        mod postgres_store { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $test() { if let Some(b) = super::postgres().await { super::$test(&b).await } } )* }
    };
}

conformance!(
    approval_requests_round_trip,
    compare_and_set_is_exact,
    duplicate_requests_are_refused,
    organizations_never_see_each_other,
    exactly_one_of_fifty_concurrent_claimers_wins,
    concurrent_audit_appends_form_one_chain,
    grants_match_principal_tool_and_time,
    due_requests_are_pending_and_past_their_deadline,
    due_requests_are_claimed_once_until_their_lease_ends,
    policies_round_trip_per_organization,
    policy_changes_are_compare_and_set,
    pending_work_survives_a_restart,
    issues_round_trip_and_rank_by_similarity,
    issues_are_found_by_their_words,
    rare_words_are_found_among_thousands_of_common_matches,
    leases_are_held_by_one_holder_until_they_end,
    users_and_api_keys_round_trip,
    documents_round_trip_with_unique_names_per_parent,
    every_document_kind_round_trips,
);

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap()
}

fn request(org: &str, policy: ApprovalPolicy, created: chrono::DateTime<Utc>) -> ApprovalRequest {
    ApprovalRequest::open(
        NewApprovalRequest {
            call_id: Uuid::new_v4(),
            requester: Principal::new("agent", org).with_role("agent"),
            tool: RequestedTool {
                exposed_name: "fs__delete".into(),
                server: "fs".into(),
                name: "delete".into(),
                input_schema: json!({"type": "object"}),
            },
            arguments: json!({"path": "/tmp/a", "size": 1.5, "deep": {"list": [1, "two", null]}}),
            context: RequestContext {
                operation: Some("cleanup".into()),
                ..RequestContext::default()
            },
            policy,
            matched_rule: Some("rule-1".into()),
        },
        created,
    )
}

fn entry(org: &str, request_id: Uuid) -> AuditEntry {
    AuditEntry::new(
        org,
        t0(),
        AuditEventKind::ApprovalRequested {
            request_id,
            call_id: Uuid::new_v4(),
            approval_policy: "ops".into(),
        },
    )
}

/// `request` approved by an admin of its organization.
fn approve(request: &ApprovalRequest) -> ApprovalRequest {
    let vote = VoteCast::approve(admin(&request.organization_id));
    transition(request, ApprovalEvent::Vote(vote), t0())
        .unwrap()
        .request
}

fn admin(org: &str) -> Principal {
    Principal::new("admin", org).with_role("admin")
}

async fn events<S: Stores>(store: &S, org: &str) -> usize {
    let events = store.events(org, 1, 0).await.unwrap();
    verify_chain(&events).unwrap();
    events.len()
}

async fn approval_requests_round_trip<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let mut first = request("acme", ApprovalPolicy::new("ops"), t0());
    first.token_hash = Some("abc".into());
    let second = request(
        "acme",
        ApprovalPolicy::new("ops"),
        t0() + ChronoDuration::seconds(1),
    );
    store
        .insert_request(&first, vec![entry("acme", first.id)])
        .await
        .unwrap();
    store.insert_request(&second, vec![]).await.unwrap();
    assert_eq!(
        store.get_request("acme", first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.get_request("acme", Uuid::new_v4()).await.unwrap(),
        None
    );

    let approved = approve(&first);
    let outcome = store
        .update_request(first.version, &approved, vec![entry("acme", first.id)])
        .await
        .unwrap();
    assert_eq!(outcome, CasOutcome::Stored);
    let listed = store
        .list_requests("acme", &ApprovalFilter::default())
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![second.id, first.id],
        "newest first"
    );
    let pending = ApprovalFilter {
        state: Some(ApprovalState::Pending),
        ..ApprovalFilter::default()
    };
    assert_eq!(
        store.list_requests("acme", &pending).await.unwrap(),
        vec![second.clone()]
    );
    let limited = ApprovalFilter {
        limit: 1,
        ..ApprovalFilter::default()
    };
    assert_eq!(
        store.list_requests("acme", &limited).await.unwrap().len(),
        1
    );
    let by_other = ApprovalFilter {
        requester_id: Some("nobody".into()),
        ..ApprovalFilter::default()
    };
    assert!(
        store
            .list_requests("acme", &by_other)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(events(&*store, "acme").await, 2);
}

async fn compare_and_set_is_exact<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let pending = request("acme", ApprovalPolicy::new("ops"), t0());
    store.insert_request(&pending, vec![]).await.unwrap();
    let approved = approve(&pending);
    assert_eq!(
        store
            .update_request(0, &approved, vec![entry("acme", pending.id)])
            .await
            .unwrap(),
        CasOutcome::Stored
    );
    // A stale writer loses, and its audit entries are not written.
    let declined = transition(
        &pending,
        ApprovalEvent::Vote(VoteCast::decline(admin("acme"))),
        t0(),
    )
    .unwrap()
    .request;
    assert_eq!(
        store
            .update_request(0, &declined, vec![entry("acme", pending.id)])
            .await
            .unwrap(),
        CasOutcome::Conflict
    );
    assert_eq!(
        store
            .get_request("acme", pending.id)
            .await
            .unwrap()
            .unwrap()
            .state,
        ApprovalState::Approved
    );
    assert_eq!(events(&*store, "acme").await, 1);
    // A request that does not exist is not a conflict.
    let ghost = request("acme", ApprovalPolicy::new("ops"), t0());
    assert_eq!(
        store.update_request(0, &ghost, vec![]).await,
        Err(StoreError::NotFound)
    );
}

async fn duplicate_requests_are_refused<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let pending = request("acme", ApprovalPolicy::new("ops"), t0());
    store
        .insert_request(&pending, vec![entry("acme", pending.id)])
        .await
        .unwrap();
    assert_eq!(
        store
            .insert_request(&pending, vec![entry("acme", pending.id)])
            .await,
        Err(StoreError::AlreadyExists)
    );
    // The failed insert's audit entry was rolled back with it.
    assert_eq!(events(&*store, "acme").await, 1);
}

async fn organizations_never_see_each_other<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let theirs = request("acme", ApprovalPolicy::new("ops"), t0());
    store
        .insert_request(&theirs, vec![entry("acme", theirs.id)])
        .await
        .unwrap();
    assert_eq!(store.get_request("globex", theirs.id).await.unwrap(), None);
    assert!(
        store
            .list_requests("globex", &ApprovalFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    // Globex cannot change Acme's request by claiming it is its own.
    let mut forged = approve(&theirs);
    forged.organization_id = "globex".into();
    assert_eq!(
        store.update_request(0, &forged, vec![]).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store
            .get_request("acme", theirs.id)
            .await
            .unwrap()
            .unwrap()
            .state,
        ApprovalState::Pending
    );

    let grant = grant(
        "acme",
        "agent",
        "fs__delete",
        t0() + ChronoDuration::hours(1),
    );
    store.insert_grant(&grant, vec![]).await.unwrap();
    assert_eq!(
        store
            .find_grant("globex", "agent", "fs__delete", t0())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.revoke_grant("globex", grant.id).await,
        Err(StoreError::NotFound)
    );
    assert!(
        store
            .find_grant("acme", "agent", "fs__delete", t0())
            .await
            .unwrap()
            .is_some()
    );

    store
        .save_policy(
            "acme",
            NO_POLICY_VERSION,
            &GovernanceDocument::default(),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(store.load_policy("globex").await.unwrap(), None);
    assert!(store.events("globex", 1, 0).await.unwrap().is_empty());
    assert_eq!(events(&*store, "acme").await, 1);
}

async fn exactly_one_of_fifty_concurrent_claimers_wins<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let pending = request("acme", ApprovalPolicy::new("ops"), t0());
    store.insert_request(&pending, vec![]).await.unwrap();
    let approved = approve(&pending);
    assert_eq!(
        store.update_request(0, &approved, vec![]).await.unwrap(),
        CasOutcome::Stored
    );
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let claimers: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            let barrier = barrier.clone();
            let id = pending.id;
            tokio::spawn(async move {
                let seen = store.get_request("acme", id).await.unwrap().unwrap();
                barrier.wait().await;
                let Ok(claim) = transition(&seen, ApprovalEvent::StartExecution, t0()) else {
                    return false;
                };
                let audit = vec![entry("acme", id)];
                store
                    .update_request(seen.version, &claim.request, audit)
                    .await
                    .unwrap()
                    == CasOutcome::Stored
            })
        })
        .collect();
    let mut winners = 0;
    for claimer in claimers {
        winners += usize::from(claimer.await.unwrap());
    }
    assert_eq!(winners, 1);
    assert_eq!(
        store
            .get_request("acme", pending.id)
            .await
            .unwrap()
            .unwrap()
            .state,
        ApprovalState::Executing
    );
    assert_eq!(
        events(&*store, "acme").await,
        1,
        "only the winner's audit entry is written"
    );
}

async fn concurrent_audit_appends_form_one_chain<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let writers: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    let org_a = entry("acme", Uuid::new_v4());
                    let org_b = entry("globex", Uuid::new_v4());
                    store.append(vec![org_a, org_b]).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(events(&*store, "acme").await, 100);
    assert_eq!(events(&*store, "globex").await, 100);
    let page = store.events("acme", 41, 10).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        (41..51).collect::<Vec<_>>()
    );
}

fn grant(org: &str, principal: &str, tool: &str, expires_at: chrono::DateTime<Utc>) -> Grant {
    Grant {
        id: Uuid::new_v4(),
        organization_id: org.into(),
        principal_id: principal.into(),
        tool: tool.into(),
        granted_by: "admin".into(),
        request_id: Uuid::new_v4(),
        created_at: t0(),
        expires_at,
        revoked: false,
    }
}

async fn grants_match_principal_tool_and_time<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let active = grant(
        "acme",
        "agent",
        "fs__delete",
        t0() + ChronoDuration::minutes(30),
    );
    store
        .insert_grant(&active, vec![entry("acme", active.request_id)])
        .await
        .unwrap();
    assert_eq!(
        store
            .find_grant("acme", "agent", "fs__delete", t0())
            .await
            .unwrap(),
        Some(active.clone())
    );
    assert_eq!(
        store
            .find_grant("acme", "other", "fs__delete", t0())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_grant("acme", "agent", "fs__read", t0())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_grant(
                "acme",
                "agent",
                "fs__delete",
                t0() + ChronoDuration::minutes(30)
            )
            .await
            .unwrap(),
        None
    );
    store.revoke_grant("acme", active.id).await.unwrap();
    assert_eq!(
        store
            .find_grant("acme", "agent", "fs__delete", t0())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.insert_grant(&active, vec![]).await,
        Err(StoreError::AlreadyExists)
    );
    assert_eq!(events(&*store, "acme").await, 1);
}

async fn due_requests_are_pending_and_past_their_deadline<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let mut short = ApprovalPolicy::new("short");
    short.timeout = std::time::Duration::from_secs(60);
    let soon = request("acme", short.clone(), t0());
    let later = request("globex", ApprovalPolicy::new("ops"), t0());
    let decided = request("acme", short, t0());
    for r in [&soon, &later, &decided] {
        store.insert_request(r, vec![]).await.unwrap();
    }
    let declined = transition(
        &decided,
        ApprovalEvent::Vote(VoteCast::decline(admin("acme"))),
        t0(),
    )
    .unwrap()
    .request;
    store.update_request(0, &declined, vec![]).await.unwrap();
    assert_eq!(
        store.count_pending().await.unwrap(),
        2,
        "across organizations, pending only"
    );
    assert!(store.due_requests(t0(), 10).await.unwrap().is_empty());
    let due = store
        .due_requests(t0() + ChronoDuration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(due.iter().map(|r| r.id).collect::<Vec<_>>(), vec![soon.id]);
    let due = store
        .due_requests(t0() + ChronoDuration::hours(1), 10)
        .await
        .unwrap();
    assert_eq!(
        due.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![soon.id, later.id],
        "across organizations, oldest deadline first"
    );
    // Both are claimed now (see the lease test): nothing is handed out twice.
    assert!(
        store
            .due_requests(t0() + ChronoDuration::hours(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn policies_round_trip_per_organization<B: Backend>(backend: &B) {
    let store = backend.open().await;
    assert_eq!(store.load_policy("acme").await.unwrap(), None);
    let text = "[[approval_policies]]\nname = \"ops\"\ntimeout = \"15m\"\ngrant = { max_duration = \"1h\" }\n[policy]\ndefault = \"deny\"\n[[policy.rules]]\ntools = [\"a__*\"]\nwhen = 'args.x == \"y\"'\naction = \"allow\"\n";
    let document = GovernanceDocument::parse(text, Format::Toml).unwrap();
    let change = AuditEntry::new(
        "acme",
        t0(),
        AuditEventKind::PolicyChanged {
            changed_by: "admin".into(),
            rules: 1,
        },
    );
    let stored = |document: &GovernanceDocument, version| {
        Some(StoredPolicy {
            document: document.clone(),
            version,
        })
    };
    assert_eq!(
        store
            .save_policy("acme", NO_POLICY_VERSION, &document, vec![change.clone()])
            .await
            .unwrap(),
        CasOutcome::Stored
    );
    assert_eq!(
        store.load_policy("acme").await.unwrap(),
        stored(&document, 1)
    );
    let empty = GovernanceDocument::default();
    assert_eq!(
        store
            .save_policy("acme", 1, &empty, vec![change.clone()])
            .await
            .unwrap(),
        CasOutcome::Stored
    );
    assert_eq!(store.load_policy("acme").await.unwrap(), stored(&empty, 2));
    assert_eq!(events(&*store, "acme").await, 2);
}

/// Two writers that read the same version: the first change is stored, the second changes
/// nothing (neither the document nor the audit log) and is told so.
async fn policy_changes_are_compare_and_set<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let change = || {
        vec![AuditEntry::new(
            "acme",
            t0(),
            AuditEventKind::PolicyChanged {
                changed_by: "admin".into(),
                rules: 0,
            },
        )]
    };
    let deny = GovernanceDocument::parse("[policy]\ndefault = \"deny\"\n", Format::Toml).unwrap();
    let allow = GovernanceDocument::parse("[policy]\ndefault = \"allow\"\n", Format::Toml).unwrap();
    for (version, document) in [(NO_POLICY_VERSION, &deny), (1, &allow)] {
        assert_eq!(
            store
                .save_policy("acme", version, document, change())
                .await
                .unwrap(),
            CasOutcome::Stored
        );
        // The loser named the same version as the winner.
        assert_eq!(
            store
                .save_policy("acme", version, &GovernanceDocument::default(), change())
                .await
                .unwrap(),
            CasOutcome::Conflict
        );
    }
    assert_eq!(
        store.save_policy("acme", 7, &deny, change()).await.unwrap(),
        CasOutcome::Conflict,
        "a version that never was"
    );
    let current = store.load_policy("acme").await.unwrap().unwrap();
    assert_eq!((current.document, current.version), (allow, 2));
    assert_eq!(
        events(&*store, "acme").await,
        2,
        "losers leave no audit entry"
    );
    assert_eq!(
        store
            .save_policy("globex", 2, &deny, change())
            .await
            .unwrap(),
        CasOutcome::Conflict,
        "versions are per organization"
    );
}

async fn pending_work_survives_a_restart<B: Backend>(backend: &B) {
    if !backend.durable() {
        return;
    }
    let pending = request("acme", ApprovalPolicy::new("ops"), t0());
    let head = {
        let store = backend.open().await;
        store
            .insert_request(&pending, vec![entry("acme", pending.id)])
            .await
            .unwrap();
        store
            .append(vec![entry("acme", pending.id), entry("acme", pending.id)])
            .await
            .unwrap();
        store
            .events("acme", 1, 0)
            .await
            .unwrap()
            .last()
            .unwrap()
            .hash
            .clone()
    };
    let reopened = backend.open().await;
    assert_eq!(
        reopened.get_request("acme", pending.id).await.unwrap(),
        Some(pending)
    );
    let events = reopened.events("acme", 1, 0).await.unwrap();
    assert_eq!(verify_chain(&events).unwrap().head, head);
    // The chain continues where it stopped.
    reopened
        .append(vec![entry("acme", Uuid::new_v4())])
        .await
        .unwrap();
    let events = reopened.events("acme", 1, 0).await.unwrap();
    assert_eq!(verify_chain(&events).unwrap().events, 4);
}

async fn due_requests_are_claimed_once_until_their_lease_ends<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let first = request("acme", ApprovalPolicy::new("ops"), t0());
    let second = request(
        "acme",
        ApprovalPolicy::new("ops"),
        t0() + ChronoDuration::seconds(1),
    );
    for r in [&first, &second] {
        store.insert_request(r, vec![]).await.unwrap();
    }
    let late = t0() + ChronoDuration::hours(1);
    let ids = |requests: Vec<ApprovalRequest>| requests.iter().map(|r| r.id).collect::<Vec<_>>();
    let worker_a = store.due_requests(late, 1).await.unwrap();
    let worker_b = store.due_requests(late, 10).await.unwrap();
    assert_eq!(ids(worker_a), vec![first.id]);
    assert_eq!(
        ids(worker_b),
        vec![second.id],
        "a claimed request is not handed out twice"
    );
    assert!(store.due_requests(late, 10).await.unwrap().is_empty());
    // A worker that dies leaves its lease to run out; then another worker takes over.
    let after_lease = late + ChronoDuration::seconds(31);
    assert_eq!(store.due_requests(after_lease, 10).await.unwrap().len(), 2);
    // Changing a request releases its lease at once.
    let mut touched = second.clone();
    touched.version += 1;
    assert_eq!(
        store
            .update_request(second.version, &touched, vec![])
            .await
            .unwrap(),
        CasOutcome::Stored
    );
    assert_eq!(
        ids(store.due_requests(after_lease, 10).await.unwrap()),
        vec![second.id]
    );
}

fn issue(key: &str, project: &str, state: IssueState) -> Issue {
    Issue {
        id: key.into(),
        key: key.into(),
        project: project.into(),
        title: format!("issue {key}"),
        body: "body".into(),
        state,
        status: None,
        labels: vec!["bug".into()],
        assignees: vec![],
        author: Some("dev".into()),
        priority: None,
        url: None,
        created_at: t0(),
        updated_at: t0(),
    }
}

/// A unit-free embedding leaning towards the given dimensions.
fn embedding(weights: &[(usize, f32)]) -> Vec<f32> {
    let mut vector = vec![0.0; EMBEDDING_DIMENSIONS];
    for (dimension, weight) in weights {
        vector[*dimension] = *weight;
    }
    vector
}

async fn issues_round_trip_and_rank_by_similarity<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let same = issue("A-1", "api", IssueState::Open);
    let close = issue("A-2", "api", IssueState::Closed);
    let far = issue("W-1", "web", IssueState::Open);
    store
        .upsert_issue("acme", "jira", &same, Some(&embedding(&[(0, 2.0)])))
        .await
        .unwrap();
    store
        .upsert_issue(
            "acme",
            "jira",
            &close,
            Some(&embedding(&[(0, 1.0), (1, 1.0)])),
        )
        .await
        .unwrap();
    store
        .upsert_issue("acme", "github", &far, Some(&embedding(&[(1, 1.0)])))
        .await
        .unwrap();
    store
        .upsert_issue("acme", "jira", &issue("N-1", "api", IssueState::Open), None)
        .await
        .unwrap();
    store
        .upsert_issue("globex", "jira", &same, Some(&embedding(&[(0, 1.0)])))
        .await
        .unwrap();

    let query = embedding(&[(0, 1.0)]);
    let hits = store
        .search_similar("acme", &query, 10, &SimilarityFilter::default())
        .await
        .unwrap();
    let keys: Vec<&str> = hits.iter().map(|h| h.issue.key.as_str()).collect();
    assert_eq!(
        keys,
        ["A-1", "A-2", "W-1"],
        "best first; issues without embeddings are not candidates"
    );
    let expected = [1.0, std::f32::consts::FRAC_1_SQRT_2, 0.0];
    for (hit, want) in hits.iter().zip(expected) {
        assert!(
            (hit.similarity - want).abs() < 1e-4,
            "{} {}",
            hit.issue.key,
            hit.similarity
        );
    }
    assert_eq!(hits[2].tracker_id, "github");
    assert_eq!(hits[0].issue, same);

    let top = store
        .search_similar("acme", &query, 1, &SimilarityFilter::default())
        .await
        .unwrap();
    assert_eq!(top.len(), 1);
    let filtered = |filter: SimilarityFilter| {
        let store = store.clone();
        let query = query.clone();
        async move {
            let hits = store
                .search_similar("acme", &query, 10, &filter)
                .await
                .unwrap();
            hits.into_iter().map(|h| h.issue.key).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        filtered(SimilarityFilter {
            project: Some("web".into()),
            ..Default::default()
        })
        .await,
        ["W-1"]
    );
    assert_eq!(
        filtered(SimilarityFilter {
            state: Some(IssueState::Closed),
            ..Default::default()
        })
        .await,
        ["A-2"]
    );
    assert_eq!(
        filtered(SimilarityFilter {
            tracker_id: Some("github".into()),
            ..Default::default()
        })
        .await,
        ["W-1"]
    );
    assert_eq!(
        filtered(SimilarityFilter {
            exclude_key: Some("A-1".into()),
            ..Default::default()
        })
        .await,
        ["A-2", "W-1"]
    );

    // Updating an issue without an embedding keeps the embedding; the body is replaced.
    let mut renamed = same.clone();
    renamed.title = "renamed".into();
    store
        .upsert_issue("acme", "jira", &renamed, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_issue("acme", "jira", "A-1")
            .await
            .unwrap()
            .map(|stored| stored.issue),
        Some(renamed.clone())
    );
    let hits = store
        .search_similar("acme", &query, 1, &SimilarityFilter::default())
        .await
        .unwrap();
    assert_eq!(hits[0].issue, renamed);

    assert_eq!(
        store.get_issue("acme", "github", "A-1").await.unwrap(),
        None
    );
    let globex = store
        .search_similar("globex", &query, 10, &SimilarityFilter::default())
        .await
        .unwrap();
    assert_eq!(
        globex.len(),
        1,
        "organizations never see each other's issues"
    );
    assert!(matches!(
        store
            .search_similar("acme", &[1.0, 2.0], 3, &SimilarityFilter::default())
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .upsert_issue(
                "acme",
                "jira",
                &same,
                Some(&[f32::NAN; EMBEDDING_DIMENSIONS])
            )
            .await,
        Err(StoreError::Invalid(_))
    ));
}

fn worded(key: &str, title: &str, body: &str, minutes: i64) -> Issue {
    let mut issue = issue(key, "web", IssueState::Open);
    issue.title = title.into();
    issue.body = body.into();
    issue.updated_at = t0() + chrono::Duration::minutes(minutes);
    issue
}

/// More issues with a query's common words than any backend ranks in full (2,000): the issue
/// with its rare word still comes first, and the filters apply before words are counted.
async fn rare_words_are_found_among_thousands_of_common_matches<B: Backend>(backend: &B) {
    let store = backend.open().await;
    // The oldest issue, the first indexed: outside any window of recent common matches.
    let mut needle = worded("N-1", "Login error in the zanzibar module", "It fails.", 0);
    needle.project = "api".into();
    store
        .upsert_issue("acme", "gh", &needle, None)
        .await
        .unwrap();
    // In pages, as a sync stores them: one id per issue, in order, kept when stored again.
    let common: Vec<Issue> = (1..=2_100)
        .map(|i| {
            worded(
                &format!("C-{i}"),
                "Login error",
                "The page fails to load.",
                i,
            )
        })
        .collect();
    for page in common.chunks(100) {
        let ids = store.upsert_issues("acme", "gh", page).await.unwrap();
        assert_eq!(ids.len(), page.len());
        let stored = store.find_issue("acme", &ids[7]).await.unwrap().unwrap();
        assert_eq!(stored.issue.key, page[7].key);
    }
    let again = store
        .upsert_issues("acme", "gh", &common[..100])
        .await
        .unwrap();
    let first = store.get_issue("acme", "gh", "C-1").await.unwrap().unwrap();
    assert_eq!(again[0], first.id);
    assert_eq!(store.count_issues("acme", None).await.unwrap(), 2_101);
    let search = |text: &str, project: Option<&str>| TextSearch {
        text: text.into(),
        project: project.map(str::to_owned),
        limit: 10,
        ..TextSearch::default()
    };
    let first_key = |hits: &[IssueHit]| hits.first().map(|hit| hit.stored.issue.key.clone());

    let hits = store
        .search_text("acme", &search("login error zanzibar", None))
        .await
        .unwrap();
    assert_eq!(first_key(&hits).as_deref(), Some("N-1"));
    assert_eq!(hits.len(), 10, "the common words still find the rest");
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    // Common words alone: a full page of matches, best first.
    let hits = store
        .search_text("acme", &search("login error", None))
        .await
        .unwrap();
    assert_eq!(hits.len(), 10);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    // Within one project "login" is rare again, and its only issue is found.
    let hits = store
        .search_text("acme", &search("login", Some("api")))
        .await
        .unwrap();
    assert_eq!(first_key(&hits).as_deref(), Some("N-1"));
    assert_eq!(hits.len(), 1);
    // Another organization sees none of it.
    assert!(
        store
            .search_text("globex", &search("zanzibar login", None))
            .await
            .unwrap()
            .is_empty()
    );
    // A project's issues leave the index, then the tracker's; nothing of another tracker's.
    store
        .upsert_issue("acme", "jira", &needle, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .delete_issues("acme", "gh", Some("api"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.delete_issues("acme", "gh", None).await.unwrap(),
        2_100
    );
    assert_eq!(store.count_issues("acme", None).await.unwrap(), 1);
    assert_eq!(
        store.delete_issues("globex", "jira", None).await.unwrap(),
        0
    );
}

async fn issues_are_found_by_their_words<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let login = worded(
        "W-1",
        "Login fails after token refresh",
        "SSO users are signed out.",
        1,
    );
    let export = worded(
        "W-2",
        "Export audit events",
        "The login page is unrelated here.",
        2,
    );
    let mut closed = worded("W-3", "Dark mode", "Colours of the settings page.", 3);
    closed.state = IssueState::Closed;
    closed.labels = vec!["frontend".into()];
    let id = store
        .upsert_issue("acme", "gh", &login, None)
        .await
        .unwrap();
    store
        .upsert_issue("acme", "gh", &export, None)
        .await
        .unwrap();
    store
        .upsert_issue("acme", "jira", &closed, None)
        .await
        .unwrap();
    store
        .upsert_issue("globex", "gh", &login, None)
        .await
        .unwrap();
    let search = |text: &str| TextSearch {
        text: text.into(),
        limit: 10,
        ..TextSearch::default()
    };
    let keys = |hits: Vec<IssueHit>| -> Vec<String> {
        hits.into_iter().map(|hit| hit.stored.issue.key).collect()
    };

    // Words in the title rank above words in the body; stemming finds "failing" in "fails".
    let hits = store.search_text("acme", &search("login")).await.unwrap();
    assert_eq!(keys(hits.clone()), ["W-1", "W-2"]);
    assert!(hits[0].score > hits[1].score);
    assert_eq!(hits[0].stored.id, id);
    assert_eq!(
        keys(store.search_text("acme", &search("failing")).await.unwrap()),
        ["W-1"]
    );
    // Any word matches; more matching words rank first. Labels are searchable.
    assert_eq!(
        keys(
            store
                .search_text("acme", &search("settings export"))
                .await
                .unwrap()
        )
        .len(),
        2
    );
    assert_eq!(
        keys(
            store
                .search_text("acme", &search("frontend"))
                .await
                .unwrap()
        ),
        ["W-3"]
    );
    // Query syntax is only words: quotes, operators and column filters match literally or not at all.
    for hostile in [
        "\"login\" OR *",
        "title:login",
        "login) OR (1=1",
        "NEAR(login fails)",
        "'; --",
    ] {
        assert!(
            store.search_text("acme", &search(hostile)).await.is_ok(),
            "{hostile}"
        );
    }
    // Filters, limits, and the empty query listing the most recent first.
    let only_jira = TextSearch {
        tracker_id: Some("jira".into()),
        ..search("")
    };
    assert_eq!(
        keys(store.search_text("acme", &only_jira).await.unwrap()),
        ["W-3"]
    );
    let open = TextSearch {
        state: Some(IssueState::Open),
        ..search("")
    };
    assert_eq!(
        keys(store.search_text("acme", &open).await.unwrap()),
        ["W-2", "W-1"]
    );
    let one = TextSearch {
        limit: 1,
        ..search("page")
    };
    assert_eq!(store.search_text("acme", &one).await.unwrap().len(), 1);
    assert!(
        store
            .search_text("acme", &search("nothing-like-this"))
            .await
            .unwrap()
            .is_empty()
    );

    // An update re-indexes: the old words no longer find it.
    let mut renamed = login.clone();
    renamed.title = "Session expiry".into();
    renamed.body = "Tokens expire.".into();
    assert_eq!(
        store
            .upsert_issue("acme", "gh", &renamed, None)
            .await
            .unwrap(),
        id
    );
    assert_eq!(
        keys(store.search_text("acme", &search("login")).await.unwrap()),
        ["W-2"]
    );
    assert_eq!(
        keys(store.search_text("acme", &search("expiry")).await.unwrap()),
        ["W-1"]
    );

    // Lookups by store id, counts and deletion stay within the organization.
    let found = store.find_issue("acme", &id).await.unwrap().unwrap();
    assert_eq!(
        (found.tracker_id.as_str(), found.issue.key.as_str()),
        ("gh", "W-1")
    );
    assert_eq!(store.find_issue("globex", &id).await.unwrap(), None);
    assert_eq!(store.count_issues("acme", None).await.unwrap(), 3);
    assert_eq!(store.count_issues("acme", Some("gh")).await.unwrap(), 2);
    assert!(store.delete_issue("acme", "gh", "W-1").await.unwrap());
    assert!(!store.delete_issue("acme", "gh", "W-1").await.unwrap());
    assert!(
        store
            .search_text("acme", &search("expiry"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        keys(store.search_text("globex", &search("login")).await.unwrap()),
        ["W-1"]
    );
}

async fn leases_are_held_by_one_holder_until_they_end<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let now = t0();
    let minute = chrono::Duration::minutes(1);
    assert!(
        store
            .try_lease("sync:gh", "a", now, now + minute)
            .await
            .unwrap()
    );
    assert!(
        !store
            .try_lease("sync:gh", "b", now, now + minute)
            .await
            .unwrap(),
        "held by a"
    );
    assert!(
        store
            .try_lease("sync:other", "b", now, now + minute)
            .await
            .unwrap(),
        "another name is free"
    );
    assert!(
        store
            .try_lease("sync:gh", "a", now, now + minute * 2)
            .await
            .unwrap(),
        "the holder renews"
    );
    assert!(
        !store
            .try_lease("sync:gh", "b", now + minute, now + minute * 3)
            .await
            .unwrap(),
        "renewed"
    );
    assert!(
        store
            .try_lease("sync:gh", "b", now + minute * 2, now + minute * 3)
            .await
            .unwrap(),
        "ran out"
    );
    store.release_lease("sync:gh", "a").await.unwrap();
    assert!(
        !store
            .try_lease("sync:gh", "a", now + minute * 2, now + minute * 3)
            .await
            .unwrap(),
        "only the holder releases"
    );
    store.release_lease("sync:gh", "b").await.unwrap();
    assert!(
        store
            .try_lease("sync:gh", "a", now + minute * 2, now + minute * 3)
            .await
            .unwrap()
    );

    // Pruning forgets only the leases that ended: "sync:other" ended at now + 1 minute.
    assert_eq!(store.prune_leases(now + minute * 2).await.unwrap(), 1);
    assert!(
        !store
            .try_lease("sync:gh", "b", now + minute * 2, now + minute * 3)
            .await
            .unwrap(),
        "a running lease survives pruning"
    );
    assert_eq!(store.prune_leases(now + minute * 10).await.unwrap(), 1);

    // Fifty concurrent takers: exactly one wins.
    let takers = (0..50).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .try_lease("race", &format!("r{i}"), now, now + minute)
                .await
                .unwrap()
        })
    });
    let won = futures::future::join_all(takers)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(true)))
        .count();
    assert_eq!(won, 1);
}

fn user(org: &str, email: &str, roles: &[&str]) -> User {
    User::new(
        org,
        email,
        roles.iter().map(|r| (*r).to_owned()).collect(),
        t0(),
    )
}

async fn organization<S: Stores>(store: &S, id: &str) {
    let org = Organization {
        id: id.into(),
        name: format!("{id} Inc."),
        created_at: t0(),
        closed_at: None,
    };
    store.create_organization(&org).await.unwrap();
    assert_eq!(store.get_organization(id).await.unwrap(), Some(org));
}

async fn users_and_api_keys_round_trip<B: Backend>(backend: &B) {
    let store = backend.open().await;
    assert_eq!(store.count_users().await.unwrap(), 0);
    organization(&*store, "acme").await;
    organization(&*store, "globex").await;
    assert_eq!(
        store
            .create_organization(&Organization {
                id: "acme".into(),
                name: "again".into(),
                created_at: t0(),
                closed_at: None,
            })
            .await,
        Err(StoreError::AlreadyExists)
    );
    // Renaming and closing are kept; an unknown organization is not found.
    let mut closed = store.get_organization("globex").await.unwrap().unwrap();
    closed.name = "Globex (closed)".into();
    closed.closed_at = Some(t0() + ChronoDuration::seconds(5));
    store.update_organization(&closed).await.unwrap();
    assert_eq!(
        store.get_organization("globex").await.unwrap(),
        Some(closed.clone())
    );
    closed.id = "initech".into();
    assert_eq!(
        store.update_organization(&closed).await,
        Err(StoreError::NotFound)
    );
    let ids: Vec<String> = store
        .list_organizations()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(ids, ["acme", "globex"]);
    let mut dana = user("acme", "Dana@Acme.example", &["admin"]);
    dana.password_hash = Some(preloop_core::accounts::hash_password("s3cret pass").unwrap());
    store.create_user(&dana).await.unwrap();
    store
        .create_user(&user("acme", "bot@acme.example", &["agent"]))
        .await
        .unwrap();
    assert_eq!(store.count_users().await.unwrap(), 2);
    // E-mail addresses are unique across organizations, whatever their case.
    assert_eq!(
        store
            .create_user(&user("globex", "DANA@acme.example", &[]))
            .await,
        Err(StoreError::AlreadyExists)
    );

    let found = store
        .find_user_by_email("DANA@ACME.EXAMPLE")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, dana);
    assert!(preloop_core::accounts::verify_password(
        "s3cret pass",
        found.password_hash.as_deref().unwrap()
    ));
    assert_eq!(store.get_user("globex", &dana.id).await.unwrap(), None);
    let emails: Vec<String> = store
        .list_users("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.email)
        .collect();
    assert_eq!(emails, ["bot@acme.example", "dana@acme.example"]);
    assert!(store.list_users("globex").await.unwrap().is_empty());

    let mut demoted = dana.clone();
    demoted.roles = vec!["member".into()];
    demoted.disabled = true;
    store.update_user(&demoted).await.unwrap();
    assert_eq!(
        store.get_user("acme", &dana.id).await.unwrap(),
        Some(demoted.clone())
    );
    let mut foreign = demoted.clone();
    foreign.organization_id = "globex".into();
    assert_eq!(store.update_user(&foreign).await, Err(StoreError::NotFound));

    let issued = ApiKey::issue(
        &dana,
        "ci",
        vec!["mcp".into()],
        Some(t0() + ChronoDuration::days(30)),
        t0(),
    );
    store.insert_api_key(&issued.key).await.unwrap();
    let hash = preloop_core::approval::hash_secret(&issued.secret);
    let key = store.find_api_key_by_hash(&hash).await.unwrap().unwrap();
    assert_eq!(key, issued.key);
    assert!(key.accepts(&issued.secret, t0()));
    assert_eq!(store.find_api_key_by_hash("0000").await.unwrap(), None);
    store
        .touch_api_key(key.id, t0() + ChronoDuration::minutes(1))
        .await
        .unwrap();
    let listed = store.list_api_keys("acme").await.unwrap();
    assert_eq!(
        listed[0].last_used_at,
        Some(t0() + ChronoDuration::minutes(1))
    );
    assert!(store.list_api_keys("globex").await.unwrap().is_empty());
    assert_eq!(
        store.revoke_api_key("globex", key.id).await,
        Err(StoreError::NotFound)
    );
    store.revoke_api_key("acme", key.id).await.unwrap();
    let revoked = store.find_api_key_by_hash(&hash).await.unwrap().unwrap();
    assert!(!revoked.accepts(&issued.secret, t0()));
    assert_eq!(
        store.insert_api_key(&issued.key).await,
        Err(StoreError::AlreadyExists)
    );
}

fn server(org: &str, name: &str) -> McpServer {
    McpServer {
        id: Uuid::new_v4(),
        organization_id: org.into(),
        name: name.into(),
        transport: McpTransport::Http {
            url: "http://127.0.0.1:9000/mcp".into(),
            headers: [("Authorization".to_owned(), "Bearer secret-token".to_owned())].into(),
        },
        tool_prefix: None,
        enabled: true,
        timeout_seconds: 30,
        max_concurrency: 8,
        keep_alive: true,
        forward_unlisted: false,
        last_scanned_at: None,
        created_at: t0(),
    }
}

fn discovered(server: &McpServer, name: &str) -> DiscoveredTool {
    DiscoveredTool {
        organization_id: server.organization_id.clone(),
        server_id: server.id,
        descriptor: ToolDescriptor::new(&server.name, name, ToolSource::Upstream),
        discovered_at: t0(),
    }
}

async fn documents_round_trip_with_unique_names_per_parent<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let docs = server("acme", "docs");
    let time = server("acme", "time");
    store.insert_document(&docs).await.unwrap();
    store.insert_document(&time).await.unwrap();
    store
        .insert_document(&server("globex", "docs"))
        .await
        .unwrap();
    assert_eq!(
        store.insert_document(&server("acme", "docs")).await,
        Err(StoreError::AlreadyExists)
    );
    assert_eq!(
        store
            .get_document("acme", &docs.id.to_string())
            .await
            .unwrap(),
        Some(docs.clone())
    );
    let listed: Vec<McpServer> = store.list_documents("acme", None).await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["docs", "time"]
    );
    let foreign: Option<McpServer> = store
        .get_document("globex", &docs.id.to_string())
        .await
        .unwrap();
    assert_eq!(foreign, None);

    let mut renamed = time.clone();
    renamed.name = "docs".into();
    assert_eq!(
        store.update_document(&renamed).await,
        Err(StoreError::AlreadyExists)
    );
    renamed.name = "clock".into();
    renamed.enabled = false;
    store.update_document(&renamed).await.unwrap();
    assert_eq!(
        store
            .get_document("acme", &time.id.to_string())
            .await
            .unwrap(),
        Some(renamed.clone())
    );
    let mut stolen = renamed.clone();
    stolen.organization_id = "globex".into();
    assert_eq!(
        store.update_document(&stolen).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        DocumentStore::<McpServer>::delete_document(&*store, "globex", &time.id.to_string()).await,
        Err(StoreError::NotFound)
    );
    DocumentStore::<McpServer>::delete_document(&*store, "acme", &time.id.to_string())
        .await
        .unwrap();
    let left: Vec<McpServer> = store.list_documents("acme", None).await.unwrap();
    assert_eq!(left, vec![docs.clone()]);

    // A scan replaces a server's tools at once; a clash leaves the old ones in place.
    let tools = vec![discovered(&docs, "search"), discovered(&docs, "fetch")];
    store
        .replace_children("acme", &docs.id.to_string(), &tools)
        .await
        .unwrap();
    let rescan = vec![discovered(&docs, "search"), discovered(&docs, "search")];
    assert!(
        store
            .replace_children("acme", &docs.id.to_string(), &rescan)
            .await
            .is_err()
    );
    let stored: Vec<DiscoveredTool> = store
        .list_documents("acme", Some(&docs.id.to_string()))
        .await
        .unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|t| t.descriptor.name.as_str())
            .collect::<Vec<_>>(),
        ["fetch", "search"]
    );
    store
        .replace_children("acme", &docs.id.to_string(), &tools[..1])
        .await
        .unwrap();
    let stored: Vec<DiscoveredTool> = store
        .list_documents("acme", Some(&docs.id.to_string()))
        .await
        .unwrap();
    assert_eq!(stored, tools[..1].to_vec());
}

async fn every_document_kind_round_trips<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let tracker = TrackerConfig {
        id: Uuid::new_v4(),
        organization_id: "acme".into(),
        name: "github".into(),
        kind: TrackerKind::Github,
        base_url: "https://api.github.com".into(),
        token: "ghp_secret".into(),
        username: None,
        webhook_secret: Some("whsec".into()),
        projects: vec!["acme/web".into()],
        sync_interval_seconds: 60,
        enabled: true,
        created_at: t0(),
    };
    store.insert_document(&tracker).await.unwrap();
    assert_eq!(
        store
            .get_document("acme", &tracker.id.to_string())
            .await
            .unwrap(),
        Some(tracker.clone())
    );
    assert!(!format!("{tracker:?}").contains("ghp_secret"));
    let project = |key: &str| Project {
        id: Uuid::new_v4(),
        organization_id: "acme".into(),
        tracker_id: tracker.id,
        key: key.into(),
        name: key.into(),
        sync_enabled: true,
        last_synced_at: Some(t0()),
        synced_through: Some(t0()),
        last_error: None,
    };
    store.insert_document(&project("acme/web")).await.unwrap();
    store.insert_document(&project("acme/api")).await.unwrap();
    assert_eq!(
        store.insert_document(&project("acme/api")).await,
        Err(StoreError::AlreadyExists)
    );
    let projects: Vec<Project> = store
        .list_documents("acme", Some(&tracker.id.to_string()))
        .await
        .unwrap();
    assert_eq!(
        projects.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(),
        ["acme/api", "acme/web"]
    );

    let config = ToolConfiguration {
        organization_id: "acme".into(),
        tool: "docs__search".into(),
        enabled: false,
        visible_to: vec!["role:admin".parse().unwrap()],
        description: Some("Search the handbook".into()),
        approval_policy: Some("ops".into()),
        updated_at: t0(),
    };
    store.insert_document(&config).await.unwrap();
    assert_eq!(
        store.get_document("acme", "docs__search").await.unwrap(),
        Some(config)
    );

    let flow = Flow {
        id: Uuid::new_v4(),
        organization_id: "acme".into(),
        name: "triage".into(),
        description: None,
        trigger: FlowTrigger {
            event: "issue.created".into(),
            tracker_id: Some(tracker.id),
            condition: None,
        },
        prompt: "Label the issue".into(),
        tools: vec!["github__add_labels".into()],
        enabled: true,
        created_at: t0(),
    };
    store.insert_document(&flow).await.unwrap();
    let run = |minutes: i64| FlowExecution {
        id: Uuid::new_v4(),
        organization_id: "acme".into(),
        flow_id: flow.id,
        state: FlowExecutionState::Succeeded,
        trigger_event: json!({"issue": "A-1"}),
        started_at: t0() + ChronoDuration::minutes(minutes),
        finished_at: None,
        summary: Some("labelled".into()),
        error: None,
    };
    let (late, early) = (run(5), run(1));
    store.insert_document(&late).await.unwrap();
    store.insert_document(&early).await.unwrap();
    let runs: Vec<FlowExecution> = store
        .list_documents("acme", Some(&flow.id.to_string()))
        .await
        .unwrap();
    assert_eq!(runs, vec![early, late], "executions list in start order");
}

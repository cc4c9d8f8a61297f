//! Pipeline tests over the in-memory store, a manual clock and counting executors.

use super::*;
use crate::approval::{ApprovalState, TransitionError, VoteCast, VoteDecision};
use crate::audit::{AuditEventKind, verify_chain};
use crate::clock::ManualClock;
use crate::executor::{ExecutionError, FnExecutor, ToolOutput};
use crate::governor::notifier::{Notification, NotifyError};
use crate::policy::Format;
use crate::registry::{OperationKind, ToolDescriptor, ToolSource};
use crate::store::{AuditStore, MemoryStore};
use futures::executor::block_on;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const POLICY: &str = r#"
[[approval_policies]]
name = "ops"
approvers = ["role:admin"]
timeout = "10m"
mode = "blocking"
allow_edit = true
grant = { max_duration = "30m" }

[[approval_policies]]
name = "later"
approvers = ["role:admin"]
mode = "async"

[policy]
default = "allow"

[[policy.rules]]
id = "no-deletes"
tools = ["*__delete_*"]
action = "deny"
message = "Deletions are not allowed"

[[policy.rules]]
id = "tokyo"
tools = ["time__convert"]
when = 'args.tz == "Asia/Tokyo"'
action = "require_approval"
approval_policy = "ops"

[[policy.rules]]
id = "deploys"
tools = ["ci__deploy"]
action = "require_approval"
approval_policy = "later"

[[policy.rules]]
id = "secrets"
resources = ["secret://*"]
action = "deny"

[[policy.rules]]
id = "held-prompts"
prompts = ["held"]
action = "require_approval"
approval_policy = "ops"
"#;

struct Fixture {
    governor: Arc<Governor>,
    store: Arc<MemoryStore>,
    clock: ManualClock,
    runs: Arc<AtomicUsize>,
    last_args: Arc<Mutex<Option<Value>>>,
    /// Decision-link tokens the notifier received, by request.
    links: Arc<Mutex<HashMap<Uuid, String>>>,
}

/// Keeps the decision-link tokens of opened requests, as a channel would put them in messages.
#[derive(Default)]
struct LinkCatcher(Arc<Mutex<HashMap<Uuid, String>>>);

#[async_trait::async_trait]
impl Notifier for LinkCatcher {
    async fn notify(&self, notification: Notification<'_>) -> Result<(), NotifyError> {
        if let Notification::Created { request, token } = notification {
            self.0.lock().unwrap().insert(request.id, token.to_owned());
        }
        Ok(())
    }
}

fn fixture() -> Fixture {
    let registry = Arc::new(Registry::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let last_args = Arc::new(Mutex::new(None));
    for (server, name) in [
        ("time", "convert"),
        ("fs", "delete_file"),
        ("ci", "deploy"),
        ("fs", "read"),
    ] {
        let runs = runs.clone();
        let last_args = last_args.clone();
        registry
            .register(RegisteredTool::new(
                ToolDescriptor::new(server, name, ToolSource::Embedded).with_input_schema(json!({
                    "type": "object", "properties": {"tz": {"type": "string"}}
                })),
                Arc::new(FnExecutor::new(move |tool, args| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    *last_args.lock().unwrap() = Some(args.clone());
                    if args.get("fail").is_some() {
                        return Err(ExecutionError::Unavailable("upstream down".into()));
                    }
                    Ok(ToolOutput::text(format!("{} ran", tool.exposed_name)))
                })),
            ))
            .unwrap();
    }
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(Utc::now());
    let links = Arc::new(Mutex::new(HashMap::new()));
    let governor = Governor::builder(registry)
        .store(store.clone())
        .notifier(Arc::new(LinkCatcher(links.clone())))
        .clock(Arc::new(clock.clone()))
        .config(GovernorConfig {
            blocking_timeout: Duration::from_secs(120),
            ..GovernorConfig::default()
        })
        .build();
    governor
        .set_policy(
            "acme",
            &GovernanceDocument::parse(POLICY, Format::Toml).unwrap(),
        )
        .unwrap();
    Fixture {
        governor: Arc::new(governor),
        store,
        clock,
        runs,
        last_args,
        links,
    }
}

fn agent() -> Principal {
    Principal::new("agent-1", "acme").with_role("agent")
}

fn admin() -> Principal {
    Principal::new("admin-1", "acme")
        .with_email("root@acme.dev")
        .with_role("admin")
}

fn chain_is_intact(f: &Fixture, org: &str) -> Vec<AuditEventKind> {
    let events = block_on(f.store.events(org, 1, 0)).unwrap();
    verify_chain(&events).unwrap();
    events.into_iter().map(|e| e.kind).collect()
}

/// Starts a governed call on its own thread (it may block waiting for approval).
fn spawn_call(
    f: &Fixture,
    principal: Principal,
    call: ToolCall,
) -> std::thread::JoinHandle<Result<Outcome, GovernorError>> {
    let governor = f.governor.clone();
    std::thread::spawn(move || block_on(governor.call(&principal, call)))
}

fn tokyo() -> ToolCall {
    ToolCall::new("time__convert", json!({"tz": "Asia/Tokyo"}))
}

/// Calls `ci__deploy` (async approval) and returns the pending request's id.
fn deploy(f: &Fixture, arguments: Value) -> Uuid {
    let outcome = block_on(
        f.governor
            .call(&agent(), ToolCall::new("ci__deploy", arguments)),
    )
    .unwrap();
    match outcome {
        Outcome::PendingApproval { request_id, .. } => request_id,
        other => panic!("expected a pending approval, got {other:?}"),
    }
}

/// Waits (on real time, briefly) until the fixture has a pending request, and returns its id.
fn pending_request(f: &Fixture) -> Uuid {
    for _ in 0..2000 {
        let pending = block_on(f.governor.list_requests(
            &admin(),
            &crate::store::ApprovalFilter {
                state: Some(ApprovalState::Pending),
                ..Default::default()
            },
        ))
        .unwrap();
        if let Some(request) = pending.first() {
            return request.id;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("no pending request appeared");
}

#[test]
fn allowed_calls_run_and_are_audited() {
    let f = fixture();
    let outcome = block_on(
        f.governor
            .call(&agent(), ToolCall::new("fs__read", json!({}))),
    )
    .unwrap();
    assert!(
        matches!(outcome, Outcome::Executed { ref output, .. } if output.joined_text() == "fs__read ran")
    );
    let kinds = chain_is_intact(&f, "acme");
    assert!(matches!(kinds[0], AuditEventKind::CallReceived { .. }));
    assert!(matches!(
        kinds[1],
        AuditEventKind::Decision {
            action: crate::policy::ActionKind::Allow,
            ..
        }
    ));
    assert!(matches!(
        kinds[2],
        AuditEventKind::Executed {
            is_error: false,
            ..
        }
    ));
}

/// An operation on `name` of `kind`, counting its runs in `f`.
fn operation(f: &Fixture, kind: OperationKind, name: &str) -> RegisteredTool {
    let runs = f.runs.clone();
    RegisteredTool::new(
        ToolDescriptor::new("docs", name, ToolSource::Upstream)
            .with_exposed_name(name)
            .with_kind(kind),
        Arc::new(FnExecutor::new(move |_, _| {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(ToolOutput::text("contents"))
        })),
    )
}

#[test]
fn prompts_and_resources_are_governed_by_their_own_rules_and_audited() {
    let f = fixture();
    let read = |uri: &str| {
        block_on(f.governor.call_operation(
            &agent(),
            operation(&f, OperationKind::Resource, uri),
            ToolCall::new("ignored", json!({"uri": uri})),
        ))
        .unwrap()
    };
    assert!(matches!(read("file:///readme"), Outcome::Executed { .. }));
    let denied = read("secret://token");
    assert!(matches!(denied, Outcome::Denied { rule: Some(ref r), .. } if r == "secrets"));
    let held = block_on(f.governor.call_operation(
        &agent(),
        operation(&f, OperationKind::Prompt, "held"),
        ToolCall::new("held", json!({})),
    ))
    .unwrap();
    assert!(
        matches!(held, Outcome::Denied { ref message, .. } if message.contains("only calls of listed tools can be held")),
        "{held:?}"
    );
    assert_eq!(f.runs.load(Ordering::SeqCst), 1);
    let received: Vec<(String, OperationKind)> = chain_is_intact(&f, "acme")
        .into_iter()
        .filter_map(|kind| match kind {
            AuditEventKind::CallReceived { tool, kind, .. } => Some((tool, kind)),
            _ => None,
        })
        .collect();
    assert_eq!(
        received,
        [
            ("file:///readme".to_owned(), OperationKind::Resource),
            ("secret://token".to_owned(), OperationKind::Resource),
            ("held".to_owned(), OperationKind::Prompt),
        ]
    );
    let listed = f.governor.visible_operations(
        &agent(),
        ["secret://a", "file:///b"].map(|uri| {
            let descriptor = operation(&f, OperationKind::Resource, uri).descriptor;
            (descriptor.as_ref().clone(), uri)
        }),
    );
    assert_eq!(listed, ["file:///b"]);
}

#[test]
fn denied_calls_never_run() {
    let f = fixture();
    let outcome = block_on(
        f.governor
            .call(&agent(), ToolCall::new("fs__delete_file", json!({}))),
    )
    .unwrap();
    assert_eq!(outcome.message(), "Deletions are not allowed");
    assert!(matches!(outcome, Outcome::Denied { rule: Some(ref r), .. } if r == "no-deletes"));
    assert_eq!(f.runs.load(Ordering::SeqCst), 0);
}

#[test]
fn unknown_invisible_and_malformed_calls_are_rejected_and_recorded() {
    let f = fixture();
    let error = block_on(f.governor.call(&agent(), ToolCall::new("nope", json!({})))).unwrap_err();
    assert_eq!(error, GovernorError::UnknownTool("nope".into()));
    f.governor.registry().configure(
        None,
        "fs__read",
        Some(crate::registry::ToolSettings {
            enabled: false,
            ..Default::default()
        }),
    );
    let error = block_on(
        f.governor
            .call(&agent(), ToolCall::new("fs__read", json!({}))),
    )
    .unwrap_err();
    assert_eq!(error, GovernorError::UnknownTool("fs__read".into()));
    let error = block_on(
        f.governor
            .call(&agent(), ToolCall::new("time__convert", json!([1]))),
    )
    .unwrap_err();
    assert!(matches!(error, GovernorError::InvalidArguments(_)));
    let kinds = chain_is_intact(&f, "acme");
    assert_eq!(
        kinds
            .iter()
            .filter(|k| matches!(k, AuditEventKind::CallRejected { .. }))
            .count(),
        3
    );
    assert_eq!(f.runs.load(Ordering::SeqCst), 0);
}

#[test]
fn denied_tools_are_hidden_from_listing() {
    let f = fixture();
    let names: Vec<String> = f
        .governor
        .list_tools(&agent())
        .iter()
        .map(|t| t.descriptor.exposed_name.clone())
        .collect();
    assert!(!names.contains(&"fs__delete_file".to_owned()));
    assert!(names.contains(&"time__convert".to_owned()));
}

#[test]
fn a_blocked_call_wakes_on_approval_and_runs_the_edited_arguments_once() {
    let f = fixture();
    let caller = spawn_call(&f, agent(), tokyo());
    let id = pending_request(&f);
    let mut vote = VoteCast::approve(admin()).with_comment("fine, but use Osaka");
    vote.edited_arguments = Some(json!({"tz": "Asia/Osaka"}));
    let decided = block_on(f.governor.decide(&admin(), id, vote)).unwrap();
    assert_eq!(decided.state, ApprovalState::Approved);
    let outcome = caller.join().unwrap().unwrap();
    assert!(
        matches!(outcome, Outcome::Executed { request_id: Some(r), .. } if r == id),
        "{outcome:?}"
    );
    assert_eq!(f.runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        *f.last_args.lock().unwrap(),
        Some(json!({"tz": "Asia/Osaka"}))
    );
    // Polling afterwards returns the recorded result without running again.
    let status = block_on(f.governor.approval_status(&agent(), id)).unwrap();
    assert_eq!(status.state, ApprovalState::Executed);
    assert_eq!(status.original_arguments, json!({"tz": "Asia/Tokyo"}));
    assert_eq!(f.runs.load(Ordering::SeqCst), 1);
    let kinds = chain_is_intact(&f, "acme");
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, AuditEventKind::ApprovalVoted { edited: true, .. }))
    );
    assert!(kinds.iter().any(|k| matches!(
        k,
        AuditEventKind::Executed {
            request_id: Some(_),
            ..
        }
    )));
}

#[test]
fn a_blocked_call_returns_declined() {
    let f = fixture();
    let caller = spawn_call(&f, agent(), tokyo());
    let id = pending_request(&f);
    block_on(f.governor.decide(
        &admin(),
        id,
        VoteCast::decline(admin()).with_comment("not today"),
    ))
    .unwrap();
    let outcome = caller.join().unwrap().unwrap();
    assert_eq!(outcome.message(), "declined by approvers: not today");
    assert_eq!(f.runs.load(Ordering::SeqCst), 0);
}

#[test]
fn a_blocked_call_expires_on_the_injected_clock() {
    let f = fixture();
    let caller = spawn_call(&f, agent(), tokyo());
    let id = pending_request(&f);
    // The blocking timeout (2 min) passes first: the call returns pending, to be polled.
    f.clock.advance(chrono::Duration::minutes(3));
    let outcome = caller.join().unwrap().unwrap();
    assert!(matches!(outcome, Outcome::PendingApproval { request_id, .. } if request_id == id));
    // Then the approval timeout passes: the status poll finds it expired.
    f.clock.advance(chrono::Duration::minutes(10));
    let status = block_on(f.governor.approval_status(&agent(), id)).unwrap();
    assert_eq!(status.state, ApprovalState::Expired);
    assert_eq!(
        f.governor.outcome(&status).message(),
        "the approval request expired undecided; the call was not made"
    );
    assert_eq!(f.runs.load(Ordering::SeqCst), 0);
}

#[test]
fn tick_due_expires_requests_nobody_waits_for() {
    let f = fixture();
    let request_id = deploy(&f, json!({}));
    assert_eq!(block_on(f.governor.tick_due(10)).unwrap(), 0);
    f.clock.advance(chrono::Duration::minutes(11));
    assert_eq!(block_on(f.governor.tick_due(10)).unwrap(), 1);
    let request = block_on(f.store.get_request("acme", request_id))
        .unwrap()
        .unwrap();
    assert_eq!(request.state, ApprovalState::Expired);
}

#[test]
fn async_mode_returns_pending_and_the_poll_runs_the_approved_call_once() {
    let f = fixture();
    let outcome = block_on(
        f.governor
            .call(&agent(), ToolCall::new("ci__deploy", json!({}))),
    )
    .unwrap();
    let Outcome::PendingApproval {
        request_id,
        poll_after_seconds,
        ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(poll_after_seconds, 5);
    assert!(outcome.message().contains(&request_id.to_string()));
    let pending = block_on(f.governor.approval_status(&agent(), request_id)).unwrap();
    assert_eq!(pending.state, ApprovalState::Pending);
    block_on(
        f.governor
            .decide(&admin(), request_id, VoteCast::approve(admin())),
    )
    .unwrap();
    assert_eq!(
        f.runs.load(Ordering::SeqCst),
        0,
        "approval alone does not run the call"
    );
    let done = block_on(f.governor.approval_status(&agent(), request_id)).unwrap();
    assert_eq!(done.state, ApprovalState::Executed);
    assert!(matches!(
        f.governor.outcome(&done),
        Outcome::Executed { .. }
    ));
    block_on(f.governor.approval_status(&agent(), request_id)).unwrap();
    assert_eq!(f.runs.load(Ordering::SeqCst), 1);
}

#[test]
fn concurrent_pollers_execute_an_approved_call_exactly_once() {
    let f = fixture();
    let request_id = deploy(&f, json!({}));
    block_on(
        f.governor
            .decide(&admin(), request_id, VoteCast::approve(admin())),
    )
    .unwrap();
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let governor = f.governor.clone();
            std::thread::spawn(move || block_on(governor.approval_status(&agent(), request_id)))
        })
        .collect();
    for thread in threads {
        let state = thread.join().unwrap().unwrap().state;
        assert!(
            matches!(state, ApprovalState::Executing | ApprovalState::Executed),
            "{state}"
        );
    }
    assert_eq!(f.runs.load(Ordering::SeqCst), 1);
}

#[test]
fn execution_failures_are_recorded_not_retried() {
    let f = fixture();
    let request_id = deploy(&f, json!({"fail": true}));
    block_on(
        f.governor
            .decide(&admin(), request_id, VoteCast::approve(admin())),
    )
    .unwrap();
    let failed = block_on(f.governor.approval_status(&agent(), request_id)).unwrap();
    assert_eq!(failed.state, ApprovalState::Failed);
    assert!(
        f.governor
            .outcome(&failed)
            .message()
            .contains("upstream down")
    );
    block_on(f.governor.approval_status(&agent(), request_id)).unwrap();
    assert_eq!(f.runs.load(Ordering::SeqCst), 1);
}

#[test]
fn a_grant_given_with_an_approval_skips_later_approvals_until_it_expires() {
    let f = fixture();
    let caller = spawn_call(&f, agent(), tokyo());
    let id = pending_request(&f);
    let mut vote = VoteCast::approve(admin());
    vote.grant = Some(Duration::from_secs(15 * 60));
    block_on(f.governor.decide(&admin(), id, vote)).unwrap();
    caller.join().unwrap().unwrap();
    let again = block_on(f.governor.call(&agent(), tokyo())).unwrap();
    assert!(
        matches!(
            again,
            Outcome::Executed {
                request_id: None,
                ..
            }
        ),
        "{again:?}"
    );
    assert!(
        chain_is_intact(&f, "acme")
            .iter()
            .any(|k| matches!(k, AuditEventKind::GrantUsed { .. }))
    );
    // Another principal is not covered.
    let other = Principal::new("agent-2", "acme").with_role("agent");
    let blocked = spawn_call(&f, other, tokyo());
    let id = pending_request(&f);
    block_on(f.governor.cancel(&admin(), id, None)).unwrap();
    assert!(matches!(
        blocked.join().unwrap().unwrap(),
        Outcome::Cancelled { .. }
    ));
    assert_eq!(f.runs.load(Ordering::SeqCst), 2);
}

#[test]
fn requests_are_invisible_across_organizations_and_to_bystanders() {
    let f = fixture();
    let request_id = deploy(&f, json!({}));
    let outsider_admin = Principal::new("admin-1", "globex").with_role("admin");
    assert_eq!(
        block_on(f.governor.approval_status(&outsider_admin, request_id)).unwrap_err(),
        GovernorError::RequestNotFound
    );
    assert_eq!(
        block_on(f.governor.decide(
            &outsider_admin,
            request_id,
            VoteCast::approve(outsider_admin.clone())
        ))
        .unwrap_err(),
        GovernorError::RequestNotFound
    );
    let bystander = Principal::new("agent-2", "acme").with_role("agent");
    assert_eq!(
        block_on(f.governor.approval_status(&bystander, request_id)).unwrap_err(),
        GovernorError::RequestNotFound
    );
    assert!(matches!(
        block_on(f.governor.cancel(&bystander, request_id, None)),
        Err(GovernorError::RequestNotFound)
    ));
    // Voting in someone else's name is refused.
    assert!(matches!(
        block_on(
            f.governor
                .decide(&bystander, request_id, VoteCast::approve(admin()))
        ),
        Err(GovernorError::Forbidden(_))
    ));
}

#[test]
fn explain_dry_runs_without_recording() {
    let f = fixture();
    let decision = f
        .governor
        .explain(
            &agent(),
            &ToolCall::new("time__convert", json!({"tz": "Asia/Tokyo"})),
        )
        .unwrap();
    assert!(
        decision.explanation().contains("rule `tokyo`"),
        "{}",
        decision.explanation()
    );
    assert!(block_on(f.store.events("acme", 1, 0)).unwrap().is_empty());
}

#[test]
fn a_policy_that_does_not_compile_leaves_the_old_one_in_force() {
    let f = fixture();
    let broken = GovernanceDocument::parse(
        "[[policy.rules]]\ntools=[\"*\"]\nwhen='('\naction=\"deny\"\n",
        Format::Toml,
    )
    .unwrap();
    assert!(matches!(
        f.governor.set_policy("acme", &broken),
        Err(GovernorError::Governance(_))
    ));
    let outcome = block_on(
        f.governor
            .call(&agent(), ToolCall::new("fs__delete_file", json!({}))),
    )
    .unwrap();
    assert!(matches!(outcome, Outcome::Denied { .. }));
}

struct CountingProgress(AtomicUsize);

impl ProgressSink for CountingProgress {
    fn waiting(&self, _request: &ApprovalRequest, _elapsed: Duration) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn blocking_calls_report_progress_while_waiting() {
    let f = fixture();
    let progress = Arc::new(CountingProgress(AtomicUsize::new(0)));
    let caller = spawn_call(&f, agent(), tokyo().with_progress(progress.clone()));
    let id = pending_request(&f);
    for _ in 0..3 {
        f.clock.advance(chrono::Duration::seconds(11));
        for _ in 0..1000 {
            std::thread::sleep(Duration::from_millis(1));
            if progress.0.load(Ordering::SeqCst) > 0 {
                break;
            }
        }
    }
    block_on(f.governor.decide(&admin(), id, VoteCast::approve(admin()))).unwrap();
    caller.join().unwrap().unwrap();
    assert!(progress.0.load(Ordering::SeqCst) >= 1);
}

#[test]
fn arguments_that_do_not_match_the_input_schema_are_rejected_before_policy() {
    let f = fixture();
    let error = block_on(
        f.governor
            .call(&agent(), ToolCall::new("time__convert", json!({"tz": 5}))),
    )
    .unwrap_err();
    let GovernorError::InvalidArguments(message) = error else {
        panic!("{error:?}")
    };
    assert!(message.contains("/tz"), "{message}");
    assert_eq!(f.runs.load(Ordering::SeqCst), 0);
    assert!(
        chain_is_intact(&f, "acme")
            .iter()
            .any(|k| matches!(k, AuditEventKind::CallRejected { .. }))
    );
}

#[test]
fn decision_links_vote_once_and_only_with_their_token_until_it_expires() {
    let f = fixture();
    let id = deploy(&f, json!({}));
    let token = f.links.lock().unwrap()[&id].clone();
    let by_link = |id, token: &str| block_on(f.governor.request_by_link(id, token));
    assert_eq!(
        by_link(id, "not-the-token").unwrap_err(),
        GovernorError::RequestNotFound
    );
    assert_eq!(
        by_link(Uuid::new_v4(), &token).unwrap_err(),
        GovernorError::RequestNotFound
    );
    assert_eq!(by_link(id, &token).unwrap().id, id);
    let vote = |decision| {
        block_on(
            f.governor
                .decide_by_link(id, &token, decision, Some("via the link".into())),
        )
    };
    let approved = vote(VoteDecision::Approve).unwrap();
    assert_eq!(approved.state, ApprovalState::Approved);
    assert_eq!(approved.votes.len(), 1);
    // Once decided, the link votes no more: neither the same vote again nor another.
    for decision in [VoteDecision::Approve, VoteDecision::Decline] {
        assert!(matches!(
            vote(decision).unwrap_err(),
            GovernorError::Transition(TransitionError::NotPending { .. })
        ));
    }
    // Another request's link dies with its request's deadline.
    let later = deploy(&f, json!({"n": 2}));
    let later_token = f.links.lock().unwrap()[&later].clone();
    f.clock.advance(chrono::Duration::hours(3));
    assert_eq!(
        by_link(later, &later_token).unwrap_err(),
        GovernorError::RequestNotFound
    );
}

/// An audit log that can be switched off, as a database going away would.
struct SwitchableAudit {
    inner: MemoryStore,
    down: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl AuditStore for SwitchableAudit {
    async fn append(
        &self,
        entries: Vec<crate::audit::AuditEntry>,
    ) -> Result<Vec<crate::audit::AuditEvent>, crate::store::StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(crate::store::StoreError::Unavailable("audit down".into()));
        }
        self.inner.append(entries).await
    }

    async fn events(
        &self,
        organization_id: &str,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<crate::audit::AuditEvent>, crate::store::StoreError> {
        self.inner
            .events(organization_id, from_sequence, limit)
            .await
    }
}

#[test]
fn a_call_is_not_made_unrecorded_and_a_made_call_is_not_reported_as_unmade() {
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runs = Arc::new(AtomicUsize::new(0));
    let registry = Arc::new(Registry::new());
    let (switch, counter) = (down.clone(), runs.clone());
    registry
        .register(RegisteredTool::new(
            ToolDescriptor::new("fs", "read", ToolSource::Embedded),
            // The audit log goes away while the tool runs: after the decision was recorded.
            Arc::new(FnExecutor::new(move |_, _| {
                counter.fetch_add(1, Ordering::SeqCst);
                switch.store(true, Ordering::SeqCst);
                Ok(ToolOutput::text("read"))
            })),
        ))
        .unwrap();
    let governor = Governor::builder(registry)
        .store(Arc::new(MemoryStore::new()))
        .audit(Arc::new(SwitchableAudit {
            inner: MemoryStore::new(),
            down: down.clone(),
        }))
        .build();
    governor
        .set_policy(
            "acme",
            &GovernanceDocument::parse(POLICY, Format::Toml).unwrap(),
        )
        .unwrap();
    let outcome = block_on(governor.call(&agent(), ToolCall::new("fs__read", json!({})))).unwrap();
    assert!(
        matches!(outcome, Outcome::Executed { ref output, .. } if output.joined_text() == "read"),
        "the tool ran, so its result is returned: {outcome:?}"
    );
    // With the log still down, the next call is refused before the tool runs.
    let refused = block_on(governor.call(&agent(), ToolCall::new("fs__read", json!({}))));
    assert!(
        matches!(refused, Err(GovernorError::Store(_))),
        "{refused:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// Counts the decisions it is handed, and runs them (or refuses to).
struct CountingRunner {
    runs: AtomicUsize,
    refuse: bool,
}

#[async_trait::async_trait]
impl DecisionRunner for CountingRunner {
    async fn run(&self, _organization_id: &str, decide: DecisionJob) -> Option<Decision> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        (!self.refuse).then(decide)
    }
}

#[test]
fn costly_decisions_go_to_the_runner_and_fail_closed_without_it() {
    for refuse in [false, true] {
        let registry = Arc::new(Registry::new());
        registry
            .register(RegisteredTool::new(
                ToolDescriptor::new("fs", "read", ToolSource::Embedded),
                Arc::new(FnExecutor::new(|_, _| Ok(ToolOutput::text("read")))),
            ))
            .unwrap();
        let runner = Arc::new(CountingRunner {
            runs: AtomicUsize::new(0),
            refuse,
        });
        let governor = Governor::builder(registry)
            .decisions(runner.clone())
            .build();
        let policy = r#"
[[policy.rules]]
tools = ["fs__read"]
when = 'has(args.paths) && args.paths.exists(p, p.startsWith("/etc"))'
action = "deny"
"#;
        governor
            .set_policy(
                "acme",
                &GovernanceDocument::parse(policy, Format::Toml).unwrap(),
            )
            .unwrap();
        let outcome = block_on(governor.call(
            &agent(),
            ToolCall::new("fs__read", json!({"paths": ["/etc/passwd"]})),
        ));
        assert_eq!(runner.runs.load(Ordering::SeqCst), 1);
        match (refuse, outcome) {
            (false, Ok(Outcome::Denied { .. })) => {}
            (true, Err(GovernorError::DecisionUnavailable)) => {}
            (refuse, other) => panic!("refuse={refuse}: {other:?}"),
        }
        // A cheap rule is decided on the spot.
        governor
            .set_policy(
                "acme",
                &GovernanceDocument::parse(
                    "[[policy.rules]]\ntools=[\"fs__read\"]\nwhen='args.n > 1'\naction=\"deny\"\n",
                    Format::Toml,
                )
                .unwrap(),
            )
            .unwrap();
        let outcome = block_on(governor.call(&agent(), ToolCall::new("fs__read", json!({"n": 5}))));
        assert!(matches!(outcome, Ok(Outcome::Denied { .. })), "{outcome:?}");
        assert_eq!(runner.runs.load(Ordering::SeqCst), 1);
        // ... unless its arguments make it expensive: then it is made apart too.
        governor
            .set_policy(
                "acme",
                &GovernanceDocument::parse(
                    "[[policy.rules]]\ntools=[\"fs__read\"]\nwhen='args.s.contains(\"needle\")'\naction=\"deny\"\n",
                    Format::Toml,
                )
                .unwrap(),
            )
            .unwrap();
        let haystack = "x".repeat(4 << 20);
        let outcome =
            block_on(governor.call(&agent(), ToolCall::new("fs__read", json!({"s": haystack}))));
        assert_eq!(runner.runs.load(Ordering::SeqCst), 2);
        if !refuse {
            assert!(
                matches!(outcome, Ok(Outcome::Executed { .. })),
                "{outcome:?}"
            );
        }
    }
}

//! Unit and property tests of the approval state machine.

use super::*;
use crate::executor::ToolOutput;
use crate::principal::Principal;
use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

fn approver(n: usize) -> Principal {
    Principal::new(format!("approver-{n}"), "org")
        .with_email(format!("a{n}@example.com"))
        .with_role("admin")
}

fn requester() -> Principal {
    Principal::new("agent", "org").with_role("agent")
}

fn open(policy: ApprovalPolicy) -> ApprovalRequest {
    ApprovalRequest::open(
        NewApprovalRequest {
            call_id: Uuid::new_v4(),
            requester: requester(),
            tool: RequestedTool {
                exposed_name: "fs__delete".into(),
                server: "fs".into(),
                name: "delete".into(),
                input_schema: json!({
                    "type": "object",
                    "properties": {"path": {"type": "string"}},
                    "required": ["path"]
                }),
            },
            arguments: json!({"path": "/tmp/a"}),
            context: RequestContext::default(),
            policy,
            matched_rule: Some("rule-1".into()),
        },
        t0(),
    )
}

fn apply(request: &ApprovalRequest, event: ApprovalEvent) -> Result<Transition, TransitionError> {
    transition(request, event, t0())
}

#[test]
fn one_approval_approves_under_quorum_one() {
    let request = open(ApprovalPolicy::new("ops"));
    let t = apply(
        &request,
        ApprovalEvent::Vote(VoteCast::approve(approver(1))),
    )
    .unwrap();
    assert_eq!(t.request.state, ApprovalState::Approved);
    assert_eq!(t.request.version, 1);
    assert!(t.effects.contains(&ApprovalEffect::Wake));
}

#[test]
fn quorum_counts_distinct_approvers_and_repeats_are_idempotent() {
    let mut policy = ApprovalPolicy::new("ops");
    policy.quorum = 2;
    let request = open(policy);
    let once = apply(
        &request,
        ApprovalEvent::Vote(VoteCast::approve(approver(1))),
    )
    .unwrap();
    assert_eq!(once.request.state, ApprovalState::Pending);
    let twice = apply(
        &once.request,
        ApprovalEvent::Vote(VoteCast::approve(approver(1))),
    )
    .unwrap();
    assert!(!twice.changed);
    assert!(twice.effects.is_empty());
    assert_eq!(twice.request, once.request);
    let second = apply(
        &once.request,
        ApprovalEvent::Vote(VoteCast::approve(approver(2))),
    )
    .unwrap();
    assert_eq!(second.request.state, ApprovalState::Approved);
    assert_eq!(second.request.approvals(), 2);
    // A repeated approval after the decision is still a harmless no-op (a double click).
    let late = apply(
        &second.request,
        ApprovalEvent::Vote(VoteCast::approve(approver(2))),
    )
    .unwrap();
    assert!(!late.changed);
}

#[test]
fn a_single_decline_declines_by_default_and_thresholds_are_configurable() {
    let request = open(ApprovalPolicy::new("ops"));
    let t = apply(
        &request,
        ApprovalEvent::Vote(VoteCast::decline(approver(1))),
    )
    .unwrap();
    assert_eq!(t.request.state, ApprovalState::Declined);

    let mut policy = ApprovalPolicy::new("ops");
    policy.declines_required = 2;
    policy.quorum = 3;
    let request = open(policy);
    let t = apply(
        &request,
        ApprovalEvent::Vote(VoteCast::decline(approver(1))),
    )
    .unwrap();
    assert_eq!(t.request.state, ApprovalState::Pending);
    let t = apply(
        &t.request,
        ApprovalEvent::Vote(VoteCast::decline(approver(2))),
    )
    .unwrap();
    assert_eq!(t.request.state, ApprovalState::Declined);
}

#[test]
fn changing_a_vote_on_the_same_arguments_is_refused() {
    let mut policy = ApprovalPolicy::new("ops");
    policy.quorum = 2;
    let request = open(policy);
    let t = apply(
        &request,
        ApprovalEvent::Vote(VoteCast::approve(approver(1))),
    )
    .unwrap();
    let error = apply(
        &t.request,
        ApprovalEvent::Vote(VoteCast::decline(approver(1))),
    )
    .unwrap_err();
    assert!(matches!(error, TransitionError::ConflictingVote { .. }));
}

#[test]
fn outsiders_and_requesters_cannot_approve() {
    let request = open(ApprovalPolicy::new("ops"));
    let outsider = Principal::new("x", "org").with_role("member");
    let error = apply(&request, ApprovalEvent::Vote(VoteCast::approve(outsider))).unwrap_err();
    assert!(matches!(error, TransitionError::NotAnApprover { .. }));

    let mut policy = ApprovalPolicy::new("ops");
    policy.approvers = vec!["*".parse().unwrap()];
    let request = open(policy.clone());
    let error = apply(
        &request,
        ApprovalEvent::Vote(VoteCast::approve(requester())),
    )
    .unwrap_err();
    assert_eq!(error, TransitionError::SelfApproval);
    policy.allow_self_approval = true;
    let t = apply(
        &open(policy),
        ApprovalEvent::Vote(VoteCast::approve(requester())),
    )
    .unwrap();
    assert_eq!(t.request.state, ApprovalState::Approved);
}

#[test]
fn reasons_are_enforced_when_required() {
    let mut policy = ApprovalPolicy::new("ops");
    policy.require_reason = true;
    let request = open(policy);
    let error = apply(
        &request,
        ApprovalEvent::Vote(VoteCast::approve(approver(1)).with_comment("  ")),
    )
    .unwrap_err();
    assert_eq!(error, TransitionError::ReasonRequired);
    let t = apply(
        &request,
        ApprovalEvent::Vote(VoteCast::approve(approver(1)).with_comment("checked the path")),
    )
    .unwrap();
    assert_eq!(
        t.request.votes[0].comment.as_deref(),
        Some("checked the path")
    );
}

#[test]
fn edits_are_validated_recorded_beside_the_original_and_reset_earlier_approvals() {
    let mut policy = ApprovalPolicy::new("ops");
    policy.allow_edit = true;
    policy.quorum = 2;
    let request = open(policy);
    let first = apply(
        &request,
        ApprovalEvent::Vote(VoteCast::approve(approver(1))),
    )
    .unwrap();

    let mut bad = VoteCast::approve(approver(2));
    bad.edited_arguments = Some(json!({"path": 7}));
    let error = apply(&first.request, ApprovalEvent::Vote(bad)).unwrap_err();
    assert!(
        matches!(error, TransitionError::InvalidArguments { .. }),
        "{error}"
    );

    let mut edit = VoteCast::approve(approver(2));
    edit.edited_arguments = Some(json!({"path": "/tmp/b"}));
    let edited = apply(&first.request, ApprovalEvent::Vote(edit)).unwrap();
    // Approver 1 approved other arguments, so the quorum is not reached yet.
    assert_eq!(edited.request.state, ApprovalState::Pending);
    assert_eq!(edited.request.original_arguments, json!({"path": "/tmp/a"}));
    assert_eq!(
        edited.request.effective_arguments(),
        &json!({"path": "/tmp/b"})
    );
    assert_eq!(edited.request.approvals(), 1);
    let done = apply(
        &edited.request,
        ApprovalEvent::Vote(VoteCast::approve(approver(1))),
    )
    .unwrap();
    assert_eq!(done.request.state, ApprovalState::Approved);
    assert_eq!(done.request.approvals(), 2);
}

#[test]
fn edits_need_permission() {
    let request = open(ApprovalPolicy::new("ops"));
    let mut edit = VoteCast::approve(approver(1));
    edit.edited_arguments = Some(json!({"path": "/tmp/b"}));
    let error = apply(&request, ApprovalEvent::Vote(edit)).unwrap_err();
    assert!(matches!(error, TransitionError::EditNotAllowed(_)));
    // Sending the unchanged arguments back is not an edit.
    let mut same = VoteCast::approve(approver(1));
    same.edited_arguments = Some(json!({"path": "/tmp/a"}));
    assert!(apply(&request, ApprovalEvent::Vote(same)).is_ok());
}

#[test]
fn grants_are_bounded_by_the_policy() {
    let mut policy = ApprovalPolicy::new("ops");
    let mut vote = VoteCast::approve(approver(1));
    vote.grant = Some(Duration::from_secs(600));
    let error = apply(&open(policy.clone()), ApprovalEvent::Vote(vote.clone())).unwrap_err();
    assert!(matches!(error, TransitionError::Grant(_)));
    policy.grant.max_duration = Some(Duration::from_secs(300));
    let error = apply(&open(policy.clone()), ApprovalEvent::Vote(vote.clone())).unwrap_err();
    assert!(error.to_string().contains("5m"), "{error}");
    policy.grant.max_duration = Some(Duration::from_secs(3600));
    let t = apply(&open(policy), ApprovalEvent::Vote(vote)).unwrap();
    assert!(t.effects.contains(&ApprovalEffect::CreateGrant {
        duration: Duration::from_secs(600),
        granted_by: "approver-1".into()
    }));
}

#[test]
fn timeouts_follow_on_timeout() {
    let late = t0() + ChronoDuration::minutes(11);
    let request = open(ApprovalPolicy::new("ops"));
    let t = transition(
        &request,
        ApprovalEvent::Tick,
        t0() + ChronoDuration::minutes(9),
    )
    .unwrap();
    assert!(!t.changed);
    let t = transition(&request, ApprovalEvent::Tick, late).unwrap();
    assert_eq!(t.request.state, ApprovalState::Expired);
    // A vote after the deadline finds the request expired even without a tick.
    let error = transition(
        &request,
        ApprovalEvent::Vote(VoteCast::approve(approver(1))),
        late,
    )
    .unwrap_err();
    assert_eq!(
        error,
        TransitionError::NotPending {
            state: ApprovalState::Expired
        }
    );

    let mut policy = ApprovalPolicy::new("ops");
    policy.on_timeout = OnTimeout::Approve;
    let t = transition(&open(policy), ApprovalEvent::Tick, late).unwrap();
    assert_eq!(t.request.state, ApprovalState::Approved);
}

#[test]
fn escalation_adds_approvers_on_schedule_and_on_timeout() {
    let mut policy = ApprovalPolicy::new("ops");
    policy.on_timeout = OnTimeout::Escalate;
    policy.escalation = vec![
        EscalationStage {
            after: Duration::from_secs(120),
            approvers: vec!["role:oncall".parse().unwrap()],
            channels: vec!["email".into()],
        },
        EscalationStage {
            after: Duration::from_secs(3600),
            approvers: vec!["role:director".parse().unwrap()],
            channels: vec![],
        },
    ];
    let request = open(policy);
    assert_eq!(
        request.next_deadline(),
        Some(t0() + ChronoDuration::minutes(2))
    );
    let oncall = Principal::new("o", "org").with_role("oncall");
    let error = apply(
        &request,
        ApprovalEvent::Vote(VoteCast::approve(oncall.clone())),
    )
    .unwrap_err();
    assert!(matches!(error, TransitionError::NotAnApprover { .. }));

    let t = transition(
        &request,
        ApprovalEvent::Tick,
        t0() + ChronoDuration::minutes(3),
    )
    .unwrap();
    assert_eq!(t.request.escalation_stage, 1);
    assert!(t.effects.contains(&ApprovalEffect::Escalated { stage: 0 }));
    assert_eq!(
        t.request.next_deadline(),
        Some(t0() + ChronoDuration::minutes(10))
    );

    // At the timeout the next stage starts at once and the timeout restarts.
    let at_timeout = t0() + ChronoDuration::minutes(10);
    let t2 = transition(&t.request, ApprovalEvent::Tick, at_timeout).unwrap();
    assert_eq!(t2.request.state, ApprovalState::Pending);
    assert_eq!(t2.request.escalation_stage, 2);
    assert_eq!(
        t2.request.expires_at,
        at_timeout + ChronoDuration::minutes(10)
    );
    // With no stage left, the next timeout expires it.
    let t3 = transition(
        &t2.request,
        ApprovalEvent::Tick,
        at_timeout + ChronoDuration::minutes(10),
    )
    .unwrap();
    assert_eq!(t3.request.state, ApprovalState::Expired);

    let voted = transition(
        &t.request,
        ApprovalEvent::Vote(VoteCast::approve(oncall)),
        t0() + ChronoDuration::minutes(4),
    )
    .unwrap();
    assert_eq!(voted.request.state, ApprovalState::Approved);
}

#[test]
fn cancellation_only_from_pending_and_idempotent() {
    let request = open(ApprovalPolicy::new("ops"));
    let cancel = || ApprovalEvent::Cancel {
        by: "agent".into(),
        reason: Some("not needed".into()),
    };
    let t = apply(&request, cancel()).unwrap();
    assert_eq!(t.request.state, ApprovalState::Cancelled);
    assert_eq!(
        t.request.resolution.as_deref(),
        Some("cancelled by agent: not needed")
    );
    assert!(!apply(&t.request, cancel()).unwrap().changed);
    let approved = apply(
        &request,
        ApprovalEvent::Vote(VoteCast::approve(approver(1))),
    )
    .unwrap();
    assert!(apply(&approved.request, cancel()).is_err());
}

#[test]
fn execution_is_claimed_once_and_finishes_once() {
    let request = open(ApprovalPolicy::new("ops"));
    assert!(matches!(
        apply(&request, ApprovalEvent::StartExecution),
        Err(TransitionError::Illegal {
            from: ApprovalState::Pending,
            ..
        })
    ));
    let approved = apply(
        &request,
        ApprovalEvent::Vote(VoteCast::approve(approver(1))),
    )
    .unwrap()
    .request;
    let claimed = apply(&approved, ApprovalEvent::StartExecution).unwrap();
    assert_eq!(claimed.effects, vec![ApprovalEffect::Execute]);
    assert!(apply(&claimed.request, ApprovalEvent::StartExecution).is_err());
    let done = apply(
        &claimed.request,
        ApprovalEvent::FinishExecution {
            output: ToolOutput::text("ok"),
        },
    )
    .unwrap();
    assert_eq!(done.request.state, ApprovalState::Executed);
    assert_eq!(done.request.output, Some(ToolOutput::text("ok")));
    assert!(
        apply(
            &done.request,
            ApprovalEvent::FailExecution { error: "x".into() }
        )
        .is_err()
    );
}

// ---- property tests -------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Vote {
        actor: usize,
        who: usize,
        approve: bool,
        edit: bool,
    },
    Tick {
        actor: usize,
        minutes: i64,
    },
    Cancel {
        actor: usize,
    },
    Start {
        actor: usize,
    },
    Finish {
        actor: usize,
        ok: bool,
    },
    Reload {
        actor: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let actor = 0..3usize;
    prop_oneof![
        4 => (actor.clone(), 0..6usize, any::<bool>(), any::<bool>())
            .prop_map(|(actor, who, approve, edit)| Op::Vote { actor, who, approve, edit }),
        2 => (actor.clone(), 0..8i64).prop_map(|(actor, minutes)| Op::Tick { actor, minutes }),
        1 => actor.clone().prop_map(|actor| Op::Cancel { actor }),
        3 => actor.clone().prop_map(|actor| Op::Start { actor }),
        2 => (actor.clone(), any::<bool>()).prop_map(|(actor, ok)| Op::Finish { actor, ok }),
        2 => actor.prop_map(|actor| Op::Reload { actor }),
    ]
}

fn policy_strategy() -> impl Strategy<Value = ApprovalPolicy> {
    (1..4u32, 1..3u32, any::<bool>(), 0..3usize).prop_map(
        |(quorum, declines, allow_edit, timeout)| {
            let mut policy = ApprovalPolicy::new("p");
            policy.quorum = quorum;
            policy.declines_required = declines;
            policy.allow_edit = allow_edit;
            policy.escalation = vec![EscalationStage {
                after: Duration::from_secs(300),
                approvers: vec!["role:oncall".parse().unwrap()],
                channels: vec![],
            }];
            policy.on_timeout = [OnTimeout::Deny, OnTimeout::Approve, OnTimeout::Escalate][timeout];
            policy
        },
    )
}

/// Voters 0-3 are admins, 4 is on call (eligible after escalation), 5 is the requester.
fn voter(who: usize) -> Principal {
    match who {
        0..=3 => approver(who),
        4 => Principal::new("oncall", "org").with_role("oncall"),
        _ => requester(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Three actors (replicas, deciders, pollers) each hold a possibly stale copy and persist
    /// through a compare-and-set on `version`, as the stores do.
    #[test]
    fn no_interleaving_breaks_the_invariants(policy in policy_strategy(), ops in proptest::collection::vec(op(), 1..60)) {
        let mut stored = open(policy.clone());
        let mut copies = vec![stored.clone(); 3];
        let mut now = t0();
        let mut executions = 0;
        let mut terminal: Option<ApprovalRequest> = None;
        for op in ops {
            let (actor, event) = match op {
                Op::Reload { actor } => { copies[actor] = stored.clone(); continue; }
                Op::Vote { actor, who, approve, edit } => {
                    let mut vote = if approve { VoteCast::approve(voter(who)) } else { VoteCast::decline(voter(who)) };
                    if edit { vote.edited_arguments = Some(json!({"path": format!("/tmp/{who}")})); }
                    (actor, ApprovalEvent::Vote(vote))
                }
                Op::Tick { actor, minutes } => { now += ChronoDuration::minutes(minutes); (actor, ApprovalEvent::Tick) }
                Op::Cancel { actor } => (actor, ApprovalEvent::Cancel { by: "agent".into(), reason: None }),
                Op::Start { actor } => (actor, ApprovalEvent::StartExecution),
                Op::Finish { actor, ok } => (actor, if ok {
                    ApprovalEvent::FinishExecution { output: ToolOutput::text("done") }
                } else {
                    ApprovalEvent::FailExecution { error: "boom".into() }
                }),
            };
            let Ok(t) = transition(&copies[actor], event, now) else { continue };
            prop_assert_eq!(t.changed, t.request.version != copies[actor].version);
            if !t.changed { continue; }
            // Compare-and-set against the store.
            if stored.version != copies[actor].version {
                copies[actor] = stored.clone();
                continue;
            }
            if let Some(done) = &terminal {
                prop_assert!(false, "terminal request {:?} changed to {:?}", done.state, t.request.state);
            }
            executions += t.effects.iter().filter(|e| **e == ApprovalEffect::Execute).count();
            let request = t.request;
            if request.state == ApprovalState::Approved && request.resolution.as_deref() == Some("approved by approvers") {
                let approvers: std::collections::HashSet<_> = request.votes.iter()
                    .filter(|v| v.decision == VoteDecision::Approve && v.arguments_version == request.arguments_version)
                    .map(|v| v.approver_id.clone())
                    .collect();
                prop_assert!(approvers.len() >= policy.quorum as usize);
                prop_assert!(!approvers.contains("agent"), "the requester approved their own call");
            }
            if request.state.is_terminal() {
                terminal = Some(request.clone());
            }
            stored = request.clone();
            copies[actor] = request;
        }
        prop_assert!(executions <= 1, "executed {} times", executions);
        if let Some(done) = terminal {
            prop_assert_eq!(done, stored);
        }
    }

    /// Terminal states are final: no event applied to one changes it.
    #[test]
    fn terminal_states_are_final(policy in policy_strategy(), ops in proptest::collection::vec(op(), 1..20), path in 0..5usize) {
        let approved = transition(&open(policy.clone()), ApprovalEvent::Vote(VoteCast::approve(approver(0))), t0());
        let base = open(policy);
        let terminal = match path {
            0 => {
                let mut r = base.clone();
                r.policy.declines_required = 1;
                transition(&r, ApprovalEvent::Vote(VoteCast::decline(approver(0))), t0()).unwrap().request
            }
            1 => transition(&base, ApprovalEvent::Cancel { by: "x".into(), reason: None }, t0()).unwrap().request,
            2 => {
                let mut r = base.clone();
                r.policy.on_timeout = OnTimeout::Deny;
                transition(&r, ApprovalEvent::Tick, t0() + ChronoDuration::hours(1)).unwrap().request
            }
            _ => {
                let Ok(approved) = approved else { return Ok(()); };
                let Ok(claimed) = transition(&approved.request, ApprovalEvent::StartExecution, t0()) else { return Ok(()); };
                let event = if path == 3 {
                    ApprovalEvent::FinishExecution { output: ToolOutput::text("x") }
                } else {
                    ApprovalEvent::FailExecution { error: "x".into() }
                };
                transition(&claimed.request, event, t0()).unwrap().request
            }
        };
        prop_assert!(terminal.state.is_terminal());
        for op in ops {
            let event = match op {
                Op::Vote { who, approve, .. } => ApprovalEvent::Vote(if approve { VoteCast::approve(voter(who)) } else { VoteCast::decline(voter(who)) }),
                Op::Tick { .. } | Op::Reload { .. } => ApprovalEvent::Tick,
                Op::Cancel { .. } => ApprovalEvent::Cancel { by: "x".into(), reason: None },
                Op::Start { .. } => ApprovalEvent::StartExecution,
                Op::Finish { ok, .. } => if ok { ApprovalEvent::FinishExecution { output: ToolOutput::text("y") } } else { ApprovalEvent::FailExecution { error: "y".into() } },
            };
            if let Ok(t) = transition(&terminal, event, t0() + ChronoDuration::days(1)) {
                prop_assert!(!t.changed);
                prop_assert_eq!(&t.request, &terminal);
            }
        }
    }
}

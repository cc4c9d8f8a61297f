//! The approval state machine: a pure function of (request, event, time) to (request, effects).
//!
//! Nothing here reads a clock, a store or the network. Stores persist the returned request with a
//! compare-and-set on [`ApprovalRequest::version`], so concurrent deciders and pollers cannot both
//! win a transition.

use super::policy::OnTimeout;
use super::request::{ApprovalRequest, ApprovalState, Vote, VoteDecision};
use super::schema::validate_arguments;
use crate::executor::ToolOutput;
use crate::principal::Principal;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Duration;

/// A vote as cast by an approver.
#[derive(Debug, Clone)]
pub struct VoteCast {
    /// The approver.
    pub approver: Principal,
    /// Approve or decline.
    pub decision: VoteDecision,
    /// Comment (required when the policy says `require_reason`).
    pub comment: Option<String>,
    /// Edited arguments (approvals only, when the policy allows editing).
    pub edited_arguments: Option<Value>,
    /// A standing grant to give with the approval.
    pub grant: Option<Duration>,
}

impl VoteCast {
    /// A plain approval.
    pub fn approve(approver: Principal) -> Self {
        Self {
            approver,
            decision: VoteDecision::Approve,
            comment: None,
            edited_arguments: None,
            grant: None,
        }
    }

    /// A plain decline.
    pub fn decline(approver: Principal) -> Self {
        Self::new(approver, VoteDecision::Decline)
    }

    /// A plain vote of `decision`.
    pub fn new(approver: Principal, decision: VoteDecision) -> Self {
        Self {
            decision,
            ..Self::approve(approver)
        }
    }

    /// Adds a comment.
    #[must_use]
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
}

/// Something that happens to a request.
#[derive(Debug, Clone)]
pub enum ApprovalEvent {
    /// An approver votes.
    Vote(VoteCast),
    /// Someone votes through the request's decision link. The link's token was verified by the
    /// caller and stands for the approvers it was sent to, so the approver list is not consulted;
    /// every other rule (self-approval, reasons, edits, quorum) applies.
    LinkVote(VoteCast),
    /// Time passes: due escalation stages start and an overdue request times out.
    Tick,
    /// The requester or an administrator withdraws the request.
    Cancel {
        /// Who cancelled.
        by: String,
        /// Why.
        reason: Option<String>,
    },
    /// An executor claims the approved call.
    StartExecution,
    /// The call ran.
    FinishExecution {
        /// Its output.
        output: ToolOutput,
    },
    /// The call could not run.
    FailExecution {
        /// Why.
        error: String,
    },
}

impl ApprovalEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Vote(_) | Self::LinkVote(_) => "vote",
            Self::Tick => "tick",
            Self::Cancel { .. } => "cancel",
            Self::StartExecution => "start execution",
            Self::FinishExecution { .. } => "finish execution",
            Self::FailExecution { .. } => "fail execution",
        }
    }
}

/// What a transition asks the caller to do (the state machine itself does nothing).
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalEffect {
    /// A vote was recorded.
    Voted {
        /// The approver.
        approver_id: String,
        /// Their decision.
        decision: VoteDecision,
        /// Whether they edited the arguments.
        edited: bool,
    },
    /// The request left `Pending`.
    Decided {
        /// The new state.
        state: ApprovalState,
    },
    /// Escalation stage `stage` (0-based) started: notify its approvers and channels.
    Escalated {
        /// The stage.
        stage: usize,
    },
    /// Wake callers waiting on the request.
    Wake,
    /// The caller has claimed the execution and must run the call now, exactly once.
    Execute,
    /// Execution ended (`Executed` or `Failed`).
    Finished {
        /// The final state.
        state: ApprovalState,
    },
    /// Give the requester a standing grant for this tool.
    CreateGrant {
        /// How long it lasts.
        duration: Duration,
        /// Who gave it.
        granted_by: String,
    },
}

/// Why an event cannot be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The request is no longer pending.
    #[error("the request is {state}, so it can no longer be voted on")]
    NotPending {
        /// Its state.
        state: ApprovalState,
    },
    /// The event does not apply in this state.
    #[error("cannot {event} a request that is {from}")]
    Illegal {
        /// The state.
        from: ApprovalState,
        /// The event.
        event: &'static str,
    },
    /// The voter is not an approver under the policy.
    #[error("`{approver}` is not an approver for this request")]
    NotAnApprover {
        /// The voter.
        approver: String,
    },
    /// The requester tried to approve their own call.
    #[error("requesters cannot approve their own calls under this policy")]
    SelfApproval,
    /// The policy requires a comment.
    #[error("a reason is required to vote on this request")]
    ReasonRequired,
    /// The policy does not allow editing, or a decline carried edits.
    #[error("arguments cannot be edited here: {0}")]
    EditNotAllowed(&'static str),
    /// The edited arguments do not fit the tool's input schema.
    #[error("the edited arguments do not match the tool's input schema: {}", .errors.join("; "))]
    InvalidArguments {
        /// Each validation error.
        errors: Vec<String>,
    },
    /// The approver already voted the other way on these arguments.
    #[error("`{approver}` already voted to {previous:?} these arguments")]
    ConflictingVote {
        /// The voter.
        approver: String,
        /// Their earlier decision.
        previous: VoteDecision,
    },
    /// The grant is not allowed or too long.
    #[error("{0}")]
    Grant(String),
}

/// The result of applying an event.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The request after the event (its `version` is bumped when it changed).
    pub request: ApprovalRequest,
    /// What the caller must do.
    pub effects: Vec<ApprovalEffect>,
    /// Whether anything changed (an idempotent repeat changes nothing).
    pub changed: bool,
}

/// Applies `event` to `request` at time `now`.
///
/// Votes, ticks and cancellations first apply what time has done (escalations, the timeout), so
/// a vote arriving after the deadline finds the request expired even if no tick ran.
pub fn transition(
    request: &ApprovalRequest,
    event: ApprovalEvent,
    now: DateTime<Utc>,
) -> Result<Transition, TransitionError> {
    let mut next = request.clone();
    let mut effects = Vec::new();
    let name = event.name();
    match event {
        ApprovalEvent::Tick => advance_time(&mut next, now, &mut effects),
        ApprovalEvent::Vote(vote) => {
            advance_time(&mut next, now, &mut effects);
            apply_vote(
                &mut next,
                vote,
                Eligibility::ApproverList,
                now,
                &mut effects,
            )?;
        }
        ApprovalEvent::LinkVote(vote) => {
            advance_time(&mut next, now, &mut effects);
            apply_vote(
                &mut next,
                vote,
                Eligibility::DecisionLink,
                now,
                &mut effects,
            )?;
        }
        ApprovalEvent::Cancel { by, reason } => {
            advance_time(&mut next, now, &mut effects);
            match next.state {
                ApprovalState::Pending => {
                    decide(&mut next, ApprovalState::Cancelled, now, &mut effects);
                    next.resolution = Some(match reason {
                        Some(reason) => format!("cancelled by {by}: {reason}"),
                        None => format!("cancelled by {by}"),
                    });
                }
                ApprovalState::Cancelled => {}
                from => return Err(TransitionError::Illegal { from, event: name }),
            }
        }
        // INVARIANT (execution at most once): only `Approved` moves to `Executing`, and the
        // store's compare-and-set on `version` lets exactly one claimer persist that move.
        ApprovalEvent::StartExecution => {
            require_state(&next, ApprovalState::Approved, name)?;
            next.state = ApprovalState::Executing;
            effects.push(ApprovalEffect::Execute);
        }
        ApprovalEvent::FinishExecution { output } => {
            require_state(&next, ApprovalState::Executing, name)?;
            next.state = ApprovalState::Executed;
            next.output = Some(output);
            effects.push(ApprovalEffect::Finished {
                state: ApprovalState::Executed,
            });
            effects.push(ApprovalEffect::Wake);
        }
        ApprovalEvent::FailExecution { error } => {
            require_state(&next, ApprovalState::Executing, name)?;
            next.state = ApprovalState::Failed;
            next.error = Some(error);
            effects.push(ApprovalEffect::Finished {
                state: ApprovalState::Failed,
            });
            effects.push(ApprovalEffect::Wake);
        }
    }
    let changed = next != *request;
    if changed {
        next.version = request.version + 1;
    }
    Ok(Transition {
        request: next,
        effects,
        changed,
    })
}

fn require_state(
    request: &ApprovalRequest,
    expected: ApprovalState,
    event: &'static str,
) -> Result<(), TransitionError> {
    if request.state == expected {
        Ok(())
    } else {
        Err(TransitionError::Illegal {
            from: request.state,
            event,
        })
    }
}

fn decide(
    request: &mut ApprovalRequest,
    state: ApprovalState,
    now: DateTime<Utc>,
    effects: &mut Vec<ApprovalEffect>,
) {
    request.state = state;
    request.decided_at = Some(now);
    effects.push(ApprovalEffect::Decided { state });
    effects.push(ApprovalEffect::Wake);
}

fn start_stage(request: &mut ApprovalRequest, effects: &mut Vec<ApprovalEffect>) {
    effects.push(ApprovalEffect::Escalated {
        stage: request.escalation_stage,
    });
    request.escalation_stage += 1;
}

/// Starts due escalation stages and applies the timeout.
fn advance_time(
    request: &mut ApprovalRequest,
    now: DateTime<Utc>,
    effects: &mut Vec<ApprovalEffect>,
) {
    if request.state != ApprovalState::Pending {
        return;
    }
    while let Some(stage) = request.policy.escalation.get(request.escalation_stage) {
        if now < crate::clock::later(request.created_at, stage.after) {
            break;
        }
        start_stage(request, effects);
    }
    if now < request.expires_at {
        return;
    }
    match request.policy.on_timeout {
        OnTimeout::Deny => {
            request.resolution = Some("timed out undecided".to_owned());
            decide(request, ApprovalState::Expired, now, effects);
        }
        OnTimeout::Approve => {
            request.resolution = Some("approved automatically at the timeout".to_owned());
            decide(request, ApprovalState::Approved, now, effects);
        }
        OnTimeout::Escalate => {
            if request.escalation_stage < request.policy.escalation.len() {
                start_stage(request, effects);
                request.expires_at = crate::clock::later(now, request.policy.timeout);
            } else {
                request.resolution = Some("timed out after the last escalation stage".to_owned());
                decide(request, ApprovalState::Expired, now, effects);
            }
        }
    }
}

/// What makes a voter eligible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eligibility {
    /// The policy's approvers (at the current escalation stage).
    ApproverList,
    /// A verified decision-link token.
    DecisionLink,
}

fn apply_vote(
    request: &mut ApprovalRequest,
    vote: VoteCast,
    eligibility: Eligibility,
    now: DateTime<Utc>,
    effects: &mut Vec<ApprovalEffect>,
) -> Result<(), TransitionError> {
    let approver_id = vote.approver.id.clone();
    let existing = request
        .votes
        .iter()
        .position(|v| v.approver_id == approver_id);
    let edited = vote
        .edited_arguments
        .as_ref()
        .filter(|args| *args != request.effective_arguments());
    let is_repeat = existing.is_some_and(|i| {
        let previous = &request.votes[i];
        previous.decision == vote.decision
            && edited.is_none()
            && (vote.decision == VoteDecision::Decline
                || previous.arguments_version == request.arguments_version)
    });
    // INVARIANT (idempotent decisions): the same vote applied twice changes nothing, in any state.
    if is_repeat {
        return Ok(());
    }
    if request.state != ApprovalState::Pending {
        return Err(TransitionError::NotPending {
            state: request.state,
        });
    }
    let policy = &request.policy;
    if eligibility == Eligibility::ApproverList
        && !policy.is_approver(&vote.approver, request.escalation_stage)
    {
        return Err(TransitionError::NotAnApprover {
            approver: vote.approver.email.clone().unwrap_or(approver_id),
        });
    }
    if vote.decision == VoteDecision::Approve
        && vote.approver.id == request.requester.id
        && !policy.allow_self_approval
    {
        return Err(TransitionError::SelfApproval);
    }
    let comment = vote.comment.filter(|c| !c.trim().is_empty());
    if policy.require_reason && comment.is_none() {
        return Err(TransitionError::ReasonRequired);
    }
    if let Some(arguments) = edited {
        if vote.decision == VoteDecision::Decline {
            return Err(TransitionError::EditNotAllowed(
                "a decline cannot change the arguments",
            ));
        }
        if !policy.allow_edit {
            return Err(TransitionError::EditNotAllowed(
                "the approval policy does not allow editing",
            ));
        }
        validate_arguments(&request.tool.input_schema, arguments)
            .map_err(|errors| TransitionError::InvalidArguments { errors })?;
    }
    if let Some(grant) = vote.grant {
        match (vote.decision, policy.grant.max_duration) {
            (VoteDecision::Decline, _) => {
                return Err(TransitionError::Grant(
                    "a decline cannot give a grant".to_owned(),
                ));
            }
            (_, None) => {
                return Err(TransitionError::Grant(
                    "the approval policy does not allow standing grants".to_owned(),
                ));
            }
            (_, Some(max)) if grant > max => {
                return Err(TransitionError::Grant(format!(
                    "grants under this policy last at most {}",
                    humantime::format_duration(max)
                )));
            }
            _ => {}
        }
    }
    if let Some(i) = existing {
        let previous = &request.votes[i];
        let same_arguments = previous.arguments_version == request.arguments_version;
        if previous.decision != vote.decision && same_arguments && edited.is_none() {
            return Err(TransitionError::ConflictingVote {
                approver: approver_id,
                previous: previous.decision,
            });
        }
        request.votes.remove(i);
    }
    let edited = edited.cloned();
    if let Some(arguments) = &edited {
        request.approved_arguments = Some(arguments.clone());
        request.arguments_version += 1;
    }
    request.votes.push(Vote {
        approver_id: approver_id.clone(),
        approver_email: vote.approver.email.clone(),
        decision: vote.decision,
        comment,
        arguments_version: request.arguments_version,
        edited_arguments: edited.clone(),
        grant: vote.grant,
        at: now,
    });
    effects.push(ApprovalEffect::Voted {
        approver_id: approver_id.clone(),
        decision: vote.decision,
        edited: edited.is_some(),
    });
    // INVARIANT (quorum): only distinct approvers' approvals of the current arguments count.
    if request.declines() >= request.policy.declines_required as usize {
        request.resolution = Some("declined by approvers".to_owned());
        decide(request, ApprovalState::Declined, now, effects);
    } else if request.approvals() >= request.policy.quorum as usize {
        request.resolution = Some("approved by approvers".to_owned());
        decide(request, ApprovalState::Approved, now, effects);
        if let Some(duration) = vote.grant {
            effects.push(ApprovalEffect::CreateGrant {
                duration,
                granted_by: approver_id,
            });
        }
    }
    Ok(())
}

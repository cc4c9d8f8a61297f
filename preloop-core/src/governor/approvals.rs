//! The approval half of the governor: deciding, waiting, polling, cancelling, executing approved
//! calls exactly once, and applying time (expiry, escalation).

use super::notifier::Notification;
use super::{Governor, GovernorError, Outcome, ProgressSink};
use crate::approval::{
    ApprovalEffect, ApprovalEvent, ApprovalRequest, ApprovalState, Grant, Transition,
    TransitionError, VoteCast, VoteDecision, transition, verify_secret,
};
use crate::audit::{AuditEntry, AuditEventKind};
use crate::executor::{ExecutionContext, ExecutionError, ToolOutput};
use crate::principal::Principal;
use crate::store::{ApprovalFilter, CasOutcome};
use chrono::{DateTime, Utc};
use futures::future::{Either, select};
use std::pin::pin;
use uuid::Uuid;

/// Longest comment a vote may carry, in characters.
pub const MAX_COMMENT_CHARS: usize = 4096;

fn check_comment(comment: Option<&str>) -> Result<(), GovernorError> {
    match comment.map(|c| c.chars().count()) {
        Some(length) if length > MAX_COMMENT_CHARS => Err(GovernorError::InvalidArguments(
            format!("the comment has {length} characters; the limit is {MAX_COMMENT_CHARS}"),
        )),
        _ => Ok(()),
    }
}

impl Governor {
    /// Records `vote` on a request of the approver's organization. Approval does not run the call
    /// by itself: the blocked caller, the next status poll, or [`Governor::execute_approved`]
    /// (which a server may call in the background) runs it, exactly once.
    pub async fn decide(
        &self,
        approver: &Principal,
        request_id: Uuid,
        vote: VoteCast,
    ) -> Result<ApprovalRequest, GovernorError> {
        if vote.approver.id != approver.id
            || vote.approver.organization_id != approver.organization_id
        {
            return Err(GovernorError::Forbidden(
                "a vote must be cast by the authenticated approver".to_owned(),
            ));
        }
        check_comment(vote.comment.as_deref())?;
        self.apply(&approver.organization_id, request_id, || {
            ApprovalEvent::Vote(vote.clone())
        })
        .await
        .map(|t| t.request)
    }

    /// The request a decision link points at, if `token` is its valid, unexpired token. A wrong
    /// token and an unknown id are the same error, so links cannot be probed.
    pub async fn request_by_link(
        &self,
        request_id: Uuid,
        token: &str,
    ) -> Result<ApprovalRequest, GovernorError> {
        let request = self
            .approvals
            .find_request(request_id)
            .await?
            .ok_or(GovernorError::RequestNotFound)?;
        let now = self.clock.now();
        let valid = request
            .token_hash
            .as_deref()
            .is_some_and(|hash| verify_secret(token, hash))
            && request.token_expires_at.is_none_or(|until| now < until);
        if valid {
            Ok(request)
        } else {
            Err(GovernorError::RequestNotFound)
        }
    }

    /// Records a vote cast through a decision link (see [`Governor::request_by_link`]); the
    /// vote is recorded as the link's, one per request, whoever clicks it.
    pub async fn decide_by_link(
        &self,
        request_id: Uuid,
        token: &str,
        decision: VoteDecision,
        comment: Option<String>,
    ) -> Result<ApprovalRequest, GovernorError> {
        check_comment(comment.as_deref())?;
        let request = self.request_by_link(request_id, token).await?;
        // INVARIANT (a link votes only while the request waits): once decided, even the same
        // vote again is refused, so a leaked link is worth nothing afterwards.
        if request.state != ApprovalState::Pending {
            return Err(TransitionError::NotPending {
                state: request.state,
            }
            .into());
        }
        let mut link = Principal::new(
            format!("decision-link:{request_id}"),
            request.organization_id.clone(),
        );
        link.email = Some("decision link".to_owned());
        let vote = VoteCast {
            comment,
            ..VoteCast::new(link, decision)
        };
        self.apply(&request.organization_id, request_id, || {
            ApprovalEvent::LinkVote(vote.clone())
        })
        .await
        .map(|t| t.request)
    }

    /// Cancels a pending request; only its requester or an admin may.
    pub async fn cancel(
        &self,
        principal: &Principal,
        request_id: Uuid,
        reason: Option<String>,
    ) -> Result<ApprovalRequest, GovernorError> {
        let request = self.visible_request(principal, request_id).await?;
        if request.requester.id != principal.id && !principal.has_role("admin") {
            return Err(GovernorError::Forbidden(
                "only the requester or an admin can cancel a request".to_owned(),
            ));
        }
        let by = principal
            .email
            .clone()
            .unwrap_or_else(|| principal.id.clone());
        self.apply(&principal.organization_id, request_id, || {
            ApprovalEvent::Cancel {
                by: by.clone(),
                reason: reason.clone(),
            }
        })
        .await
        .map(|t| t.request)
    }

    /// The request as `principal` may see it (requester, an eligible approver, or an admin),
    /// after applying any due timeout, and with the approved call run if it has not run yet.
    pub async fn approval_status(
        &self,
        principal: &Principal,
        request_id: Uuid,
    ) -> Result<ApprovalRequest, GovernorError> {
        self.visible_request(principal, request_id).await?;
        let request = self.refresh(&principal.organization_id, request_id).await?;
        if request.state == ApprovalState::Approved {
            return self
                .execute_approved(&principal.organization_id, request_id)
                .await;
        }
        Ok(request)
    }

    /// The request as `principal` may see it, with no side effect (no tick, no execution).
    pub async fn request(
        &self,
        principal: &Principal,
        request_id: Uuid,
    ) -> Result<ApprovalRequest, GovernorError> {
        self.visible_request(principal, request_id).await
    }

    /// The outcome a request implies for its call (for `get_approval_status` results).
    pub fn outcome(&self, request: &ApprovalRequest) -> Outcome {
        Outcome::of_request(request, self.config.poll_after)
    }

    /// Requests of the principal's organization that the principal may see (as
    /// [`Governor::request`]: their own, those they may vote on, and all of them for admins).
    pub async fn list_requests(
        &self,
        principal: &Principal,
        filter: &ApprovalFilter,
    ) -> Result<Vec<ApprovalRequest>, GovernorError> {
        let mut requests = self
            .approvals
            .list_requests(&principal.organization_id, filter)
            .await?;
        requests.retain(|request| may_see(principal, request));
        Ok(requests)
    }

    /// Runs an approved request's call if nobody has claimed it yet, and returns the request.
    ///
    /// INVARIANT (execution at most once): the `Approved -> Executing` claim is a compare-and-set
    /// in the store; only the caller whose claim is stored runs the tool. Everyone else gets the
    /// request as it stands (`Executing` until the winner records the result).
    pub async fn execute_approved(
        &self,
        organization_id: &str,
        request_id: Uuid,
    ) -> Result<ApprovalRequest, GovernorError> {
        let claim = match self
            .apply(organization_id, request_id, || {
                ApprovalEvent::StartExecution
            })
            .await
        {
            Ok(claim) => claim,
            Err(GovernorError::Transition(TransitionError::Illegal { .. })) => {
                return self.stored(organization_id, request_id).await;
            }
            Err(error) => return Err(error),
        };
        if !claim.effects.contains(&ApprovalEffect::Execute) {
            return Ok(claim.request);
        }
        let event = match self.execute_for(&claim.request).await {
            Ok(output) => ApprovalEvent::FinishExecution { output },
            Err(error) => ApprovalEvent::FailExecution {
                error: error.to_string(),
            },
        };
        self.apply(organization_id, request_id, || event.clone())
            .await
            .map(|t| t.request)
    }

    /// Applies due escalations and timeouts to at most `limit` requests of every organization;
    /// returns how many changed. Safe to run on several replicas at once.
    pub async fn tick_due(&self, limit: usize) -> Result<usize, GovernorError> {
        let due = self.approvals.due_requests(self.clock.now(), limit).await?;
        let mut changed = 0;
        for request in due {
            match self
                .apply(&request.organization_id, request.id, || ApprovalEvent::Tick)
                .await
            {
                Ok(t) if t.changed => changed += 1,
                Ok(_) | Err(GovernorError::Contended) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(changed)
    }

    /// Wakes callers blocked on a request (for decisions made by another replica).
    pub fn wake(&self, request_id: Uuid) {
        self.wakeups.wake(request_id);
    }

    /// Wakes every blocked caller to re-read its request (after wake-ups may have been missed,
    /// e.g. while a notification connection was down).
    pub fn wake_all(&self) {
        self.wakeups.wake_all();
    }

    /// Waits push-based for a decision until `until`, then returns the call's outcome.
    pub(super) async fn wait(
        &self,
        organization_id: &str,
        request_id: Uuid,
        until: DateTime<Utc>,
        progress: Option<&dyn ProgressSink>,
    ) -> Result<Outcome, GovernorError> {
        let started = self.clock.now();
        let mut next_progress = crate::clock::later(started, self.config.progress_interval);
        loop {
            // Subscribe before reading, so a decision landing in between still wakes us.
            let subscription = self.wakeups.subscribe(request_id);
            let mut request = self.refresh(organization_id, request_id).await?;
            if request.state == ApprovalState::Approved {
                request = self.execute_approved(organization_id, request_id).await?;
            }
            if request.state != ApprovalState::Pending && request.state != ApprovalState::Executing
            {
                return Ok(self.outcome(&request));
            }
            let now = self.clock.now();
            if now >= until {
                return Ok(self.outcome(&request));
            }
            if let Some(progress) = progress.filter(|_| now >= next_progress) {
                progress.waiting(&request, (now - started).to_std().unwrap_or_default());
                next_progress = crate::clock::later(now, self.config.progress_interval);
            }
            let mut wake_at = until;
            if let Some(deadline) = request.next_deadline() {
                wake_at = wake_at.min(deadline);
            }
            if progress.is_some() {
                wake_at = wake_at.min(next_progress);
            }
            let sleep = self.clock.sleep_until(wake_at);
            match select(pin!(subscription.woken()), sleep).await {
                Either::Left(_) | Either::Right(_) => {}
            }
        }
    }

    /// Reads a request and applies a tick if a deadline has passed.
    async fn refresh(
        &self,
        organization_id: &str,
        request_id: Uuid,
    ) -> Result<ApprovalRequest, GovernorError> {
        let request = self.stored(organization_id, request_id).await?;
        let due = request
            .next_deadline()
            .is_some_and(|d| d <= self.clock.now());
        if !due {
            return Ok(request);
        }
        match self
            .apply(organization_id, request_id, || ApprovalEvent::Tick)
            .await
        {
            Ok(t) => Ok(t.request),
            Err(GovernorError::Contended) => self.stored(organization_id, request_id).await,
            Err(error) => Err(error),
        }
    }

    async fn stored(
        &self,
        organization_id: &str,
        request_id: Uuid,
    ) -> Result<ApprovalRequest, GovernorError> {
        self.approvals
            .get_request(organization_id, request_id)
            .await?
            .ok_or(GovernorError::RequestNotFound)
    }

    /// A request the principal may see; others are reported as not found, so ids leak nothing.
    async fn visible_request(
        &self,
        principal: &Principal,
        request_id: Uuid,
    ) -> Result<ApprovalRequest, GovernorError> {
        let request = self.stored(&principal.organization_id, request_id).await?;
        if may_see(principal, &request) {
            Ok(request)
        } else {
            Err(GovernorError::RequestNotFound)
        }
    }

    /// Applies an event with optimistic concurrency: read, transition, compare-and-set (with the
    /// audit entries in the same write), retry on conflict; then carries out the effects.
    async fn apply(
        &self,
        organization_id: &str,
        request_id: Uuid,
        event: impl Fn() -> ApprovalEvent,
    ) -> Result<Transition, GovernorError> {
        for _ in 0..self.config.max_retries {
            let current = self.stored(organization_id, request_id).await?;
            let now = self.clock.now();
            let next = transition(&current, event(), now)?;
            if !next.changed {
                return Ok(next);
            }
            let audit = audit_entries(&next, now);
            match self
                .approvals
                .update_request(current.version, &next.request, audit)
                .await?
            {
                CasOutcome::Stored => {
                    self.carry_out(&next, now).await?;
                    return Ok(next);
                }
                CasOutcome::Conflict => continue,
            }
        }
        Err(GovernorError::Contended)
    }

    /// Carries out a stored transition's effects (all but `Execute`, which the claimer handles).
    async fn carry_out(
        &self,
        stored: &Transition,
        now: DateTime<Utc>,
    ) -> Result<(), GovernorError> {
        let request = &stored.request;
        for effect in &stored.effects {
            match effect {
                ApprovalEffect::Wake => self.wakeups.wake(request.id),
                ApprovalEffect::Decided { .. } => {
                    self.deliver(Notification::Decided { request }).await
                }
                ApprovalEffect::Escalated { stage } => {
                    self.deliver(Notification::Escalated {
                        request,
                        stage: *stage,
                    })
                    .await;
                }
                ApprovalEffect::CreateGrant {
                    duration,
                    granted_by,
                } => {
                    let grant = Grant {
                        id: Uuid::new_v4(),
                        organization_id: request.organization_id.clone(),
                        principal_id: request.requester.id.clone(),
                        tool: request.tool.exposed_name.clone(),
                        granted_by: granted_by.clone(),
                        request_id: request.id,
                        created_at: now,
                        expires_at: crate::clock::later(now, *duration),
                        revoked: false,
                    };
                    let entry = AuditEntry::new(
                        &request.organization_id,
                        now,
                        AuditEventKind::GrantCreated {
                            grant_id: grant.id,
                            request_id: request.id,
                            principal_id: grant.principal_id.clone(),
                            tool: grant.tool.clone(),
                            expires_at: grant.expires_at,
                        },
                    );
                    self.grants.insert_grant(&grant, vec![entry]).await?;
                }
                ApprovalEffect::Voted { .. }
                | ApprovalEffect::Execute
                | ApprovalEffect::Finished { .. } => {}
            }
        }
        Ok(())
    }

    /// Runs `tool` for an approved request.
    async fn execute_for(
        &self,
        request: &ApprovalRequest,
    ) -> Result<ToolOutput, ApprovedCallError> {
        let tool = self
            .registry
            .get(&request.organization_id, &request.tool.exposed_name)
            .filter(|t| t.descriptor.server == request.tool.server)
            .ok_or_else(|| ApprovedCallError::Gone {
                tool: request.tool.exposed_name.clone(),
            })?;
        let context = ExecutionContext {
            call_id: request.call_id,
            approval_request_id: Some(request.id),
            principal_id: request.requester.id.clone(),
            organization_id: request.organization_id.clone(),
            observer: None,
            answers: request.answers.clone(),
        };
        tool.executor
            .execute(
                &tool.descriptor,
                request.effective_arguments().clone(),
                &context,
            )
            .await
            .map_err(ApprovedCallError::from)
    }
}

/// Why an approved call did not run (recorded in the request as `FailExecution`).
#[derive(Debug, thiserror::Error)]
enum ApprovedCallError {
    /// The tool was removed (or moved to another server) while the request waited.
    #[error("tool `{tool}` is no longer available")]
    Gone {
        /// The tool's exposed name.
        tool: String,
    },
    /// The executor could not run it.
    #[error(transparent)]
    Execution {
        /// The executor's error.
        #[from]
        source: ExecutionError,
    },
}

/// The audit entries a transition produces.
fn audit_entries(transition: &Transition, now: DateTime<Utc>) -> Vec<AuditEntry> {
    let request = &transition.request;
    let entry = |kind| AuditEntry::new(&request.organization_id, now, kind);
    transition
        .effects
        .iter()
        .filter_map(|effect| match effect {
            ApprovalEffect::Voted {
                approver_id,
                decision,
                edited,
            } => Some(entry(AuditEventKind::ApprovalVoted {
                request_id: request.id,
                approver_id: approver_id.clone(),
                decision: *decision,
                comment: request
                    .votes
                    .iter()
                    .find(|v| v.approver_id == *approver_id)
                    .and_then(|v| v.comment.clone()),
                edited: *edited,
            })),
            ApprovalEffect::Decided { state } => Some(entry(AuditEventKind::ApprovalDecided {
                request_id: request.id,
                state: *state,
                resolution: request.resolution.clone(),
            })),
            ApprovalEffect::Escalated { stage } => Some(entry(AuditEventKind::ApprovalEscalated {
                request_id: request.id,
                stage: *stage,
            })),
            ApprovalEffect::Finished {
                state: ApprovalState::Executed,
            } => Some(entry(AuditEventKind::Executed {
                call_id: request.call_id,
                request_id: Some(request.id),
                is_error: request.output.as_ref().is_some_and(|o| o.is_error),
            })),
            ApprovalEffect::Finished { .. } => Some(entry(AuditEventKind::ExecutionFailed {
                call_id: request.call_id,
                request_id: Some(request.id),
                error: request.error.clone().unwrap_or_default(),
            })),
            ApprovalEffect::Wake | ApprovalEffect::Execute | ApprovalEffect::CreateGrant { .. } => {
                None
            }
        })
        .collect()
}

/// Whether `principal` may see `request`: its requester, an approver at its current stage, or an
/// admin (of its organization: callers have already scoped the lookup).
fn may_see(principal: &Principal, request: &ApprovalRequest) -> bool {
    request.requester.id == principal.id
        || principal.has_role("admin")
        || request
            .policy
            .is_approver(principal, request.escalation_stage)
}

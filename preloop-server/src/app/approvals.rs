//! Votes on approval requests and what follows them.

use preloop_core::Principal;
use preloop_core::approval::{ApprovalRequest, ApprovalState, VoteCast, VoteDecision};
use preloop_core::governor::{Governor, GovernorError};
use std::sync::Arc;
use uuid::Uuid;

/// Casts votes and runs what they approve. Every surface that records a vote (the REST API,
/// chat buttons, the decision page, decision links) goes through here, so an approved call
/// always starts.
#[derive(Debug, Clone)]
pub struct Approvals {
    governor: Arc<Governor>,
}

impl Approvals {
    /// Votes through `governor`.
    pub fn new(governor: Arc<Governor>) -> Self {
        Self { governor }
    }

    /// Records `vote` by `approver` on `request_id` (the approval policy decides whether they
    /// may), then starts the call if the request is now approved.
    pub async fn vote(
        &self,
        approver: &Principal,
        request_id: Uuid,
        vote: VoteCast,
    ) -> Result<ApprovalRequest, GovernorError> {
        let request = self.governor.decide(approver, request_id, vote).await?;
        self.run_if_approved(&request);
        Ok(request)
    }

    /// Records a vote through a request-level decision link (`token` is the credential), then
    /// starts the call if the request is now approved. A decided request's link votes no more.
    pub async fn vote_by_link(
        &self,
        request_id: Uuid,
        token: &str,
        decision: VoteDecision,
        comment: Option<String>,
    ) -> Result<ApprovalRequest, GovernorError> {
        let request = self
            .governor
            .decide_by_link(request_id, token, decision, comment)
            .await?;
        self.run_if_approved(&request);
        Ok(request)
    }

    /// Runs an approved request's call in the background; a blocked caller or a poller may win
    /// the claim instead, and the call still runs exactly once.
    fn run_if_approved(&self, request: &ApprovalRequest) {
        if request.state != ApprovalState::Approved {
            return;
        }
        let governor = self.governor.clone();
        let organization = request.organization_id.clone();
        let id = request.id;
        tokio::spawn(async move {
            if let Err(error) = governor.execute_approved(&organization, id).await {
                tracing::warn!(%error, request = %id, "running an approved call failed");
            }
        });
    }
}

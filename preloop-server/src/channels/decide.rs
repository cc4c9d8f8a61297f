//! Votes cast from a chat platform: the platform's user id is mapped (by the channel's `users`
//! table) to a Preloop user's e-mail address, and the vote is cast as that user — so the approval
//! policy decides, exactly as for a vote in the console, whether they may approve. Anyone not
//! mapped, disabled, or not an approver of the request is refused.

use super::Callbacks;
use super::message::outcome;
use preloop_core::approval::{ApprovalRequest, ApprovalState, VoteCast, VoteDecision};
use preloop_core::governor::GovernorError;
use preloop_core::store::AccountStore;
use std::collections::BTreeMap;
use uuid::Uuid;

/// What became of a vote from a chat platform.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The vote was recorded; the request as it now stands.
    Recorded(Box<ApprovalRequest>),
    /// Not recorded; the reason, fit to show the person who pressed the button.
    Refused(String),
}

impl Answer {
    /// A short reply for the person who pressed the button.
    pub(crate) fn reply(&self) -> String {
        match self {
            Self::Recorded(request) if request.state == ApprovalState::Pending => {
                "Your vote is recorded; the request waits for more approvers.".to_owned()
            }
            Self::Recorded(request) => outcome(request),
            Self::Refused(reason) => reason.clone(),
        }
    }
}

/// Casts `decision` on `request_id` as the user `platform_user` is mapped to in `users`.
pub(crate) async fn decide_as(
    state: &Callbacks,
    platform: &str,
    users: &BTreeMap<String, String>,
    platform_user: &str,
    request_id: Uuid,
    decision: VoteDecision,
) -> Answer {
    let Some(email) = users.get(platform_user) else {
        tracing::warn!(platform, platform_user, request = %request_id, "vote from an unmapped user refused");
        return Answer::Refused(format!(
            "Your {platform} account is not linked to a Preloop approver, so your vote was not recorded."
        ));
    };
    let user = match state.store.find_user_by_email(email).await {
        Ok(Some(user)) if !user.disabled => user,
        Ok(_) => {
            tracing::warn!(platform, platform_user, request = %request_id, "vote from a mapped user who does not exist or is disabled");
            return Answer::Refused(
                "The Preloop user your account is linked to does not exist or is disabled."
                    .to_owned(),
            );
        }
        Err(error) => {
            tracing::error!(%error, "cannot look up the approver");
            return Answer::Refused("Preloop cannot record votes right now; try again.".to_owned());
        }
    };
    let approver = user.principal();
    let vote = VoteCast::new(approver.clone(), decision);
    match state.approvals.vote(&approver, request_id, vote).await {
        Ok(request) => {
            tracing::info!(platform, approver = %user.email, request = %request_id, ?decision, "vote recorded from a chat platform");
            Answer::Recorded(Box::new(request))
        }
        Err(GovernorError::RequestNotFound) => {
            Answer::Refused("This approval request does not exist in your organization.".to_owned())
        }
        Err(error @ (GovernorError::Forbidden(_) | GovernorError::Transition(_))) => {
            Answer::Refused(capitalized(&error.to_string()))
        }
        Err(error) => {
            tracing::error!(%error, request = %request_id, "cannot record a vote from a chat platform");
            Answer::Refused("Preloop cannot record votes right now; try again.".to_owned())
        }
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

//! What a governed call returns, and the errors that stop it.

use crate::approval::{ApprovalRequest, ApprovalState, TransitionError};
use crate::executor::ToolOutput;
use crate::policy::GovernanceError;
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;
use uuid::Uuid;

/// The end of a governed call (or of the wait for its approval).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The tool ran; `output.is_error` tells whether the tool itself reported an error.
    Executed {
        /// Call id.
        call_id: Uuid,
        /// The approval request, when the call needed one.
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<Uuid>,
        /// The tool's output.
        output: ToolOutput,
    },
    /// The policy refused the call.
    Denied {
        /// Call id.
        call_id: Uuid,
        /// The message for the agent.
        message: String,
        /// The deciding rule.
        #[serde(skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
    },
    /// The call waits for approval; poll `request_id`.
    PendingApproval {
        /// Call id.
        call_id: Uuid,
        /// The request to poll.
        request_id: Uuid,
        /// Suggested polling interval.
        poll_after_seconds: u64,
        /// When the request times out.
        expires_at: DateTime<Utc>,
    },
    /// Approvers declined.
    Declined {
        /// Call id.
        call_id: Uuid,
        /// The request.
        request_id: Uuid,
        /// Approvers' comments.
        comments: Vec<String>,
    },
    /// The request timed out.
    Expired {
        /// Call id.
        call_id: Uuid,
        /// The request.
        request_id: Uuid,
    },
    /// The request was withdrawn.
    Cancelled {
        /// Call id.
        call_id: Uuid,
        /// The request.
        request_id: Uuid,
    },
    /// The tool could not be run.
    Failed {
        /// Call id.
        call_id: Uuid,
        /// The request, when the call needed one.
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<Uuid>,
        /// Why.
        error: String,
    },
}

impl Outcome {
    /// The outcome a request's current state implies for its call.
    pub fn of_request(request: &ApprovalRequest, poll_after: Duration) -> Self {
        let call_id = request.call_id;
        let request_id = request.id;
        match request.state {
            ApprovalState::Pending | ApprovalState::Approved | ApprovalState::Executing => {
                Self::PendingApproval {
                    call_id,
                    request_id,
                    poll_after_seconds: poll_after.as_secs().max(1),
                    expires_at: request.expires_at,
                }
            }
            ApprovalState::Executed => match &request.output {
                Some(output) => Self::Executed {
                    call_id,
                    request_id: Some(request_id),
                    output: output.clone(),
                },
                None => Self::Failed {
                    call_id,
                    request_id: Some(request_id),
                    error: "the call ran but its output was not recorded".to_owned(),
                },
            },
            ApprovalState::Failed => Self::Failed {
                call_id,
                request_id: Some(request_id),
                error: request.error.clone().unwrap_or_default(),
            },
            ApprovalState::Declined => Self::Declined {
                call_id,
                request_id,
                comments: request
                    .votes
                    .iter()
                    .filter_map(|v| v.comment.clone())
                    .collect(),
            },
            ApprovalState::Expired => Self::Expired {
                call_id,
                request_id,
            },
            ApprovalState::Cancelled => Self::Cancelled {
                call_id,
                request_id,
            },
        }
    }

    /// A message for the agent describing outcomes other than `Executed`.
    pub fn message(&self) -> String {
        match self {
            Self::Executed { output, .. } => output.joined_text(),
            Self::Denied { message, .. } => message.clone(),
            Self::PendingApproval {
                request_id,
                poll_after_seconds,
                ..
            } => format!(
                "approval pending: call get_approval_status with request_id {request_id} in {poll_after_seconds} s"
            ),
            Self::Declined { comments, .. } if comments.is_empty() => {
                "declined by approvers".to_owned()
            }
            Self::Declined { comments, .. } => {
                format!("declined by approvers: {}", comments.join("; "))
            }
            Self::Expired { .. } => {
                "the approval request expired undecided; the call was not made".to_owned()
            }
            Self::Cancelled { .. } => {
                "the approval request was cancelled; the call was not made".to_owned()
            }
            Self::Failed { error, .. } => format!("the tool could not be run: {error}"),
        }
    }
}

/// Why the governor could not handle a request at all. Every variant leaves the tool uncalled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GovernorError {
    /// No such tool, or not visible to the caller (indistinguishable on purpose).
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
    /// The arguments are not a JSON object.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// No such approval request in the caller's organization, or the caller may not see it.
    #[error("approval request not found")]
    RequestNotFound,
    /// The caller may not do this.
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// The approval state machine refused the event.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The policy does not compile.
    #[error(transparent)]
    Governance(#[from] GovernanceError),
    /// The store failed; the call fails closed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The policy decision could not be made (its runner failed); the call fails closed.
    #[error("the policy decision could not be made; the call is refused")]
    DecisionUnavailable,
    /// Concurrent updates kept winning; try again.
    #[error("the approval request is being changed concurrently; try again")]
    Contended,
}

//! The approval request: a call held for human decision, with its votes and its outcome.

use super::policy::ApprovalPolicy;
use crate::executor::{InputAnswers, ToolOutput};
use crate::principal::Principal;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Where a request is in its life.
///
/// `Pending -> Approved | Declined | Expired | Cancelled`, then `Approved -> Executing ->
/// Executed | Failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for votes.
    Pending,
    /// Approved; the call has not started.
    Approved,
    /// Declined by approvers.
    Declined,
    /// Timed out undecided.
    Expired,
    /// Withdrawn before a decision.
    Cancelled,
    /// The approved call is running (claimed by exactly one executor).
    Executing,
    /// The approved call ran; its output is recorded.
    Executed,
    /// The approved call could not run.
    Failed,
}

impl ApprovalState {
    /// Whether no event can change the state any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Declined | Self::Expired | Self::Cancelled | Self::Executed | Self::Failed
        )
    }

    /// The state's name as used in APIs (`pending`, `approved`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Declined => "declined",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::Executing => "executing",
            Self::Executed => "executed",
            Self::Failed => "failed",
        }
    }
}

impl std::fmt::Display for ApprovalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An approver's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteDecision {
    /// Approve.
    Approve,
    /// Decline.
    Decline,
}

/// One approver's recorded vote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    /// The approver's principal id.
    pub approver_id: String,
    /// The approver's e-mail, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver_email: Option<String>,
    /// Approve or decline.
    pub decision: VoteDecision,
    /// The approver's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The arguments version the vote was cast on; approvals count only for the current one.
    pub arguments_version: u32,
    /// The arguments this approver edited in, if they edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_arguments: Option<Value>,
    /// A standing grant the approver gave with the approval.
    #[serde(
        default,
        with = "crate::clock::bounded_duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub grant: Option<std::time::Duration>,
    /// When the vote was cast.
    pub at: DateTime<Utc>,
}

/// The tool a request is for, snapshotted at creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestedTool {
    /// Exposed name.
    pub exposed_name: String,
    /// Server.
    pub server: String,
    /// Own name on the server.
    pub name: String,
    /// Input schema edited arguments are validated against.
    pub input_schema: Value,
}

/// Why the agent asked, for requests made through the `request_approval` tool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestContext {
    /// The operation the agent wants to perform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Context for the approver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The agent's reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
}

/// A call held for approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// Request id.
    pub id: Uuid,
    /// Owning organization; every lookup is scoped by it.
    pub organization_id: String,
    /// The governed call this request holds.
    pub call_id: Uuid,
    /// Who made the call.
    pub requester: Principal,
    /// The tool.
    pub tool: RequestedTool,
    /// Arguments as the agent sent them.
    pub original_arguments: Value,
    /// Arguments as edited by approvers, when edited; these are the ones that run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_arguments: Option<Value>,
    /// Bumped by every edit; approvals count only for the current version.
    pub arguments_version: u32,
    /// The agent's explanation, if it gave one.
    #[serde(default)]
    pub context: RequestContext,
    /// The caller's answers to an earlier round's questions, when the held call continues
    /// one: they go to the tool with the arguments once approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<InputAnswers>,
    /// The approval policy, snapshotted at creation so later edits do not change open requests.
    pub policy: ApprovalPolicy,
    /// The policy rule that required approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_rule: Option<String>,
    /// Current state.
    pub state: ApprovalState,
    /// Votes, one per approver (a re-vote on edited arguments replaces the earlier one).
    pub votes: Vec<Vote>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When the request times out (moves when escalation restarts the timeout).
    pub expires_at: DateTime<Utc>,
    /// How many escalation stages have started.
    pub escalation_stage: usize,
    /// When the request left `Pending`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    /// Why it left `Pending` (timeout, cancellation reason, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// SHA-256 of the decision-link token (never the token itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_hash: Option<String>,
    /// When the decision-link token stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<DateTime<Utc>>,
    /// The tool's output once executed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<ToolOutput>,
    /// Why execution failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Optimistic-concurrency version, bumped by every change; stores compare-and-set on it.
    pub version: u64,
}

/// What is needed to open a request.
#[derive(Debug, Clone)]
pub struct NewApprovalRequest {
    /// The governed call.
    pub call_id: Uuid,
    /// Who made it.
    pub requester: Principal,
    /// The tool.
    pub tool: RequestedTool,
    /// The arguments.
    pub arguments: Value,
    /// The agent's explanation.
    pub context: RequestContext,
    /// The approval policy.
    pub policy: ApprovalPolicy,
    /// The rule that required approval.
    pub matched_rule: Option<String>,
}

impl ApprovalRequest {
    /// Opens a pending request at `now`.
    pub fn open(new: NewApprovalRequest, now: DateTime<Utc>) -> Self {
        let expires_at = crate::clock::later(now, new.policy.timeout);
        Self {
            id: Uuid::new_v4(),
            organization_id: new.requester.organization_id.clone(),
            call_id: new.call_id,
            requester: new.requester,
            tool: new.tool,
            original_arguments: new.arguments,
            approved_arguments: None,
            arguments_version: 0,
            context: new.context,
            answers: None,
            policy: new.policy,
            matched_rule: new.matched_rule,
            state: ApprovalState::Pending,
            votes: Vec::new(),
            created_at: now,
            expires_at,
            escalation_stage: 0,
            decided_at: None,
            resolution: None,
            token_hash: None,
            token_expires_at: None,
            output: None,
            error: None,
            version: 0,
        }
    }

    /// The arguments the call will run with: the edited ones if edited, else the original.
    pub fn effective_arguments(&self) -> &Value {
        self.approved_arguments
            .as_ref()
            .unwrap_or(&self.original_arguments)
    }

    /// Distinct approvers who approved the current arguments.
    pub fn approvals(&self) -> usize {
        self.votes
            .iter()
            .filter(|v| {
                v.decision == VoteDecision::Approve && v.arguments_version == self.arguments_version
            })
            .count()
    }

    /// Distinct approvers who declined.
    pub fn declines(&self) -> usize {
        self.votes
            .iter()
            .filter(|v| v.decision == VoteDecision::Decline)
            .count()
    }

    /// The next time something happens by itself (an escalation stage or the timeout), while
    /// pending. Schedulers wake at this time and apply [`super::ApprovalEvent::Tick`].
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        if self.state != ApprovalState::Pending {
            return None;
        }
        let stage = self
            .policy
            .escalation
            .get(self.escalation_stage)
            .map(|s| crate::clock::later(self.created_at, s.after));
        Some(stage.map_or(self.expires_at, |s| s.min(self.expires_at)))
    }
}

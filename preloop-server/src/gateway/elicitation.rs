//! MCP elicitation as an approval channel: when a blocking call is held, its approval policy
//! names the `elicitation` channel and lets requesters approve their own calls, the requester is
//! an approver of it, and the calling client declared the elicitation capability, the user is
//! asked inline through `elicitation/create` (approve or decline, with a comment), and their
//! answer is their vote. Otherwise nothing is asked and the other channels decide; a dismissed
//! question (`cancel`) leaves the request to them too. The question is withdrawn (its task
//! aborted) once the call stops waiting.

use crate::gateway::relay::EventSink;
use preloop_core::Principal;
use preloop_core::approval::{ApprovalRequest, VoteCast, VoteDecision};
use preloop_core::governor::{Governor, ProgressSink};
use rmcp::model::{ElicitRequestParams, ElicitationAction, ElicitationSchema};
use rmcp::service::{Peer, RoleServer};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::task::JoinHandle;

/// The channel's name in approval policies.
pub const CHANNEL: &str = "elicitation";

/// Whether `peer`'s client declared the elicitation capability.
pub fn supported(peer: &Peer<RoleServer>) -> bool {
    peer.peer_info()
        .is_some_and(|info| info.capabilities.elicitation.is_some())
}

/// Whether the request may be decided by asking its own requester.
fn eligible(request: &ApprovalRequest, requester: &Principal) -> bool {
    let policy = &request.policy;
    let named = policy.channels.iter().any(|c| c == CHANNEL)
        || policy
            .escalation
            .iter()
            .take(request.escalation_stage)
            .any(|stage| stage.channels.iter().any(|c| c == CHANNEL));
    named && policy.allow_self_approval && policy.is_approver(requester, request.escalation_stage)
}

/// A held call's progress sink that also asks the caller's user, when it may.
pub struct Elicitation {
    events: EventSink,
    peer: Peer<RoleServer>,
    governor: Arc<Governor>,
    requester: Principal,
    asking: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Elicitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Elicitation")
    }
}

impl Elicitation {
    /// Progress goes to `events`; the question to `peer`; the answer is `requester`'s vote.
    pub fn new(
        events: EventSink,
        peer: Peer<RoleServer>,
        governor: Arc<Governor>,
        requester: Principal,
    ) -> Self {
        Self {
            events,
            peer,
            governor,
            requester,
            asking: Mutex::new(None),
        }
    }
}

impl Drop for Elicitation {
    fn drop(&mut self) {
        if let Some(asking) = self
            .asking
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            asking.abort();
        }
    }
}

impl ProgressSink for Elicitation {
    fn waiting(&self, request: &ApprovalRequest, elapsed: Duration) {
        self.events.waiting(request, elapsed);
    }

    fn held(&self, request: &ApprovalRequest) {
        if !eligible(request, &self.requester) {
            return;
        }
        let (peer, governor, requester) = (
            self.peer.clone(),
            self.governor.clone(),
            self.requester.clone(),
        );
        let request = request.clone();
        let task = tokio::spawn(async move { ask(peer, governor, requester, request).await });
        *self.asking.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
    }
}

fn question(request: &ApprovalRequest) -> Result<ElicitRequestParams, serde_json::Error> {
    let arguments = serde_json::to_string_pretty(request.effective_arguments()).unwrap_or_default();
    let rule = request
        .matched_rule
        .as_deref()
        .map(|rule| format!(" (rule `{rule}`)"))
        .unwrap_or_default();
    let schema: ElicitationSchema = serde_json::from_value(json!({
        "type": "object",
        "properties": {
            "decision": {"type": "string", "title": "Decision", "enum": ["approve", "decline"]},
            "comment": {"type": "string", "title": "Comment"},
        },
        "required": ["decision"],
    }))?;
    Ok(ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: format!(
            "Approval needed{rule}: run `{}` on `{}` with these arguments?\n{arguments}",
            request.tool.exposed_name, request.tool.server
        ),
        requested_schema: schema,
    })
}

async fn ask(
    peer: Peer<RoleServer>,
    governor: Arc<Governor>,
    requester: Principal,
    request: ApprovalRequest,
) {
    let params = match question(&request) {
        Ok(params) => params,
        Err(error) => {
            tracing::error!(%error, "cannot build the elicitation question");
            return;
        }
    };
    let answer = match peer.create_elicitation(params).await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(%error, request = %request.id, "elicitation failed; other channels decide");
            return;
        }
    };
    let content = answer.content.unwrap_or(Value::Null);
    let comment = content["comment"]
        .as_str()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    let decision = match answer.action {
        ElicitationAction::Accept => match content["decision"].as_str() {
            Some("approve") => VoteDecision::Approve,
            Some("decline") => VoteDecision::Decline,
            _ => {
                tracing::warn!(request = %request.id, "elicitation answer without a decision ignored");
                return;
            }
        },
        ElicitationAction::Decline => VoteDecision::Decline,
        _ => return,
    };
    let vote = VoteCast {
        comment,
        ..VoteCast::new(requester.clone(), decision)
    };
    match governor.decide(&requester, request.id, vote).await {
        Ok(_) => tracing::info!(request = %request.id, ?decision, "decided inline by elicitation"),
        Err(error) => {
            tracing::warn!(%error, request = %request.id, "the elicitation answer was not recorded");
        }
    }
}

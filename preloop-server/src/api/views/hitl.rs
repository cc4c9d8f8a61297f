//! The HITL API's answers, in Loopgate's shapes (its clients parse them): sessions, the answer
//! to a request, and requests as Loopgate lists them.

use chrono::{DateTime, Utc};
use preloop_core::approval::{ApprovalRequest, ApprovalState, VoteDecision};
use preloop_core::documents::HitlSession;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Loopgate's word for where a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(in crate::api) enum HitlStatus {
    /// Waiting for a human.
    Pending,
    /// Nobody answered in time.
    Timeout,
    /// Withdrawn.
    Canceled,
    /// Answered (approved or declined).
    Completed,
}

impl From<ApprovalState> for HitlStatus {
    fn from(state: ApprovalState) -> Self {
        match state {
            ApprovalState::Pending => Self::Pending,
            ApprovalState::Expired => Self::Timeout,
            ApprovalState::Cancelled => Self::Canceled,
            ApprovalState::Approved
            | ApprovalState::Declined
            | ApprovalState::Executing
            | ApprovalState::Executed
            | ApprovalState::Failed => Self::Completed,
        }
    }
}

/// The human's answer: the last vote's comment (the chosen option, for choices), else the
/// decision itself.
fn response_of(request: &ApprovalRequest) -> Option<String> {
    let vote = request.votes.last()?;
    Some(
        vote.comment
            .clone()
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| {
                match vote.decision {
                    VoteDecision::Approve => "approved",
                    VoteDecision::Decline => "declined",
                }
                .to_owned()
            }),
    )
}

/// Whether the human approved.
fn approved(request: &ApprovalRequest) -> bool {
    matches!(
        request.state,
        ApprovalState::Approved
            | ApprovalState::Executing
            | ApprovalState::Executed
            | ApprovalState::Failed
    )
}

/// Done, in words.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct Acknowledged {
    /// Always `true` (failures are errors).
    success: bool,
    /// What was done.
    message: String,
}

impl Acknowledged {
    /// Success, saying `message`.
    pub(in crate::api) fn new(message: &str) -> Self {
        Self {
            success: true,
            message: message.to_owned(),
        }
    }
}

/// A session was registered.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct Registered {
    /// Always `true` (failures are errors).
    success: bool,
    /// The session's id.
    session_id: String,
    /// What was done.
    message: String,
}

impl Registered {
    /// Session `session_id` registered.
    pub(in crate::api) fn new(session_id: String) -> Self {
        Self {
            success: true,
            session_id,
            message: "Session registered successfully".to_owned(),
        }
    }
}

/// A session.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct SessionView {
    /// The session id.
    id: String,
    /// The agent's client id.
    client_id: String,
    /// The Telegram user to notify, if given.
    telegram_id: Option<i64>,
    /// Whether it accepts requests.
    active: bool,
    /// When it was registered.
    created_at: DateTime<Utc>,
}

impl From<HitlSession> for SessionView {
    fn from(session: HitlSession) -> Self {
        Self {
            id: session.session_id,
            client_id: session.client_id,
            telegram_id: session.telegram_id,
            active: session.active,
            created_at: session.created_at,
        }
    }
}

/// A request is waiting for a human.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct Requested {
    /// Always `true` (failures are errors).
    success: bool,
    /// The id to poll.
    request_id: Uuid,
    /// `pending`.
    status: HitlStatus,
    /// When it was opened.
    created_at: DateTime<Utc>,
}

impl Requested {
    /// `request`, just held for a human.
    pub(in crate::api) fn new(request: &ApprovalRequest) -> Self {
        Self {
            success: true,
            request_id: request.id,
            status: HitlStatus::Pending,
            created_at: request.created_at,
        }
    }
}

/// Where a request stands, and the human's answer once there is one.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct PollAnswer {
    /// Where it is.
    status: HitlStatus,
    /// The answer (the chosen option or comment, else `approved` or `declined`); `null`
    /// before one.
    response: Option<String>,
    /// Whether the human approved.
    approved: bool,
    /// The request.
    request_id: Uuid,
    /// Whether it is no longer pending.
    completed: bool,
}

impl From<&ApprovalRequest> for PollAnswer {
    fn from(request: &ApprovalRequest) -> Self {
        let status = HitlStatus::from(request.state);
        Self {
            status,
            response: response_of(request),
            approved: approved(request),
            request_id: request.id,
            completed: status != HitlStatus::Pending,
        }
    }
}

/// A request in Loopgate's shape. Its fields come from the request's arguments as the HITL API
/// wrote them; for a request made otherwise (the `request_approval` tool over MCP) those it
/// lacks are `null`.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct HitlRequestView {
    /// The request id.
    id: Uuid,
    /// The session it was asked in.
    #[schema(value_type = Option<String>)]
    session_id: Option<Value>,
    /// The agent's client id.
    #[schema(value_type = Option<String>)]
    client_id: Option<Value>,
    /// What the human is asked.
    #[schema(value_type = Option<String>)]
    message: Option<Value>,
    /// `input`, `choice`, or what the agent said.
    #[schema(value_type = Option<String>)]
    request_type: Option<Value>,
    /// The options to choose from.
    #[schema(value_type = Option<Vec<String>>)]
    options: Option<Value>,
    /// The agent's metadata.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    /// Where the agent wants to be called back.
    #[schema(value_type = Option<String>)]
    callback_url: Option<Value>,
    /// How long the human has.
    #[schema(value_type = Option<u64>)]
    timeout_seconds: Option<Value>,
    /// Where it is.
    status: HitlStatus,
    /// Whether the human approved.
    approved: bool,
    /// The answer; `null` before one.
    response: Option<String>,
    /// When it was asked.
    created_at: DateTime<Utc>,
    /// When it was answered; `null` before.
    responded_at: Option<DateTime<Utc>>,
}

impl From<&ApprovalRequest> for HitlRequestView {
    fn from(request: &ApprovalRequest) -> Self {
        let arguments = request.effective_arguments();
        let field = |name: &str| arguments.get(name).cloned();
        let hitl = |name: &str| arguments.get("hitl").and_then(|h| h.get(name)).cloned();
        Self {
            id: request.id,
            session_id: hitl("session_id"),
            client_id: hitl("client_id"),
            message: field("operation"),
            request_type: hitl("request_type"),
            options: field("options"),
            metadata: field("metadata"),
            callback_url: hitl("callback_url"),
            timeout_seconds: hitl("timeout_seconds"),
            status: request.state.into(),
            approved: approved(request),
            response: response_of(request),
            created_at: request.created_at,
            responded_at: request.decided_at,
        }
    }
}

/// The pending requests the caller may see.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct PendingList {
    /// How many.
    count: usize,
    /// The requests.
    pending_requests: Vec<HitlRequestView>,
}

impl FromIterator<HitlRequestView> for PendingList {
    fn from_iter<I: IntoIterator<Item = HitlRequestView>>(iter: I) -> Self {
        let pending_requests: Vec<HitlRequestView> = iter.into_iter().collect();
        Self {
            count: pending_requests.len(),
            pending_requests,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use preloop_core::Principal;
    use preloop_core::approval::{
        ApprovalPolicy, NewApprovalRequest, RequestContext, RequestedTool, Vote,
    };
    use serde_json::json;

    fn request(arguments: Value) -> ApprovalRequest {
        ApprovalRequest::open(
            NewApprovalRequest {
                call_id: Uuid::new_v4(),
                requester: Principal::new("u-1", "org"),
                tool: RequestedTool {
                    exposed_name: "request_approval".to_owned(),
                    server: "preloop".to_owned(),
                    name: "request_approval".to_owned(),
                    input_schema: json!({"type": "object"}),
                },
                arguments,
                context: RequestContext::default(),
                policy: ApprovalPolicy::new("ops"),
                matched_rule: None,
            },
            Utc::now(),
        )
    }

    /// The shape the HITL API has always listed requests in.
    fn loopgate(request: &ApprovalRequest, status: &str, response: Option<&str>) -> Value {
        let arguments = request.effective_arguments();
        let hitl = arguments.get("hitl").cloned().unwrap_or(Value::Null);
        json!({
            "id": request.id,
            "session_id": hitl.get("session_id"),
            "client_id": hitl.get("client_id"),
            "message": arguments.get("operation"),
            "request_type": hitl.get("request_type"),
            "options": arguments.get("options"),
            "metadata": arguments.get("metadata"),
            "callback_url": hitl.get("callback_url"),
            "timeout_seconds": hitl.get("timeout_seconds"),
            "status": status,
            "approved": approved(request),
            "response": response,
            "created_at": request.created_at,
            "responded_at": request.decided_at,
        })
    }

    #[test]
    fn requests_keep_loopgates_shape() {
        let asked = request(json!({
            "operation": "deploy?",
            "options": ["yes", "no"],
            "metadata": {"env": "prod"},
            "hitl": {
                "session_id": "s-1",
                "client_id": "c-1",
                "request_type": "choice",
                "timeout_seconds": 300,
                "callback_url": null,
            },
        }));
        assert_eq!(
            serde_json::to_value(HitlRequestView::from(&asked)).unwrap(),
            loopgate(&asked, "pending", None)
        );
        assert_eq!(
            serde_json::to_value(Requested::new(&asked)).unwrap(),
            json!({"success": true, "request_id": asked.id, "status": "pending", "created_at": asked.created_at})
        );

        let mut answered = request(json!({"operation": "wipe the cache"}));
        answered.state = ApprovalState::Executed;
        answered.decided_at = Some(Utc::now());
        answered.votes.push(Vote {
            approver_id: "u-2".to_owned(),
            approver_email: None,
            decision: VoteDecision::Approve,
            comment: Some(" ".to_owned()),
            arguments_version: 0,
            edited_arguments: None,
            grant: None,
            at: Utc::now(),
        });
        assert_eq!(
            serde_json::to_value(HitlRequestView::from(&answered)).unwrap(),
            loopgate(&answered, "completed", Some("approved"))
        );
        assert_eq!(
            serde_json::to_value(PollAnswer::from(&answered)).unwrap(),
            json!({"status": "completed", "response": "approved", "approved": true, "request_id": answered.id, "completed": true})
        );
        let listed: PendingList = [HitlRequestView::from(&asked)].into_iter().collect();
        assert_eq!(
            serde_json::to_value(listed).unwrap(),
            json!({"count": 1, "pending_requests": [loopgate(&asked, "pending", None)]})
        );
    }

    #[test]
    fn statuses_are_loopgates_words() {
        for (state, word) in [
            (ApprovalState::Pending, "pending"),
            (ApprovalState::Expired, "timeout"),
            (ApprovalState::Cancelled, "canceled"),
            (ApprovalState::Declined, "completed"),
            (ApprovalState::Executed, "completed"),
        ] {
            assert_eq!(
                serde_json::to_value(HitlStatus::from(state)).unwrap(),
                json!(word)
            );
        }
    }

    #[test]
    fn sessions_and_acknowledgements_keep_their_shape() {
        let session = HitlSession {
            organization_id: "org".to_owned(),
            session_id: "s-1".to_owned(),
            client_id: "c-1".to_owned(),
            telegram_id: None,
            active: true,
            registered_by: "u-1".to_owned(),
            created_at: Utc::now(),
        };
        assert_eq!(
            serde_json::to_value(SessionView::from(session.clone())).unwrap(),
            json!({
                "id": "s-1",
                "client_id": "c-1",
                "telegram_id": null,
                "active": true,
                "created_at": session.created_at,
            })
        );
        assert_eq!(
            serde_json::to_value(Registered::new("s-1".to_owned())).unwrap(),
            json!({"success": true, "session_id": "s-1", "message": "Session registered successfully"})
        );
        assert_eq!(
            serde_json::to_value(Acknowledged::new("Done")).unwrap(),
            json!({"success": true, "message": "Done"})
        );
    }
}

//! A call held for approval, answered as a task (the 2026-07-28 tasks extension, SEP-2663) to
//! clients that declare the extension: instead of a request left blocking for minutes, or a
//! `pending_approval` text the agent must understand, the client gets a task it already knows
//! how to follow. The task is the approval request (`approval-{request id}`): it is `working`
//! while people decide (its status message says so), then carries the tool's result exactly as
//! the call would have returned it (a declined or expired call is a `completed` task whose
//! result is the error the agent would have read), `failed` when the tool's server refused the
//! call, or `cancelled` when the requester cancelled it (`tasks/cancel`). Every `tasks/*`
//! request is authorized as the approval request is: its requester, its approvers, admins.

use crate::gateway::calls::call_result;
use chrono::{DateTime, SecondsFormat, Utc};
use preloop_core::Principal;
use preloop_core::approval::{ApprovalRequest, ApprovalState};
use preloop_core::executor::ProtocolAnswer;
use preloop_core::governor::{Governor, GovernorError, Outcome};
use rmcp::ErrorData;
use rmcp::model::{
    CreateTaskResult, DetailedTask, GetTaskResult, JsonObject, Task, TaskPayload, TaskStatus,
};
use serde_json::Value;
use uuid::Uuid;

/// How the ids of these tasks start.
const PREFIX: &str = "approval-";

/// The task a call held for approval (`outcome`, pending) becomes; `None` for any other
/// outcome.
pub fn created(outcome: &Outcome) -> Option<CreateTaskResult> {
    let Outcome::PendingApproval {
        request_id,
        poll_after_seconds,
        expires_at,
        ..
    } = outcome
    else {
        return None;
    };
    let now = timestamp(Utc::now());
    let task = Task::new(task_id(*request_id), TaskStatus::Working, &now, &now)
        .with_status_message(waiting(*expires_at))
        .with_poll_interval_ms(poll_after_seconds.saturating_mul(1000));
    Some(CreateTaskResult::new(task))
}

/// `tasks/get`: the task as `principal` may see it (an approved call is run first, if it has
/// not run yet, as polling its approval does).
pub async fn get(
    governor: &Governor,
    principal: &Principal,
    task_id: &str,
) -> Result<GetTaskResult, ErrorData> {
    let id = request_id(task_id)?;
    let request = governor
        .approval_status(principal, id)
        .await
        .map_err(|error| task_error(task_id, error))?;
    Ok(GetTaskResult::new(detailed(
        &request,
        &governor.outcome(&request),
    )))
}

/// `tasks/cancel`: cancels the approval request, if `principal` may (its requester or an
/// admin); a task that has ended stays as it was.
pub async fn cancel(
    governor: &Governor,
    principal: &Principal,
    task_id: &str,
) -> Result<(), ErrorData> {
    let id = request_id(task_id)?;
    let request = governor
        .request(principal, id)
        .await
        .map_err(|error| task_error(task_id, error))?;
    if request.state != ApprovalState::Pending {
        return Ok(());
    }
    governor
        .cancel(
            principal,
            id,
            Some("cancelled by the client (tasks/cancel)".to_owned()),
        )
        .await
        .map(|_| ())
        .map_err(|error| task_error(task_id, error))
}

/// `tasks/update`: these tasks ask for no input, so there is nothing to update; the task must
/// be one `principal` may see.
pub async fn update(
    governor: &Governor,
    principal: &Principal,
    task_id: &str,
) -> Result<(), ErrorData> {
    let id = request_id(task_id)?;
    governor
        .request(principal, id)
        .await
        .map(|_| ())
        .map_err(|error| task_error(task_id, error))
}

fn task_id(request_id: Uuid) -> String {
    format!("{PREFIX}{request_id}")
}

/// The approval request a task id names.
fn request_id(task_id: &str) -> Result<Uuid, ErrorData> {
    task_id
        .strip_prefix(PREFIX)
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| unknown(task_id))
}

fn unknown(task_id: &str) -> ErrorData {
    ErrorData::invalid_params(format!("unknown task `{task_id}`"), None)
}

/// A request the principal may not see is as unknown as one that does not exist.
fn task_error(task_id: &str, error: GovernorError) -> ErrorData {
    match error {
        GovernorError::Store(error) => {
            tracing::error!(%error, "store failure reading a task");
            ErrorData::internal_error("the task cannot be read right now", None)
        }
        GovernorError::Forbidden(message) => ErrorData::invalid_request(message, None),
        _ => unknown(task_id),
    }
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn waiting(expires_at: DateTime<Utc>) -> String {
    format!(
        "waiting for a person to approve this call (until {})",
        timestamp(expires_at)
    )
}

/// The task of `request`, whose call's outcome is `outcome`.
fn detailed(request: &ApprovalRequest, outcome: &Outcome) -> DetailedTask {
    let created = timestamp(request.created_at);
    let updated = timestamp(request.decided_at.unwrap_or(request.created_at));
    let (payload, message) = match outcome {
        Outcome::PendingApproval { expires_at, .. } => {
            let message = match request.state {
                ApprovalState::Pending => waiting(*expires_at),
                _ => "approved; the call is running".to_owned(),
            };
            (TaskPayload::Working, Some(message))
        }
        Outcome::Cancelled { .. } => (TaskPayload::Cancelled, request.resolution.clone()),
        Outcome::Executed { output, .. } => match &output.protocol {
            Some(ProtocolAnswer::Refused(error)) => (
                TaskPayload::Failed {
                    error: object(error),
                },
                None,
            ),
            _ => (completed(outcome), None),
        },
        _ => (completed(outcome), Some(outcome.message())),
    };
    let mut task = Task::new(task_id(request.id), payload.status(), created, updated);
    task.status_message = message;
    DetailedTask::new(task, payload)
}

/// A `completed` task carrying the result the call would have returned.
fn completed(outcome: &Outcome) -> TaskPayload {
    let result = serde_json::to_value(call_result(outcome)).unwrap_or_default();
    TaskPayload::Completed {
        result: object(&result),
    }
}

fn object(value: &Value) -> JsonObject {
    value.as_object().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use preloop_core::approval::{
        ApprovalPolicy, NewApprovalRequest, RequestContext, RequestedTool,
    };
    use preloop_core::executor::ToolOutput;
    use serde_json::json;

    #[test]
    fn only_a_held_call_becomes_a_task_and_its_id_names_the_request() {
        let held_id = Uuid::new_v4();
        let held = Outcome::PendingApproval {
            call_id: Uuid::new_v4(),
            request_id: held_id,
            poll_after_seconds: 5,
            expires_at: Utc::now(),
        };
        let task = created(&held).unwrap();
        let wire = serde_json::to_value(&task).unwrap();
        assert_eq!(wire["resultType"], "task");
        assert_eq!(wire["status"], "working");
        assert_eq!(wire["pollIntervalMs"], 5000);
        let named = wire["taskId"].as_str().map(request_id);
        assert_eq!(named.and_then(Result::ok), Some(held_id));
        let ran = Outcome::Executed {
            call_id: Uuid::new_v4(),
            request_id: None,
            output: ToolOutput::text("done"),
        };
        assert!(created(&ran).is_none());
        assert!(request_id("approval-not-a-uuid").is_err());
        assert!(request_id(&held_id.to_string()).is_err());
    }

    /// A held request, then as its state moves on.
    fn request() -> ApprovalRequest {
        ApprovalRequest::open(
            NewApprovalRequest {
                call_id: Uuid::new_v4(),
                requester: Principal::new("agent", "org"),
                tool: RequestedTool {
                    exposed_name: "docs__lookup".into(),
                    server: "docs".into(),
                    name: "lookup".into(),
                    input_schema: json!({"type": "object"}),
                },
                arguments: json!({}),
                context: RequestContext::default(),
                policy: ApprovalPolicy::new("ops"),
                matched_rule: None,
            },
            Utc::now(),
        )
    }

    fn task(request: &ApprovalRequest) -> Value {
        let outcome = Outcome::of_request(request, std::time::Duration::from_secs(5));
        serde_json::to_value(GetTaskResult::new(detailed(request, &outcome))).unwrap()
    }

    #[test]
    fn the_task_follows_the_request_and_carries_what_the_call_would_have_returned() {
        let mut held = request();
        let waiting = task(&held);
        assert_eq!(waiting["status"], "working");
        assert!(
            waiting["statusMessage"]
                .as_str()
                .unwrap()
                .contains("approve")
        );
        assert_eq!(
            request_id(waiting["taskId"].as_str().unwrap()).unwrap(),
            held.id
        );

        held.state = ApprovalState::Executed;
        held.output = Some(ToolOutput::text("looked up"));
        let done = task(&held);
        assert_eq!(done["status"], "completed");
        assert_eq!(done["result"]["content"][0]["text"], "looked up");

        held.output = Some(ToolOutput::error_text("no such region"));
        let tool_error = task(&held);
        assert_eq!(
            tool_error["status"], "completed",
            "a tool error completes it"
        );
        assert_eq!(tool_error["result"]["isError"], true);

        held.output = Some(ToolOutput::protocol(ProtocolAnswer::Refused(
            json!({"code": -32602, "message": "bad region"}),
        )));
        let refused = task(&held);
        assert_eq!(refused["status"], "failed");
        assert_eq!(refused["error"]["message"], "bad region");

        held.state = ApprovalState::Declined;
        held.output = None;
        let declined = task(&held);
        assert_eq!(declined["status"], "completed");
        assert_eq!(declined["result"]["isError"], true);

        held.state = ApprovalState::Cancelled;
        assert_eq!(task(&held)["status"], "cancelled");
    }
}

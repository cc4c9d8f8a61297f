//! Tasks (the 2026-07-28 tasks extension, SEP-2663), for clients that declare the extension.
//!
//! A call held for approval is answered as a task: instead of a request left blocking for
//! minutes, or a `pending_approval` text the agent must understand, the client gets a task it
//! already knows how to follow. The task is the approval request (`approval-{request id}`): it
//! is `working` while people decide (its status message says so), then carries the tool's
//! result exactly as the call would have returned it (a declined or expired call is a
//! `completed` task whose result is the error the agent would have read), `failed` when the
//! tool's server refused the call, or `cancelled` when the requester cancelled it
//! (`tasks/cancel`). These are authorized as the approval request is: its requester, its
//! approvers, admins.
//!
//! A call an upstream runs as a task of its own (the client's declaration is passed on) is
//! passed through: the client follows it by an id the gateway seals (the upstream server and
//! its task id, bound to the principal: no one else can follow it, and it cannot be made up),
//! and every `tasks/*` request on it goes to that upstream with the upstream's own id.

use crate::gateway::calls::{Calls, call_result};
use crate::gateway::relay::{ClientView, LogFilter};
use crate::gateway::upstream::client::UpstreamServer;
use crate::gateway::upstream::eras::Era;
use crate::gateway::upstream::error::UpstreamError;
use chrono::{DateTime, SecondsFormat, Utc};
use preloop_core::Principal;
use preloop_core::approval::{ApprovalRequest, ApprovalState};
use preloop_core::executor::{ExecutionObserver, ProtocolAnswer};
use preloop_core::governor::{GovernorError, Outcome};
use rmcp::ErrorData;
use rmcp::model::{
    CancelTaskParams, CancelTaskRequest, ClientRequest, CreateTaskResult, DetailedTask,
    GetTaskParams, GetTaskRequest, GetTaskResult, JsonObject, TASKS_EXTENSION_ID, Task,
    TaskPayload, TaskStatus, UpdateTaskParams, UpdateTaskRequest,
};
use serde_json::{Value, json};
use std::sync::Arc;
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

/// The task an upstream created for the call (`outcome`), if it did.
pub fn of_upstream(outcome: &Outcome) -> Option<&Value> {
    match outcome {
        Outcome::Executed { output, .. } => match &output.protocol {
            Some(ProtocolAnswer::Task(created)) => Some(created),
            _ => None,
        },
        _ => None,
    }
}

/// The task `created` by the upstream of tool `exposed` for `principal`, as the client
/// follows it: under a sealed id.
pub async fn relayed(
    calls: &Calls,
    principal: &Principal,
    exposed: &str,
    created: &Value,
) -> Result<CreateTaskResult, ErrorData> {
    let server = server_of(calls, principal, exposed)
        .await
        .ok_or_else(|| ErrorData::internal_error("the task's upstream is gone", None))?;
    let mut created: CreateTaskResult = serde_json::from_value(created.clone()).map_err(|e| {
        ErrorData::internal_error(format!("the upstream's task is unreadable: {e}"), None)
    })?;
    created.task.task_id = upstream_task_id(calls, principal, server, &created.task.task_id);
    Ok(created)
}

/// `tasks/get`: the task as `principal` may see it (an approved call is run first, if it has
/// not run yet, as polling its approval does).
pub async fn get(
    calls: &Calls,
    principal: &Principal,
    task_id: &str,
) -> Result<GetTaskResult, ErrorData> {
    if let Some(upstream) = Upstream::of(calls, principal, task_id).await? {
        let request = ClientRequest::GetTaskRequest(GetTaskRequest::new(GetTaskParams::new(
            upstream.task_id.clone(),
        )));
        let mut result: GetTaskResult = upstream.ask(request).await?;
        result.task.task.task_id = task_id.to_owned();
        return Ok(result);
    }
    let governor = &calls.governor;
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
/// admin); a task that has ended stays as it was. An upstream's task is cancelled there.
pub async fn cancel(calls: &Calls, principal: &Principal, task_id: &str) -> Result<(), ErrorData> {
    if let Some(upstream) = Upstream::of(calls, principal, task_id).await? {
        let request = ClientRequest::CancelTaskRequest(CancelTaskRequest::new(
            CancelTaskParams::new(upstream.task_id.clone()),
        ));
        return upstream.ask::<Value>(request).await.map(|_| ());
    }
    let governor = &calls.governor;
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

/// `tasks/update`: an upstream's task gets the client's answers; a held call asks for no
/// input, so there is nothing to update, but the task must be one `principal` may see.
pub async fn update(
    calls: &Calls,
    principal: &Principal,
    params: UpdateTaskParams,
) -> Result<(), ErrorData> {
    let task_id = params.task_id.clone();
    if let Some(upstream) = Upstream::of(calls, principal, &task_id).await? {
        let mut params = params;
        params.task_id.clone_from(&upstream.task_id);
        let request = ClientRequest::UpdateTaskRequest(UpdateTaskRequest::new(params));
        return upstream.ask::<Value>(request).await.map(|_| ());
    }
    let task_id = task_id.as_str();
    let id = request_id(task_id)?;
    calls
        .governor
        .request(principal, id)
        .await
        .map(|_| ())
        .map_err(|error| task_error(task_id, error))
}

fn task_id(request_id: Uuid) -> String {
    format!("{PREFIX}{request_id}")
}

/// How the ids of upstreams' tasks start.
const UPSTREAM_PREFIX: &str = "upstream-";

fn upstream_task_id(calls: &Calls, principal: &Principal, server: Uuid, task_id: &str) -> String {
    let sealed = calls.continuations.seal_task(principal, server, task_id);
    format!("{UPSTREAM_PREFIX}{sealed}")
}

/// The upstream server running the tool `principal` calls `exposed`.
async fn server_of(calls: &Calls, principal: &Principal, exposed: &str) -> Option<Uuid> {
    let organization = &principal.organization_id;
    let server = match calls.governor.registry().get(organization, exposed) {
        Some(tool) => tool.descriptor.server.clone(),
        None => calls
            .upstreams
            .unlisted_tool(organization, exposed)
            .await?
            .descriptor
            .server
            .clone(),
    };
    calls
        .upstreams
        .of_organization(organization)
        .await
        .into_iter()
        .find(|running| running.document().name == server)
        .map(|running| running.document().id)
}

/// An upstream's task a client follows.
struct Upstream {
    server: Arc<UpstreamServer>,
    task_id: String,
}

impl Upstream {
    /// The upstream task `task_id` names, if it names one: `None` for a held call's task,
    /// unknown if it was not sealed for `principal` or its server is gone.
    async fn of(
        calls: &Calls,
        principal: &Principal,
        task_id: &str,
    ) -> Result<Option<Self>, ErrorData> {
        let Some(sealed) = task_id.strip_prefix(UPSTREAM_PREFIX) else {
            return Ok(None);
        };
        let (server, own) = calls
            .continuations
            .open_task(principal, sealed)
            .ok_or_else(|| unknown(task_id))?;
        let server = calls
            .upstreams
            .get(&principal.organization_id, server)
            .await
            .ok_or_else(|| unknown(task_id))?;
        Ok(Some(Self {
            server,
            task_id: own,
        }))
    }

    /// Sends `request` about the task to its upstream, as a client that follows tasks.
    async fn ask<R: serde::de::DeserializeOwned>(
        &self,
        request: ClientRequest,
    ) -> Result<R, ErrorData> {
        let follower: Arc<dyn ExecutionObserver> = Arc::new(ClientView {
            capabilities: json!({"extensions": {TASKS_EXTENSION_ID: {}}}),
            answers_later: true,
            tasks: true,
            logs: LogFilter::Nothing,
        });
        let answer = self
            .server
            .forward(request, Era::Modern, Some(&follower))
            .await
            .map_err(|error| match error {
                UpstreamError::Refused(error) => error,
                other => ErrorData::internal_error(other.to_string(), None),
            })?;
        serde_json::from_value(answer).map_err(|error| {
            ErrorData::internal_error(
                format!("the upstream's answer is unreadable: {error}"),
                None,
            )
        })
    }
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

//! One `tools/call`, however it arrived (rmcp's session worker in [`crate::gateway::server`]
//! or [`crate::gateway::fastpath`]): built-in tools answered here, every other call governed,
//! what happens meanwhile relayed to the caller ([`crate::gateway::relay`]), and the outcome
//! mapped to MCP: a result the agent can read, a tool server's refusal as the JSON-RPC error it
//! is, its questions as an `input_required` result ([`crate::gateway::continuations`]).

use crate::gateway::asking;
use crate::gateway::builtins::{self, GET_APPROVAL_STATUS, REQUEST_APPROVAL};
use crate::gateway::continuations::{Continuations, Round};
use crate::gateway::elicitation::Elicitation;
use crate::gateway::relay::{self, ClientView, Notify};
use crate::gateway::tasks;
use crate::gateway::upstream::Upstreams;
use crate::wire::convert;
use preloop_core::approval::RequestContext as ApprovalContext;
use preloop_core::executor::{ProtocolAnswer, ToolOutput};
use preloop_core::governor::{Governor, GovernorError, Outcome, ToolCall};
use preloop_core::{ClientInfo, Principal};
use rmcp::ErrorData;
use rmcp::RoleServer;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock as Content, ProgressToken,
};
use rmcp::service::Peer;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where one call's result and notifications go, and what its client asked of them.
pub struct Caller {
    /// The client's name and version.
    pub client: ClientInfo,
    /// The client's progress token: without one, no progress is reported.
    pub progress: Option<ProgressToken>,
    /// Where notifications go.
    pub notify: Arc<dyn Notify>,
    /// The client's peer when it can be asked inline ([`crate::gateway::elicitation`]).
    pub elicit: Option<Peer<RoleServer>>,
    /// What an upstream may know of it.
    pub view: ClientView,
    /// Cancelled when it cancels the call.
    pub cancel: CancellationToken,
}

fn to_result(output: &ToolOutput) -> CallToolResult {
    let unreadable = || {
        CallToolResult::error(vec![Content::text(
            "the tool returned an unreadable result",
        )])
    };
    match &output.protocol {
        None => convert::call_tool_result(output).unwrap_or_else(unreadable),
        Some(ProtocolAnswer::Refused(error)) => {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            CallToolResult::error(vec![Content::text(format!(
                "the tool's server refused the call: {message}"
            ))])
        }
        Some(ProtocolAnswer::InputRequired(_)) => CallToolResult::error(vec![Content::text(
            "the tool asked for input the client could not be asked here; call it again",
        )]),
        Some(ProtocolAnswer::Task(_)) => CallToolResult::error(vec![Content::text(
            "the tool's server runs the call as a task, which this client does not follow",
        )]),
    }
}

/// The upstream's own JSON-RPC error from a refusal (an internal error if it is not one).
fn refusal(error: &Value) -> ErrorData {
    serde_json::from_value(error.clone()).unwrap_or_else(|_| {
        ErrorData::internal_error("the tool's server refused the request", None)
    })
}

/// The MCP answer for an outcome: a protocol answer of the tool's server as it was (its
/// questions, with their state sealed for `round`, when the client takes them later; its
/// refusal as the JSON-RPC error it is), anything else a result ([`call_result`]).
fn outcome_response(
    outcome: &Outcome,
    sealing: Option<(&Continuations, Round<'_>)>,
    as_task: bool,
) -> Result<CallToolResponse, ErrorData> {
    if as_task && let Some(task) = tasks::created(outcome) {
        return Ok(CallToolResponse::Task(task));
    }
    if let Outcome::Executed { output, .. } = outcome {
        match (&output.protocol, sealing) {
            (Some(ProtocolAnswer::Refused(error)), _) => return Err(refusal(error)),
            (Some(ProtocolAnswer::InputRequired(result)), Some((continuations, round))) => {
                return continuations
                    .input_required(&round, result.clone())
                    .map(CallToolResponse::InputRequired);
            }
            _ => {}
        }
    }
    Ok(call_result(outcome).into())
}

fn json_result(value: &Value) -> CallToolResult {
    CallToolResult::success(vec![Content::text(value.to_string())])
}

/// The MCP result for an outcome: denials and failures are tool errors the agent can read;
/// a pending approval is a normal result telling the agent how to poll.
pub fn call_result(outcome: &Outcome) -> CallToolResult {
    match outcome {
        Outcome::Executed { output, .. } => to_result(output),
        Outcome::PendingApproval {
            request_id,
            poll_after_seconds,
            expires_at,
            ..
        } => json_result(&json!({
            "status": "pending_approval",
            "request_id": request_id,
            "poll_after_seconds": poll_after_seconds,
            "expires_at": expires_at,
            "message": outcome.message(),
        })),
        other => CallToolResult::error(vec![Content::text(other.message())]),
    }
}

/// Protocol errors for requests that cannot be served; everything else is a tool result.
fn protocol_error(error: GovernorError) -> Result<CallToolResult, ErrorData> {
    match error {
        GovernorError::UnknownTool(name) => Err(ErrorData::invalid_params(
            format!("unknown tool `{name}`"),
            None,
        )),
        GovernorError::InvalidArguments(message) => Err(ErrorData::invalid_params(message, None)),
        GovernorError::Store(error) => {
            tracing::error!(%error, "store failure during a tool call");
            Err(ErrorData::internal_error(
                "the server cannot record this call right now; it was not made",
                None,
            ))
        }
        other => Ok(CallToolResult::error(vec![Content::text(
            other.to_string(),
        )])),
    }
}

/// What a call needs of the gateway.
#[derive(Clone)]
pub struct Calls {
    /// Decides and runs them.
    pub governor: Arc<Governor>,
    /// Seals and opens the state of multi-round calls.
    pub continuations: Continuations,
    /// The upstreams, for the tools they do not list but take calls of.
    pub upstreams: Arc<Upstreams>,
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Calls")
    }
}

impl Calls {
    /// One `tools/call` (see [`call_tool`]).
    pub async fn call_tool(
        &self,
        principal: &Principal,
        caller: Caller,
        request: CallToolRequestParams,
    ) -> Result<CallToolResponse, ErrorData> {
        call_tool(self, principal, caller, request).await
    }
}

/// One `tools/call`, however it arrived (rmcp's session worker or [`crate::gateway::fastpath`]):
/// built-in tools answered here, every other call governed (a tool no upstream lists, by the
/// upstream that takes calls of tools it does not list, if one does), with its progress and
/// log messages sent to the `caller`; a round of a multi-round call carries the client's
/// answers, its state opened by the gateway.
async fn call_tool(
    calls: &Calls,
    principal: &Principal,
    caller: Caller,
    request: CallToolRequestParams,
) -> Result<CallToolResponse, ErrorData> {
    let Calls {
        governor,
        continuations,
        upstreams,
    } = calls;
    let Caller {
        client,
        progress,
        notify,
        elicit,
        view,
        cancel,
    } = caller;
    let arguments = Value::Object(request.arguments.unwrap_or_default());
    let name = request.name.as_ref();
    if name == GET_APPROVAL_STATUS {
        return approval_status(governor, principal, &arguments)
            .await
            .map(Into::into);
    }
    // What a client that takes questions later may be handed a sealed state for.
    let bound = view.answers_later.then(|| arguments.clone());
    let round = |arguments| Round {
        principal,
        method: "tools/call",
        name,
        arguments,
    };
    let answers = match (&bound, request.input_responses, request.request_state) {
        (_, None, None) => None,
        (Some(arguments), responses, state) => {
            continuations.answers(&round(arguments), responses, state)?
        }
        (None, _, _) => {
            return Err(ErrorData::invalid_params(
                "inputResponses and requestState belong to 2026-07-28 requests",
                None,
            ));
        }
    };
    let started = std::time::Instant::now();
    let as_task = view.tasks;
    let askable = view
        .capabilities
        .as_object()
        .is_some_and(|declared| !declared.is_empty());
    let (mut events, relay) = relay::relay(notify, progress, view, cancel);
    if askable {
        events = events.governing_questions(asking::Governance {
            governor: governor.clone(),
            principal: principal.clone(),
        });
    }
    let mut call = ToolCall::new(name, arguments)
        .with_client(client)
        .with_progress(match elicit {
            Some(peer) => Arc::new(Elicitation::new(
                events.clone(),
                peer,
                governor.clone(),
                principal.clone(),
            )),
            None => Arc::new(events.clone()),
        })
        .with_observer(Arc::new(events));
    call.answers = answers;
    // A client that follows tasks gets a held call as one, at once.
    call.no_wait |= as_task;
    let listed = governor
        .registry()
        .get(&principal.organization_id, name)
        .is_some_and(|tool| tool.is_visible_to(principal));
    let unlisted = match listed || name == REQUEST_APPROVAL {
        true => None,
        false => {
            upstreams
                .unlisted_tool(&principal.organization_id, name)
                .await
        }
    };
    let governed = async {
        if let Some(tool) = unlisted {
            governor.call_operation(principal, tool, call).await
        } else if name == REQUEST_APPROVAL {
            call.context = ApprovalContext {
                operation: string_field(&call.arguments, "operation"),
                context: string_field(&call.arguments, "context"),
                reasoning: string_field(&call.arguments, "reasoning"),
            };
            let policy = string_field(&call.arguments, "approval_policy");
            governor
                .request_approval(principal, call, policy.as_deref())
                .await
        } else {
            governor.call(principal, call).await
        }
    };
    match relay.run(governed).await {
        Ok(outcome) => {
            record(&outcome, started.elapsed());
            if as_task && let Some(created) = tasks::of_upstream(&outcome) {
                return tasks::relayed(calls, principal, name, created)
                    .await
                    .map(CallToolResponse::Task);
            }
            let sealing = bound
                .as_ref()
                .map(|arguments| (continuations, round(arguments)));
            outcome_response(&outcome, sealing, as_task)
        }
        Err(error) => {
            crate::metrics::tool_call("rejected");
            protocol_error(error).map(Into::into)
        }
    }
}

/// Counts an outcome, and the wait of calls that were held for approval.
fn record(outcome: &Outcome, took: Duration) {
    let label = match outcome {
        Outcome::Executed { .. } => "executed",
        Outcome::Denied { .. } => "denied",
        Outcome::PendingApproval { .. } => "pending_approval",
        Outcome::Declined { .. } => "declined",
        Outcome::Expired { .. } => "expired",
        Outcome::Cancelled { .. } => "cancelled",
        Outcome::Failed { .. } => "failed",
    };
    crate::metrics::tool_call(label);
    let held = matches!(
        outcome,
        Outcome::Executed {
            request_id: Some(_),
            ..
        } | Outcome::Failed {
            request_id: Some(_),
            ..
        } | Outcome::Declined { .. }
            | Outcome::Expired { .. }
            | Outcome::Cancelled { .. }
    );
    if held {
        crate::metrics::approval_wait(label, took);
    }
}

fn string_field(arguments: &Value, name: &str) -> Option<String> {
    arguments
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

async fn approval_status(
    governor: &Governor,
    principal: &Principal,
    arguments: &Value,
) -> Result<CallToolResult, ErrorData> {
    let id = arguments
        .get("request_id")
        .and_then(Value::as_str)
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .ok_or_else(|| {
            ErrorData::invalid_params("request_id must be the UUID of an approval request", None)
        })?;
    match governor.approval_status(principal, id).await {
        Ok(request) => {
            let report = builtins::status_report(&request);
            let outcome = governor.outcome(&request);
            Ok(match outcome {
                Outcome::Executed { output, .. } => {
                    let mut result = to_result(&output);
                    result.content.insert(0, Content::text(report.to_string()));
                    result
                }
                Outcome::PendingApproval { .. } => json_result(&report),
                _ => CallToolResult::error(vec![Content::text(report.to_string())]),
            })
        }
        Err(error) => protocol_error(error),
    }
}

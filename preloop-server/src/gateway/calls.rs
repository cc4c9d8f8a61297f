//! One `tools/call`, however it arrived (rmcp's session worker in [`crate::gateway::server`]
//! or [`crate::gateway::fastpath`]): built-in tools answered here, every other call governed,
//! what happens meanwhile relayed to the caller ([`crate::gateway::relay`]), and the outcome
//! mapped to MCP: a result the agent can read, a tool server's refusal as the JSON-RPC error it
//! is, its questions as an `input_required` result ([`crate::gateway::continuations`]).

use crate::gateway::asking;
use crate::gateway::builtins::{self, GET_APPROVAL_STATUS, REQUEST_APPROVAL};
use crate::gateway::continuations::{Continuations, Continued, Round};
use crate::gateway::elicitation::Elicitation;
use crate::gateway::parked::{self, Parked, RunningCall, Step};
use crate::gateway::relay::{self, ClientView, Notify};
use crate::gateway::tasks;
use crate::gateway::upstream::Upstreams;
use crate::wire::convert;
use preloop_core::approval::RequestContext as ApprovalContext;
use preloop_core::executor::{ProtocolAnswer, ToolOutput};
use preloop_core::governor::{Governor, GovernorError, Outcome, ToolCall};
use preloop_core::registry::RegisteredTool;
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
    /// The calls waiting for their clients' answers to their upstream's questions.
    pub parked: Parked,
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
/// answers, its state opened by the gateway. A 2026-07-28 client's call runs in a task of its
/// own, so that a session upstream's question can be answered in a later request
/// ([`crate::gateway::parked`]).
async fn call_tool(
    calls: &Calls,
    principal: &Principal,
    caller: Caller,
    request: CallToolRequestParams,
) -> Result<CallToolResponse, ErrorData> {
    let Caller {
        client,
        progress,
        notify,
        elicit,
        view,
        cancel,
    } = caller;
    let arguments = Value::Object(request.arguments.unwrap_or_default());
    let name = request.name.to_string();
    if name == GET_APPROVAL_STATUS {
        return approval_status(&calls.governor, principal, &arguments)
            .await
            .map(Into::into);
    }
    // What a client that takes questions later may be handed a sealed state for.
    let bound = view.answers_later.then(|| arguments.clone());
    let answers = match (&bound, request.input_responses, request.request_state) {
        (_, None, None) => None,
        (Some(bound), responses, state) => {
            let round = round(principal, &name, bound);
            match calls.continuations.answers(&round, responses, state)? {
                Some(Continued::Parked { call, responses }) => {
                    let mut running = calls.parked.take(call).ok_or_else(|| {
                        ErrorData::invalid_params(
                            "the call these answers continue is gone (it waited too long, or \
                             runs on another replica)",
                            None,
                        )
                    })?;
                    running.answer(responses.as_ref());
                    let finished = Finishing {
                        calls,
                        principal,
                        name: &name,
                        bound: Some(bound),
                        as_task: view.tasks,
                        started: std::time::Instant::now(),
                    };
                    return finished.step(running, &cancel).await;
                }
                Some(Continued::Upstream(answers)) => Some(answers),
                None => None,
            }
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
    let answers_later = view.answers_later;
    let askable = view
        .capabilities
        .as_object()
        .is_some_and(|declared| !declared.is_empty());
    // A 2026-07-28 client's call outlives its request when its upstream asks a question; it
    // is given up when the request is, while one waits for it.
    let (notify, questions, call_cancel) = if answers_later {
        let (deferring, questions) = parked::deferring(notify);
        (deferring, Some(questions), CancellationToken::new())
    } else {
        (notify, None, cancel.clone())
    };
    let (mut events, relay) = relay::relay(notify, progress, view, call_cancel.clone());
    if askable {
        events = events.governing_questions(asking::Governance {
            governor: calls.governor.clone(),
            principal: principal.clone(),
        });
    }
    let mut call = ToolCall::new(name.as_str(), arguments)
        .with_client(client)
        .with_progress(match elicit {
            Some(peer) => Arc::new(Elicitation::new(
                events.clone(),
                peer,
                calls.governor.clone(),
                principal.clone(),
            )),
            None => Arc::new(events.clone()),
        })
        .with_observer(Arc::new(events));
    call.answers = answers;
    // A client that follows tasks gets a held call as one, at once.
    call.no_wait |= as_task;
    let listed = calls
        .governor
        .registry()
        .get(&principal.organization_id, &name)
        .is_some_and(|tool| tool.is_visible_to(principal));
    let unlisted = match listed || name == REQUEST_APPROVAL {
        true => None,
        false => {
            calls
                .upstreams
                .unlisted_tool(&principal.organization_id, &name)
                .await
        }
    };
    let governed = relay.run(governed(
        calls.governor.clone(),
        principal.clone(),
        unlisted,
        call,
    ));
    let finishing = Finishing {
        calls,
        principal,
        name: &name,
        bound: bound.as_ref(),
        as_task,
        started,
    };
    match questions {
        Some(questions) => {
            let running = RunningCall::start(governed, questions, call_cancel);
            finishing.step(running, &cancel).await
        }
        None => finishing.finish(governed.await).await,
    }
}

/// The `round` a call's sealed state is bound to.
fn round<'a>(principal: &'a Principal, name: &'a str, arguments: &'a Value) -> Round<'a> {
    Round {
        principal,
        method: "tools/call",
        name,
        arguments,
    }
}

/// Governs `call`: as a tool the upstream does not list when `unlisted`, as an explicit
/// approval request for `request_approval`, else as a call of a registered tool.
async fn governed(
    governor: Arc<Governor>,
    principal: Principal,
    unlisted: Option<RegisteredTool>,
    mut call: ToolCall,
) -> Result<Outcome, GovernorError> {
    if let Some(tool) = unlisted {
        return governor.call_operation(&principal, tool, call).await;
    }
    if call.tool == REQUEST_APPROVAL {
        call.context = ApprovalContext {
            operation: string_field(&call.arguments, "operation"),
            context: string_field(&call.arguments, "context"),
            reasoning: string_field(&call.arguments, "reasoning"),
        };
        let policy = string_field(&call.arguments, "approval_policy");
        return governor
            .request_approval(&principal, call, policy.as_deref())
            .await;
    }
    governor.call(&principal, call).await
}

/// What a call's outcome becomes, for the client that made it.
struct Finishing<'a> {
    calls: &'a Calls,
    principal: &'a Principal,
    name: &'a str,
    /// The arguments a sealed state is bound to (2026-07-28 clients).
    bound: Option<&'a Value>,
    as_task: bool,
    started: std::time::Instant,
}

impl Finishing<'_> {
    /// Waits for the running call's next step while the client's request waits (`cancel`):
    /// its outcome, or its upstream's questions, answered `input_required` with the call
    /// parked until the client answers.
    async fn step(
        &self,
        mut running: RunningCall,
        cancel: &CancellationToken,
    ) -> Result<CallToolResponse, ErrorData> {
        // Questions the client left unanswered are asked again at once.
        if running.is_waiting() {
            let questions = running.pending();
            return self.park(running, questions);
        }
        let step = tokio::select! {
            step = running.step() => step,
            () = cancel.cancelled() => {
                running.cancel();
                return Err(ErrorData::invalid_request("the request was cancelled", None));
            }
        };
        match step {
            Step::Done(outcome) => self.finish(outcome).await,
            Step::Asked(questions) => self.park(running, questions),
        }
    }

    /// Parks the running call and answers the client with its `questions`.
    fn park(&self, running: RunningCall, questions: Value) -> Result<CallToolResponse, ErrorData> {
        let Some(bound) = self.bound else {
            running.cancel();
            return Err(ErrorData::internal_error(
                "a question reached a client that cannot take it",
                None,
            ));
        };
        let id = self.calls.parked.park(running);
        self.calls
            .continuations
            .parked(&round(self.principal, self.name, bound), id, questions)
            .map(CallToolResponse::InputRequired)
    }

    /// The MCP answer for the call's `outcome`.
    async fn finish(
        &self,
        outcome: Result<Outcome, GovernorError>,
    ) -> Result<CallToolResponse, ErrorData> {
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                crate::metrics::tool_call("rejected");
                return protocol_error(error).map(Into::into);
            }
        };
        record(&outcome, self.started.elapsed());
        if self.as_task
            && let Some(created) = tasks::of_upstream(&outcome)
        {
            return tasks::relayed(self.calls, self.principal, self.name, created)
                .await
                .map(CallToolResponse::Task);
        }
        let sealing = self.bound.map(|arguments| {
            (
                &self.calls.continuations,
                round(self.principal, self.name, arguments),
            )
        });
        outcome_response(&outcome, sealing, self.as_task)
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

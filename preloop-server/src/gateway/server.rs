//! The MCP endpoint's handler: `tools/list` and `tools/call` through the governor, the
//! upstreams' prompts, resources and completion ([`crate::gateway::offered`]), and the
//! session's log level.

use crate::gateway::builtins::{self, GET_APPROVAL_STATUS, REQUEST_APPROVAL};
use crate::gateway::elicitation::Elicitation;
use crate::gateway::offered::Offered;
use crate::gateway::relay::{self, LogFilter, Notify};
use crate::gateway::sessions::listeners::ToolListeners;
use crate::gateway::sessions::{self, Sessions};
use crate::wire::convert;
use preloop_core::approval::RequestContext as ApprovalContext;
use preloop_core::executor::ToolOutput;
use preloop_core::governor::{Governor, GovernorError, Outcome, ToolCall};
use preloop_core::{ClientInfo, Principal};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    ContentBlock as Content, GetPromptRequestParams, GetPromptResponse, Implementation,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProgressToken, ReadResourceRequestParams, ReadResourceResponse,
    ServerCapabilities, ServerConfig, SubscribeRequestParams, Tool, UnsubscribeRequestParams,
};
use rmcp::service::{Peer, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

tokio::task_local! {
    /// The principal of the HTTP request rmcp is handling, for [`PreloopMcp::get_tool`]: rmcp
    /// asks for a tool's schema (to check SEP-2243 `Mcp-Param-*` headers) without the request,
    /// but tool names are the caller's organization's. Set around rmcp by [`scope_principal`].
    static REQUEST_PRINCIPAL: Principal;
}

/// Middleware: runs the rest of the request with its principal in [`REQUEST_PRINCIPAL`].
pub async fn scope_principal(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match request.extensions().get::<Principal>().cloned() {
        Some(principal) => REQUEST_PRINCIPAL.scope(principal, next.run(request)).await,
        None => next.run(request).await,
    }
}

/// One MCP session's handler; cheap to create per session.
#[derive(Clone)]
pub struct PreloopMcp {
    governor: Arc<Governor>,
    offered: Offered,
    listeners: ToolListeners,
    sessions: Sessions,
}

impl std::fmt::Debug for PreloopMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreloopMcp")
    }
}

impl PreloopMcp {
    /// A handler over the governor and the upstreams' `offered` prompts and resources; the
    /// session is told of tool list changes through `listeners`, and what it asks of its
    /// notifications is kept in `sessions`.
    pub fn new(
        governor: Arc<Governor>,
        offered: Offered,
        listeners: ToolListeners,
        sessions: Sessions,
    ) -> Self {
        Self {
            governor,
            offered,
            listeners,
            sessions,
        }
    }

    /// The log messages the request's client wants: on 2026-07-28 those of the level its
    /// request names (none without one), before it those its session's `logging/setLevel` set.
    fn logs(&self, context: &RequestContext<RoleServer>) -> LogFilter {
        if is_modern(context) {
            return context
                .meta
                .log_level()
                .map_or(LogFilter::Nothing, LogFilter::at_least);
        }
        session_id(&context.extensions).map_or_else(LogFilter::default, |id| self.sessions.logs(id))
    }

    /// Remembers this session to tell it when its tools change.
    fn listen(&self, extensions: &rmcp::model::Extensions, peer: &Peer<RoleServer>) {
        let principal = extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>());
        if let (Some(principal), Some(session)) = (principal, session_id(extensions)) {
            self.listeners.listen(principal, session, peer.clone());
        }
    }

    /// Subscribes the session to `uri`'s updates (or unsubscribes it) at the upstream, and
    /// remembers it to pass the updates on.
    async fn subscribe(
        &self,
        context: &RequestContext<RoleServer>,
        uri: &str,
        subscribed: bool,
    ) -> Result<(), ErrorData> {
        let principal = principal(context)?;
        let session = session_id(&context.extensions).ok_or_else(|| {
            ErrorData::invalid_request("resources/subscribe needs an MCP session", None)
        })?;
        let exposed = self.offered.subscribe(&principal, uri, subscribed).await?;
        self.listen(&context.extensions, &context.peer);
        self.sessions.subscribe(session, &exposed, subscribed);
        Ok(())
    }
}

/// The MCP session the HTTP request belongs to, if any.
fn session_id(extensions: &rmcp::model::Extensions) -> Option<&str> {
    sessions::session_id(&extensions.get::<axum::http::request::Parts>()?.headers)
}

/// Whether the request is of the 2026-07-28 generation (or later): stateless, with its
/// protocol version, log level and capabilities in `_meta`.
fn is_modern(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|version| !version.has_initialize())
}

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
    /// The log messages it wants.
    pub logs: LogFilter,
    /// What an upstream may ask it during the call ([`crate::gateway::relay::askable`]).
    pub capabilities: Value,
}

/// The principal the auth layer put on the HTTP request.
fn principal(context: &RequestContext<RoleServer>) -> Result<Principal, ErrorData> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Principal>())
        .cloned()
        .ok_or_else(|| ErrorData::invalid_request("unauthenticated", None))
}

fn client(context: &RequestContext<RoleServer>) -> ClientInfo {
    context
        .peer
        .peer_info()
        .map_or_else(ClientInfo::default, |info| {
            ClientInfo::introduced(&info.client_info.name, &info.client_info.version)
        })
}

/// What an upstream may ask the client during a call: on a session, what its client declared
/// at its handshake; nothing on 2026-07-28, where servers ask no questions mid-request.
fn capabilities(context: &RequestContext<RoleServer>) -> Value {
    context
        .peer
        .peer_info()
        .filter(|_| !is_modern(context))
        .and_then(|info| serde_json::to_value(&info.capabilities).ok())
        .map_or_else(|| json!({}), |declared| relay::askable(&declared))
}

fn to_result(output: &ToolOutput) -> CallToolResult {
    convert::call_tool_result(output).unwrap_or_else(|| {
        CallToolResult::error(vec![Content::text(
            "the tool returned an unreadable result",
        )])
    })
}

fn json_result(value: &Value) -> CallToolResult {
    CallToolResult::success(vec![Content::text(value.to_string())])
}

/// The MCP result for an outcome: denials and failures are tool errors the agent can read;
/// a pending approval is a normal result telling the agent how to poll.
fn outcome_result(outcome: &Outcome) -> CallToolResult {
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

impl ServerHandler for PreloopMcp {
    #[allow(
        deprecated,
        reason = "MCP logging is deprecated (SEP-2577); the capability lets upstream logs through"
    )]
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_logging()
                .enable_completions()
                .enable_prompts()
                .enable_prompts_list_changed()
                .enable_resources()
                .enable_resources_list_changed()
                .enable_resources_subscribe()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
            .with_server_info(Implementation::new("preloop", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Tools are governed by Preloop: calls may be denied or held for human approval. \
                 When a result says pending_approval, poll get_approval_status with its request_id.",
            )
    }

    /// The tool the request's principal calls `name`, if it may see it (rmcp checks the
    /// request's `Mcp-Param-*` headers against its schema); none outside a request.
    fn get_tool(&self, name: &str) -> Option<Tool> {
        let principal = REQUEST_PRINCIPAL.try_with(Principal::clone).ok()?;
        let tool = self
            .governor
            .registry()
            .get(&principal.organization_id, name)
            .filter(|tool| tool.is_visible_to(&principal))?;
        convert::tool(&tool.descriptor)
    }

    async fn on_initialized(&self, context: rmcp::service::NotificationContext<RoleServer>) {
        self.listen(&context.extensions, &context.peer);
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let principal = principal(&context)?;
        self.listen(&context.extensions, &context.peer);
        let mut tools: Vec<Tool> = self
            .governor
            .list_tools(&principal)
            .iter()
            .filter_map(|t| convert::tool(&t.descriptor))
            .collect();
        tools.extend(convert::tool(&builtins::get_approval_status_descriptor()));
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let principal = principal(&context)?;
        let progress = context.meta.get_progress_token();
        let caller = Caller {
            client: client(&context),
            progress,
            notify: Arc::new(context.peer.clone()),
            elicit: crate::gateway::elicitation::supported(&context.peer)
                .then(|| context.peer.clone()),
            logs: self.logs(&context),
            capabilities: capabilities(&context),
        };
        call_tool(&self.governor, &principal, caller, request)
            .await
            .map(Into::into)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let principal = principal(&context)?;
        Ok(ListPromptsResult::with_all_items(
            self.offered.prompts(&principal).await,
        ))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let principal = principal(&context)?;
        self.offered
            .get_prompt(&principal, client(&context), request)
            .await
            .map(Into::into)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let principal = principal(&context)?;
        Ok(ListResourcesResult::with_all_items(
            self.offered.resources(&principal).await,
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let principal = principal(&context)?;
        Ok(ListResourceTemplatesResult::with_all_items(
            self.offered.templates(&principal).await,
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let principal = principal(&context)?;
        self.offered
            .read_resource(&principal, client(&context), request)
            .await
            .map(Into::into)
    }

    #[allow(
        deprecated,
        reason = "resources/subscribe is replaced by subscriptions/listen on 2026-07-28; earlier clients use it"
    )]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.subscribe(&context, &request.uri, true).await
    }

    #[allow(
        deprecated,
        reason = "resources/unsubscribe is replaced by subscriptions/listen on 2026-07-28; earlier clients use it"
    )]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.subscribe(&context, &request.uri, false).await
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let principal = principal(&context)?;
        self.offered.complete(&principal, request).await
    }

    #[allow(
        deprecated,
        reason = "MCP logging is deprecated (SEP-2577) but clients still use it"
    )]
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        principal(&context)?;
        let session = session_id(&context.extensions).ok_or_else(|| {
            ErrorData::invalid_request("logging/setLevel needs an MCP session", None)
        })?;
        self.sessions
            .set_logs(session, LogFilter::at_least(request.level));
        Ok(())
    }
}

/// One `tools/call`, however it arrived (rmcp's session worker or [`crate::gateway::fastpath`]):
/// built-in tools answered here, every other call governed, with its progress and log messages
/// sent to the `caller`.
pub async fn call_tool(
    governor: &Arc<Governor>,
    principal: &Principal,
    caller: Caller,
    request: CallToolRequestParams,
) -> Result<CallToolResult, ErrorData> {
    let Caller {
        client,
        progress,
        notify,
        elicit,
        logs,
        capabilities,
    } = caller;
    let arguments = Value::Object(request.arguments.unwrap_or_default());
    let name = request.name.as_ref();
    if name == GET_APPROVAL_STATUS {
        return approval_status(governor, principal, &arguments).await;
    }
    let started = std::time::Instant::now();
    let (events, relay) = relay::relay(notify, progress, logs, capabilities);
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
    let governed = async {
        if name == REQUEST_APPROVAL {
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
            Ok(outcome_result(&outcome))
        }
        Err(error) => {
            crate::metrics::tool_call("rejected");
            protocol_error(error)
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

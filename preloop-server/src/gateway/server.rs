//! The MCP endpoint's handler: `tools/list` and `tools/call` through the governor, the
//! upstreams' prompts, resources and completion ([`crate::gateway::offered`]), and the
//! session's log level.

use crate::gateway::builtins;
use crate::gateway::calls::{Caller, Calls};
use crate::gateway::offered::Offered;
use crate::gateway::relay::{self, ClientView, LogFilter};
use crate::gateway::sessions::listeners::ToolListeners;
use crate::gateway::sessions::{self, Sessions};
use crate::gateway::tasks;
use crate::wire::convert;
use preloop_core::{ClientInfo, Principal};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
    GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig,
    SubscribeRequestParams, Tool, UnsubscribeRequestParams,
};
use rmcp::model::{
    CancelTaskParams, GetTaskParams, GetTaskResult, SubscriptionFilter, UpdateTaskParams,
};
use rmcp::service::{Peer, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use std::sync::Arc;

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
    calls: Calls,
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
    /// A handler making `calls` and offering the upstreams' `offered` prompts and resources;
    /// the session is told of tool list changes through `listeners`, and what it asks of its
    /// notifications is kept in `sessions`.
    pub fn new(
        calls: Calls,
        offered: Offered,
        listeners: ToolListeners,
        sessions: Sessions,
    ) -> Self {
        Self {
            calls,
            offered,
            listeners,
            sessions,
        }
    }

    /// What an upstream may know of the request's client.
    fn client_view(&self, context: &RequestContext<RoleServer>) -> ClientView {
        let modern = is_modern(context);
        let tasks = modern
            && context
                .client_capabilities()
                .is_some_and(|declared| declared.supports_tasks());
        let mut capabilities = capabilities(context);
        // An upstream may run the call as a task too, which the gateway passes through.
        if tasks && let Some(capabilities) = capabilities.as_object_mut() {
            capabilities.insert(
                "extensions".to_owned(),
                json!({ rmcp::model::TASKS_EXTENSION_ID: {} }),
            );
        }
        ClientView {
            capabilities,
            answers_later: modern,
            tasks,
            logs: self.logs(context),
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

/// What an upstream may ask the client: on a session, what its client declared at its
/// handshake; on 2026-07-28, what the request declares (its questions come back as
/// `input_required` results).
fn capabilities(context: &RequestContext<RoleServer>) -> Value {
    let declared = if is_modern(context) {
        context
            .meta
            .client_capabilities()
            .and_then(|declared| serde_json::to_value(declared).ok())
    } else {
        context
            .peer
            .peer_info()
            .and_then(|info| serde_json::to_value(&info.capabilities).ok())
    };
    declared.map_or_else(|| json!({}), |declared| relay::askable(&declared))
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
                .enable_tasks()
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
            .calls
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
            .calls
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
            view: self.client_view(&context),
            cancel: context.ct.clone(),
        };
        self.calls.call_tool(&principal, caller, request).await
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
            .get_prompt(
                &principal,
                client(&context),
                self.client_view(&context),
                request,
            )
            .await
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
            .read_resource(
                &principal,
                client(&context),
                self.client_view(&context),
                request,
            )
            .await
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
        self.offered
            .complete(&principal, is_modern(&context), request)
            .await
    }

    /// A task: a call held for approval ([`crate::gateway::tasks`]).
    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let principal = principal(&context)?;
        tasks::get(&self.calls, &principal, &request.task_id).await
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let principal = principal(&context)?;
        tasks::update(&self.calls, &principal, request).await
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let principal = principal(&context)?;
        tasks::cancel(&self.calls, &principal, &request.task_id).await
    }

    /// Every kind of change the gateway tells of; rmcp narrows it to what was asked and what
    /// [`Self::get_info`] declares.
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.clone())
    }

    /// A 2026-07-28 client's `subscriptions/listen` stream: the changes of its organization's
    /// tools, prompts and resources, and the updates of the resources it named (subscribed at
    /// their upstreams for as long as it listens), until the client goes away.
    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let principal = principal(context.request_context())?;
        let mut changes = self.listeners.changes();
        let resources = context
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default();
        for uri in &resources {
            if let Err(error) = self.offered.subscribe(&principal, uri, true).await {
                tracing::debug!(%uri, %error, "no upstream subscription for a listen stream");
            }
        }
        loop {
            let change = tokio::select! {
                () = context.cancelled() => break,
                change = changes.recv() => change,
            };
            match change {
                Ok(change) if change.concerns(&principal.organization_id) => {
                    // What the client did not ask for is not sent (rmcp checks the filter).
                    let _ = context.sink().send(change.notification).await;
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a listen stream fell behind and missed changes");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
        for uri in &resources {
            let _ = self.offered.subscribe(&principal, uri, false).await;
        }
        Ok(())
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

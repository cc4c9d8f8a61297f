//! Prompts, resources and completion through the gateway: the organization's upstreams'
//! offerings listed under the names agents see ([`crate::gateway::upstream::offerings`]),
//! without those a policy rule denies the caller outright, and each `prompts/get` and
//! `resources/read` governed like a tool call ([`Governor::call_operation`]: the rules naming
//! prompts or resources decide it, the audit log records it) before it is forwarded to the
//! server that offers it.

use crate::gateway::continuations::{Continuations, Round};
use crate::gateway::relay::ClientView;
use crate::gateway::upstream::Upstreams;
use crate::gateway::upstream::caller::asks_for_input;
use crate::gateway::upstream::client::UpstreamServer;
use crate::gateway::upstream::eras::Era;
use crate::gateway::upstream::error::UpstreamError;
use preloop_core::executor::{
    ExecutionContext, ExecutionError, ExecutionObserver, InputAnswers, ProtocolAnswer,
    ToolExecutor, ToolOutput,
};
use preloop_core::governor::{Governor, GovernorError, Outcome, ToolCall};
use preloop_core::registry::{OperationKind, RegisteredTool, ToolDescriptor, ToolSource};
use preloop_core::{ClientInfo, Principal};
use rmcp::ErrorData;
#[allow(
    deprecated,
    reason = "resources/subscribe is legacy-only; Preloop's upstream sessions are legacy ones"
)]
use rmcp::model::{
    CacheScope, ClientRequest, CompleteRequest, CompleteRequestParams, CompleteResult,
    GetPromptRequest, GetPromptRequestParams, GetPromptResponse, GetPromptResult,
    InputRequiredResult, Prompt, ReadResourceRequest, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Reference, Resource, ResourceTemplate,
    SubscribeRequest, SubscribeRequestParams, UnsubscribeRequest, UnsubscribeRequestParams,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;

/// The upstreams' prompts and resources, governed.
#[derive(Clone)]
pub struct Offered {
    governor: Arc<Governor>,
    upstreams: Arc<Upstreams>,
    continuations: Continuations,
}

impl std::fmt::Debug for Offered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Offered")
    }
}

/// The server that offers a prompt or resource, and its own name for it.
struct Owner {
    server: Arc<UpstreamServer>,
    own: String,
}

impl Offered {
    /// The prompts and resources of `upstreams`, governed by `governor`; multi-round requests
    /// sealed by `continuations`.
    pub fn new(
        governor: Arc<Governor>,
        upstreams: Arc<Upstreams>,
        continuations: Continuations,
    ) -> Self {
        Self {
            governor,
            upstreams,
            continuations,
        }
    }

    /// Every prompt `principal` may get, under the names agents see.
    pub async fn prompts(&self, principal: &Principal) -> Vec<Prompt> {
        let mut prompts = Vec::new();
        for server in self.servers(principal).await {
            let naming = server.naming();
            for prompt in &server.offerings().prompts {
                let exposed = naming.prompt(&prompt.name);
                let descriptor = descriptor(&server, OperationKind::Prompt, &prompt.name, &exposed);
                let mut prompt = prompt.clone();
                prompt.name = exposed;
                prompts.push((descriptor, prompt));
            }
        }
        self.governor.visible_operations(principal, prompts)
    }

    /// Every listed resource `principal` may read, under the URIs agents see.
    pub async fn resources(&self, principal: &Principal) -> Vec<Resource> {
        let mut resources = Vec::new();
        for server in self.servers(principal).await {
            let naming = server.naming();
            for resource in &server.offerings().resources {
                let exposed = naming.uri(&resource.uri);
                let descriptor =
                    descriptor(&server, OperationKind::Resource, &resource.uri, &exposed);
                let mut resource = resource.clone();
                resource.uri = exposed;
                resources.push((descriptor, resource));
            }
        }
        self.governor.visible_operations(principal, resources)
    }

    /// Every resource template, under the URIs agents see.
    pub async fn templates(&self, principal: &Principal) -> Vec<ResourceTemplate> {
        let mut templates = Vec::new();
        for server in self.servers(principal).await {
            let naming = server.naming();
            templates.extend(server.offerings().templates.iter().map(|template| {
                let mut template = template.clone();
                template.uri_template = naming.uri(&template.uri_template);
                template
            }));
        }
        templates
    }

    /// Gets a prompt, governed; its embedded resources' URIs as agents see them. The
    /// upstream may ask the client questions first (2026-07-28): they come back with their
    /// state sealed.
    pub async fn get_prompt(
        &self,
        principal: &Principal,
        client: ClientInfo,
        view: ClientView,
        mut params: GetPromptRequestParams,
    ) -> Result<GetPromptResponse, ErrorData> {
        let exposed = params.name.clone();
        let owner = self
            .prompt_owner(principal, &exposed)
            .await
            .ok_or_else(|| {
                ErrorData::invalid_params(format!("unknown prompt `{exposed}`"), None)
            })?;
        let arguments = Value::Object(params.arguments.clone().unwrap_or_default());
        let round = Round {
            principal,
            method: "prompts/get",
            name: &exposed,
            arguments: &arguments,
        };
        let answers = self.continuations.upstream_answers(
            &round,
            params.input_responses.take(),
            params.request_state.take(),
        )?;
        params.name.clone_from(&owner.own);
        params.meta = None;
        let naming = owner.server.naming();
        let operation = Operation {
            kind: OperationKind::Prompt,
            exposed: &exposed,
            arguments: arguments.clone(),
            answers,
        };
        let request = Request::Prompt(params);
        let mut result = self
            .govern(principal, client, view, owner, operation, request)
            .await?;
        if asks_for_input(&result) {
            return self
                .input_required(&round, result)
                .map(GetPromptResponse::InputRequired);
        }
        if let Some(messages) = result.get_mut("messages").and_then(Value::as_array_mut) {
            for message in messages {
                if let Some(content) = message.get_mut("content") {
                    expose_content_uri(content, &|uri| naming.uri(uri));
                }
            }
        }
        decode::<GetPromptResult>(result).map(GetPromptResponse::Complete)
    }

    /// Reads a resource, governed; the contents' URIs as agents see them (questions first, as
    /// for prompts).
    pub async fn read_resource(
        &self,
        principal: &Principal,
        client: ClientInfo,
        view: ClientView,
        mut params: ReadResourceRequestParams,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let exposed = params.uri.clone();
        let owner = self.resource_owner(principal, &exposed).await?;
        let arguments = json!({"uri": exposed});
        let round = Round {
            principal,
            method: "resources/read",
            name: &exposed,
            arguments: &arguments,
        };
        let answers = self.continuations.upstream_answers(
            &round,
            params.input_responses.take(),
            params.request_state.take(),
        )?;
        params.uri.clone_from(&owner.own);
        params.meta = None;
        let naming = owner.server.naming();
        let operation = Operation {
            kind: OperationKind::Resource,
            exposed: &exposed,
            arguments: arguments.clone(),
            answers,
        };
        let request = Request::Resource(params);
        let mut result = self
            .govern(principal, client, view, owner, operation, request)
            .await?;
        if asks_for_input(&result) {
            return self
                .input_required(&round, result)
                .map(ReadResourceResponse::InputRequired);
        }
        if let Some(contents) = result.get_mut("contents").and_then(Value::as_array_mut) {
            for content in contents {
                expose_uri(content, &|uri| naming.uri(uri));
            }
        }
        let mut result: ReadResourceResult = decode(result)?;
        // What a read returns depends on who asks (rules decide it per principal): no shared
        // cache may keep it for others.
        if result.cache_scope.is_some() {
            result.cache_scope = Some(CacheScope::Private);
        }
        Ok(ReadResourceResponse::Complete(result))
    }

    /// An upstream's questions for the client, their state sealed for `round`.
    fn input_required(
        &self,
        round: &Round<'_>,
        result: Value,
    ) -> Result<InputRequiredResult, ErrorData> {
        self.continuations.input_required(round, result)
    }

    /// Subscribes to (or unsubscribes from) a resource's updates at its server, on the
    /// connection its notifications arrive on; the URI as agents see it.
    #[allow(
        deprecated,
        reason = "resources/subscribe is legacy-only; Preloop's upstream sessions are legacy ones"
    )]
    pub async fn subscribe(
        &self,
        principal: &Principal,
        uri: &str,
        subscribe: bool,
    ) -> Result<String, ErrorData> {
        let owner = self.resource_owner(principal, uri).await?;
        let exposed = owner.server.naming().uri(&owner.own);
        let request = if subscribe {
            ClientRequest::SubscribeRequest(SubscribeRequest::new(SubscribeRequestParams::new(
                owner.own,
            )))
        } else {
            ClientRequest::UnsubscribeRequest(UnsubscribeRequest::new(
                UnsubscribeRequestParams::new(owner.own),
            ))
        };
        owner
            .server
            .forward_on_notified(request)
            .await
            .map(|_| exposed)
            .map_err(upstream_error)
    }

    /// Completes a prompt's or a resource template's argument at the server that offers it
    /// (asked in the generation of the client, `modern` for 2026-07-28, where it can be);
    /// nothing for a reference nobody offers.
    pub async fn complete(
        &self,
        principal: &Principal,
        modern: bool,
        mut params: CompleteRequestParams,
    ) -> Result<CompleteResult, ErrorData> {
        let client = Era::of_client(modern);
        let (server, era) = match &mut params.r#ref {
            Reference::Prompt(prompt) => {
                let Some(owner) = self.prompt_owner(principal, &prompt.name).await else {
                    return Ok(CompleteResult::default());
                };
                let era = owner
                    .server
                    .route(OperationKind::Prompt, &owner.own, client);
                prompt.name = owner.own;
                (owner.server, era)
            }
            Reference::Resource(resource) => {
                let found = self
                    .servers(principal)
                    .await
                    .into_iter()
                    .find_map(|server| {
                        let naming = server.naming();
                        let own = server
                            .offerings()
                            .templates
                            .iter()
                            .map(|t| t.uri_template.clone())
                            .find(|own| naming.uri(own) == resource.uri || *own == resource.uri)?;
                        Some((server, own))
                    });
                let Some((server, own)) = found else {
                    return Ok(CompleteResult::default());
                };
                let era = server.route(OperationKind::Resource, &own, client);
                resource.uri = own;
                (server, era)
            }
            _ => return Ok(CompleteResult::default()),
        };
        params.meta = None;
        let request = ClientRequest::CompleteRequest(CompleteRequest::new(params));
        decode(
            server
                .forward(request, era, None)
                .await
                .map_err(upstream_error)?,
        )
    }

    async fn servers(&self, principal: &Principal) -> Vec<Arc<UpstreamServer>> {
        self.upstreams
            .of_organization(&principal.organization_id)
            .await
    }

    /// The server that offers the prompt agents call `exposed` (the first by server name).
    async fn prompt_owner(&self, principal: &Principal, exposed: &str) -> Option<Owner> {
        self.servers(principal)
            .await
            .into_iter()
            .find_map(|server| {
                let own = server.naming().own_prompt(exposed)?.to_owned();
                let offered = server.offerings().prompts.iter().any(|p| p.name == own);
                offered.then_some(Owner { server, own })
            })
    }

    /// The server of resource `uri`: the one whose prefix it carries, else one that lists it or
    /// has a template it matches, else the only server offering resources under their own URIs.
    async fn resource_owner(&self, principal: &Principal, uri: &str) -> Result<Owner, ErrorData> {
        let servers = self.servers(principal).await;
        let prefixed = servers.iter().find_map(|server| {
            let own = server.naming().own_uri(uri)?.to_owned();
            Some(Owner {
                server: server.clone(),
                own,
            })
        });
        let offering = || {
            servers
                .iter()
                .find(|server| server.offerings().offers_resource(uri))
        };
        let only_unprefixed = || {
            let mut unprefixed = servers.iter().filter(|server| {
                server.naming().keeps_names() && server.offerings().has_resources()
            });
            match (unprefixed.next(), unprefixed.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        };
        prefixed
            .or_else(|| {
                offering().or_else(only_unprefixed).map(|server| Owner {
                    server: server.clone(),
                    own: uri.to_owned(),
                })
            })
            .ok_or_else(|| {
                ErrorData::resource_not_found(
                    format!("no resource `{uri}`"),
                    Some(json!({"uri": uri})),
                )
            })
    }

    /// Decides `operation`, and if it may go ahead forwards `request` to its owner, in the
    /// generation of the client `view` describes where the owner offers it there; the
    /// upstream's result (finished, or its questions), or its own error.
    async fn govern(
        &self,
        principal: &Principal,
        client: ClientInfo,
        view: ClientView,
        owner: Owner,
        operation: Operation<'_>,
        request: Request,
    ) -> Result<Value, ErrorData> {
        let era = owner.server.route(
            operation.kind,
            &owner.own,
            Era::of_client(view.answers_later),
        );
        let tool = RegisteredTool::new(
            descriptor(&owner.server, operation.kind, &owner.own, operation.exposed),
            Arc::new(Forwarding {
                server: owner.server,
                request,
                era,
            }),
        );
        let mut call = ToolCall::new(operation.exposed, operation.arguments)
            .with_client(client)
            .with_observer(Arc::new(view));
        call.answers = operation.answers;
        match self.governor.call_operation(principal, tool, call).await {
            Ok(Outcome::Executed { output, .. }) => answer(output),
            Ok(other) => Err(ErrorData::invalid_request(other.message(), None)),
            Err(GovernorError::Store(error)) => {
                tracing::error!(%error, "store failure during a governed read");
                Err(ErrorData::internal_error(
                    "the server cannot record this request right now; it was not made",
                    None,
                ))
            }
            Err(error) => Err(ErrorData::invalid_request(error.to_string(), None)),
        }
    }
}

/// A prompt get or resource read to govern.
struct Operation<'a> {
    kind: OperationKind,
    /// Its name or URI as agents see it.
    exposed: &'a str,
    /// What the policy's `args` holds: the prompt's arguments, or the resource's URI.
    arguments: Value,
    /// The client's answers to an earlier round's questions.
    answers: Option<InputAnswers>,
}

/// The request to forward, under the upstream's own name.
#[derive(Clone)]
enum Request {
    Prompt(GetPromptRequestParams),
    Resource(ReadResourceRequestParams),
}

impl Request {
    /// The request, carrying `answers` when it continues an earlier round.
    fn with_answers(&self, answers: Option<&InputAnswers>) -> ClientRequest {
        let responses = answers
            .and_then(|a| a.responses.clone())
            .and_then(|responses| match responses {
                Value::Object(responses) => Some(responses.into_iter().collect()),
                _ => None,
            });
        let state = answers.and_then(|a| a.state.clone());
        match self.clone() {
            Self::Prompt(mut params) => {
                params.input_responses = responses;
                params.request_state = state;
                ClientRequest::GetPromptRequest(GetPromptRequest::new(params))
            }
            Self::Resource(mut params) => {
                params.input_responses = responses;
                params.request_state = state;
                ClientRequest::ReadResourceRequest(ReadResourceRequest::new(params))
            }
        }
    }
}

/// What the policy knows of a prompt or resource.
fn descriptor(
    server: &UpstreamServer,
    kind: OperationKind,
    own: &str,
    exposed: &str,
) -> ToolDescriptor {
    ToolDescriptor::new(&server.document().name, own, ToolSource::Upstream)
        .with_exposed_name(exposed)
        .with_kind(kind)
}

/// Forwards one request to its upstream in generation `era`: the result as the output's
/// structured content; the upstream's questions or its JSON-RPC error as the protocol answer
/// they are (so they reach the client as they were).
struct Forwarding {
    server: Arc<UpstreamServer>,
    request: Request,
    era: Era,
}

#[async_trait::async_trait]
impl ToolExecutor for Forwarding {
    async fn execute(
        &self,
        _tool: &ToolDescriptor,
        _arguments: Value,
        context: &ExecutionContext,
    ) -> Result<ToolOutput, ExecutionError> {
        let request = self.request.with_answers(context.answers.as_ref());
        let observer: Option<&Arc<dyn ExecutionObserver>> = context.observer.as_ref();
        match self.server.forward(request, self.era, observer).await {
            Ok(result) if asks_for_input(&result) => {
                Ok(ToolOutput::protocol(ProtocolAnswer::InputRequired(result)))
            }
            Ok(result) => Ok(ToolOutput::data(result)),
            Err(UpstreamError::Refused(error)) => {
                Ok(ToolOutput::protocol(ProtocolAnswer::Refused(json!(error))))
            }
            Err(UpstreamError::RequestTimeout { after }) => Err(ExecutionError::Timeout {
                seconds: after.as_secs(),
            }),
            Err(error) => Err(ExecutionError::Unavailable(format!(
                "`{}`: {error}",
                self.server.document().name
            ))),
        }
    }
}

/// The upstream's answer from a [`Forwarding`] output: its result or its questions, or its
/// own error.
fn answer(output: ToolOutput) -> Result<Value, ErrorData> {
    match output.protocol {
        Some(ProtocolAnswer::InputRequired(questions)) => Ok(questions),
        Some(ProtocolAnswer::Task(_)) => Err(ErrorData::internal_error(
            "the upstream answered with a task, which only tool calls may be",
            None,
        )),
        Some(ProtocolAnswer::Refused(error)) => {
            Err(serde_json::from_value(error).unwrap_or_else(|_| {
                ErrorData::internal_error("the upstream refused the request", None)
            }))
        }
        None => Ok(output.structured_content.unwrap_or_default()),
    }
}

/// An upstream's result, typed; complete unless it says otherwise (a result from a session
/// of an earlier protocol revision has no `resultType`, which 2026-07-28 clients require).
fn decode<R: DeserializeOwned>(mut result: Value) -> Result<R, ErrorData> {
    if let Some(object) = result.as_object_mut() {
        object
            .entry("resultType")
            .or_insert_with(|| Value::String("complete".to_owned()));
    }
    serde_json::from_value(result).map_err(|error| {
        ErrorData::internal_error(
            format!("the upstream's answer is unreadable: {error}"),
            None,
        )
    })
}

fn upstream_error(error: UpstreamError) -> ErrorData {
    match error {
        UpstreamError::Refused(error) => error,
        other => ErrorData::internal_error(other.to_string(), None),
    }
}

/// Rewrites the URI of an embedded resource or resource link (prompt message content).
fn expose_content_uri(content: &mut Value, expose: &dyn Fn(&str) -> String) {
    match content.get("type").and_then(Value::as_str) {
        Some("resource") => {
            if let Some(resource) = content.get_mut("resource") {
                expose_uri(resource, expose);
            }
        }
        Some("resource_link") => expose_uri(content, expose),
        _ => {}
    }
}

/// Rewrites `value.uri`, if it has one.
fn expose_uri(value: &mut Value, expose: &dyn Fn(&str) -> String) {
    if let Some(uri) = value.get_mut("uri")
        && let Some(own) = uri.as_str()
    {
        *uri = Value::String(expose(own));
    }
}

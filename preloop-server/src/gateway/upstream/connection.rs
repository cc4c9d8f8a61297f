//! An upstream server through rmcp's client, over stdio (a child process) or streamable HTTP:
//! connected when first needed and again after a failure, with the observers of calls in flight
//! kept by progress token so the upstream's notifications reach the call they concern.

use super::caller::{ToolRequest, UpstreamClient};
use super::egress::{Egress, child_environment};
use super::error::UpstreamError;
use super::http::parse_headers;
use super::observed::Observed;
use crate::wire::notifications::{Audience, audience, report};
use preloop_core::documents::{McpServer, McpTransport};
use preloop_core::executor::ExecutionObserver;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, CancelledNotification,
    CancelledNotificationParam, ClientRequest, ListToolsResult, PaginatedRequestParams,
    ProgressToken, ServerNotification, ServerResult,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, ServiceExt};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Mutex;

/// How long connecting (initialize handshake included) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Which of its lists a server says changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// Its tools.
    Tools,
    /// Its prompts.
    Prompts,
    /// Its resources or resource templates.
    Resources,
}

/// What to do when the server says something changed, apart from calls.
#[derive(Clone)]
pub struct Notices {
    /// One of its lists changed.
    pub lists_changed: Arc<dyn Fn(Listed) + Send + Sync>,
    /// A resource changed (its URI, the server's own).
    pub resource_updated: Arc<dyn Fn(&str) + Send + Sync>,
}

impl Notices {
    /// Acts on `notification`, if it says something changed.
    pub fn hear(&self, notification: &ServerNotification) {
        match notification {
            ServerNotification::ToolListChangedNotification(_) => {
                (self.lists_changed)(Listed::Tools);
            }
            ServerNotification::PromptListChangedNotification(_) => {
                (self.lists_changed)(Listed::Prompts);
            }
            ServerNotification::ResourceListChangedNotification(_) => {
                (self.lists_changed)(Listed::Resources);
            }
            ServerNotification::ResourceUpdatedNotification(update) => {
                (self.resource_updated)(&update.params.uri);
            }
            _ => {}
        }
    }
}

type Client = RunningService<RoleClient, Handler>;

/// Receives the upstream's notifications that concern the server rather than a call.
#[derive(Clone)]
pub struct Handler {
    notices: Notices,
}

impl std::fmt::Debug for Notices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notices")
    }
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handler")
    }
}

impl ClientHandler for Handler {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        (self.notices.lists_changed)(Listed::Tools);
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        (self.notices.lists_changed)(Listed::Prompts);
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        (self.notices.lists_changed)(Listed::Resources);
    }

    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        (self.notices.resource_updated)(&params.uri);
    }
}

/// rmcp's client of one upstream server.
pub struct RmcpConnection {
    server: McpServer,
    http: reqwest::Client,
    egress: Egress,
    handler: Handler,
    connection: Mutex<Option<Arc<Client>>>,
    /// Observers of calls in flight, by the progress token rmcp gave each request.
    in_flight: Mutex<HashMap<ProgressToken, Arc<dyn ExecutionObserver>>>,
}

impl std::fmt::Debug for RmcpConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RmcpConnection")
            .field("server", &self.server.name)
            .finish_non_exhaustive()
    }
}

impl RmcpConnection {
    /// A connection to `server` (not made yet), reaching it through `http` within what
    /// `egress` allows; `notices` hear what the server announces apart from calls.
    pub fn new(
        server: McpServer,
        http: reqwest::Client,
        egress: Egress,
        notices: Notices,
    ) -> Arc<Self> {
        Arc::new(Self {
            server,
            http,
            egress,
            handler: Handler { notices },
            connection: Mutex::new(None),
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    /// Passes a notification from the upstream to the call it concerns: progress to the call
    /// with that progress token, a log message (which names no request) to the call in flight
    /// when there is exactly one; with several, nobody can tell whose it is, and it goes to
    /// none (another session must not read it).
    pub(super) async fn observe(&self, notification: &ServerNotification) {
        let in_flight = self.in_flight.lock().await;
        let observer = match audience(notification) {
            Audience::Call(token) => in_flight.get(token).cloned(),
            Audience::Every if in_flight.len() == 1 => in_flight.values().next().cloned(),
            Audience::Every | Audience::Nobody => None,
        };
        drop(in_flight);
        if let Some(observer) = observer {
            report(&*observer, notification);
        }
    }

    /// The live connection, connecting first if there is none or it closed.
    pub async fn client(self: &Arc<Self>) -> Result<Arc<Client>, UpstreamError> {
        let mut connection = self.connection.lock().await;
        if let Some(client) = connection.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        let client = tokio::time::timeout(CONNECT_TIMEOUT, self.connect())
            .await
            .map_err(|_| UpstreamError::ConnectTimeout {
                after: CONNECT_TIMEOUT,
            })??;
        let client = Arc::new(client);
        *connection = Some(client.clone());
        Ok(client)
    }

    async fn connect(self: &Arc<Self>) -> Result<Client, UpstreamError> {
        self.egress.check_resolved(&self.server).await?;
        let handler = self.handler.clone();
        match &self.server.transport {
            McpTransport::Http { url, headers } => {
                let mut config = StreamableHttpClientTransportConfig::with_uri(url.clone());
                for (name, value) in parse_headers(headers)? {
                    let Some(name) = name else { continue };
                    let bearer = (name == reqwest::header::AUTHORIZATION)
                        .then(|| value.to_str().ok()?.strip_prefix("Bearer "))
                        .flatten();
                    match bearer {
                        // rmcp sends its own `Authorization` from this.
                        Some(token) => config.auth_header = Some(token.to_owned()),
                        None => {
                            config.custom_headers.insert(name, value);
                        }
                    }
                }
                let transport =
                    StreamableHttpClientTransport::with_client(self.http.clone(), config);
                handler
                    .serve(Observed::new(transport, Arc::downgrade(self)))
                    .await
                    .map_err(UpstreamError::client)
            }
            McpTransport::Stdio { command, args, env } => {
                let mut process = tokio::process::Command::new(command);
                // INVARIANT (no secret reaches a child): the server's own environment holds
                // SECRET_KEY; children get exactly their configuration's.
                process.args(args).env_clear().envs(child_environment(env));
                let transport =
                    TokioChildProcess::new(process).map_err(|source| UpstreamError::Spawn {
                        command: command.clone(),
                        source,
                    })?;
                handler
                    .serve(Observed::new(transport, Arc::downgrade(self)))
                    .await
                    .map_err(UpstreamError::client)
            }
        }
    }

    /// Calls a tool with `observer` registered under the request's progress token.
    async fn observed_call(
        self: &Arc<Self>,
        client: &Client,
        params: CallToolRequestParams,
        observer: Arc<dyn ExecutionObserver>,
    ) -> Result<CallToolResult, UpstreamError> {
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let observer_cancelled = observer.cancelled();
        let handle = {
            let mut in_flight = self.in_flight.lock().await;
            let handle = client
                .peer()
                .send_request_with_option(request, PeerRequestOptions::no_options())
                .await
                .map_err(UpstreamError::service)?;
            in_flight.insert(handle.progress_token.clone(), observer);
            handle
        };
        let registration = InFlight {
            connection: Arc::downgrade(self),
            token: Some(handle.progress_token.clone()),
        };
        let (peer, id) = (handle.peer.clone(), handle.id.clone());
        let response = tokio::select! {
            response = handle.await_response() => response,
            () = observer_cancelled => {
                let cancelled = CancelledNotification::new(CancelledNotificationParam::new(
                    Some(id),
                    Some("the caller cancelled the call".to_owned()),
                ));
                let _ = peer.send_notification(cancelled.into()).await;
                return Err(UpstreamError::Cancelled);
            }
        };
        drop(registration);
        match response.map_err(UpstreamError::service)? {
            ServerResult::CallToolResult(result) => Ok(result),
            _ => Err(UpstreamError::NotRelayed),
        }
    }

    /// Drops the connection so the next request reconnects.
    pub async fn disconnect(&self) {
        self.connection.lock().await.take();
    }
}

#[async_trait::async_trait]
impl UpstreamClient for Arc<RmcpConnection> {
    async fn list_tools_page(
        &self,
        cursor: Option<String>,
    ) -> Result<ListToolsResult, UpstreamError> {
        let client = self.client().await?;
        client
            .list_tools(Some(PaginatedRequestParams::default().with_cursor(cursor)))
            .await
            .map_err(UpstreamError::service)
    }

    /// With an observer, the request's progress token is registered before the request can be
    /// answered (the map stays locked while it is sent), so no notification is missed; it is
    /// removed when the call ends, however it ends.
    async fn call_tool(&self, call: ToolRequest) -> Result<Value, UpstreamError> {
        let client = self.client().await?;
        let params = CallToolRequestParams::new(call.name).with_arguments(call.arguments);
        let result = match call.observer {
            None => client
                .call_tool(params)
                .await
                .map_err(UpstreamError::service)?,
            Some(observer) => self.observed_call(&client, params, observer).await?,
        };
        serde_json::to_value(result).map_err(UpstreamError::Unreadable)
    }

    async fn forward(
        &self,
        request: ClientRequest,
        _observer: Option<&Arc<dyn ExecutionObserver>>,
    ) -> Result<Value, UpstreamError> {
        let client = self.client().await?;
        let result = client
            .send_request(request)
            .await
            .map_err(UpstreamError::service)?;
        serde_json::to_value(result).map_err(UpstreamError::Unreadable)
    }

    async fn reset(&self) {
        self.disconnect().await;
    }
}

/// Removes a call's observer when the call ends (also when its future is dropped on timeout).
struct InFlight {
    connection: Weak<RmcpConnection>,
    token: Option<ProgressToken>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let (Some(token), Some(connection)) = (self.token.take(), self.connection.upgrade()) else {
            return;
        };
        // `try_lock` is almost always free; otherwise remove it from a task.
        let removed = match connection.in_flight.try_lock() {
            Ok(mut in_flight) => {
                in_flight.remove(&token);
                true
            }
            Err(_) => false,
        };
        if !removed {
            tokio::spawn(async move {
                connection.in_flight.lock().await.remove(&token);
            });
        }
    }
}

//! A small MCP server for Preloop's end-to-end tests and load tools: tools that echo, add, fail,
//! sleep, stream progress, "delete" files and ask the client (sampling, elicitation, roots); a
//! prompt, two resources and a resource template. To 2026-07-28 requests it also lists
//! `confirm`, whose question comes back as an `input_required` result, and lists the tools
//! that ask during the call only to sessions; `hidden` takes calls
//! and is never listed; `slow` runs as a task for requests that declare the tasks extension
//! ([`tasks`]). Serves over stdio (`--stdio`) or streamable HTTP (`--http ADDR`, printing
//! `listening on http://ADDR/mcp`).

mod tasks;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ContentBlock,
    GetPromptRequestParams, GetPromptResponse, GetTaskParams, GetTaskResult, InputRequiredResult,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ReadResourceRequestParams,
    ReadResourceResponse, ServerCapabilities, ServerConfig, Tool,
};
#[allow(deprecated, reason = "exercises MCP logging, still in use")]
use rmcp::model::{LoggingLevel, LoggingMessageNotificationParam};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Value, json};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
struct TestUpstream;

fn tool(name: &str, description: &str, properties: Value, annotations: Value) -> Option<Tool> {
    serde_json::from_value(json!({
        "name": name,
        "description": description,
        "inputSchema": {"type": "object", "properties": properties},
        "annotations": annotations,
    }))
    .ok()
}

/// The sessions subscribed to resources, with the URI each subscribed to.
fn subscribers() -> std::sync::MutexGuard<'static, Vec<(String, rmcp::service::Peer<RoleServer>)>> {
    static SUBSCRIBERS: std::sync::Mutex<Vec<(String, rmcp::service::Peer<RoleServer>)>> =
        std::sync::Mutex::new(Vec::new());
    SUBSCRIBERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Tells the sessions subscribed to `uri` that it changed; how many were told.
async fn touch(uri: &str) -> usize {
    let peers: Vec<_> = subscribers()
        .iter()
        .filter(|(subscribed, _)| subscribed == uri)
        .map(|(_, peer)| peer.clone())
        .collect();
    let mut told = 0;
    for peer in peers {
        let param = rmcp::model::ResourceUpdatedNotificationParam::new(uri);
        told += usize::from(peer.notify_resource_updated(param).await.is_ok());
    }
    told
}

/// The text of resource `test://readme`.
const README: &str = "Read me first.";

/// A result written as MCP's JSON.
fn decoded<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ErrorData> {
    serde_json::from_value(value).map_err(|e| ErrorData::internal_error(e.to_string(), None))
}

fn number(arguments: &serde_json::Map<String, Value>, name: &str) -> f64 {
    arguments.get(name).and_then(Value::as_f64).unwrap_or(0.0)
}

impl ServerHandler for TestUpstream {
    fn get_info(&self) -> ServerConfig {
        #[allow(deprecated, reason = "exercises MCP logging, still in use")]
        let capabilities = ServerCapabilities::builder()
            .enable_logging()
            .enable_prompts()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_tools()
            .enable_tasks()
            .build();
        ServerConfig::new(capabilities)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let read_only = json!({"readOnlyHint": true});
        let tools = [
            tool(
                "echo",
                "Echo the text",
                json!({"text": {"type": "string"}}),
                read_only.clone(),
            ),
            tool(
                "add",
                "Add a and b",
                json!({"a": {"type": "number"}, "b": {"type": "number"}}),
                read_only.clone(),
            ),
            tool("fail", "Always fails", json!({}), read_only.clone()),
            tool(
                "crash",
                "Exit the server process in the middle of the call",
                json!({}),
                json!({}),
            ),
            tool(
                "sleep",
                "Sleep for ms milliseconds",
                json!({"ms": {"type": "integer"}}),
                read_only.clone(),
            ),
            tool(
                "slow",
                "Take ms milliseconds: as a task for a client that follows tasks",
                json!({"ms": {"type": "integer"}}),
                read_only.clone(),
            ),
            tool(
                "progress",
                "Report steps of progress",
                json!({"steps": {"type": "integer"}}),
                read_only.clone(),
            ),
            tool(
                "environment",
                "The names of the environment variables this server runs with",
                json!({}),
                read_only.clone(),
            ),
            tool(
                "record",
                "Append id to the file named by PRELOOP_TEST_RECORD (one line per execution)",
                json!({"id": {"type": "string"}}),
                json!({}),
            ),
            tool(
                "delete_file",
                "Pretend to delete a file",
                json!({"path": {"type": "string"}}),
                json!({"destructiveHint": true}),
            ),
            tool(
                "touch",
                "Tell the sessions subscribed to resource uri that it changed",
                json!({"uri": {"type": "string"}}),
                json!({}),
            ),
            tool(
                "lookup",
                "Look up a region (its argument mirrored in the Mcp-Param-Region header)",
                json!({"region": {"type": "string", "x-mcp-header": "Region"}}),
                read_only.clone(),
            ),
        ];
        // Tools that ask during the call work only in sessions; `confirm` asks the 2026 way.
        let by_generation = if is_modern(&context) {
            vec![tool(
                "confirm",
                "Ask the client's user for a name, as an input_required result",
                json!({"item": {"type": "string"}}),
                read_only,
            )]
        } else {
            vec![
                tool(
                    "ask_model",
                    "Ask the client's model for a word (sampling)",
                    json!({}),
                    read_only.clone(),
                ),
                tool(
                    "ask_user",
                    "Ask the client's user for a name (elicitation)",
                    json!({}),
                    read_only.clone(),
                ),
                tool("roots", "The client's roots", json!({}), read_only),
            ]
        };
        Ok(ListToolsResult::with_all_items(
            tools.into_iter().chain(by_generation).flatten().collect(),
        ))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        decoded(json!({"prompts": [{
            "name": "greeting",
            "description": "Greets someone, with the readme attached",
            "arguments": [{"name": "who", "required": true}],
        }]}))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if request.name != "greeting" {
            return Err(ErrorData::invalid_params("unknown prompt", None));
        }
        let who = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("who"))
            .and_then(Value::as_str)
            .unwrap_or("nobody");
        let result: rmcp::model::GetPromptResult = decoded(json!({"messages": [
            {"role": "user", "content": {"type": "text", "text": format!("Hello, {who}!")}},
            {"role": "user", "content": {"type": "resource", "resource":
                {"uri": "test://readme", "mimeType": "text/plain", "text": README}}},
        ]}))?;
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        decoded(json!({"resources": [
            {"uri": "test://readme", "name": "readme", "mimeType": "text/plain"},
            {"uri": "test://secret", "name": "secret", "mimeType": "text/plain"},
        ]}))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        decoded(json!({"resourceTemplates": [
            {"uriTemplate": "test://notes/{id}", "name": "note", "mimeType": "text/plain"},
        ]}))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let text = match request.uri.as_str() {
            "test://readme" => README.to_owned(),
            "test://secret" => "the secret".to_owned(),
            uri => match uri.strip_prefix("test://notes/") {
                Some(id) => format!("note {id}"),
                None => {
                    return Err(ErrorData::resource_not_found(
                        format!("no resource {uri}"),
                        None,
                    ));
                }
            },
        };
        let result: rmcp::model::ReadResourceResult = decoded(json!({"contents": [
            {"uri": request.uri, "mimeType": "text/plain", "text": text},
        ]}))?;
        Ok(result.into())
    }

    #[allow(deprecated, reason = "exercises resources/subscribe, still in use")]
    async fn subscribe(
        &self,
        request: rmcp::model::SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        subscribers().push((request.uri, context.peer));
        Ok(())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = request.arguments.clone().unwrap_or_default();
        let text = |t: String| Ok(CallToolResult::success(vec![ContentBlock::text(t)]).into());
        match request.name.as_ref() {
            "echo" => text(
                arguments
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            ),
            "add" => text((number(&arguments, "a") + number(&arguments, "b")).to_string()),
            "fail" => Ok(
                CallToolResult::error(vec![ContentBlock::text("this tool always fails")]).into(),
            ),
            "sleep" => {
                tokio::time::sleep(Duration::from_millis(number(&arguments, "ms") as u64)).await;
                text("slept".to_owned())
            }
            "slow" => {
                let took = Duration::from_millis(number(&arguments, "ms") as u64);
                let follows_tasks = context
                    .client_capabilities()
                    .is_some_and(|declared| declared.supports_tasks());
                if follows_tasks {
                    return Ok(CallToolResponse::Task(tasks::start(took)));
                }
                tokio::time::sleep(took).await;
                text(format!("slow done after {} ms", took.as_millis()))
            }
            "progress" => {
                let steps = number(&arguments, "steps") as u32;
                if let Some(token) = context.meta.get_progress_token() {
                    for step in 1..=steps {
                        let param = ProgressNotificationParam::new(token.clone(), f64::from(step))
                            .with_total(f64::from(steps));
                        let _ = context.peer.notify_progress(param).await;
                        #[allow(deprecated, reason = "exercises MCP logging, still in use")]
                        let log = LoggingMessageNotificationParam::new(
                            LoggingLevel::Info,
                            json!(format!("step {step} of {steps}")),
                        );
                        #[allow(deprecated, reason = "exercises MCP logging, still in use")]
                        let _ = context.peer.notify_logging_message(log).await;
                    }
                }
                text(format!("{steps} steps done"))
            }
            "crash" => std::process::exit(3),
            "environment" => {
                let mut names: Vec<String> = std::env::vars_os()
                    .map(|(name, _)| name.to_string_lossy().into_owned())
                    .collect();
                names.sort();
                text(json!(names).to_string())
            }
            "record" => {
                let id = arguments.get("id").and_then(Value::as_str).unwrap_or("?");
                match record(id) {
                    Ok(()) => text(format!("recorded {id}")),
                    Err(error) => Ok(CallToolResult::error(vec![ContentBlock::text(
                        error.to_string(),
                    )])
                    .into()),
                }
            }
            "delete_file" => text(format!(
                "deleted {}",
                arguments.get("path").and_then(Value::as_str).unwrap_or("?")
            )),
            "touch" => {
                let uri = arguments
                    .get("uri")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let told = touch(uri).await;
                text(format!("told {told}"))
            }
            "lookup" => text(format!(
                "region {}",
                arguments
                    .get("region")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            )),
            "confirm" if is_modern(&context) => confirm(&request),
            // Callable, never listed.
            "hidden" => text("the hidden tool ran".to_owned()),
            "ask_model" | "ask_user" | "roots" => {
                let answer = ask(&context, request.name.as_ref()).await?;
                text(answer.to_string())
            }
            other => Err(ErrorData::invalid_params(
                format!("unknown tool `{other}`"),
                None,
            )),
        }
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        tasks::get(&request.task_id)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        tasks::cancel(&request.task_id)
    }
}

/// Whether the request is of the 2026-07-28 generation (no session, its context in `_meta`).
fn is_modern(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|version| !version.has_initialize())
}

/// The state `confirm` hands out with its question, and wants back untouched.
const CONFIRM_STATE: &str = "confirm-state-1";

/// `confirm`: a first round asks for a name (with [`CONFIRM_STATE`]); a round answering it,
/// with that state, is confirmed by the name given.
fn confirm(request: &CallToolRequestParams) -> Result<CallToolResponse, ErrorData> {
    let name = request
        .input_responses
        .as_ref()
        .and_then(|responses| responses.get("name"))
        .and_then(|answer| answer["content"]["name"].as_str());
    match (name, request.request_state.as_deref()) {
        (Some(name), Some(CONFIRM_STATE)) => Ok(CallToolResult::success(vec![ContentBlock::text(
            format!("confirmed by {name}"),
        )])
        .into()),
        (Some(_), state) => Err(ErrorData::invalid_params(
            format!("requestState {state:?} is not the one handed out"),
            None,
        )),
        (None, _) => {
            let questions = decoded(json!({"name": {"method": "elicitation/create", "params": {
                "mode": "form",
                "message": "Who confirms?",
                "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}},
            }}}))?;
            Ok(CallToolResponse::InputRequired(InputRequiredResult::new(
                Some(questions),
                Some(CONFIRM_STATE.to_owned()),
            )))
        }
    }
}

/// The client's answer to the question tool `name` asks it, as JSON.
async fn ask(context: &RequestContext<RoleServer>, name: &str) -> Result<Value, ErrorData> {
    let failed = |error: rmcp::ServiceError| ErrorData::internal_error(error.to_string(), None);
    let answer = match name {
        "ask_model" => {
            let params = decoded(json!({
                "messages": [{"role": "user", "content": {"type": "text", "text": "A word?"}}],
                "maxTokens": 10,
            }))?;
            #[allow(deprecated, reason = "exercises sampling, still in use")]
            let answer = context.peer.create_message(params).await.map_err(failed)?;
            serde_json::to_value(answer)
        }
        "ask_user" => {
            let params = decoded(json!({
                "mode": "form",
                "message": "Your name?",
                "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}},
            }))?;
            let answer = context
                .peer
                .create_elicitation(params)
                .await
                .map_err(failed)?;
            serde_json::to_value(answer)
        }
        _ => {
            #[allow(deprecated, reason = "exercises roots, still in use")]
            let answer = context.peer.list_roots().await.map_err(failed)?;
            serde_json::to_value(answer)
        }
    };
    answer.map_err(|e| ErrorData::internal_error(e.to_string(), None))
}

/// Why this server stopped, or a `record` call failed.
#[derive(Debug, thiserror::Error)]
enum UpstreamError {
    /// `record` was called without a file to record into.
    #[error("PRELOOP_TEST_RECORD is not set")]
    NoRecordFile,
    /// A file or socket operation failed.
    #[error(transparent)]
    Io {
        /// The OS error.
        #[from]
        source: std::io::Error,
    },
    /// The stdio session did not start.
    #[error("{source}")]
    Initialize {
        /// rmcp's error.
        #[source]
        source: Box<rmcp::service::ServerInitializeError>,
    },
    /// The stdio session's task failed.
    #[error(transparent)]
    Session {
        /// The task's error.
        #[from]
        source: tokio::task::JoinError,
    },
    /// The arguments are not one of the two forms.
    #[error("usage: preloop-test-upstream --stdio | --http ADDR")]
    Usage,
}

/// Appends `id` as a line to the file named by `PRELOOP_TEST_RECORD`, durably (the fault tests
/// kill the gateway, not this server, but read the file right after).
fn record(id: &str) -> Result<(), UpstreamError> {
    use std::io::Write;
    let path = std::env::var("PRELOOP_TEST_RECORD").map_err(|_| UpstreamError::NoRecordFile)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // One write per line: calls run concurrently, and O_APPEND keeps single writes whole.
    file.write_all(format!("{id}\n").as_bytes())?;
    Ok(file.sync_data()?)
}

async fn run(args: Vec<String>) -> Result<(), UpstreamError> {
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["--stdio"] => {
            let service = TestUpstream
                .serve((tokio::io::stdin(), tokio::io::stdout()))
                .await
                .map_err(|source| UpstreamError::Initialize {
                    source: Box::new(source),
                })?;
            service.waiting().await?;
            Ok(())
        }
        ["--http", address] => {
            let service = StreamableHttpService::new(
                || Ok(TestUpstream),
                Arc::new(LocalSessionManager::default()),
                StreamableHttpServerConfig::default(),
            );
            let router = axum::Router::new().nest_service("/mcp", service);
            let listener = tokio::net::TcpListener::bind(address).await?;
            let local = listener.local_addr()?;
            println!("listening on http://{local}/mcp");
            // No Nagle delay: otherwise the end of each SSE response waits for the client's
            // delayed ACK (about 40 ms) and a pooled client stalls on every call.
            let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
                let _ = stream.set_nodelay(true);
            });
            Ok(axum::serve(listener, router).await?)
        }
        _ => Err(UpstreamError::Usage),
    }
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(std::env::args().skip(1).collect())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

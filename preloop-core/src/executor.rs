//! Running tools: the [`ToolExecutor`] trait the edges implement (upstream MCP servers, built-in
//! tools) and [`FnExecutor`] for an embedder's own closures.

use crate::registry::ToolDescriptor;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use uuid::Uuid;

/// The result of running a tool, in MCP's shape: content items, optional structured content, and
/// whether the tool itself reported an error (a tool error is a result, not a failure).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolOutput {
    /// MCP content items, e.g. `{"type": "text", "text": "..."}`.
    pub content: Vec<Value>,
    /// Structured content, when the tool returns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Value>,
    /// The tool reported an error (`isError: true`).
    #[serde(default)]
    pub is_error: bool,
    /// What the tool's server answered instead of a finished result, kept whole so the caller
    /// can pass it on: questions for the calling client, or a refusal of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<ProtocolAnswer>,
}

/// A tool server's answer that is not a finished result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolAnswer {
    /// The tool asks the calling client questions before it can finish (MCP's
    /// `input_required` result, as the server wrote it: `inputRequests` and `requestState`).
    /// The client answers them in a new call of the same tool carrying [`InputAnswers`].
    InputRequired(Value),
    /// The tool's server refused the request: its protocol error (MCP's JSON-RPC error
    /// object: `code`, `message`, `data`).
    Refused(Value),
    /// The tool's server runs the call as a task the calling client follows (MCP's
    /// `CreateTaskResult`, as the server wrote it); its result comes with the task.
    Task(Value),
}

/// The calling client's answers to the questions an earlier round of the same call asked
/// ([`ProtocolAnswer::InputRequired`]): MCP's `inputResponses` by question key, and the
/// `requestState` that round handed out, to be returned to the tool's server untouched.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputAnswers {
    /// The answers by question key (a JSON object), if the client gave any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responses: Option<Value>,
    /// The state the tool's server handed out with its questions, if it handed out any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl ToolOutput {
    /// A successful result with one text item.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            content: vec![serde_json::json!({"type": "text", "text": text.into()})],
            structured_content: None,
            is_error: false,
            protocol: None,
        }
    }

    /// The tool's server answered `answer` instead of a finished result (a refusal counts as
    /// an error).
    pub fn protocol(answer: ProtocolAnswer) -> Self {
        Self {
            content: Vec::new(),
            structured_content: None,
            is_error: matches!(answer, ProtocolAnswer::Refused(_)),
            protocol: Some(answer),
        }
    }

    /// A tool error with one text item.
    pub fn error_text(text: impl Into<String>) -> Self {
        Self {
            is_error: true,
            ..Self::text(text)
        }
    }

    /// A successful result carrying structured JSON (also rendered as a text item).
    pub fn json(value: Value) -> Self {
        Self {
            content: vec![serde_json::json!({"type": "text", "text": value.to_string()})],
            structured_content: Some(value),
            is_error: false,
            protocol: None,
        }
    }

    /// A result that is data for the caller to pass on, with no content of its own (an
    /// upstream's answer to a forwarded request, a client's answer to a question).
    pub fn data(value: Value) -> Self {
        Self {
            content: Vec::new(),
            structured_content: Some(value),
            is_error: false,
            protocol: None,
        }
    }

    /// The text of every text item, joined with newlines.
    pub fn joined_text(&self) -> String {
        self.content
            .iter()
            .filter_map(|item| item.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Why a tool could not be run at all (as opposed to a tool that ran and reported an error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExecutionError {
    /// The tool's server could not be reached or crashed.
    #[error("tool server unavailable: {0}")]
    Unavailable(String),
    /// The tool did not answer in time.
    #[error("tool call timed out after {seconds} s")]
    Timeout {
        /// The timeout that elapsed.
        seconds: u64,
    },
    /// The caller cancelled the call while the tool ran; its server was told.
    #[error("the caller cancelled the call")]
    Cancelled,
    /// Anything else the executor wants to report.
    #[error("{0}")]
    Other(String),
}

/// Why the calling client could not answer a question a tool asked it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AskError {
    /// Nobody can be asked (the call runs in the background, or the client did not declare
    /// the capability the question needs).
    #[error("the calling client cannot be asked `{method}`")]
    Unsupported {
        /// The question's method (`sampling/createMessage`, ...).
        method: String,
    },
    /// The client answered with an error (its JSON-RPC error object).
    #[error("the calling client refused: {0}")]
    Refused(Value),
    /// The client did not answer.
    #[error("the calling client did not answer: {0}")]
    Unanswered(String),
}

/// A pending answer of the calling client.
pub type Answer = futures::future::BoxFuture<'static, Result<Value, AskError>>;

/// Hears what a tool reports while it runs (an upstream MCP server's progress and log
/// notifications), to pass on to whoever made the call, and carries the questions the tool
/// asks that client (an MCP server's sampling, elicitation and roots requests).
pub trait ExecutionObserver: Send + Sync {
    /// The tool made progress (`progress` increases; `total` if known).
    fn progress(&self, progress: f64, total: Option<f64>, message: Option<&str>);
    /// The tool's server logged something (`level` as MCP names it: `info`, `warning`, ...).
    fn log(&self, level: &str, logger: Option<&str>, data: &Value);

    /// What the calling client declared it can be asked: its MCP client capabilities
    /// (`{"sampling": {}, "elicitation": {}, "roots": {}}`, or fewer); none by default.
    fn capabilities(&self) -> Value {
        Value::Object(serde_json::Map::new())
    }

    /// Whether the calling client takes the tool's questions in the result, to answer them in
    /// a later call ([`ProtocolAnswer::InputRequired`], MCP 2026-07-28), rather than during
    /// the call through [`ask`](Self::ask) (the default).
    fn answers_later(&self) -> bool {
        false
    }

    /// The least severe level of log messages the calling client wants from the tool (as MCP
    /// names levels: `debug`, `info`, ...), or `None` when it wants none (the default).
    fn log_level(&self) -> Option<String> {
        None
    }

    /// Resolves once the caller cancels the call (then the tool's server should be told and
    /// the call given up); never, by default.
    fn cancelled(&self) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(futures::future::pending())
    }

    /// The tool's server paused its answer and will go on after `resume_after` (an MCP server
    /// that closed its stream for the client to reconnect): a caller holding a connection open
    /// for the answer may do the same. Nothing by default.
    fn paused(&self, resume_after: std::time::Duration) {
        let _ = resume_after;
    }

    /// Asks the calling client request `method` with `params` on the tool's behalf, and
    /// gives its result. By default nobody can be asked.
    fn ask(&self, method: &str, params: Value) -> Answer {
        let _ = params;
        let method = method.to_owned();
        Box::pin(async move { Err(AskError::Unsupported { method }) })
    }

    /// [`ask`](Self::ask), for the tool server `server` (so the caller can govern and record
    /// whose question it is); by default the same as `ask`.
    fn ask_from(&self, server: &str, method: &str, params: Value) -> Answer {
        let _ = server;
        self.ask(method, params)
    }
}

/// What an executor knows about the call it runs.
#[derive(Clone)]
pub struct ExecutionContext {
    /// Id of the governed call (also in the audit log).
    pub call_id: Uuid,
    /// The approval request the call ran under, if it needed one.
    pub approval_request_id: Option<Uuid>,
    /// Id of the principal the call is made for.
    pub principal_id: String,
    /// Organization of the principal.
    pub organization_id: String,
    /// Where to report progress and logs while the tool runs (absent when nobody listens, e.g.
    /// for an approved call run in the background).
    pub observer: Option<Arc<dyn ExecutionObserver>>,
    /// The caller's answers to an earlier round's questions, when this call continues one.
    pub answers: Option<InputAnswers>,
}

impl std::fmt::Debug for ExecutionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutionContext")
            .field("call_id", &self.call_id)
            .field("approval_request_id", &self.approval_request_id)
            .field("principal_id", &self.principal_id)
            .field("organization_id", &self.organization_id)
            .field("observed", &self.observer.is_some())
            .field("answers", &self.answers.is_some())
            .finish()
    }
}

/// Runs a tool. Implemented by the server for upstream MCP servers and built-in tools, and by
/// embedders for their own tools.
#[async_trait]
pub trait ToolExecutor: Send + Sync {
    /// Runs `tool` with `arguments` once.
    async fn execute(
        &self,
        tool: &ToolDescriptor,
        arguments: Value,
        context: &ExecutionContext,
    ) -> Result<ToolOutput, ExecutionError>;
}

type ToolFn = dyn Fn(&ToolDescriptor, Value) -> Result<ToolOutput, ExecutionError> + Send + Sync;

/// A [`ToolExecutor`] backed by a synchronous closure.
pub struct FnExecutor {
    run: Box<ToolFn>,
}

impl FnExecutor {
    /// Wraps a closure.
    pub fn new(
        run: impl Fn(&ToolDescriptor, Value) -> Result<ToolOutput, ExecutionError>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Self { run: Box::new(run) }
    }
}

impl fmt::Debug for FnExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnExecutor")
    }
}

#[async_trait]
impl ToolExecutor for FnExecutor {
    async fn execute(
        &self,
        tool: &ToolDescriptor,
        arguments: Value,
        _context: &ExecutionContext,
    ) -> Result<ToolOutput, ExecutionError> {
        (self.run)(tool, arguments)
    }
}

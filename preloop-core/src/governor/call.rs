//! One tool call to govern, and what watches it wait.

use crate::approval::{ApprovalRequest, RequestContext};
use crate::executor::{ExecutionObserver, InputAnswers};
use crate::principal::ClientInfo;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Receives progress while a blocking call waits for approval (the server turns these into MCP
/// progress notifications so clients keep the request open).
pub trait ProgressSink: Send + Sync {
    /// Reports that the call is still waiting, `elapsed` after it started.
    fn waiting(&self, request: &ApprovalRequest, elapsed: Duration);

    /// The call was just held for `request` and is about to wait for it (once per call; e.g.
    /// to ask the caller's own user inline). The default does nothing.
    fn held(&self, request: &ApprovalRequest) {
        let _ = request;
    }
}

/// One tool call to govern.
#[derive(Clone)]
pub struct ToolCall {
    /// The tool's exposed name.
    pub tool: String,
    /// The arguments (a JSON object; `null` means none).
    pub arguments: Value,
    /// The client the call came through.
    pub client: ClientInfo,
    /// Why the agent makes the call, shown to approvers.
    pub context: RequestContext,
    /// Where to report progress while waiting for approval.
    pub progress: Option<Arc<dyn ProgressSink>>,
    /// Where the tool's own progress and logs go while it runs.
    pub observer: Option<Arc<dyn ExecutionObserver>>,
    /// Never wait for a decision: a held call returns `pending_approval` at once, whatever the
    /// approval policy's mode (for callers that poll, like the HITL API).
    pub no_wait: bool,
    /// Shortens (never lengthens) the approval policy's timeout for this call.
    pub approval_timeout: Option<Duration>,
    /// The caller's answers to the questions an earlier round of this call asked, passed to
    /// the tool with the arguments (and kept with an approval request until it runs).
    pub answers: Option<InputAnswers>,
}

impl std::fmt::Debug for ToolCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolCall")
            .field("tool", &self.tool)
            .field("arguments", &self.arguments)
            .field("client", &self.client)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl ToolCall {
    /// A call of `tool` with `arguments`.
    pub fn new(tool: impl Into<String>, arguments: Value) -> Self {
        Self {
            tool: tool.into(),
            arguments,
            client: ClientInfo::default(),
            context: RequestContext::default(),
            progress: None,
            observer: None,
            no_wait: false,
            approval_timeout: None,
            answers: None,
        }
    }

    /// Continues a call whose earlier round asked the caller questions, with their answers.
    #[must_use]
    pub fn with_answers(mut self, answers: InputAnswers) -> Self {
        self.answers = Some(answers);
        self
    }

    /// Sets where the tool's progress and logs go while it runs.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn ExecutionObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Returns `pending_approval` at once instead of waiting for a decision.
    #[must_use]
    pub fn without_waiting(mut self) -> Self {
        self.no_wait = true;
        self
    }

    /// Gives approvers at most `timeout` (the approval policy's timeout still bounds it).
    #[must_use]
    pub fn with_approval_timeout(mut self, timeout: Duration) -> Self {
        self.approval_timeout = Some(timeout);
        self
    }

    /// Sets the client.
    #[must_use]
    pub fn with_client(mut self, client: ClientInfo) -> Self {
        self.client = client;
        self
    }

    /// Sets the progress sink.
    #[must_use]
    pub fn with_progress(mut self, progress: Arc<dyn ProgressSink>) -> Self {
        self.progress = Some(progress);
        self
    }
}

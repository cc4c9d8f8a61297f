//! A tool server's questions to the calling client (sampling, elicitation, roots during a
//! call), governed like the calls themselves: each is a governed operation of kind `question`
//! (`Governor::call_operation`) named by its method, from its server, with its parameters as
//! the policy's `args`, so a rule can refuse sampling to one server (`questions =
//! ["sampling/*"]`, `servers = ["docs"]`) or look inside a question (`args.maxTokens`); and
//! the audit log records each one asked, refused or answered (not the answer itself). A rule
//! that would hold a question for approval refuses it, as for any operation nothing could run
//! once approved. The upstream hears a refusal as a JSON-RPC error.

use crate::gateway::relay::EventSink;
use preloop_core::Principal;
use preloop_core::executor::{
    Answer, AskError, ExecutionContext, ExecutionError, ExecutionObserver, ProtocolAnswer,
    ToolExecutor, ToolOutput,
};
use preloop_core::governor::{Governor, Outcome, ToolCall};
use preloop_core::registry::{OperationKind, RegisteredTool, ToolDescriptor, ToolSource};
use serde_json::{Value, json};
use std::sync::Arc;

/// Who governs the questions of one call, and for whom.
#[derive(Debug, Clone)]
pub struct Governance {
    /// Decides and records.
    pub governor: Arc<Governor>,
    /// The caller.
    pub principal: Principal,
}

/// Asks `method` with `params` of the client behind `sink`, for server `server`, if the
/// policy lets it.
pub fn ask(
    governance: Governance,
    sink: EventSink,
    server: &str,
    method: &str,
    params: Value,
) -> Answer {
    let descriptor = ToolDescriptor::new(server, method, ToolSource::Upstream)
        .with_exposed_name(method)
        .with_kind(OperationKind::Question);
    let question = RegisteredTool::new(descriptor, Arc::new(Asking(sink)));
    let call = ToolCall::new(method, params);
    Box::pin(async move {
        let Governance {
            governor,
            principal,
        } = governance;
        match governor.call_operation(&principal, question, call).await {
            Ok(Outcome::Executed { output, .. }) => match output.protocol {
                Some(ProtocolAnswer::Refused(error)) => Err(AskError::Refused(error)),
                _ => Ok(output.structured_content.unwrap_or_default()),
            },
            Ok(Outcome::Failed { error, .. }) => Err(AskError::Unanswered(error)),
            // Refused by a rule: the upstream hears why, as a client that said no.
            Ok(other) => Err(AskError::Refused(json!({
                "code": -1,
                "message": other.message(),
            }))),
            Err(error) => Err(AskError::Refused(json!({
                "code": -32603,
                "message": error.to_string(),
            }))),
        }
    })
}

/// Asks the question, once the policy allowed it.
struct Asking(EventSink);

#[async_trait::async_trait]
impl ToolExecutor for Asking {
    async fn execute(
        &self,
        tool: &ToolDescriptor,
        arguments: Value,
        _context: &ExecutionContext,
    ) -> Result<ToolOutput, ExecutionError> {
        match self.0.ask(&tool.name, arguments).await {
            Ok(answer) => Ok(ToolOutput::data(answer)),
            Err(AskError::Refused(error)) => {
                Ok(ToolOutput::protocol(ProtocolAnswer::Refused(error)))
            }
            Err(other) => Err(ExecutionError::Other(other.to_string())),
        }
    }
}

//! The executor of an upstream's tools: each call made in the generation the server and the
//! calling client share for the tool ([`super::eras`]), within the server's timeout and
//! concurrency bound; the server's questions put to a client of the earlier generation during
//! the call ([`super::rounds`]); its answer as the core's output, protocol answers (questions
//! for a 2026-07-28 client, refusals) kept whole.

use super::caller::{ToolRequest, UpstreamClient, asks_for_input, is_task};
use super::client::UpstreamServer;
use super::eras::Era;
use super::error::UpstreamError;
use super::modern::ModernCaller;
use super::rounds::answered_during_the_call;
use crate::wire::convert;
use preloop_core::executor::{
    Answer, ExecutionContext, ExecutionError, ExecutionObserver, ProtocolAnswer, ToolExecutor,
    ToolOutput,
};
use preloop_core::registry::{OperationKind, ToolDescriptor};
use serde_json::{Value, json};
use std::sync::Arc;

/// The client a request goes through: the server's session client, or its stateless one.
pub(super) enum Routed<'a> {
    Sessions(&'a dyn UpstreamClient),
    Modern(Arc<ModernCaller>),
}

impl Routed<'_> {
    pub(super) fn as_client(&self) -> &dyn UpstreamClient {
        match self {
            Self::Sessions(client) => *client,
            Self::Modern(modern) => &**modern,
        }
    }
}

/// Runs a tool on its upstream server.
pub(super) struct UpstreamExecutor {
    pub(super) server: Arc<UpstreamServer>,
}

impl UpstreamExecutor {
    /// Calls the tool in the generation the server and the calling client share for it; a
    /// client of the earlier generation is asked the questions of a 2026-07-28 upstream during
    /// the call ([`answered_during_the_call`]).
    async fn call(
        &self,
        tool: &ToolDescriptor,
        arguments: Value,
        context: &ExecutionContext,
    ) -> Result<Value, UpstreamError> {
        let observer = context.observer.as_ref();
        let answers_later = observer.is_some_and(|o| o.answers_later());
        let era = self.server.route(
            OperationKind::Tool,
            &tool.name,
            Era::of_client(answers_later),
        );
        let routed = self.server.client_in(era);
        let client = routed.as_client();
        let mut call = ToolRequest::new(
            tool.name.clone(),
            match arguments {
                Value::Object(arguments) => arguments,
                _ => serde_json::Map::new(),
            },
        );
        call.observer = context.observer.clone().map(|observer| {
            Arc::new(FromServer {
                inner: observer,
                server: tool.server.clone(),
            }) as Arc<dyn ExecutionObserver>
        });
        if let Routed::Modern(_) = routed {
            call.answers.clone_from(&context.answers);
            call.schema = match &tool.input_schema {
                Value::Object(schema) => Some(Arc::new(schema.clone())),
                _ => None,
            };
        }
        let first = client.call_tool(call.clone()).await?;
        match observer {
            Some(observer) if !answers_later && asks_for_input(&first) => {
                answered_during_the_call(&**observer, first, |answers| {
                    let mut again = call.clone();
                    again.answers = Some(answers);
                    client.call_tool(again)
                })
                .await
            }
            _ => Ok(first),
        }
    }
}

#[async_trait::async_trait]
impl ToolExecutor for UpstreamExecutor {
    async fn execute(
        &self,
        tool: &ToolDescriptor,
        arguments: Value,
        context: &ExecutionContext,
    ) -> Result<ToolOutput, ExecutionError> {
        let name = &self.server.document().name;
        let timeout = self.server.timeout();
        let started = std::time::Instant::now();
        let call = async {
            // Waiting for a free slot counts against the call's timeout.
            let _permit = self
                .server
                .permit()
                .await
                .map_err(|_| ExecutionError::Unavailable(format!("`{name}` was removed")))?;
            match self.call(tool, arguments, context).await {
                Ok(result) if asks_for_input(&result) => {
                    Ok(ToolOutput::protocol(ProtocolAnswer::InputRequired(result)))
                }
                Ok(result) if is_task(&result) => {
                    Ok(ToolOutput::protocol(ProtocolAnswer::Task(result)))
                }
                Ok(result) => serde_json::from_value(result)
                    .map_err(|e| e.to_string())
                    .and_then(|result| convert::tool_output(result).map_err(|e| e.to_string()))
                    .map_err(|e| {
                        ExecutionError::Other(format!("unreadable result from `{name}`: {e}"))
                    }),
                // Protocol errors stay protocol errors: the client gets the upstream's own.
                Err(UpstreamError::Refused(error)) => {
                    Ok(ToolOutput::protocol(ProtocolAnswer::Refused(json!(error))))
                }
                Err(UpstreamError::Cancelled) => Err(ExecutionError::Cancelled),
                Err(
                    error @ (UpstreamError::Unasked { .. } | UpstreamError::TooManyRounds { .. }),
                ) => Err(ExecutionError::Other(format!("`{name}`: {error}"))),
                Err(error) => {
                    // The client's connection or session is in doubt: its next request
                    // starts anew (an HTTP server's notification stream is not affected).
                    self.server.client().reset().await;
                    Err(ExecutionError::Unavailable(format!("`{name}`: {error}")))
                }
            }
        };
        let result =
            tokio::time::timeout(timeout, call)
                .await
                .unwrap_or(Err(ExecutionError::Timeout {
                    seconds: timeout.as_secs(),
                }));
        let label = match &result {
            Ok(_) => "ok",
            Err(ExecutionError::Timeout { .. }) => "timeout",
            Err(_) => "error",
        };
        crate::metrics::upstream_call(name, label, started.elapsed());
        result
    }
}

/// The call's observer, through which the server's questions are asked as that server's
/// ([`ExecutionObserver::ask_from`]: the caller governs and records them).
struct FromServer {
    inner: Arc<dyn ExecutionObserver>,
    server: String,
}

impl ExecutionObserver for FromServer {
    fn progress(&self, progress: f64, total: Option<f64>, message: Option<&str>) {
        self.inner.progress(progress, total, message);
    }

    fn log(&self, level: &str, logger: Option<&str>, data: &Value) {
        self.inner.log(level, logger, data);
    }

    fn capabilities(&self) -> Value {
        self.inner.capabilities()
    }

    fn answers_later(&self) -> bool {
        self.inner.answers_later()
    }

    fn log_level(&self) -> Option<String> {
        self.inner.log_level()
    }

    fn cancelled(&self) -> futures::future::BoxFuture<'static, ()> {
        self.inner.cancelled()
    }

    fn paused(&self, resume_after: std::time::Duration) {
        self.inner.paused(resume_after);
    }

    fn ask(&self, method: &str, params: Value) -> Answer {
        self.inner.ask_from(&self.server, method, params)
    }
}

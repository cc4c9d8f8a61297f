//! Relays what happens during one MCP `tools/call` to the client that made it: progress while it
//! waits for approval, the upstream tool's own progress and log messages, and the questions
//! the upstream asks the client meanwhile (sampling, elicitation, roots), with their answers.
//!
//! Notifications are sent from the request's own task, before its response: rmcp puts a progress
//! notification on the request's response stream only while that stream is open, so one sent
//! from another task after the result would reach the client late or not at all.

// MCP logging is deprecated by SEP-2577, but clients still use it and upstreams still send it.
#![allow(deprecated)]

use crate::gateway::asking;
use crate::wire::convert;
use preloop_core::approval::ApprovalRequest;
use preloop_core::executor::{Answer, AskError, ExecutionObserver};
use preloop_core::governor::ProgressSink;
use rmcp::RoleServer;
#[allow(
    deprecated,
    reason = "MCP logging is deprecated (SEP-2577) but clients still use it"
)]
use rmcp::model::{
    LoggingLevel, LoggingMessageNotification, LoggingMessageNotificationParam,
    ProgressNotification, ProgressNotificationParam, ProgressToken, ServerNotification,
    ServerRequest,
};
use rmcp::service::Peer;
use serde_json::{Value, json};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Why a notification did not reach the client.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// rmcp's session could not send it.
    #[error(transparent)]
    Session(#[from] rmcp::ServiceError),
    /// The fast path's response stream has ended (the client went away).
    #[error("the client's response stream is closed")]
    Closed,
}

/// Where a call's notifications and questions go: the rmcp session's peer, or the response
/// stream of a call served by the fast path ([`crate::gateway::fastpath`]).
#[async_trait::async_trait]
pub trait Notify: Send + Sync {
    /// Sends one notification to the calling client.
    async fn send(&self, notification: ServerNotification) -> Result<(), NotifyError>;

    /// Asks the calling client `request` and waits for its result.
    async fn ask(&self, request: ServerRequest) -> Result<Value, AskError>;

    /// Ends the client's connection for now, for it to come back after `retry` and hear the
    /// rest (mirroring an upstream that paused); where connections cannot be resumed, nothing.
    fn pause(&self, retry: Duration) {
        let _ = retry;
    }
}

#[async_trait::async_trait]
impl Notify for Peer<RoleServer> {
    async fn send(&self, notification: ServerNotification) -> Result<(), NotifyError> {
        Ok(self.send_notification(notification).await?)
    }

    async fn ask(&self, request: ServerRequest) -> Result<Value, AskError> {
        match self.send_request(request).await {
            Ok(result) => serde_json::to_value(result)
                .map_err(|error| AskError::Unanswered(error.to_string())),
            Err(rmcp::ServiceError::McpError(error)) => Err(AskError::Refused(
                serde_json::to_value(error).unwrap_or_default(),
            )),
            Err(other) => Err(AskError::Unanswered(other.to_string())),
        }
    }
}

/// The methods an upstream may ask the client during a call, with the client capability
/// each needs.
const QUESTIONS: [(&str, &str); 3] = [
    ("sampling/createMessage", "sampling"),
    ("elicitation/create", "elicitation"),
    ("roots/list", "roots"),
];

/// The part of a client's capabilities an upstream may use through Preloop: what it can be
/// asked during a call.
pub fn askable(capabilities: &Value) -> Value {
    let askable: serde_json::Map<String, Value> = QUESTIONS
        .iter()
        .filter_map(|(_, capability)| {
            let declared = capabilities.get(*capability)?;
            Some(((*capability).to_owned(), declared.clone()))
        })
        .collect();
    Value::Object(askable)
}

/// Which log messages a call's client receives.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum LogFilter {
    /// Every message (a session that never set a level).
    #[default]
    All,
    /// Messages of this level or more severe (`logging/setLevel`, or a 2026-07-28 request's
    /// `io.modelcontextprotocol/logLevel`).
    AtLeast(LoggingLevel),
    /// None (a 2026-07-28 request that asked for no level).
    Nothing,
}

impl LogFilter {
    /// Messages at `level` or more severe.
    pub fn at_least(level: LoggingLevel) -> Self {
        Self::AtLeast(level)
    }

    /// Whether a message at `level` goes through.
    fn passes(self, level: LoggingLevel) -> bool {
        match self {
            Self::All => true,
            Self::AtLeast(least) => convert::severity(level) >= convert::severity(least),
            Self::Nothing => false,
        }
    }

    /// The least severe level to ask an upstream for (every message: `debug`), or `None`
    /// for none.
    pub fn wanted(self) -> Option<&'static str> {
        match self {
            Self::All => Some(convert::level_name(LoggingLevel::Debug)),
            Self::AtLeast(least) => Some(convert::level_name(least)),
            Self::Nothing => None,
        }
    }
}

/// Something to tell (or ask) the client.
#[derive(Debug)]
enum Event {
    Ask {
        request: Box<ServerRequest>,
        answer: oneshot::Sender<Result<Value, AskError>>,
    },
    Progress {
        progress: f64,
        total: Option<f64>,
        message: Option<String>,
    },
    Log {
        level: String,
        logger: Option<String>,
        data: Value,
    },
    Paused(Duration),
}

/// What a tool's server may know of the calling client: what it can be asked, how it takes
/// questions, and the log messages it wants.
#[derive(Debug, Clone, Default)]
pub struct ClientView {
    /// What the client can be asked ([`askable`]).
    pub capabilities: Value,
    /// Whether it takes questions as `input_required` results (2026-07-28).
    pub answers_later: bool,
    /// Whether it follows tasks (it declared the 2026-07-28 tasks extension): a call held for
    /// approval is answered as one.
    pub tasks: bool,
    /// The log messages it wants.
    pub logs: LogFilter,
}

impl ExecutionObserver for ClientView {
    fn progress(&self, _progress: f64, _total: Option<f64>, _message: Option<&str>) {}

    fn log(&self, _level: &str, _logger: Option<&str>, _data: &Value) {}

    fn capabilities(&self) -> Value {
        self.capabilities.clone()
    }

    fn answers_later(&self) -> bool {
        self.answers_later
    }

    fn log_level(&self) -> Option<String> {
        self.logs.wanted().map(str::to_owned)
    }
}

/// Where the governor and the executor report events; cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct EventSink {
    events: mpsc::UnboundedSender<Event>,
    /// What the client is.
    client: Arc<ClientView>,
    /// Cancelled when the client cancels the call.
    cancel: CancellationToken,
    /// Who governs the questions tool servers ask the client ([`asking`]); none for a client
    /// that can be asked nothing.
    questions: Option<Arc<asking::Governance>>,
}

impl EventSink {
    /// The sink with the questions asked through it governed by `governance`.
    #[must_use]
    pub fn governing_questions(mut self, governance: asking::Governance) -> Self {
        self.questions = Some(Arc::new(governance));
        self
    }

    /// Whether the client declared the capability `method` needs.
    fn may_ask(&self, method: &str) -> bool {
        QUESTIONS.iter().any(|(m, capability)| {
            *m == method && self.client.capabilities.get(*capability).is_some()
        })
    }
}

impl ProgressSink for EventSink {
    fn waiting(&self, request: &ApprovalRequest, elapsed: Duration) {
        let _ = self.events.send(Event::Progress {
            progress: elapsed.as_secs_f64(),
            total: None,
            message: Some(format!(
                "waiting for approval of {} (request {})",
                request.tool.exposed_name, request.id
            )),
        });
    }
}

impl ExecutionObserver for EventSink {
    fn progress(&self, progress: f64, total: Option<f64>, message: Option<&str>) {
        let _ = self.events.send(Event::Progress {
            progress,
            total,
            message: message.map(str::to_owned),
        });
    }

    fn log(&self, level: &str, logger: Option<&str>, data: &Value) {
        let _ = self.events.send(Event::Log {
            level: level.to_owned(),
            logger: logger.map(str::to_owned),
            data: data.clone(),
        });
    }

    fn capabilities(&self) -> Value {
        self.client.capabilities.clone()
    }

    fn answers_later(&self) -> bool {
        self.client.answers_later
    }

    fn log_level(&self) -> Option<String> {
        self.client.log_level()
    }

    fn paused(&self, resume_after: Duration) {
        let _ = self.events.send(Event::Paused(resume_after));
    }

    fn cancelled(&self) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(self.cancel.clone().cancelled_owned())
    }

    /// Only the questions of [`QUESTIONS`] whose capability the client declared are passed
    /// on; each is asked from its own task, so the call's other events keep flowing.
    fn ask(&self, method: &str, params: Value) -> Answer {
        let request = self
            .may_ask(method)
            .then(|| {
                serde_json::from_value::<ServerRequest>(json!({"method": method, "params": params}))
                    .ok()
            })
            .flatten();
        let Some(request) = request else {
            let method = method.to_owned();
            return Box::pin(async move { Err(AskError::Unsupported { method }) });
        };
        let (answer, answered) = oneshot::channel();
        let sent = self.events.send(Event::Ask {
            request: Box::new(request),
            answer,
        });
        Box::pin(async move {
            if sent.is_err() {
                return Err(AskError::Unanswered("the call has ended".to_owned()));
            }
            answered
                .await
                .unwrap_or_else(|_| Err(AskError::Unanswered("the call has ended".to_owned())))
        })
    }

    /// A question the client can be asked is governed first ([`asking`]), when governed.
    fn ask_from(&self, server: &str, method: &str, params: Value) -> Answer {
        match &self.questions {
            Some(governance) if self.may_ask(method) => {
                asking::ask((**governance).clone(), self.clone(), server, method, params)
            }
            _ => self.ask(method, params),
        }
    }
}

/// Forwards a call's events to its client while the call runs.
pub struct Relay {
    notify: Arc<dyn Notify>,
    token: Option<ProgressToken>,
    logs: LogFilter,
    events: mpsc::UnboundedReceiver<Event>,
    progress: Monotonic,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// Keeps a token's progress values increasing, as MCP requires: the approval wait and then the
/// tool count from zero each, so when the values a source reports go down (a new source starts),
/// they are shifted past the last value sent; values that would not increase are dropped.
#[derive(Debug, Default)]
struct Monotonic {
    last_reported: Option<f64>,
    last_sent: Option<f64>,
    shift: f64,
}

impl Monotonic {
    /// The value to send for `progress`, or `None` if it would not increase.
    fn next(&mut self, progress: f64) -> Option<f64> {
        if self.last_reported.is_some_and(|last| progress < last) {
            self.shift = self.last_sent.unwrap_or_default();
        }
        self.last_reported = Some(progress);
        let value = progress + self.shift;
        if self.last_sent.is_some_and(|last| value <= last) {
            return None;
        }
        self.last_sent = Some(value);
        Some(value)
    }
}

/// A sink for the call's events and the relay that forwards them; `token` is the client's
/// progress token (without one, progress is not reported), `client` what the client is, and
/// `cancel` is cancelled when the client cancels the call.
pub fn relay(
    notify: Arc<dyn Notify>,
    token: Option<ProgressToken>,
    client: ClientView,
    cancel: CancellationToken,
) -> (EventSink, Relay) {
    let (sender, events) = mpsc::unbounded_channel();
    let relay = Relay {
        notify,
        token,
        logs: client.logs,
        events,
        progress: Monotonic::default(),
    };
    let sink = EventSink {
        events: sender,
        client: Arc::new(client),
        cancel,
        questions: None,
    };
    (sink, relay)
}

impl Relay {
    /// Runs `call`, forwarding its events as they come and those still queued when it ends,
    /// then returns its output.
    pub async fn run<F: Future>(mut self, call: F) -> F::Output {
        let mut call = pin!(call);
        let output = loop {
            tokio::select! {
                biased;
                output = &mut call => break output,
                Some(event) = self.events.recv() => self.forward(event).await,
            }
        };
        while let Ok(event) = self.events.try_recv() {
            self.forward(event).await;
        }
        output
    }

    async fn forward(&mut self, event: Event) {
        let notification = match event {
            Event::Paused(retry) => {
                self.notify.pause(retry);
                return;
            }
            Event::Ask {
                request,
                mut answer,
            } => {
                let notify = self.notify.clone();
                // The question is withdrawn when its asker stops waiting (the call timed out
                // or ended), so a client that never answers holds nothing.
                tokio::spawn(async move {
                    let answered = tokio::select! {
                        answered = notify.ask(*request) => answered,
                        () = answer.closed() => return,
                    };
                    let _ = answer.send(answered);
                });
                return;
            }
            Event::Progress {
                progress,
                total,
                message,
            } => {
                let Some(token) = self.token.clone() else {
                    return;
                };
                let Some(value) = self.progress.next(progress) else {
                    return;
                };
                let mut param = ProgressNotificationParam::new(token, value);
                param.total = total.map(|t| t + self.progress.shift);
                param.message = message;
                ServerNotification::ProgressNotification(ProgressNotification::new(param))
            }
            Event::Log {
                level,
                logger,
                data,
            } => {
                let level = convert::level(&level);
                if !self.logs.passes(level) {
                    return;
                }
                #[allow(
                    deprecated,
                    reason = "MCP logging is deprecated (SEP-2577) but clients still use it"
                )]
                let mut param = LoggingMessageNotificationParam::new(level, data);
                #[allow(
                    deprecated,
                    reason = "MCP logging is deprecated (SEP-2577) but clients still use it"
                )]
                {
                    param.logger = logger;
                }
                #[allow(
                    deprecated,
                    reason = "MCP logging is deprecated (SEP-2577) but clients still use it"
                )]
                ServerNotification::LoggingMessageNotification(LoggingMessageNotification::new(
                    param,
                ))
            }
        };
        if let Err(error) = self.notify.send(notification).await {
            tracing::debug!(%error, "notification not delivered to the client");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_keeps_increasing_when_a_new_source_starts_over() {
        let mut progress = Monotonic::default();
        let sent: Vec<Option<f64>> = [10.0, 20.0, 1.0, 2.0, 2.0, 3.0, 0.0]
            .into_iter()
            .map(|p| progress.next(p))
            .collect();
        assert_eq!(
            sent,
            [
                Some(10.0),
                Some(20.0),
                Some(21.0),
                Some(22.0),
                None,
                Some(23.0),
                None
            ]
        );
    }
}

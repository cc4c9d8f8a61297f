//! An upstream's notifications during a call, reported to the call's observer: progress (for
//! the call whose progress token it names) and log messages. Used by both upstream callers
//! (rmcp's connection and [`crate::gateway::upstream::http`]).

// MCP logging is deprecated by SEP-2577, but upstreams still send it.
#![allow(deprecated)]

use crate::wire::convert::level_name;
use preloop_core::executor::ExecutionObserver;
use rmcp::model::{ProgressToken, ServerNotification};

/// What a notification means to the calls in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience<'a> {
    /// Progress of the call with this progress token.
    Call(&'a ProgressToken),
    /// A log message, which names no request: on a call's own stream that call's; heard on a
    /// connection shared by calls, the only call in flight's (if there is one).
    Every,
    /// Nothing a call reports.
    Nobody,
}

impl Audience<'_> {
    /// Whether the call with progress token `token` is among the audience.
    pub fn includes(&self, token: &ProgressToken) -> bool {
        match self {
            Self::Call(of) => *of == token,
            Self::Every => true,
            Self::Nobody => false,
        }
    }
}

/// Whom `notification` concerns.
pub fn audience(notification: &ServerNotification) -> Audience<'_> {
    match notification {
        ServerNotification::ProgressNotification(progress) => {
            Audience::Call(&progress.params.progress_token)
        }
        ServerNotification::LoggingMessageNotification(_) => Audience::Every,
        _ => Audience::Nobody,
    }
}

/// Reports `notification` to `observer` (progress or a log message; anything else is not a
/// call's to report).
pub fn report(observer: &dyn ExecutionObserver, notification: &ServerNotification) {
    match notification {
        ServerNotification::ProgressNotification(progress) => {
            let params = &progress.params;
            observer.progress(params.progress, params.total, params.message.as_deref());
        }
        ServerNotification::LoggingMessageNotification(log) => {
            let params = &log.params;
            observer.log(
                level_name(params.level),
                params.logger.as_deref(),
                &params.data,
            );
        }
        _ => {}
    }
}

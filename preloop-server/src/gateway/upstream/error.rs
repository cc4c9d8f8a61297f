//! Why talking to an upstream MCP server failed, as one type for both transports.

use super::http::MAX_ANSWER_BYTES;
use crate::gateway::upstream::egress::EgressError;
use preloop_core::registry::RegistryError;
use std::time::Duration;

/// Why an upstream call, listing or connection failed. Texts never carry an HTTP error's body
/// (it could be an internal service's page, echoed to whoever asked for the scan).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The organization may not run or reach this server.
    #[error(transparent)]
    Egress(#[from] EgressError),
    /// A configured header's name is not a valid HTTP header name.
    #[error("header `{name}`: {source}")]
    HeaderName {
        /// The name as configured.
        name: String,
        /// What is wrong with it.
        #[source]
        source: reqwest::header::InvalidHeaderName,
    },
    /// A configured header's value is not a valid HTTP header value.
    #[error("header `{name}` value: {source}")]
    HeaderValue {
        /// The header's name.
        name: String,
        /// What is wrong with the value.
        #[source]
        source: reqwest::header::InvalidHeaderValue,
    },
    /// The stdio server's program could not be started.
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        /// The program.
        command: String,
        /// Why it did not start.
        #[source]
        source: std::io::Error,
    },
    /// The connection, handshake included, took too long.
    #[error("connecting timed out after {} s", .after.as_secs())]
    ConnectTimeout {
        /// How long it was given.
        after: Duration,
    },
    /// Listing the tools took longer than the server's timeout.
    #[error("listing tools timed out")]
    ListTimeout,
    /// A request took longer than the server's timeout.
    #[error("the upstream did not answer within {} s", .after.as_secs())]
    RequestTimeout {
        /// How long it was given.
        after: Duration,
    },
    /// rmcp's client failed (transport or protocol); the text is stripped of response bodies.
    #[error("{0}")]
    Client(String),
    /// The HTTP exchange failed.
    #[error("{0}")]
    Http(#[source] reqwest::Error),
    /// The upstream answered with an HTTP error status.
    #[error("the upstream answered {status}")]
    Status {
        /// The status.
        status: reqwest::StatusCode,
    },
    /// The answer was larger than [`MAX_ANSWER_BYTES`].
    #[error("the upstream's answer is larger than {} MiB", MAX_ANSWER_BYTES >> 20)]
    TooLarge,
    /// The answer's SSE stream broke off (or grew past [`MAX_ANSWER_BYTES`]).
    #[error("the upstream's stream broke: {0}")]
    Stream(#[source] sse_stream::Error),
    /// The stream ended before the answer came.
    #[error("the upstream closed the stream without answering")]
    Unanswered,
    /// The answer is not the JSON-RPC message expected.
    #[error("unreadable answer: {0}")]
    Unreadable(#[source] serde_json::Error),
    /// The `initialize` handshake did not complete.
    #[error("the upstream did not initialize: {reason}")]
    NotInitialized {
        /// What went wrong.
        reason: String,
    },
    /// The upstream answered the request with a JSON-RPC error.
    #[error("the upstream refused the call: {}", .0.message)]
    Refused(rmcp::ErrorData),
    /// The upstream asked the calling client a question it cannot be asked, or that it did
    /// not answer.
    #[error("the tool asked the client `{method}`: {source}")]
    Unasked {
        /// The question's method.
        method: String,
        /// Why it went unanswered.
        #[source]
        source: preloop_core::executor::AskError,
    },
    /// The caller cancelled the request; the upstream was told.
    #[error("the caller cancelled the request")]
    Cancelled,
    /// The upstream kept asking for input.
    #[error("the tool still asked for input after {rounds} rounds of answers")]
    TooManyRounds {
        /// How many rounds it was given.
        rounds: usize,
    },
    /// The upstream answered with something Preloop does not relay.
    #[error("the upstream asked for interactive input or a task, which Preloop does not relay")]
    NotRelayed,
    /// The discovered tools could not be registered.
    #[error("{0}")]
    Registry(String),
}

impl UpstreamError {
    /// rmcp's error, without response bodies or Rust type names.
    pub fn client(error: impl std::fmt::Display) -> Self {
        Self::Client(without_response_body(error))
    }

    /// rmcp's error: the upstream's own JSON-RPC error is a refusal, anything else a failure
    /// of the connection.
    pub fn service(error: rmcp::ServiceError) -> Self {
        match error {
            rmcp::ServiceError::McpError(error) => Self::Refused(error),
            other => Self::client(other),
        }
    }
}

impl From<RegistryError> for UpstreamError {
    fn from(error: RegistryError) -> Self {
        Self::Registry(without_response_body(error))
    }
}

/// An upstream error as callers may see it: an HTTP error's status, never the body that came
/// with it, and without the Rust type names rmcp puts in brackets.
pub fn without_response_body(error: impl std::fmt::Display) -> String {
    let mut text = error.to_string();
    while let Some(start) = text.find('[') {
        let Some(length) = text[start..].find(']') else {
            break;
        };
        if !text[start..start + length].contains("::") {
            break;
        }
        text.replace_range(start..=start + length, "");
    }
    let text = text.replace("  ", " ");
    match text.find("HTTP ") {
        Some(at) => {
            let rest = &text[at + 5..];
            let status: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if status.len() == 3 {
                format!("{}HTTP {status}", &text[..at])
            } else {
                text
            }
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::without_response_body;

    #[test]
    fn upstream_errors_keep_the_status_and_lose_the_body() {
        assert_eq!(
            without_response_body(
                "Transport error: unexpected server response: HTTP 500: <html>internal</html>"
            ),
            "Transport error: unexpected server response: HTTP 500"
        );
        assert_eq!(
            without_response_body("connection refused"),
            "connection refused"
        );
        assert_eq!(
            without_response_body("Transport [a::B<c::D>] error: refused"),
            "Transport error: refused"
        );
    }
}

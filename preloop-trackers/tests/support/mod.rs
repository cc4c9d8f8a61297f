//! A local stand-in for a tracker's API: it answers a scripted sequence of replies (status,
//! headers, body copied from the tracker's documentation) and records every request, so
//! adapter tests check both what was sent and how each answer was read.

#![allow(dead_code, reason = "each test file uses part of the stand-in")]

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use preloop_trackers::http::{ClientOptions, RetryPolicy};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Client options for tests: short timeouts, two retries after milliseconds, rate limits
/// waited out up to 5 s.
pub fn fast_options() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: 2,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_rate_limit_wait: Duration::from_secs(5),
        },
        ..ClientOptions::default()
    }
}

/// One scripted reply: answered to the next request, which must have this method and path.
#[derive(Debug, Clone)]
pub struct Reply {
    method: Method,
    path: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    /// A `200` answer with an empty JSON object to `method path` (path without the query).
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.parse().unwrap_or(Method::GET),
            path: path.to_owned(),
            status: 200,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: "{}".to_owned(),
        }
    }

    /// The status.
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds a header; `{base}` in the value becomes the stand-in's base URL.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The body; `{base}` becomes the stand-in's base URL.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }
}

/// A request the stand-in received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub uri: Uri,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Received {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The value of a query parameter.
    pub fn query(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.uri.query().unwrap_or_default().as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }
}

#[derive(Debug, Default)]
struct Script {
    replies: VecDeque<Reply>,
    received: Vec<Received>,
}

/// The running stand-in.
#[derive(Debug, Clone)]
pub struct StandIn {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub base: String,
    script: Arc<Mutex<Script>>,
}

impl StandIn {
    /// Starts a stand-in that answers `replies` in order (a request beyond them, or one that
    /// does not match the next reply's method and path, is answered `599` and recorded).
    pub async fn start(replies: Vec<Reply>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let script = Arc::new(Mutex::new(Script {
            replies: replies.into(),
            received: Vec::new(),
        }));
        let state = (script.clone(), base.clone());
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (script, base) = state.clone();
                async move { answer(&script, &base, method, uri, headers, body) }
            },
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { base, script })
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.script
            .lock()
            .map(|s| s.received.clone())
            .unwrap_or_default()
    }

    /// How many scripted replies were not asked for.
    pub fn unused(&self) -> usize {
        self.script
            .lock()
            .map(|s| s.replies.len())
            .unwrap_or_default()
    }
}

fn answer(
    script: &Mutex<Script>,
    base: &str,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(mut script) = script.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    script.received.push(Received {
        method: method.clone(),
        uri: uri.clone(),
        headers,
        body,
    });
    let matches = script
        .replies
        .front()
        .is_some_and(|reply| reply.method == method && reply.path == uri.path());
    if !matches {
        let expected = script
            .replies
            .front()
            .map(|r| format!("{} {}", r.method, r.path));
        let message = format!("unexpected {method} {uri}; the script expected {expected:?}");
        let status = StatusCode::from_u16(599).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, message).into_response();
    }
    let Some(reply) = script.replies.pop_front() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut response = Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (name, value) in &reply.headers {
        response = response.header(name, value.replace("{base}", base));
    }
    response
        .body(axum::body::Body::from(reply.body.replace("{base}", base)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

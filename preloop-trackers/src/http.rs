//! Talking to a tracker's REST API: credentials, per-request timeouts, bounded retries with
//! backoff and jitter on server errors and lost connections, rate limits honoured by sleeping
//! until they reset (never by polling), bounded answers, and the tracker's own error messages
//! mapped to typed [`TrackerError`]s. Every adapter sends through [`Api`].

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, TimeDelta, Utc};
use preloop_core::tracker::TrackerError;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Mutex;
use std::time::Duration;
use url::Url;

/// Largest answer read from a tracker; a larger one is refused as unavailable.
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("preloop/", env!("CARGO_PKG_VERSION"));

/// Longest tracker message carried into an error.
const MAX_MESSAGE_CHARS: usize = 300;

/// How requests are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (server errors, lost connections, rate limits).
    pub max_retries: usize,
    /// First backoff delay (doubled each retry, with jitter).
    pub min_delay: Duration,
    /// Longest backoff delay.
    pub max_delay: Duration,
    /// Longest a request waits for a rate limit to reset; a later reset is answered with
    /// [`TrackerError::RateLimited`] at once.
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            max_rate_limit_wait: Duration::from_secs(60),
        }
    }
}

/// How an adapter talks to its tracker.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The HTTP client (the server passes one that refuses private addresses to tenants).
    pub client: reqwest::Client,
    /// Timeout of each request, the answer's body included.
    pub timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// How requests authenticate. Values are marked sensitive, so they never appear in `Debug`.
#[derive(Clone)]
pub enum Credentials {
    /// `Authorization: Bearer <token>` (GitHub, Jira Server / Data Center).
    Bearer(String),
    /// A header of the tracker's own (GitLab's `PRIVATE-TOKEN`).
    Header(HeaderName, String),
    /// HTTP basic authentication (Jira Cloud: e-mail and API token).
    Basic {
        /// User name (e-mail).
        username: String,
        /// Password (API token).
        password: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Bearer(_) => "Bearer(<redacted>)",
            Self::Header(..) => "Header(<redacted>)",
            Self::Basic { .. } => "Basic(<redacted>)",
        })
    }
}

/// A tracker's answer: status, headers, and the body (at most [`MAX_ANSWER_BYTES`]).
#[derive(Debug)]
pub struct Answer {
    /// Status (always a success: failures are errors).
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as `T`; an unexpected shape is the tracker's fault, so [`TrackerError::Unavailable`].
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, TrackerError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            TrackerError::Unavailable(format!("unexpected answer from the tracker: {e}"))
        })
    }

    /// The value of a header, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        header_text(&self.headers, name)
    }

    /// The `next` URL of the `Link` header (RFC 8288), exactly as the tracker gave it.
    pub fn next_link(&self) -> Option<String> {
        let header = self.header("link")?;
        let links = parse_link_header::parse_with_rel(header).ok()?;
        links.get("next").map(|link| link.raw_uri.clone())
    }
}

/// One tracker's REST API.
#[derive(Debug)]
pub struct Api {
    base: Url,
    credentials: Credentials,
    options: ClientOptions,
    /// Headers of the tracker's own sent with every request (replacing defaults of the same
    /// name, such as `Accept`).
    extra_headers: HeaderMap,
    /// Set when an answer said the rate limit is used up: no request leaves before then.
    paused_until: Mutex<Option<DateTime<Utc>>>,
}

/// Why one attempt failed, and whether (and when) to try again.
#[derive(Debug)]
struct Failure {
    error: TrackerError,
    retry: Retry,
}

#[derive(Debug, Clone, Copy)]
enum Retry {
    Never,
    WithBackoff,
    After(Duration),
}

impl Failure {
    fn fatal(error: TrackerError) -> Self {
        Self {
            error,
            retry: Retry::Never,
        }
    }
}

impl Api {
    /// An API rooted at `base` (e.g. `https://api.github.com`, `https://gitlab.example.com/api/v4`).
    pub fn new(
        base: &str,
        credentials: Credentials,
        options: ClientOptions,
    ) -> Result<Self, TrackerError> {
        let mut base = Url::parse(base.trim()).map_err(|e| {
            TrackerError::Invalid(format!("the tracker URL {base:?} is not a URL: {e}"))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(TrackerError::Invalid(format!(
                "the tracker URL {base} must be http:// or https:// with a host"
            )));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(TrackerError::Invalid(
                "the tracker URL must not carry credentials: give them as the token".to_owned(),
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Self {
            base,
            credentials,
            options,
            extra_headers: HeaderMap::new(),
            paused_until: Mutex::new(None),
        })
    }

    /// Sends `headers` with every request, each replacing a default of the same name (GitHub's
    /// `Accept: application/vnd.github+json` and `X-GitHub-Api-Version`).
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.extra_headers = headers;
        self
    }

    /// The base URL (ending in `/`).
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `path` (relative, its segments already encoded) under the base URL, with `query`.
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, TrackerError> {
        let mut url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| TrackerError::Invalid(format!("bad request path {path:?}: {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// A URL the tracker gave (a `next` link), accepted only on the tracker's own origin so a
    /// hostile answer cannot send the credentials elsewhere.
    pub fn same_origin(&self, given: &str) -> Result<Url, TrackerError> {
        let url = self
            .base
            .join(given)
            .map_err(|e| TrackerError::Unavailable(format!("the tracker gave a bad link: {e}")))?;
        if url.origin() != self.base.origin() {
            return Err(TrackerError::Unavailable(format!(
                "the tracker linked to another origin ({})",
                url.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }

    /// `GET url`, its answer as `T`, with the answer's headers.
    pub async fn get<T: DeserializeOwned>(&self, url: Url) -> Result<(T, Answer), TrackerError> {
        let answer = self.send(Method::GET, url, None).await?;
        Ok((answer.json()?, answer))
    }

    /// Sends a request (with a JSON body when given), retrying as the policy says.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Answer, TrackerError> {
        let retry = &self.options.retry;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(retry.min_delay)
            .with_max_delay(retry.max_delay)
            .with_max_times(retry.max_retries)
            .with_jitter();
        let attempt = || self.attempt(method.clone(), url.clone(), body);
        attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|failure: &Failure| !matches!(failure.retry, Retry::Never))
            .adjust(|failure: &Failure, backoff: Option<Duration>| match failure.retry {
                Retry::Never => None,
                Retry::WithBackoff => backoff,
                // Only while retries remain: a tracker that stays limited ends the request.
                Retry::After(wait) => backoff.map(|_| wait),
            })
            .notify(|failure: &Failure, pause: Duration| {
                tracing::debug!(host = self.base.host_str(), error = %failure.error, ?pause, "retrying a tracker request");
            })
            .await
            .map_err(|failure| failure.error)
    }

    async fn attempt(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Answer, Failure> {
        self.wait_for_rate_limit().await?;
        let mut request = self
            .options
            .client
            .request(method, url)
            .timeout(self.options.timeout)
            .header(reqwest::header::ACCEPT, "application/json")
            // GitHub refuses requests without a User-Agent; a client's own default (the
            // server's) is replaced, so every tracker sees who is calling.
            .header(reqwest::header::USER_AGENT, USER_AGENT)
            .headers(self.extra_headers.clone());
        request = match &self.credentials {
            Credentials::Bearer(token) => request.header(
                reqwest::header::AUTHORIZATION,
                sensitive(&format!("Bearer {token}"))?,
            ),
            Credentials::Header(name, value) => request.header(name.clone(), sensitive(value)?),
            Credentials::Basic { username, password } => {
                request.basic_auth(username, Some(password))
            }
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| Failure {
            error: TrackerError::Unavailable(connection_failure(e)),
            retry: Retry::WithBackoff,
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_bounded(response).await?;
        self.note_rate_limit(&headers);
        if status.is_success() {
            return Ok(Answer {
                status,
                headers,
                body,
            });
        }
        Err(self.failure(status, &headers, &body))
    }

    /// Sleeps until a reset the tracker announced, or refuses at once when it is too far.
    async fn wait_for_rate_limit(&self) -> Result<(), Failure> {
        let paused = *self
            .paused_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(until) = paused else { return Ok(()) };
        let Ok(wait) = (until - Utc::now()).to_std() else {
            return Ok(());
        };
        if wait > self.options.retry.max_rate_limit_wait {
            return Err(Failure::fatal(TrackerError::RateLimited {
                until: Some(until),
            }));
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Remembers an announced exhaustion (`X-RateLimit-Remaining: 0` / `RateLimit-Remaining: 0`
    /// with its reset), so the next request waits instead of being refused.
    fn note_rate_limit(&self, headers: &HeaderMap) {
        let exhausted = ["x-ratelimit-remaining", "ratelimit-remaining"]
            .iter()
            .any(|name| header_text(headers, name).is_some_and(|v| v.trim() == "0"));
        let until = exhausted.then(|| reset_time(headers)).flatten();
        let mut paused = self
            .paused_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *paused = until.filter(|t| *t > Utc::now());
    }

    fn failure(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Failure {
        let message = tracker_message(body)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("no message").to_owned());
        let limited = status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::FORBIDDEN
                && (header_text(headers, "retry-after").is_some()
                    || header_text(headers, "x-ratelimit-remaining")
                        .is_some_and(|v| v.trim() == "0")));
        if limited {
            let until = retry_after(headers).or_else(|| reset_time(headers));
            let wait = until.and_then(|t| (t - Utc::now()).to_std().ok());
            return match wait {
                Some(wait) if wait > self.options.retry.max_rate_limit_wait => {
                    Failure::fatal(TrackerError::RateLimited { until })
                }
                Some(wait) => Failure {
                    error: TrackerError::RateLimited { until },
                    retry: Retry::After(wait),
                },
                None => Failure {
                    error: TrackerError::RateLimited { until },
                    retry: Retry::WithBackoff,
                },
            };
        }
        let error = match status {
            StatusCode::UNAUTHORIZED => TrackerError::Unauthorized(message),
            StatusCode::FORBIDDEN => TrackerError::Forbidden(message),
            StatusCode::NOT_FOUND | StatusCode::GONE => TrackerError::NotFound(message),
            s if s.is_client_error() => TrackerError::Invalid(message),
            s => {
                return Failure {
                    error: TrackerError::Unavailable(format!("HTTP {}: {message}", s.as_u16())),
                    retry: if s.is_server_error() {
                        Retry::WithBackoff
                    } else {
                        Retry::Never
                    },
                };
            }
        };
        Failure::fatal(error)
    }
}

fn sensitive(value: &str) -> Result<HeaderValue, Failure> {
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        Failure::fatal(TrackerError::Invalid(
            "the token holds characters no HTTP header can carry".to_owned(),
        ))
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// What went wrong with a connection, without the URL (its query may carry search text).
fn connection_failure(error: reqwest::Error) -> String {
    let host = error
        .url()
        .and_then(Url::host_str)
        .unwrap_or("the tracker")
        .to_owned();
    if error.is_timeout() {
        format!("{host} did not answer in time")
    } else if error.is_connect() {
        format!("could not connect to {host}")
    } else {
        format!("the request to {host} failed: {}", error.without_url())
    }
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(Failure::fatal(TrackerError::Unavailable(format!(
                        "the tracker's answer is larger than {MAX_ANSWER_BYTES} bytes"
                    ))));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(Failure {
                    error: TrackerError::Unavailable(connection_failure(e)),
                    retry: Retry::WithBackoff,
                });
            }
        }
    }
}

/// A header's value as text.
pub fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `Retry-After` as a time: seconds from now, or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<DateTime<Utc>> {
    let value = header_text(headers, "retry-after")?.trim();
    if let Ok(seconds) = value.parse::<i64>() {
        return Some(Utc::now() + TimeDelta::seconds(seconds.clamp(0, 86_400)));
    }
    DateTime::parse_from_rfc2822(value)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The reset time of `X-RateLimit-Reset` (GitHub: epoch seconds; Jira Cloud: an ISO time) or
/// GitLab's `RateLimit-Reset` (epoch seconds).
fn reset_time(headers: &HeaderMap) -> Option<DateTime<Utc>> {
    let value = ["x-ratelimit-reset", "ratelimit-reset"]
        .iter()
        .find_map(|name| header_text(headers, name))?
        .trim();
    if let Ok(epoch) = value.parse::<i64>() {
        return DateTime::from_timestamp(epoch, 0);
    }
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The tracker's own words in an error body, whichever tracker's shape it has: GitHub's
/// `message` (+ `errors[].message`/`code`), GitLab's `message` (text, list, or field → list)
/// and `error`, Jira's `errorMessages` and `errors` (field → message).
pub fn tracker_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let mut parts = Vec::new();
    for key in [
        "message",
        "error",
        "error_description",
        "errorMessages",
        "errors",
    ] {
        if let Some(part) = value.get(key) {
            collect_text(part, None, &mut parts);
        }
    }
    let mut message = parts.join("; ");
    if message.is_empty() {
        return None;
    }
    if message.chars().count() > MAX_MESSAGE_CHARS {
        message = message.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "…";
    }
    Some(message)
}

fn collect_text(value: &Value, field: Option<&str>, parts: &mut Vec<String>) {
    match value {
        Value::String(text) if !text.trim().is_empty() => parts.push(match field {
            Some(field) => format!("{field}: {text}"),
            None => text.clone(),
        }),
        Value::Array(items) => items
            .iter()
            .for_each(|item| collect_text(item, field, parts)),
        Value::Object(map) => {
            // GitHub's `{"resource", "field", "code", "message"?}` validation entries.
            if let Some(code) = map.get("code").and_then(Value::as_str) {
                let field = map.get("field").and_then(Value::as_str).unwrap_or("field");
                let text = map.get("message").and_then(Value::as_str).unwrap_or(code);
                parts.push(format!("{field}: {text}"));
                return;
            }
            for (key, item) in map {
                collect_text(item, Some(key), parts);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_come_out_of_every_trackers_error_shape() {
        let github = br#"{"message":"Validation Failed","errors":[{"resource":"Issue","field":"title","code":"missing_field"}],"documentation_url":"https://docs.github.com/rest"}"#;
        assert_eq!(
            tracker_message(github).as_deref(),
            Some("Validation Failed; title: missing_field")
        );
        let gitlab = br#"{"message":{"title":["can't be blank"]}}"#;
        assert_eq!(
            tracker_message(gitlab).as_deref(),
            Some("title: can't be blank")
        );
        let jira = br#"{"errorMessages":[],"errors":{"summary":"You must specify a summary of the issue."}}"#;
        assert_eq!(
            tracker_message(jira).as_deref(),
            Some("summary: You must specify a summary of the issue.")
        );
        assert_eq!(tracker_message(b"<html>bad gateway</html>"), None);
    }

    #[test]
    fn long_messages_are_cut() {
        let body = serde_json::json!({"message": "x".repeat(1000)}).to_string();
        let message = tracker_message(body.as_bytes()).unwrap_or_default();
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn urls_stay_on_the_trackers_origin() -> Result<(), TrackerError> {
        let api = Api::new(
            "https://gitlab.example.com/api/v4",
            Credentials::Bearer("t".to_owned()),
            ClientOptions::default(),
        )?;
        assert_eq!(
            api.url("projects/a%2Fb/issues", &[("page", "2")])?.as_str(),
            "https://gitlab.example.com/api/v4/projects/a%2Fb/issues?page=2"
        );
        assert!(
            api.same_origin("https://gitlab.example.com/api/v4/x?page=3")
                .is_ok()
        );
        assert!(api.same_origin("https://evil.example/steal").is_err());
        Ok(())
    }

    #[test]
    fn bad_urls_are_refused_clearly() {
        for url in [
            "not a url",
            "ftp://example.com",
            "https://user:pw@example.com",
        ] {
            let error = Api::new(
                url,
                Credentials::Bearer("t".to_owned()),
                ClientOptions::default(),
            );
            assert!(matches!(error, Err(TrackerError::Invalid(_))), "{url}");
        }
    }

    #[test]
    fn rate_limit_resets_are_read_in_each_trackers_form() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-reset", HeaderValue::from_static("1700000000"));
        assert_eq!(
            reset_time(&headers),
            DateTime::from_timestamp(1_700_000_000, 0)
        );
        headers.insert(
            "x-ratelimit-reset",
            HeaderValue::from_static("2026-12-01T10:00:00Z"),
        );
        assert_eq!(
            reset_time(&headers).map(|t| t.to_rfc3339()),
            Some("2026-12-01T10:00:00+00:00".to_owned())
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(
            retry_after(&headers).map(|t| t.timestamp()),
            Some(1_445_412_480)
        );
    }

    #[test]
    fn credentials_never_show_in_debug() {
        let shown = format!("{:?}", Credentials::Bearer("ghp_secret".to_owned()));
        assert!(!shown.contains("secret"));
    }
}

//! The shared HTTP layer against a local stand-in: retries on server errors, rate limits
//! honoured by waiting for their reset (or refused when it is too far), typed errors.

mod support;

use preloop_core::tracker::TrackerError;
use preloop_trackers::http::{Api, Credentials};
use reqwest::Method;
use std::time::{Duration, Instant};
use support::{Reply, StandIn};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn api(base: &str) -> Result<Api, TrackerError> {
    let options = support::fast_options();
    Api::new(base, Credentials::Bearer("tok".to_owned()), options)
}

#[tokio::test]
async fn a_server_error_is_retried_until_the_tracker_answers() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/thing")
            .status(502)
            .body("<html>bad gateway</html>"),
        Reply::new("GET", "/thing").status(503),
        Reply::new("GET", "/thing").body(r#"{"ok": true}"#),
    ])
    .await?;
    let api = api(&stand_in.base)?;
    let (value, _): (serde_json::Value, _) = api.get(api.url("thing", &[])?).await?;
    assert_eq!(value["ok"], true);
    let received = stand_in.received();
    assert_eq!(received.len(), 3);
    assert!(
        received
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer tok"))
    );
    // GitHub refuses requests without a User-Agent.
    assert!(received.iter().all(|r| {
        r.header("user-agent")
            .is_some_and(|ua| ua.starts_with("preloop/"))
    }));
    Ok(())
}

#[tokio::test]
async fn server_errors_end_after_the_retries_with_unavailable() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/thing").status(500),
        Reply::new("GET", "/thing").status(500),
        Reply::new("GET", "/thing")
            .status(500)
            .body(r#"{"message":"boom"}"#),
    ])
    .await?;
    let api = api(&stand_in.base)?;
    let error = api.send(Method::GET, api.url("thing", &[])?, None).await;
    assert_eq!(
        error.err(),
        Some(TrackerError::Unavailable("HTTP 500: boom".to_owned()))
    );
    Ok(())
}

#[tokio::test]
async fn a_rate_limited_answer_waits_for_retry_after_then_succeeds() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/thing")
            .status(429)
            .header("retry-after", "1")
            .body(r#"{"message":"API rate limit exceeded"}"#),
        Reply::new("GET", "/thing").body("{}"),
    ])
    .await?;
    let api = api(&stand_in.base)?;
    let started = Instant::now();
    api.send(Method::GET, api.url("thing", &[])?, None).await?;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stand_in.received().len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_far_reset_is_answered_rate_limited_until_then_without_waiting() -> TestResult {
    let reset = chrono::Utc::now().timestamp() + 3600;
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/thing")
            .status(403)
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", &reset.to_string())
            .body(r#"{"message":"API rate limit exceeded for user ID 1."}"#),
    ])
    .await?;
    let api = api(&stand_in.base)?;
    let started = Instant::now();
    let error = api.send(Method::GET, api.url("thing", &[])?, None).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        error.err(),
        Some(TrackerError::RateLimited {
            until: chrono::DateTime::from_timestamp(reset, 0)
        })
    );
    Ok(())
}

#[tokio::test]
async fn an_exhausted_limit_on_a_success_holds_the_next_request_until_the_reset() -> TestResult {
    let reset = chrono::Utc::now().timestamp() + 2;
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/thing")
            .header("ratelimit-remaining", "0")
            .header("ratelimit-reset", &reset.to_string()),
        Reply::new("GET", "/thing"),
    ])
    .await?;
    let api = api(&stand_in.base)?;
    api.send(Method::GET, api.url("thing", &[])?, None).await?;
    let started = Instant::now();
    api.send(Method::GET, api.url("thing", &[])?, None).await?;
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn client_errors_are_typed_with_the_trackers_message_and_not_retried() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/a")
            .status(401)
            .body(r#"{"message":"Bad credentials"}"#),
        Reply::new("GET", "/b")
            .status(403)
            .body(r#"{"message":"Resource not accessible by integration"}"#),
        Reply::new("GET", "/c")
            .status(404)
            .body(r#"{"message":"Not Found"}"#),
        Reply::new("GET", "/d")
            .status(422)
            .body(r#"{"errorMessages":["Field 'priority' cannot be set."],"errors":{}}"#),
    ])
    .await?;
    let api = api(&stand_in.base)?;
    let get = |path: &'static str| {
        let api = &api;
        async move { api.send(Method::GET, api.url(path, &[])?, None).await }
    };
    assert_eq!(
        get("a").await.err(),
        Some(TrackerError::Unauthorized("Bad credentials".into()))
    );
    assert_eq!(
        get("b").await.err(),
        Some(TrackerError::Forbidden(
            "Resource not accessible by integration".into()
        ))
    );
    assert_eq!(
        get("c").await.err(),
        Some(TrackerError::NotFound("Not Found".into()))
    );
    assert_eq!(
        get("d").await.err(),
        Some(TrackerError::Invalid(
            "Field 'priority' cannot be set.".into()
        ))
    );
    assert_eq!(stand_in.received().len(), 4);
    Ok(())
}

#[tokio::test]
async fn a_tracker_that_is_down_is_unavailable_after_the_retries() -> TestResult {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let api = api(&format!("http://127.0.0.1:{port}"))?;
    let error = api.send(Method::GET, api.url("thing", &[])?, None).await;
    assert_eq!(
        error.err(),
        Some(TrackerError::Unavailable(
            "could not connect to 127.0.0.1".to_owned()
        ))
    );
    Ok(())
}

#[tokio::test]
async fn an_adapters_own_headers_replace_the_defaults_on_every_request() -> TestResult {
    let stand_in = StandIn::start(vec![
        Reply::new("GET", "/thing").status(502),
        Reply::new("GET", "/thing").body("{}"),
    ])
    .await?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::ACCEPT,
        reqwest::header::HeaderValue::from_static("application/vnd.github+json"),
    );
    headers.insert(
        "x-github-api-version",
        reqwest::header::HeaderValue::from_static("2022-11-28"),
    );
    let api = api(&stand_in.base)?.with_headers(headers);
    api.send(Method::GET, api.url("thing", &[])?, None).await?;
    let received = stand_in.received();
    assert_eq!(received.len(), 2);
    for request in &received {
        let accepts: Vec<_> = request.headers.get_all("accept").iter().collect();
        assert_eq!(accepts, ["application/vnd.github+json"]);
        assert_eq!(request.header("x-github-api-version"), Some("2022-11-28"));
        assert_eq!(request.header("authorization"), Some("Bearer tok"));
    }
    Ok(())
}

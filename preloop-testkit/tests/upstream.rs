//! The test upstream answers as the end-to-end tests expect: over streamable HTTP its tools are
//! listed and `echo` returns what it was given.

#![allow(clippy::unwrap_used, reason = "test fixtures fail loudly")]

use preloop_testkit::{call, connect_url, start_upstream, text};
use serde_json::json;

#[tokio::test]
async fn the_test_upstream_lists_its_tools_and_echoes() {
    let upstream = start_upstream();
    let client = connect_url(&upstream.url, None).await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for expected in ["echo", "add", "fail", "environment", "record"] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let result = call(&client, "echo", json!({"text": "ping"})).await;
    assert_eq!(text(&result), "ping");
    assert_ne!(result.is_error, Some(true));
}

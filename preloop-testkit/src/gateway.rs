//! A gateway set up for approval tests: an upstream whose `up__add` calls with `a > 100` need an
//! admin's approval, a member user (not an approver) and an agent user making the calls.

use super::{
    ADMIN_KEY, Client, Process, call, connect_url, rest, start_gateway, start_upstream, text,
    wait_for_tool,
};
use crate::wait::eventually_some;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// A gateway whose `up__add` calls with `a > 100` wait for an admin's approval through
/// `channel`, with a member user (mapped on every platform, but not an approver).
#[derive(Debug)]
pub struct Gateway {
    /// The gateway process.
    pub server: Process,
    /// An MCP session of the agent user.
    pub client: Arc<Client>,
    /// The agent user's API key.
    pub agent_key: String,
    _upstream: Process,
    _data: tempfile::TempDir,
}

impl Gateway {
    /// A gateway whose approval policy sends through `channel`, configured by `channel_config`.
    pub async fn start(channel: &str, channel_config: &str) -> Self {
        Self::start_with_policy(&format!("channels = [\"{channel}\"]"), channel_config).await
    }

    /// `policy` is the rest of the `chat` approval policy (channels, timeouts, escalation).
    pub async fn start_with_policy(policy: &str, channel_config: &str) -> Self {
        let upstream = start_upstream();
        // The admins approve, unless `policy` names its own approvers first.
        let approvers = if policy.starts_with("approvers") {
            ""
        } else {
            "approvers = [\"role:admin\"]"
        };
        let config = format!(
            r#"
{channel_config}

[[mcp_servers]]
name = "up"
transport = "http"
url = "{}"

[[approval_policies]]
name = "chat"
{approvers}
{policy}

[policy]
default = "allow"

[[policy.rules]]
id = "big-sums"
tools = ["up__add"]
when = "args.a > 100"
action = "require_approval"
approval_policy = "chat"
"#,
            upstream.url
        );
        let data = tempfile::tempdir().unwrap();
        let server = start_gateway(data.path(), &config, &[]);
        let users = format!("{}/api/v1/users", server.url);
        for (email, role) in [
            ("member@example.com", "member"),
            ("agent@example.com", "agent"),
        ] {
            let body = json!({"email": email, "roles": [role]});
            let (status, body) = rest(Method::POST, &users, Some(ADMIN_KEY), Some(body)).await;
            assert_eq!(status, 201, "{body}");
        }
        // The agent is not the approver: nobody approves their own calls.
        let agent_key = api_key(&server.url, "agent@example.com").await;
        let client = connect_url(&format!("{}/mcp/v1", server.url), Some(&agent_key))
            .await
            .unwrap();
        wait_for_tool(&client, "up__add", true).await;
        Self {
            server,
            client: Arc::new(client),
            agent_key,
            _upstream: upstream,
            _data: data,
        }
    }

    /// Makes a call that needs approval; it returns once decided.
    pub fn blocked_call(&self) -> JoinHandle<String> {
        let client = self.client.clone();
        tokio::spawn(async move {
            text(
                &call(
                    &client,
                    "up__add",
                    json!({"a": 200, "b": 1, "password": "hunter2"}),
                )
                .await,
            )
        })
    }

    /// A URL of the gateway.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    /// The id of the first pending approval request, once there is one.
    pub async fn pending_request_id(&self) -> String {
        eventually_some("a request is pending", async || {
            let (_, pending) = rest(
                Method::GET,
                &self.url("/api/v1/approval-requests?status=pending"),
                Some(ADMIN_KEY),
                None,
            )
            .await;
            pending["items"][0]["id"].as_str().map(str::to_owned)
        })
        .await
    }

    /// Approves a request as the admin.
    pub async fn approve(&self, id: &str) {
        let (status, body) = rest(
            Method::POST,
            &self.url(&format!("/api/v1/approval-requests/{id}/approve")),
            Some(ADMIN_KEY),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }

    /// An approval request as the admin sees it.
    pub async fn request(&self, id: &str) -> Value {
        let (status, request) = rest(
            Method::GET,
            &self.url(&format!("/api/v1/approval-requests/{id}")),
            Some(ADMIN_KEY),
            None,
        )
        .await;
        assert_eq!(status, 200, "{request}");
        request
    }
}

/// A new API key of the user with `email`.
pub async fn api_key(server: &str, email: &str) -> String {
    let (_, users) = rest(
        Method::GET,
        &format!("{server}/api/v1/users"),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    let user_id = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
        .unwrap()["id"]
        .clone();
    let (status, key) = rest(
        Method::POST,
        &format!("{server}/api/v1/api-keys"),
        Some(ADMIN_KEY),
        Some(json!({"name": format!("key of {email}"), "user_id": user_id})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    key["secret"].as_str().unwrap().to_owned()
}

/// The blocked call's result, once approved.
pub async fn returned(call: JoinHandle<String>) -> String {
    tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("the blocked call returns once approved")
        .unwrap()
}

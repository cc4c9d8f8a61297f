//! End to end, the two protocol generations through the gateway: an upstream that speaks both
//! (the test upstream: sessions of the earlier revisions, stateless 2026-07-28 requests) asks
//! its question as an `input_required` result; a 2026-07-28 client gets it with the
//! upstream's state sealed by the gateway, and a client of the earlier generation is asked it
//! during the call. Tools an upstream does not list, forwarded where allowed; and tasks: a call
//! held for approval followed as one, and an upstream's own task passed through. The real
//! `preloop` binary; rmcp's client in both generations.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

use preloop_testkit as common;

use common::wait::eventually_some;
use common::{ADMIN_KEY, connect_with, start_gateway, start_upstream, text};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientConfig, ElicitRequestParams, ElicitResult,
    ProtocolVersion,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, ErrorData, RoleClient};
use serde_json::json;

const CONFIG: &str = r#"
[[mcp_servers]]
name = "docs"
transport = "http"
url = "UPSTREAM"
forward_unlisted = true

[[mcp_servers]]
name = "strict"
transport = "http"
url = "UPSTREAM"

[policy]
default = "allow"

[[policy.rules]]
id = "no-big-items"
tools = ["docs__confirm"]
when = 'args.item == "big"'
action = "deny"
message = "Big items are not confirmed"

[[policy.rules]]
id = "hidden-needs-a-reason"
tools = ["docs__hidden"]
when = '!has(args.reason)'
action = "require_approval"

[[policy.rules]]
id = "no-sampling-for-strict"
questions = ["sampling/*"]
servers = ["strict"]
action = "deny"
message = "strict may not sample the client's model"
"#;

/// A user who answers every elicitation with `name`.
#[derive(Clone)]
struct User {
    name: &'static str,
}

impl ClientHandler for User {
    fn get_info(&self) -> ClientConfig {
        let capabilities = serde_json::from_value(json!({"elicitation": {}})).unwrap();
        ClientConfig::new(capabilities, rmcp::model::Implementation::new("e2e", "1"))
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        assert!(
            serde_json::to_string(&params)
                .unwrap()
                .contains("Who confirms?")
        );
        Ok(
            serde_json::from_value(json!({"action": "accept", "content": {"name": self.name}}))
                .unwrap(),
        )
    }
}

/// The test upstream behind a gateway configured with [`CONFIG`].
struct Setup {
    _upstream: common::Process,
    _data: tempfile::TempDir,
    server: common::Process,
    /// The MCP endpoint.
    url: String,
}

impl Setup {
    fn start() -> Self {
        let upstream = start_upstream();
        let data = tempfile::tempdir().unwrap();
        let config = CONFIG.replace("UPSTREAM", &upstream.url);
        let server = start_gateway(data.path(), &config, &[]);
        let url = format!("{}/mcp/v1", server.url);
        Self {
            _upstream: upstream,
            _data: data,
            server,
            url,
        }
    }
}

/// A 2026-07-28 client of `url` (no session: every request carries its context), as the
/// admin.
async fn modern_client<H: ClientHandler>(url: &str, user: H) -> RunningService<RoleClient, H> {
    modern_client_as(url, ADMIN_KEY, user).await
}

/// [`modern_client`] as the holder of `token`.
async fn modern_client_as<H: ClientHandler>(
    url: &str,
    token: &str,
    user: H,
) -> RunningService<RoleClient, H> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    config.auth_header = Some(token.to_owned());
    let lifecycle = ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    };
    user.serve_with_lifecycle(
        StreamableHttpClientTransport::from_config(config),
        lifecycle,
    )
    .await
    .unwrap()
}

fn confirm(item: &str) -> CallToolRequestParams {
    CallToolRequestParams::new("docs__confirm")
        .with_arguments(json!({"item": item}).as_object().cloned().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_of_a_2026_upstream_reaches_clients_of_both_generations() {
    let gateway = Setup::start();
    let url = gateway.url.clone();

    // The tool the upstream offers only to 2026-07-28 requests is listed to every client.
    let legacy = connect_with(&url, Some(ADMIN_KEY), User { name: "Ada" })
        .await
        .unwrap();
    eventually_some("the 2026-only tool is listed", async || {
        let tools = legacy.list_all_tools().await.unwrap();
        tools
            .iter()
            .any(|t| t.name == "docs__confirm")
            .then_some(())
    })
    .await;

    // A client of the earlier generation is asked during the call, and gets the result.
    let confirmed = legacy.call_tool(confirm("small")).await.unwrap();
    assert_eq!(text(&confirmed), "confirmed by Ada", "{confirmed:?}");

    // A 2026-07-28 client gets the question as an input_required result; the state it
    // carries is the gateway's seal, not the upstream's own.
    let modern = modern_client(&url, User { name: "Bea" }).await;
    let CallToolResponse::InputRequired(asked) =
        modern.call_tool_once(confirm("small")).await.unwrap()
    else {
        panic!("the first round asks");
    };
    let questions = asked.input_requests.clone().unwrap();
    assert!(questions.contains_key("name"), "{questions:?}");
    let sealed = asked.request_state.clone().unwrap();
    assert!(!sealed.contains("confirm-state-1"), "{sealed}");

    // Answered with the sealed state, the upstream gets its own state back and finishes.
    let answer = |state: &str, item: &str| {
        let responses = [(
            "name".to_owned(),
            json!({"action": "accept", "content": {"name": "Bea"}}),
        )]
        .into();
        confirm(item)
            .with_input_responses(responses)
            .with_request_state(state)
    };
    let CallToolResponse::Complete(done) = modern
        .call_tool_once(answer(&sealed, "small"))
        .await
        .unwrap()
    else {
        panic!("the second round finishes");
    };
    assert_eq!(text(&done), "confirmed by Bea");

    // A state changed by the client, or sent with other arguments, is refused.
    let tampered = modern
        .call_tool_once(answer(&format!("{sealed}-TAMPERED"), "small"))
        .await
        .unwrap_err();
    assert!(tampered.to_string().contains("requestState"), "{tampered}");
    let replayed = modern
        .call_tool_once(answer(&sealed, "other"))
        .await
        .unwrap_err();
    assert!(replayed.to_string().contains("requestState"), "{replayed}");

    // A round is governed like any call: a rule that denies its arguments denies it.
    let denied = modern.call_tool(confirm("big")).await.unwrap();
    assert_eq!(denied.is_error, Some(true));
    assert!(text(&denied).contains("Big items"), "{denied:?}");

    // rmcp's own client drives the rounds through its handler.
    let driven = modern.call_tool(confirm("small")).await.unwrap();
    assert_eq!(text(&driven), "confirmed by Bea");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_of_tools_an_upstream_does_not_list_are_forwarded_only_where_it_is_allowed() {
    let gateway = Setup::start();
    let (server, url) = (&gateway.server, gateway.url.clone());
    let client = connect_with(&url, Some(ADMIN_KEY), User { name: "Ada" })
        .await
        .unwrap();
    let tools = eventually_some("both servers' tools are listed", async || {
        let tools = client.list_all_tools().await.unwrap();
        let names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
        (names.iter().any(|n| n == "docs__echo") && names.iter().any(|n| n == "strict__echo"))
            .then_some(names)
    })
    .await;
    assert!(!tools.iter().any(|n| n.ends_with("hidden")), "{tools:?}");

    let hidden = |tool: &str, arguments: serde_json::Value| {
        CallToolRequestParams::new(tool.to_owned())
            .with_arguments(arguments.as_object().cloned().unwrap())
    };
    // Forwarded, governed by the rules like any call.
    let ran = client
        .call_tool(hidden("docs__hidden", json!({"reason": "testing"})))
        .await
        .unwrap();
    assert_eq!(text(&ran), "the hidden tool ran");
    // A rule that would hold it for approval denies it: nothing could run it once approved.
    let held = client
        .call_tool(hidden("docs__hidden", json!({})))
        .await
        .unwrap();
    assert_eq!(held.is_error, Some(true), "{held:?}");
    assert!(
        text(&held).contains("only calls of listed tools can be held"),
        "{held:?}"
    );
    // A server that does not forward unlisted tools keeps them unknown.
    let unknown = client
        .call_tool(hidden("strict__hidden", json!({})))
        .await
        .unwrap_err();
    assert!(unknown.to_string().contains("unknown tool"), "{unknown}");

    // The audit log records the forwarded call like any other.
    let (status, audit) = common::rest(
        reqwest::Method::GET,
        &format!("{}/api/v1/audit?limit=200", server.url),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(status, 200, "{audit}");
    assert!(audit.to_string().contains("docs__hidden"), "{audit}");
}

/// A 2026-07-28 client that follows tasks.
#[derive(Clone)]
struct FollowsTasks;

impl ClientHandler for FollowsTasks {
    fn get_info(&self) -> ClientConfig {
        let capabilities = rmcp::model::ClientCapabilities::builder()
            .enable_tasks()
            .build();
        ClientConfig::new(capabilities, rmcp::model::Implementation::new("e2e", "1"))
    }
}

/// The task's status, once `done` says it has the one wanted.
async fn task_until(
    client: &RunningService<RoleClient, FollowsTasks>,
    task_id: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    eventually_some("the task gets where it should", async || {
        let task = client
            .get_task(rmcp::model::GetTaskParams::new(task_id))
            .await
            .unwrap();
        let task = serde_json::to_value(task).unwrap();
        done(&task).then_some(task)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_held_for_approval_is_a_task_to_a_client_that_follows_tasks() {
    let gateway = common::gateway::Gateway::start("web", "").await;
    let url = gateway.url("/mcp/v1");
    let agent = modern_client_as(&url, &gateway.agent_key, FollowsTasks).await;
    let add = |a: u32| {
        CallToolRequestParams::new("up__add")
            .with_arguments(json!({"a": a, "b": 1}).as_object().cloned().unwrap())
    };

    // A call no rule holds is answered at once, as always.
    let CallToolResponse::Complete(quick) = agent.call_tool_once(add(1)).await.unwrap() else {
        panic!("an allowed call completes");
    };
    assert_eq!(text(&quick), "2");

    // A held call comes back at once as a task that waits for a person.
    let CallToolResponse::Task(task) = agent.call_tool_once(add(200)).await.unwrap() else {
        panic!("a held call is a task");
    };
    let task = serde_json::to_value(task).unwrap();
    assert_eq!(task["status"], "working", "{task}");
    let task_id = task["taskId"].as_str().unwrap().to_owned();
    let waiting = task_until(&agent, &task_id, |t| t["status"] == "working").await;
    assert!(
        waiting["statusMessage"]
            .as_str()
            .unwrap()
            .contains("approve"),
        "{waiting}"
    );

    // Someone else cannot see it.
    let (status, _) = common::rest(
        reqwest::Method::POST,
        &gateway.url("/api/v1/users"),
        Some(ADMIN_KEY),
        Some(json!({"email": "other@example.com", "roles": ["agent"]})),
    )
    .await;
    assert_eq!(status, 201);
    let other_key = common::gateway::api_key(&gateway.server.url, "other@example.com").await;
    let other = modern_client_as(&url, &other_key, FollowsTasks).await;
    let hidden = other
        .get_task(rmcp::model::GetTaskParams::new(task_id.clone()))
        .await
        .unwrap_err();
    assert!(hidden.to_string().contains("unknown task"), "{hidden}");

    // Approved, the task carries the call's result.
    let request = gateway.pending_request_id().await;
    assert!(
        task_id.ends_with(&request),
        "{task_id} names request {request}"
    );
    gateway.approve(&request).await;
    let done = task_until(&agent, &task_id, |t| t["status"] == "completed").await;
    assert_eq!(done["result"]["content"][0]["text"], "201", "{done}");

    // Another held call, cancelled by the agent: the task says so, and nothing runs.
    let CallToolResponse::Task(second) = agent.call_tool_once(add(300)).await.unwrap() else {
        panic!("a held call is a task");
    };
    agent
        .cancel_task(rmcp::model::CancelTaskParams::new(
            second.task.task_id.clone(),
        ))
        .await
        .unwrap();
    task_until(&agent, &second.task.task_id, |t| t["status"] == "cancelled").await;

    // A call the upstream runs as a task of its own is followed through the gateway, under an
    // id the gateway sealed for this agent.
    let slow = |ms: u32| {
        CallToolRequestParams::new("up__slow")
            .with_arguments(json!({"ms": ms}).as_object().cloned().unwrap())
    };
    let CallToolResponse::Task(upstream) = agent.call_tool_once(slow(300)).await.unwrap() else {
        panic!("the upstream runs it as a task");
    };
    let upstream_id = upstream.task.task_id.clone();
    assert!(upstream_id.starts_with("upstream-"), "{upstream_id}");
    assert!(!upstream_id.contains("upstream-task-"), "{upstream_id}");
    let done = task_until(&agent, &upstream_id, |t| t["status"] == "completed").await;
    assert_eq!(done["taskId"], upstream_id.as_str());
    assert_eq!(
        done["result"]["content"][0]["text"], "slow done after 300 ms",
        "{done}"
    );
    let hidden = other
        .get_task(rmcp::model::GetTaskParams::new(upstream_id.clone()))
        .await
        .unwrap_err();
    assert!(hidden.to_string().contains("unknown task"), "{hidden}");
    let forged = agent
        .get_task(rmcp::model::GetTaskParams::new(format!("{upstream_id}x")))
        .await
        .unwrap_err();
    assert!(forged.to_string().contains("unknown task"), "{forged}");

    // Cancelled through the gateway, it is cancelled at the upstream.
    let CallToolResponse::Task(long) = agent.call_tool_once(slow(60_000)).await.unwrap() else {
        panic!("the upstream runs it as a task");
    };
    agent
        .cancel_task(rmcp::model::CancelTaskParams::new(
            long.task.task_id.clone(),
        ))
        .await
        .unwrap();
    task_until(&agent, &long.task.task_id, |t| t["status"] == "cancelled").await;
}

/// Whether the audit log records a call given up because its caller cancelled it.
async fn cancellation_recorded(server: &str, times: usize) -> bool {
    let (_, audit) = common::rest(
        reqwest::Method::GET,
        &format!("{server}/api/v1/audit?limit=500"),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    audit
        .to_string()
        .matches("the caller cancelled the call")
        .count()
        >= times
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_is_given_up_in_either_generation() {
    let gateway = Setup::start();
    let (server, url) = (&gateway.server, gateway.url.clone());
    let client = connect_with(&url, Some(ADMIN_KEY), User { name: "Ada" })
        .await
        .unwrap();
    common::wait_for_tool_in(&client, "docs__sleep").await;
    let sleep = json!({"name": "docs__sleep", "arguments": {"ms": 60_000}});
    let http = reqwest::Client::new();

    // A session's call, answered on the fast path, cancelled with notifications/cancelled.
    let session = common::raw_session(&url).await;
    let started = std::time::Instant::now();
    let call = http
        .post(&url)
        .bearer_auth(ADMIN_KEY)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": sleep}))
        .send()
        .await
        .unwrap();
    assert_eq!(call.status(), 200);
    let cancelled = common::raw_post(
        &url,
        &session,
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
               "params": {"requestId": 41, "reason": "changed my mind"}}),
    )
    .await;
    assert_eq!(cancelled.0, 202, "{}", cancelled.1);
    let answer = tokio::time::timeout(std::time::Duration::from_secs(20), call.text())
        .await
        .expect("the call ends soon after its cancellation")
        .unwrap();
    assert!(answer.contains("the caller cancelled the call"), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    eventually_some("the audit records the cancelled call", async || {
        cancellation_recorded(&server.url, 1).await.then_some(())
    })
    .await;

    // A 2026-07-28 request is cancelled by closing its stream.
    let request = http
        .post(&url)
        .bearer_auth(ADMIN_KEY)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "docs__sleep")
        .json(
            &json!({"jsonrpc": "2.0", "id": 42, "method": "tools/call", "params": {
            "name": "docs__sleep", "arguments": {"ms": 60_000},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            }}}),
        )
        .send();
    // The request is sent and then given up: its connection closes.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), request).await;
    eventually_some(
        "the audit records the closed request's call as cancelled",
        async || cancellation_recorded(&server.url, 2).await.then_some(()),
    )
    .await;
}

/// A client whose model answers every sampling request.
#[derive(Clone)]
struct Model;

impl ClientHandler for Model {
    fn get_info(&self) -> ClientConfig {
        let capabilities = serde_json::from_value(json!({"sampling": {}})).unwrap();
        ClientConfig::new(capabilities, rmcp::model::Implementation::new("e2e", "1"))
    }

    #[allow(
        deprecated,
        reason = "sampling is deprecated on 2026-07-28, not before"
    )]
    async fn create_message(
        &self,
        _params: rmcp::model::CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<rmcp::model::CreateMessageResult, ErrorData> {
        Ok(serde_json::from_value(json!({
            "role": "assistant", "model": "e2e-model",
            "content": {"type": "text", "text": "governed"},
        }))
        .unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstreams_questions_are_governed_per_server_and_audited() {
    let gateway = Setup::start();
    let (server, url) = (&gateway.server, gateway.url.clone());
    let client = connect_with(&url, Some(ADMIN_KEY), Model).await.unwrap();
    common::wait_for_tool_in(&client, "strict__ask_model").await;
    common::wait_for_tool_in(&client, "docs__ask_model").await;

    // One server may sample the client's model.
    let sampled = client
        .call_tool(CallToolRequestParams::new("docs__ask_model"))
        .await
        .unwrap();
    assert!(text(&sampled).contains("governed"), "{sampled:?}");
    // The other is refused by the rule, and its upstream hears why.
    let refused = client
        .call_tool(CallToolRequestParams::new("strict__ask_model"))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("strict may not sample"),
        "{refused}"
    );

    // Both questions are in the audit log, as questions of their servers.
    let (status, audit) = common::rest(
        reqwest::Method::GET,
        &format!("{}/api/v1/audit?limit=500", server.url),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let questions: Vec<&serde_json::Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event.to_string().contains("\"kind\":\"question\""))
        .collect();
    assert_eq!(questions.len(), 2, "{audit}");
    assert!(
        audit.to_string().contains("no-sampling-for-strict"),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_upstreams_question_reaches_a_2026_client_as_input_required() {
    let gateway = Setup::start();
    let url = gateway.url.clone();
    let modern = modern_client(&url, AnswersAnything).await;
    eventually_some("the session-only tool is listed", async || {
        let tools = modern.list_all_tools().await.unwrap();
        tools
            .iter()
            .any(|t| t.name == "docs__ask_user")
            .then_some(())
    })
    .await;

    // The upstream asks during the call; the client gets the question as input_required.
    let ask = CallToolRequestParams::new("docs__ask_user");
    let CallToolResponse::InputRequired(asked) = modern.call_tool_once(ask.clone()).await.unwrap()
    else {
        panic!("the upstream's question comes back");
    };
    let questions = serde_json::to_value(asked.input_requests.clone().unwrap()).unwrap();
    let (key, question) = questions.as_object().unwrap().iter().next().unwrap();
    assert_eq!(question["method"], "elicitation/create", "{questions}");
    assert!(
        question["params"].to_string().contains("Your name?"),
        "{questions}"
    );
    let state = asked.request_state.clone().unwrap();

    // Answered, the same call goes on (it is not made again) and finishes.
    let responses = [(
        key.clone(),
        json!({"action": "accept", "content": {"name": "Cy"}}),
    )]
    .into();
    let answer = ask
        .clone()
        .with_input_responses(responses)
        .with_request_state(state.clone());
    let CallToolResponse::Complete(done) = modern.call_tool_once(answer.clone()).await.unwrap()
    else {
        panic!("the call finishes");
    };
    assert!(text(&done).contains("Cy"), "{done:?}");
    // The parked call was continued once: the same answer again finds nothing.
    let again = modern.call_tool_once(answer).await.unwrap_err();
    assert!(again.to_string().contains("gone"), "{again}");

    // rmcp's client drives the round itself.
    let driven = modern.call_tool(ask).await.unwrap();
    assert!(text(&driven).contains("Dee"), "{driven:?}");
}

/// A client that answers every elicitation with the name `Dee`.
#[derive(Clone)]
struct AnswersAnything;

impl ClientHandler for AnswersAnything {
    fn get_info(&self) -> ClientConfig {
        let capabilities = serde_json::from_value(json!({"elicitation": {}})).unwrap();
        ClientConfig::new(capabilities, rmcp::model::Implementation::new("e2e", "1"))
    }

    async fn create_elicitation(
        &self,
        _params: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        Ok(
            serde_json::from_value(json!({"action": "accept", "content": {"name": "Dee"}}))
                .unwrap(),
        )
    }
}

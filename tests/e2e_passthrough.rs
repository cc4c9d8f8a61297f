//! End to end, the rest of MCP through the proxy: an upstream's prompts, resources and
//! templates listed and read under the gateway's names, governed by rules that name them, and
//! its sampling, elicitation and roots requests during a call answered by the calling client.
//! The real `preloop` binary proxies the test upstream over streamable HTTP; rmcp's client
//! drives it.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

use preloop_testkit as common;

use common::wait::eventually_some;
use common::{ADMIN_KEY, Client, connect_url, connect_with, start_gateway, start_upstream, text};
#[allow(
    deprecated,
    reason = "sampling and roots are deprecated on 2026-07-28 (SEP-2577), not before"
)]
use rmcp::model::{
    CallToolRequestParams, ClientConfig, CreateMessageRequestParams, CreateMessageResult,
    ElicitRequestParams, ElicitResult, GetPromptRequestParams, ListRootsResult,
    ReadResourceRequestParams, ResourceContents,
};
use rmcp::service::RequestContext;
use rmcp::{ClientHandler, ErrorData, RoleClient};
use serde_json::{Value, json};

fn config(upstream: &str) -> String {
    format!(
        r#"
[[mcp_servers]]
name = "docs"
transport = "http"
url = "{upstream}"

[policy]
default = "allow"

[[policy.rules]]
id = "no-secrets"
resources = ["docs+test://secret"]
action = "deny"
message = "Secrets stay upstream"

[[policy.rules]]
id = "greet-people-only"
prompts = ["docs__greeting"]
when = 'args.who == "robots"'
action = "deny"
"#
    )
}

/// A client that can be asked everything, and answers the same each time; it keeps the URIs
/// of the resource updates it hears, and which lists it heard changed.
#[derive(Clone, Default)]
struct Answering {
    updated: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The lists it heard changed (`prompts`, `resources`).
    lists: std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>,
}

impl ClientHandler for Answering {
    fn get_info(&self) -> ClientConfig {
        let capabilities =
            serde_json::from_value(json!({"sampling": {}, "elicitation": {}, "roots": {}}))
                .unwrap();
        ClientConfig::new(capabilities, rmcp::model::Implementation::new("e2e", "1"))
    }

    #[allow(
        deprecated,
        reason = "sampling is deprecated on 2026-07-28, not before"
    )]
    async fn create_message(
        &self,
        _params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        Ok(serde_json::from_value(json!({
            "role": "assistant", "model": "e2e-model",
            "content": {"type": "text", "text": "governed"},
        }))
        .unwrap())
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        assert!(
            serde_json::to_string(&params)
                .unwrap()
                .contains("Your name?")
        );
        Ok(
            serde_json::from_value(json!({"action": "accept", "content": {"name": "Ada"}}))
                .unwrap(),
        )
    }

    async fn on_prompt_list_changed(
        &self,
        _context: rmcp::service::NotificationContext<RoleClient>,
    ) {
        self.lists.lock().unwrap().push("prompts");
    }

    async fn on_resource_list_changed(
        &self,
        _context: rmcp::service::NotificationContext<RoleClient>,
    ) {
        self.lists.lock().unwrap().push("resources");
    }

    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: rmcp::service::NotificationContext<RoleClient>,
    ) {
        self.updated.lock().unwrap().push(params.uri);
    }

    #[allow(deprecated, reason = "roots are deprecated on 2026-07-28, not before")]
    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        Ok(
            serde_json::from_value(json!({"roots": [{"uri": "file:///work", "name": "work"}]}))
                .unwrap(),
        )
    }
}

async fn call_text<S: rmcp::Service<RoleClient>>(
    client: &rmcp::service::RunningService<RoleClient, S>,
    tool: &str,
) -> String {
    let result = client
        .call_tool(CallToolRequestParams::new(tool.to_owned()))
        .await
        .expect("the call gets a result");
    assert_ne!(result.is_error, Some(true), "{result:?}");
    text(&result)
}

async fn read(client: &Client, uri: &str) -> Result<String, rmcp::ServiceError> {
    let result = client
        .read_resource(ReadResourceRequestParams::new(uri))
        .await?;
    Ok(match &result.contents[0] {
        ResourceContents::TextResourceContents { uri, text, .. } => format!("{uri} {text}"),
        other => panic!("not text: {other:?}"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_resources_and_questions_pass_through_governed() {
    let upstream = start_upstream();
    let data_dir = tempfile::tempdir().unwrap();
    let server = start_gateway(data_dir.path(), &config(&upstream.url), &[]);
    let url = format!("{}/mcp/v1", server.url);
    let client = connect_url(&url, Some(ADMIN_KEY)).await.unwrap();

    // Prompts are named like tools; URIs get the server's prefix before their scheme. The
    // resource a rule denies outright is not listed.
    let prompts = eventually_some("the upstream's prompts are listed", async || {
        let prompts = client.list_all_prompts().await.unwrap();
        (!prompts.is_empty()).then_some(prompts)
    })
    .await;
    assert_eq!(prompts[0].name, "docs__greeting");
    let resources: Vec<String> = client
        .list_all_resources()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.uri.clone())
        .collect();
    assert_eq!(resources, ["docs+test://readme"]);
    let templates = client.list_all_resource_templates().await.unwrap();
    assert_eq!(templates[0].uri_template, "docs+test://notes/{id}");

    // Reads and gets reach the upstream under its own names and come back under the gateway's.
    assert_eq!(
        read(&client, "docs+test://readme").await.unwrap(),
        "docs+test://readme Read me first."
    );
    assert_eq!(
        read(&client, "docs+test://notes/7").await.unwrap(),
        "docs+test://notes/7 note 7"
    );
    // A URI in the upstream's own form (as a tool's result would carry it) is found too.
    assert_eq!(
        read(&client, "test://readme").await.unwrap(),
        "docs+test://readme Read me first."
    );
    let arguments = |who: &str| json!({"who": who}).as_object().cloned().unwrap();
    let prompt = client
        .get_prompt(GetPromptRequestParams::new("docs__greeting").with_arguments(arguments("Ada")))
        .await
        .unwrap();
    let messages = serde_json::to_value(&prompt.messages).unwrap();
    assert_eq!(messages[0]["content"]["text"], "Hello, Ada!");
    assert_eq!(
        messages[1]["content"]["resource"]["uri"],
        "docs+test://readme"
    );

    // Rules that name resources and prompts decide them, with CEL over the request.
    let denied = read(&client, "docs+test://secret").await.unwrap_err();
    assert!(
        denied.to_string().contains("Secrets stay upstream"),
        "{denied}"
    );
    let denied = client
        .get_prompt(
            GetPromptRequestParams::new("docs__greeting").with_arguments(arguments("robots")),
        )
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("greet-people-only"), "{denied}");
    // An unknown URI is the protocol's "resource not found".
    let missing = read(&client, "nobody://here").await.unwrap_err();
    assert!(missing.to_string().contains("-32002"), "{missing}");

    // The audit log records each read and get with its kind.
    let (_, audit) = common::rest(
        reqwest::Method::GET,
        &format!("{}/api/v1/audit?type=call_received&limit=200", server.url),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    let received: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"]["type"] == "call_received")
        .map(|e| {
            (
                e["kind"]["kind"].as_str().unwrap_or("tool").to_owned(),
                e["kind"]["tool"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("resource", "docs+test://readme"),
        ("resource", "docs+test://secret"),
        ("prompt", "docs__greeting"),
    ] {
        assert!(
            received
                .iter()
                .any(|(k, t)| (k.as_str(), t.as_str()) == expected),
            "{expected:?} not in {received:?}"
        );
    }

    // The upstream's questions during a call reach a client that can answer them; a client that
    // declared nothing is not asked, and the upstream hears so.
    let answering = Answering::default();
    let updated = answering.updated.clone();
    let answering = connect_with(&url, Some(ADMIN_KEY), answering)
        .await
        .unwrap();
    let sampled: Value =
        serde_json::from_str(&call_text(&answering, "docs__ask_model").await).unwrap();
    assert_eq!(sampled["content"]["text"], "governed");
    let elicited: Value =
        serde_json::from_str(&call_text(&answering, "docs__ask_user").await).unwrap();
    assert_eq!(elicited["content"]["name"], "Ada");
    let roots: Value = serde_json::from_str(&call_text(&answering, "docs__roots").await).unwrap();
    assert_eq!(roots["roots"][0]["uri"], "file:///work");

    // A subscribed session hears its resource's updates under the gateway's URI, and only it.
    #[allow(
        deprecated,
        reason = "resources/subscribe is how 2025 clients subscribe"
    )]
    answering
        .subscribe(rmcp::model::SubscribeRequestParams::new(
            "docs+test://readme",
        ))
        .await
        .unwrap();
    assert_eq!(call_text(&answering, "docs__touch").await, "told 0");
    let touched = client
        .call_tool(
            CallToolRequestParams::new("docs__touch").with_arguments(
                json!({"uri": "test://readme"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(text(&touched), "told 1");
    let heard = eventually_some("the subscriber hears of the update", async || {
        let heard = updated.lock().unwrap().clone();
        (!heard.is_empty()).then_some(heard)
    })
    .await;
    assert_eq!(heard, ["docs+test://readme"]);

    // The upstream refuses the call with a JSON-RPC error, which stays one.
    let refused = client
        .call_tool(CallToolRequestParams::new("docs__ask_model"))
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("cannot be asked `sampling/createMessage`"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_requests_mirror_arguments_in_headers_that_must_match() {
    let upstream = start_upstream();
    let data_dir = tempfile::tempdir().unwrap();
    let server = start_gateway(data_dir.path(), &config(&upstream.url), &[]);
    let url = format!("{}/mcp", server.url);
    let client = connect_url(&url, Some(ADMIN_KEY)).await.unwrap();
    eventually_some("the upstream's tools are listed", async || {
        let tools = client.list_all_tools().await.unwrap();
        tools.iter().any(|t| t.name == "docs__lookup").then_some(())
    })
    .await;
    // A 2026-07-28 request (no session): the header that mirrors `region` must equal it.
    let call = async |header: &str| {
        let response = reqwest::Client::new()
            .post(&url)
            .bearer_auth(ADMIN_KEY)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "docs__lookup")
            .header("mcp-param-region", header)
            .json(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": "docs__lookup", "arguments": {"region": "eu"},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {},
                    "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
                }}}),
            )
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        (status, body)
    };
    let (status, body) = call("us").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("-32020"), "{body}");
    let (status, body) = call("eu").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("region eu"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_clients_hear_when_an_upstream_brings_prompts_and_resources() {
    let upstream = start_upstream();
    let data_dir = tempfile::tempdir().unwrap();
    let server = start_gateway(data_dir.path(), "[policy]\ndefault = \"allow\"\n", &[]);
    let listening = Answering::default();
    let lists = listening.lists.clone();
    let client = connect_with(&format!("{}/mcp", server.url), Some(ADMIN_KEY), listening)
        .await
        .unwrap();
    assert!(client.list_all_prompts().await.unwrap().is_empty());
    let (status, created) = common::rest(
        reqwest::Method::POST,
        &format!("{}/api/v1/mcp-servers", server.url),
        Some(ADMIN_KEY),
        Some(json!({"name": "docs", "transport": "http", "url": upstream.url})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let mut heard = eventually_some("the client hears both lists changed", async || {
        let heard = lists.lock().unwrap().clone();
        (heard.len() >= 2).then_some(heard)
    })
    .await;
    heard.sort_unstable();
    heard.dedup();
    assert_eq!(heard, ["prompts", "resources"]);
    assert_eq!(
        client.list_all_prompts().await.unwrap()[0].name,
        "docs__greeting"
    );
}

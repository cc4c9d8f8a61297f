//! `/api/v1/mcp-servers`: the organization's upstream MCP servers (create, read, update, delete,
//! scan, tools) and `/api/v1/tool-configurations` (per-tool enable/disable, visibility,
//! description and approval policy). Credentials in headers and environment variables are
//! write-only: responses show their names, never their values. What each change does is
//! [`crate::app::Servers`]'s.

use super::views::Items;
use crate::app::servers::{Cause, REDACTED, ServerDescription};
use crate::config::McpServerEntry;
use crate::http::extract::{Body, Param, require_role};
use crate::http::{ApiError, bounds};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use preloop_core::Principal;
use preloop_core::documents::{McpServer, McpTransport, ToolConfiguration};
use preloop_core::principal::PrincipalSelector;
use preloop_core::registry::{RegisteredTool, ToolAnnotations, ToolSettings};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, replace, remove))
        .routes(routes!(scan))
        .routes(routes!(tools))
        .routes(routes!(list_configurations))
        .routes(routes!(show_configuration, configure, unconfigure))
}

impl ServerDescription for McpServerEntry {
    fn document(
        &self,
        organization_id: &str,
        id: Uuid,
        created_at: DateTime<Utc>,
    ) -> Result<McpServer, Cause> {
        Ok(self.to_document(organization_id, id, created_at)?)
    }
}

/// How a server is reached.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum ServerTransport {
    /// A program Preloop starts, spoken to over standard input and output.
    Stdio,
    /// Streamable HTTP.
    Http,
}

/// An upstream server as the API shows it: its credentials' names, never their values.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ServerView {
    /// The program's arguments (stdio servers).
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<Vec<String>>,
    /// The program (stdio servers).
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<String>,
    created_at: DateTime<Utc>,
    /// Disabled servers expose no tools.
    enabled: bool,
    /// The program's environment variables, each value `<redacted>` (stdio servers).
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<BTreeMap<String, String>>,
    /// Calls of tools it does not list are forwarded to it (governed, never held).
    forward_unlisted: bool,
    /// Headers sent with every request, each value `<redacted>` (HTTP servers).
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<BTreeMap<String, String>>,
    id: Uuid,
    keep_alive: bool,
    /// When its tools were last discovered (`null`: not yet).
    #[schema(required = true)]
    last_scanned_at: Option<DateTime<Utc>>,
    max_concurrency: u32,
    name: String,
    timeout_seconds: u64,
    /// Prefix of exposed tool names (`null`: the server's name).
    #[schema(required = true)]
    tool_prefix: Option<String>,
    transport: ServerTransport,
    /// The endpoint (HTTP servers).
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

/// Credentials' names, each with the redaction marker for a value.
fn redacted(map: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    map.keys()
        .map(|name| (name.clone(), REDACTED.to_owned()))
        .collect()
}

impl From<&McpServer> for ServerView {
    fn from(server: &McpServer) -> Self {
        let (mut args, mut command, mut env, mut headers, mut url) = (None, None, None, None, None);
        let transport = match &server.transport {
            McpTransport::Stdio {
                command: program,
                args: arguments,
                env: variables,
            } => {
                command = Some(program.clone());
                args = Some(arguments.clone());
                env = Some(redacted(variables));
                ServerTransport::Stdio
            }
            McpTransport::Http {
                url: endpoint,
                headers: sent,
            } => {
                url = Some(endpoint.clone());
                headers = Some(redacted(sent));
                ServerTransport::Http
            }
        };
        Self {
            args,
            command,
            created_at: server.created_at,
            enabled: server.enabled,
            env,
            forward_unlisted: server.forward_unlisted,
            headers,
            id: server.id,
            keep_alive: server.keep_alive,
            last_scanned_at: server.last_scanned_at,
            max_concurrency: server.max_concurrency,
            name: server.name.clone(),
            timeout_seconds: server.timeout_seconds,
            tool_prefix: server.tool_prefix.clone(),
            transport,
            url,
        }
    }
}

/// The MCP annotations of a tool: hints its server declares.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct AnnotationsView {
    #[serde(skip_serializing_if = "Option::is_none")]
    destructive_hint: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotent_hint: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    open_world_hint: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    read_only_hint: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
}

impl From<&ToolAnnotations> for AnnotationsView {
    fn from(annotations: &ToolAnnotations) -> Self {
        Self {
            destructive_hint: annotations.destructive_hint,
            idempotent_hint: annotations.idempotent_hint,
            open_world_hint: annotations.open_world_hint,
            read_only_hint: annotations.read_only_hint,
            title: annotations.title.clone(),
        }
    }
}

/// A server's tool as agents see it, with its settings.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ToolView {
    annotations: AnnotationsView,
    /// The approval policy of calls a rule holds without naming one (`null`: the default).
    #[schema(required = true)]
    approval_policy: Option<String>,
    description: String,
    enabled: bool,
    /// JSON Schema of the arguments.
    #[schema(value_type = Object)]
    input_schema: serde_json::Value,
    /// The exposed name agents call.
    name: String,
    /// The tool's name on its server.
    upstream_name: String,
}

impl From<&RegisteredTool> for ToolView {
    fn from(tool: &RegisteredTool) -> Self {
        let d = &tool.descriptor;
        Self {
            annotations: (&d.annotations).into(),
            approval_policy: tool.approval_policy.clone(),
            description: d.description.clone(),
            enabled: tool.enabled,
            input_schema: d.input_schema.clone(),
            name: d.exposed_name.clone(),
            upstream_name: d.name.clone(),
        }
    }
}

/// What a scan found.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ScanView {
    last_scanned_at: DateTime<Utc>,
    /// How many tools the server has.
    tools: usize,
}

/// A tool's configuration.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ConfigurationView {
    #[serde(skip_serializing_if = "Option::is_none")]
    approval_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    enabled: bool,
    organization_id: String,
    /// The exposed tool name.
    tool: String,
    updated_at: DateTime<Utc>,
    /// Principal selectors; empty: everyone.
    visible_to: Vec<String>,
}

impl From<&ToolConfiguration> for ConfigurationView {
    fn from(configuration: &ToolConfiguration) -> Self {
        Self {
            approval_policy: configuration.approval_policy.clone(),
            description: configuration.description.clone(),
            enabled: configuration.enabled,
            organization_id: configuration.organization_id.clone(),
            tool: configuration.tool.clone(),
            updated_at: configuration.updated_at,
            visible_to: configuration
                .visible_to
                .iter()
                .map(ToString::to_string)
                .collect(),
        }
    }
}

/// Servers (their commands, arguments and internal URLs) and tool settings are for admins.
fn admin(principal: &Principal) -> Result<(), ApiError> {
    require_role(principal, "admin", "see or manage MCP servers and tools")
}

#[utoipa::path(
    get,
    path = "/mcp-servers",
    tag = "mcp-servers",
    summary = "The organization's upstream MCP servers (credentials redacted)",
    responses((status = 200, description = "Done", body = Items<ServerView>), (status = 401, description = "Missing or invalid credentials"))
)]
async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Items<ServerView>>, ApiError> {
    admin(&principal)?;
    let servers = state.servers.list(&principal.organization_id).await?;
    Ok(Json(servers.iter().map(ServerView::from).collect()))
}

#[utoipa::path(
    get,
    path = "/mcp-servers/{id}",
    tag = "mcp-servers",
    summary = "One server",
    params(("id" = uuid::Uuid, Path, description = "Id")),
    responses((status = 200, description = "Done", body = ServerView), (status = 404, description = "Not found in the caller's organization"))
)]
async fn show(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
) -> Result<Json<ServerView>, ApiError> {
    admin(&principal)?;
    let server = state.servers.get(&principal.organization_id, id).await?;
    Ok(Json((&server).into()))
}

/// Registers a server and starts discovering its tools in the background.
#[utoipa::path(
    post,
    path = "/mcp-servers",
    tag = "mcp-servers",
    summary = "Register an upstream MCP server; its tools are discovered in the background (admins)",
    request_body = McpServerEntry,
    responses((status = 201, description = "Created", body = ServerView), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 409, description = "Conflicts with the current state"), (status = 422, description = "Does not validate"))
)]
async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(entry): Body<McpServerEntry>,
) -> Result<(StatusCode, Json<ServerView>), ApiError> {
    admin(&principal)?;
    let server = state
        .servers
        .create(&principal.organization_id, &entry)
        .await?;
    Ok((StatusCode::CREATED, Json((&server).into())))
}

/// Replaces a server's settings and restarts it (its tools are rediscovered).
#[utoipa::path(
    put,
    path = "/mcp-servers/{id}",
    tag = "mcp-servers",
    summary = "Replace a server's settings and restart it; `<redacted>` keeps a stored credential (admins)",
    params(("id" = uuid::Uuid, Path, description = "Id")),
    request_body = McpServerEntry,
    responses((status = 200, description = "Done", body = ServerView), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"), (status = 422, description = "Does not validate"))
)]
async fn replace(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
    Body(entry): Body<McpServerEntry>,
) -> Result<Json<ServerView>, ApiError> {
    admin(&principal)?;
    let server = state
        .servers
        .replace(&principal.organization_id, id, &entry)
        .await?;
    Ok(Json((&server).into()))
}

/// Stops and deletes a server; its tools disappear at once.
#[utoipa::path(
    delete,
    path = "/mcp-servers/{id}",
    tag = "mcp-servers",
    summary = "Stop and delete a server; its tools disappear (admins)",
    params(("id" = uuid::Uuid, Path, description = "Id")),
    responses((status = 204, description = "Done, nothing to return"), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"))
)]
async fn remove(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
) -> Result<StatusCode, ApiError> {
    admin(&principal)?;
    state.servers.remove(&principal.organization_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rediscovers the server's tools now; 502 when the server cannot be reached.
#[utoipa::path(
    post,
    path = "/mcp-servers/{id}/scan",
    tag = "mcp-servers",
    summary = "Rediscover the server's tools now (admins)",
    params(("id" = uuid::Uuid, Path, description = "Id")),
    responses((status = 200, description = "Done", body = ScanView), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"), (status = 409, description = "Conflicts with the current state"), (status = 502, description = "The upstream server did not answer"))
)]
async fn scan(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
) -> Result<Json<ScanView>, ApiError> {
    admin(&principal)?;
    let scanned = state.servers.scan(&principal.organization_id, id).await?;
    Ok(Json(ScanView {
        last_scanned_at: scanned.at,
        tools: scanned.tools,
    }))
}

#[utoipa::path(
    get,
    path = "/mcp-servers/{id}/tools",
    tag = "mcp-servers",
    summary = "The server's tools as exposed",
    params(("id" = uuid::Uuid, Path, description = "Id")),
    responses((status = 200, description = "Done", body = Items<ToolView>), (status = 404, description = "Not found in the caller's organization"))
)]
async fn tools(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
) -> Result<Json<Items<ToolView>>, ApiError> {
    admin(&principal)?;
    let tools = state.servers.tools(&principal.organization_id, id).await?;
    Ok(Json(tools.iter().map(ToolView::from).collect()))
}

#[utoipa::path(
    get,
    path = "/tool-configurations",
    tag = "tool-configurations",
    summary = "Tool configurations",
    responses((status = 200, description = "Done", body = Items<ConfigurationView>), (status = 401, description = "Missing or invalid credentials"))
)]
async fn list_configurations(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Items<ConfigurationView>>, ApiError> {
    admin(&principal)?;
    let configurations = state
        .servers
        .configurations(&principal.organization_id)
        .await?;
    Ok(Json(
        configurations.iter().map(ConfigurationView::from).collect(),
    ))
}

#[utoipa::path(
    get,
    path = "/tool-configurations/{tool}",
    tag = "tool-configurations",
    summary = "One tool's configuration",
    params(("tool" = String, Path, description = "Exposed tool name")),
    responses((status = 200, description = "Done", body = ConfigurationView), (status = 404, description = "Not found in the caller's organization"))
)]
async fn show_configuration(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(tool): Param<String>,
) -> Result<Json<ConfigurationView>, ApiError> {
    admin(&principal)?;
    let configuration = state
        .servers
        .configuration(&principal.organization_id, &tool)
        .await?;
    Ok(Json((&configuration).into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Configuration {
    #[serde(default = "enabled")]
    enabled: bool,
    #[serde(default)]
    /// Principal selectors (`role:agent`, an e-mail, `apikey:<key id>`); empty: everyone.
    #[schema(value_type = Vec<String>)]
    visible_to: Vec<PrincipalSelector>,
    description: Option<String>,
    approval_policy: Option<String>,
}

fn enabled() -> bool {
    true
}

/// Sets a tool's configuration (kept across rescans; the tool need not exist yet).
#[utoipa::path(
    put,
    path = "/tool-configurations/{tool}",
    tag = "tool-configurations",
    summary = "Enable or disable a tool, restrict who sees it, set its approval policy (admins)",
    params(("tool" = String, Path, description = "Exposed tool name")),
    request_body = Configuration,
    responses((status = 200, description = "Done", body = ConfigurationView), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 422, description = "Does not validate"))
)]
async fn configure(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(tool): Param<String>,
    Body(body): Body<Configuration>,
) -> Result<Json<ConfigurationView>, ApiError> {
    admin(&principal)?;
    bounds::text("tool", &tool, bounds::NAME)?;
    bounds::optional("description", body.description.as_deref(), bounds::TEXT)?;
    let settings = ToolSettings {
        enabled: body.enabled,
        visible_to: body.visible_to,
        description: body.description,
        approval_policy: body.approval_policy,
    };
    let configuration = state
        .servers
        .configure(&principal.organization_id, &tool, settings)
        .await?;
    Ok(Json((&configuration).into()))
}

/// Removes a tool's configuration: it is enabled for everyone again.
#[utoipa::path(
    delete,
    path = "/tool-configurations/{tool}",
    tag = "tool-configurations",
    summary = "Remove a tool's configuration (admins)",
    params(("tool" = String, Path, description = "Exposed tool name")),
    responses((status = 204, description = "Done, nothing to return"), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"))
)]
async fn unconfigure(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(tool): Param<String>,
) -> Result<StatusCode, ApiError> {
    admin(&principal)?;
    state
        .servers
        .unconfigure(&principal.organization_id, &tool)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn server(transport: McpTransport) -> McpServer {
        McpServer {
            id: Uuid::new_v4(),
            organization_id: "org".to_owned(),
            name: "docs".to_owned(),
            transport,
            tool_prefix: None,
            enabled: true,
            timeout_seconds: 30,
            max_concurrency: 8,
            keep_alive: false,
            forward_unlisted: false,
            last_scanned_at: None,
            created_at: Utc::now(),
        }
    }

    /// The view is the JSON these routes answered before they had types, byte for byte:
    /// credentials' names with `<redacted>` values, `null` for what is unset.
    #[test]
    fn a_server_shows_as_before_with_its_credentials_redacted() {
        let secrets = BTreeMap::from([("TOKEN".to_owned(), "s3cret".to_owned())]);
        for transport in [
            McpTransport::Stdio {
                command: "python3".to_owned(),
                args: vec!["server.py".to_owned()],
                env: secrets.clone(),
            },
            McpTransport::Http {
                url: "https://example.com/mcp".to_owned(),
                headers: secrets.clone(),
            },
        ] {
            let server = server(transport);
            let mut expected = json!({
                "id": server.id,
                "name": server.name,
                "tool_prefix": server.tool_prefix,
                "enabled": server.enabled,
                "timeout_seconds": server.timeout_seconds,
                "max_concurrency": server.max_concurrency,
                "keep_alive": server.keep_alive,
                "forward_unlisted": server.forward_unlisted,
                "last_scanned_at": server.last_scanned_at,
                "created_at": server.created_at,
            });
            let transport = match &server.transport {
                McpTransport::Stdio { command, args, .. } => {
                    json!({"transport": "stdio", "command": command, "args": args, "env": {"TOKEN": REDACTED}})
                }
                McpTransport::Http { url, .. } => {
                    json!({"transport": "http", "url": url, "headers": {"TOKEN": REDACTED}})
                }
            };
            if let (Some(value), Some(transport)) =
                (expected.as_object_mut(), transport.as_object())
            {
                value.extend(transport.clone());
            }
            let shown = serde_json::to_string(&ServerView::from(&server)).unwrap();
            assert_eq!(shown, expected.to_string());
            assert!(!shown.contains("s3cret"), "{shown}");
        }
    }

    #[test]
    fn a_tool_configuration_omits_what_is_unset() {
        let configuration = ToolConfiguration {
            organization_id: "org".to_owned(),
            tool: "docs__echo".to_owned(),
            enabled: false,
            visible_to: vec!["role:agent".parse().unwrap()],
            description: None,
            approval_policy: Some("ops".to_owned()),
            updated_at: Utc::now(),
        };
        let shown = serde_json::to_value(ConfigurationView::from(&configuration)).unwrap();
        assert_eq!(shown, serde_json::to_value(&configuration).unwrap());
        let list: Items<ConfigurationView> = [ConfigurationView::from(&configuration)]
            .into_iter()
            .collect();
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            json!({"items": [configuration]}).to_string()
        );
    }
}

//! `/api/v1/mcp-servers`: the organization's upstream MCP servers (create, read, update, delete,
//! scan, tools) and `/api/v1/tool-configurations` (per-tool enable/disable, visibility,
//! description and approval policy). Credentials in headers and environment variables are
//! write-only: responses show their names, never their values.

use crate::config::McpServerEntry;
use crate::gateway::upstream::egress::MAX_TENANT_SERVERS;
use crate::http::extract::{Body, Param, require_role};
use crate::http::{ApiError, bounds};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::Utc;
use preloop_core::Principal;
use preloop_core::documents::{DiscoveredTool, McpServer, McpTransport, ToolConfiguration};
use preloop_core::principal::PrincipalSelector;
use preloop_core::registry::RegisteredTool;
use preloop_core::store::DocumentStore;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// What responses show instead of a credential.
const REDACTED: &str = "<redacted>";

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, replace, remove))
        .routes(routes!(scan))
        .routes(routes!(tools))
        .routes(routes!(list_configurations))
        .routes(routes!(show_configuration, configure, unconfigure))
}

fn redacted(map: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    map.keys().map(|k| (k.as_str(), REDACTED)).collect()
}

fn view(server: &McpServer) -> Value {
    let mut value = json!({
        "id": server.id,
        "name": server.name,
        "tool_prefix": server.tool_prefix,
        "enabled": server.enabled,
        "timeout_seconds": server.timeout_seconds,
        "max_concurrency": server.max_concurrency,
        "keep_alive": server.keep_alive,
        "last_scanned_at": server.last_scanned_at,
        "created_at": server.created_at,
    });
    let transport = match &server.transport {
        McpTransport::Stdio { command, args, env } => {
            json!({"transport": "stdio", "command": command, "args": args, "env": redacted(env)})
        }
        McpTransport::Http { url, headers } => {
            json!({"transport": "http", "url": url, "headers": redacted(headers)})
        }
    };
    if let (Some(value), Some(transport)) = (value.as_object_mut(), transport.as_object()) {
        value.extend(transport.clone());
    }
    value
}

fn tool_view(tool: &RegisteredTool) -> Value {
    let d = &tool.descriptor;
    json!({
        "name": d.exposed_name,
        "upstream_name": d.name,
        "description": d.description,
        "input_schema": d.input_schema,
        "annotations": d.annotations,
        "enabled": tool.enabled,
        "approval_policy": tool.approval_policy,
    })
}

async fn server_of(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> Result<McpServer, ApiError> {
    DocumentStore::<McpServer>::get_document(
        &*state.store,
        &principal.organization_id,
        &id.to_string(),
    )
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no MCP server `{id}`")))
}

/// Refuses a server its organization may not run or reach (see [`crate::gateway::upstream::egress`]).
fn permitted(state: &AppState, server: &McpServer) -> Result<(), ApiError> {
    state
        .upstreams
        .egress()
        .check(server)
        .map_err(|error| ApiError::Forbidden(error.to_string()))
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
    responses((status = 200, description = "Done"), (status = 401, description = "Missing or invalid credentials"))
)]
async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    admin(&principal)?;
    let servers: Vec<McpServer> = state
        .store
        .list_documents(&principal.organization_id, None)
        .await?;
    Ok(Json(
        json!({"items": servers.iter().map(view).collect::<Vec<_>>()}),
    ))
}

#[utoipa::path(
    get,
    path = "/mcp-servers/{id}",
    tag = "mcp-servers",
    summary = "One server",
    params(("id" = uuid::Uuid, Path, description = "Id")),
    responses((status = 200, description = "Done"), (status = 404, description = "Not found in the caller's organization"))
)]
async fn show(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
) -> Result<Json<Value>, ApiError> {
    admin(&principal)?;
    Ok(Json(view(&server_of(&state, &principal, id).await?)))
}

/// Registers a server and starts discovering its tools in the background.
#[utoipa::path(
    post,
    path = "/mcp-servers",
    tag = "mcp-servers",
    summary = "Register an upstream MCP server; its tools are discovered in the background (admins)",
    request_body = McpServerEntry,
    responses((status = 201, description = "Created"), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 409, description = "Conflicts with the current state"), (status = 422, description = "Does not validate"))
)]
async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(entry): Body<McpServerEntry>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin(&principal)?;
    let server = entry
        .to_document(&principal.organization_id, Uuid::new_v4(), Utc::now())
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    permitted(&state, &server)?;
    if !crate::tenancy::is_operator(&principal.organization_id) {
        let servers: Vec<McpServer> = state
            .store
            .list_documents(&principal.organization_id, None)
            .await?;
        if servers.len() >= MAX_TENANT_SERVERS {
            return Err(ApiError::Conflict(format!(
                "an organization may have at most {MAX_TENANT_SERVERS} MCP servers"
            )));
        }
    }
    state
        .store
        .insert_document(&server)
        .await
        .map_err(ApiError::exists(format!(
            "an MCP server `{}` exists",
            server.name
        )))?;
    state.upstreams.start(server.clone()).await;
    state.replicas.announce(&principal.organization_id).await;
    Ok((StatusCode::CREATED, Json(view(&server))))
}

/// Whether two URLs have the same scheme, host and port.
fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// Keeps stored credentials whose value came back as the redaction marker.
fn keep_secrets(new: &mut BTreeMap<String, String>, old: &BTreeMap<String, String>) {
    for (name, value) in new.iter_mut() {
        if value == REDACTED
            && let Some(stored) = old.get(name)
        {
            value.clone_from(stored);
        }
    }
}

/// Replaces a server's settings and restarts it (its tools are rediscovered).
#[utoipa::path(
    put,
    path = "/mcp-servers/{id}",
    tag = "mcp-servers",
    summary = "Replace a server's settings and restart it; `<redacted>` keeps a stored credential (admins)",
    params(("id" = uuid::Uuid, Path, description = "Id")),
    request_body = McpServerEntry,
    responses((status = 200, description = "Done"), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"), (status = 422, description = "Does not validate"))
)]
async fn replace(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
    Body(entry): Body<McpServerEntry>,
) -> Result<Json<Value>, ApiError> {
    admin(&principal)?;
    let old = server_of(&state, &principal, id).await?;
    let mut server = entry
        .to_document(&principal.organization_id, id, old.created_at)
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    // Stored credentials stay with the destination they were given for: kept for the same
    // origin or program, never sent somewhere new (the caller gives them again instead).
    let kept = match (&mut server.transport, &old.transport) {
        (
            McpTransport::Http { url, headers },
            McpTransport::Http {
                url: old_url,
                headers: old,
            },
        ) if same_origin(url, old_url) => {
            keep_secrets(headers, old);
            true
        }
        (
            McpTransport::Stdio { command, args, env },
            McpTransport::Stdio {
                command: old_command,
                args: old_args,
                env: old,
            },
        ) if command == old_command && args == old_args => {
            keep_secrets(env, old);
            true
        }
        _ => false,
    };
    let redacted_left = match &server.transport {
        McpTransport::Http { headers, .. } => headers.values().any(|v| v == REDACTED),
        McpTransport::Stdio { env, .. } => env.values().any(|v| v == REDACTED),
    };
    if !kept && redacted_left {
        return Err(ApiError::Unprocessable(
            "the server's URL origin or program changed: give its credentials again instead of `<redacted>`".to_owned(),
        ));
    }
    server.last_scanned_at = old.last_scanned_at;
    permitted(&state, &server)?;
    state.store.update_document(&server).await?;
    state.upstreams.start(server.clone()).await;
    state.replicas.announce(&principal.organization_id).await;
    Ok(Json(view(&server)))
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
    let server = server_of(&state, &principal, id).await?;
    let org = &principal.organization_id;
    state.upstreams.stop(org, id).await;
    DocumentStore::<DiscoveredTool>::replace_children(&*state.store, org, &id.to_string(), &[])
        .await?;
    DocumentStore::<McpServer>::delete_document(&*state.store, org, &server.id.to_string()).await?;
    state.replicas.announce(org).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Rediscovers the server's tools now; 502 when the server cannot be reached.
#[utoipa::path(
    post,
    path = "/mcp-servers/{id}/scan",
    tag = "mcp-servers",
    summary = "Rediscover the server's tools now (admins)",
    params(("id" = uuid::Uuid, Path, description = "Id")),
    responses((status = 200, description = "Done"), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"), (status = 409, description = "Conflicts with the current state"), (status = 502, description = "The upstream server did not answer"))
)]
async fn scan(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
) -> Result<Json<Value>, ApiError> {
    admin(&principal)?;
    let mut server = server_of(&state, &principal, id).await?;
    let upstream = state
        .upstreams
        .get(&principal.organization_id, id)
        .await
        .ok_or_else(|| ApiError::Conflict(format!("MCP server `{}` is disabled", server.name)))?;
    let count = upstream
        .scan()
        .await
        .map_err(|e| ApiError::BadGateway(e.to_string()))?;
    server.last_scanned_at = Some(Utc::now());
    state.store.update_document(&server).await?;
    Ok(Json(
        json!({"tools": count, "last_scanned_at": server.last_scanned_at}),
    ))
}

#[utoipa::path(
    get,
    path = "/mcp-servers/{id}/tools",
    tag = "mcp-servers",
    summary = "The server's tools as exposed",
    params(("id" = uuid::Uuid, Path, description = "Id")),
    responses((status = 200, description = "Done"), (status = 404, description = "Not found in the caller's organization"))
)]
async fn tools(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
) -> Result<Json<Value>, ApiError> {
    admin(&principal)?;
    let server = server_of(&state, &principal, id).await?;
    let tools = state
        .governor
        .registry()
        .server_tools(Some(&principal.organization_id), &server.name);
    Ok(Json(
        json!({"items": tools.iter().map(tool_view).collect::<Vec<_>>()}),
    ))
}

#[utoipa::path(
    get,
    path = "/tool-configurations",
    tag = "tool-configurations",
    summary = "Tool configurations",
    responses((status = 200, description = "Done"), (status = 401, description = "Missing or invalid credentials"))
)]
async fn list_configurations(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    admin(&principal)?;
    let configurations: Vec<ToolConfiguration> = state
        .store
        .list_documents(&principal.organization_id, None)
        .await?;
    Ok(Json(json!({"items": configurations})))
}

#[utoipa::path(
    get,
    path = "/tool-configurations/{tool}",
    tag = "tool-configurations",
    summary = "One tool's configuration",
    params(("tool" = String, Path, description = "Exposed tool name")),
    responses((status = 200, description = "Done"), (status = 404, description = "Not found in the caller's organization"))
)]
async fn show_configuration(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(tool): Param<String>,
) -> Result<Json<ToolConfiguration>, ApiError> {
    admin(&principal)?;
    DocumentStore::<ToolConfiguration>::get_document(
        &*state.store,
        &principal.organization_id,
        &tool,
    )
    .await?
    .map(Json)
    .ok_or_else(|| ApiError::NotFound(format!("tool `{tool}` has no configuration")))
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
    responses((status = 200, description = "Done"), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 422, description = "Does not validate"))
)]
async fn configure(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(tool): Param<String>,
    Body(body): Body<Configuration>,
) -> Result<Json<ToolConfiguration>, ApiError> {
    admin(&principal)?;
    bounds::text("tool", &tool, bounds::NAME)?;
    bounds::optional("description", body.description.as_deref(), bounds::TEXT)?;
    let org = &principal.organization_id;
    for selector in &body.visible_to {
        selector
            .require_key_id()
            .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    }
    if let Some(name) = &body.approval_policy {
        let known = state
            .governor
            .governance(org)
            .is_some_and(|g| g.approval_policy(Some(name)).is_some());
        if !known {
            return Err(ApiError::Unprocessable(format!(
                "approval policy `{name}` is not defined"
            )));
        }
    }
    let configuration = ToolConfiguration {
        organization_id: org.clone(),
        tool: tool.clone(),
        enabled: body.enabled,
        visible_to: body.visible_to,
        description: body.description,
        approval_policy: body.approval_policy,
        updated_at: Utc::now(),
    };
    let exists = DocumentStore::<ToolConfiguration>::get_document(&*state.store, org, &tool)
        .await?
        .is_some();
    if exists {
        state.store.update_document(&configuration).await?;
    } else {
        state.store.insert_document(&configuration).await?;
    }
    state
        .governor
        .registry()
        .configure(Some(org), &tool, Some(configuration.settings()));
    state.replicas.announce(org).await;
    Ok(Json(configuration))
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
    let org = &principal.organization_id;
    DocumentStore::<ToolConfiguration>::delete_document(&*state.store, org, &tool).await?;
    state.governor.registry().configure(Some(org), &tool, None);
    state.replicas.announce(org).await;
    Ok(StatusCode::NO_CONTENT)
}

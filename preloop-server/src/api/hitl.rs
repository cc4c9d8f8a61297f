//! The HITL API, compatible with Loopgate, for agents that do not speak MCP: sessions, requests
//! a human answers, polling, cancelling and the pending list. Requests are approval requests of
//! the built-in `request_approval` tool, so they follow the organization's approval policies,
//! reach the same approvers and channels, and land in the same audit chain. Requests are
//! bearer-authenticated (`Authorization: Bearer` or, as Loopgate clients send it, `X-API-Key`);
//! errors use the REST API's JSON shape.

use super::views::hitl::{
    Acknowledged, HitlRequestView, PendingList, PollAnswer, Registered, Requested, SessionView,
};
use crate::gateway::builtins::REQUEST_APPROVAL;
use crate::http::{ApiError, Body, QueryParams, bounds};
use crate::state::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use chrono::Utc;
use preloop_core::Principal;
use preloop_core::approval::{ApprovalState, RequestContext};
use preloop_core::documents::HitlSession;
use preloop_core::governor::{Outcome, ToolCall};
use preloop_core::store::{ApprovalFilter, DocumentStore};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// Loopgate's default wait for an answer.
const DEFAULT_TIMEOUT_SECONDS: u64 = 300;

/// The `/hitl` routes (authentication is applied by the caller).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(deactivate))
        .routes(routes!(request))
        .routes(routes!(poll))
        .routes(routes!(status))
        .routes(routes!(cancel))
        .routes(routes!(pending))
}

fn required(fields: &[(&str, &str)]) -> Result<(), ApiError> {
    let missing: Vec<&str> = fields
        .iter()
        .filter(|(_, value)| value.trim().is_empty())
        .map(|(name, _)| *name)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "missing required fields: {}",
            missing.join(", ")
        )))
    }
}

/// A session to register (named apart from sign-up's `Registration` in the OpenAPI document).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = HitlRegistration)]
struct Registration {
    #[serde(default)]
    session_id: String,
    #[serde(default)]
    client_id: String,
    telegram_id: Option<i64>,
}

/// The session, if the caller registered it or is an admin: a session belongs to whoever
/// registered it, not to everyone in the organization (others are told it does not exist).
async fn session_of(
    state: &AppState,
    principal: &Principal,
    session_id: &str,
) -> Result<HitlSession, ApiError> {
    DocumentStore::<HitlSession>::get_document(
        &*state.store,
        &principal.organization_id,
        session_id,
    )
    .await?
    .filter(|session| session.registered_by == principal.id || principal.has_role("admin"))
    .ok_or_else(|| ApiError::NotFound(format!("session `{session_id}` not found")))
}

#[utoipa::path(
    post,
    path = "/hitl/register",
    tag = "hitl",
    summary = "Register an agent session (Loopgate-compatible)",
    request_body = Registration,
    responses((status = 200, description = "Done", body = Registered), (status = 400, description = "Malformed request"), (status = 401, description = "Missing or invalid credentials"), (status = 409, description = "Conflicts with the current state"))
)]
async fn register(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<Registration>,
) -> Result<Json<Registered>, ApiError> {
    required(&[
        ("session_id", &body.session_id),
        ("client_id", &body.client_id),
    ])?;
    bounds::text("session_id", &body.session_id, bounds::ID)?;
    bounds::text("client_id", &body.client_id, bounds::ID)?;
    let session = HitlSession {
        organization_id: principal.organization_id.clone(),
        session_id: body.session_id.clone(),
        client_id: body.client_id,
        telegram_id: body.telegram_id,
        active: true,
        registered_by: principal.id.clone(),
        created_at: Utc::now(),
    };
    state
        .store
        .insert_document(&session)
        .await
        .map_err(ApiError::exists(format!(
            "session `{}` already exists",
            body.session_id
        )))?;
    Ok(Json(Registered::new(body.session_id)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct SessionRef {
    #[serde(default)]
    session_id: String,
}

#[utoipa::path(
    post,
    path = "/hitl/deactivate",
    tag = "hitl",
    summary = "Deactivate a session",
    request_body = SessionRef,
    responses((status = 200, description = "Done", body = Acknowledged), (status = 400, description = "Malformed request"), (status = 404, description = "Not found in the caller's organization"))
)]
async fn deactivate(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<SessionRef>,
) -> Result<Json<Acknowledged>, ApiError> {
    required(&[("session_id", &body.session_id)])?;
    let mut session = session_of(&state, &principal, &body.session_id).await?;
    session.active = false;
    state.store.update_document(&session).await?;
    Ok(Json(Acknowledged::new("Session deactivated successfully")))
}

#[utoipa::path(
    get,
    path = "/hitl/status",
    tag = "hitl",
    summary = "A session",
    params(("session_id" = String, Query, description = "The session id")),
    responses((status = 200, description = "Done", body = SessionView), (status = 400, description = "Malformed request"), (status = 404, description = "Not found in the caller's organization"))
)]
async fn status(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    QueryParams(query): QueryParams<SessionRef>,
) -> Result<Json<SessionView>, ApiError> {
    required(&[("session_id", &query.session_id)])?;
    let session = session_of(&state, &principal, &query.session_id).await?;
    Ok(Json(session.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct HumanRequest {
    #[serde(default)]
    session_id: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    message: String,
    request_type: Option<String>,
    #[serde(default)]
    options: Vec<String>,
    timeout_seconds: Option<u64>,
    callback_url: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    metadata: Map<String, Value>,
}

/// Opens an approval request and answers at once; the agent polls for the answer.
#[utoipa::path(
    post,
    path = "/hitl/request",
    tag = "hitl",
    summary = "Ask a human; answers at once with a request id to poll",
    request_body = HumanRequest,
    responses((status = 200, description = "Done", body = Requested), (status = 400, description = "Malformed request"), (status = 404, description = "Not found in the caller's organization"))
)]
async fn request(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<HumanRequest>,
) -> Result<Json<Requested>, ApiError> {
    required(&[
        ("session_id", &body.session_id),
        ("client_id", &body.client_id),
        ("message", &body.message),
    ])?;
    bounds::text("session_id", &body.session_id, bounds::ID)?;
    bounds::text("client_id", &body.client_id, bounds::ID)?;
    bounds::text("message", &body.message, bounds::TEXT)?;
    bounds::optional("request_type", body.request_type.as_deref(), bounds::ID)?;
    bounds::optional("callback_url", body.callback_url.as_deref(), bounds::URL)?;
    bounds::list("options", &body.options, bounds::OPTIONS, bounds::NAME)?;
    bounds::json(
        "metadata",
        &Value::Object(body.metadata.clone()),
        bounds::METADATA_BYTES,
    )?;
    let session = session_of(&state, &principal, &body.session_id).await?;
    if !session.active {
        return Err(ApiError::BadRequest("session is not active".to_owned()));
    }
    if session.client_id != body.client_id {
        return Err(ApiError::BadRequest(
            "client_id does not match the session's".to_owned(),
        ));
    }
    let request_type = body.request_type.unwrap_or_else(|| {
        if body.options.is_empty() {
            "input"
        } else {
            "choice"
        }
        .to_owned()
    });
    let timeout_seconds = match body.timeout_seconds {
        None | Some(0) => DEFAULT_TIMEOUT_SECONDS,
        Some(seconds) => seconds,
    };
    let arguments = json!({
        "operation": body.message,
        "options": body.options,
        "metadata": body.metadata,
        "hitl": {
            "session_id": body.session_id,
            "client_id": body.client_id,
            "request_type": request_type,
            "timeout_seconds": timeout_seconds,
            "callback_url": body.callback_url,
        },
    });
    let mut call = ToolCall::new(REQUEST_APPROVAL, arguments)
        .without_waiting()
        .with_approval_timeout(Duration::from_secs(timeout_seconds));
    call.context = RequestContext {
        operation: Some(body.message),
        context: Some(format!("HITL session `{}`", body.session_id)),
        reasoning: None,
    };
    let outcome = state
        .governor
        .request_approval(&principal, call, None)
        .await?;
    let Outcome::PendingApproval { request_id, .. } = outcome else {
        return Err(ApiError::Conflict(format!(
            "the request was not held for a human: {}",
            outcome.message()
        )));
    };
    let held = state.governor.request(&principal, request_id).await?;
    Ok(Json(Requested::new(&held)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct RequestRef {
    request_id: Option<String>,
}

fn request_id(reference: &RequestRef) -> Result<Uuid, ApiError> {
    let raw = reference
        .request_id
        .as_deref()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::BadRequest("missing request_id".to_owned()))?;
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("request `{raw}` not found")))
}

#[utoipa::path(
    get,
    path = "/hitl/poll",
    tag = "hitl",
    summary = "The answer to a request, once there is one",
    params(("request_id" = String, Query, description = "The request id")),
    responses((status = 200, description = "Done", body = PollAnswer), (status = 400, description = "Malformed request"), (status = 404, description = "Not found in the caller's organization"))
)]
async fn poll(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    QueryParams(query): QueryParams<RequestRef>,
) -> Result<Json<PollAnswer>, ApiError> {
    let id = request_id(&query)?;
    let request = state.governor.approval_status(&principal, id).await?;
    Ok(Json(PollAnswer::from(&request)))
}

#[utoipa::path(
    post,
    path = "/hitl/cancel",
    tag = "hitl",
    summary = "Withdraw a request",
    request_body = RequestRef,
    responses((status = 200, description = "Done", body = Acknowledged), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"), (status = 409, description = "Conflicts with the current state"))
)]
async fn cancel(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<RequestRef>,
) -> Result<Json<Acknowledged>, ApiError> {
    let id = request_id(&body)?;
    state
        .governor
        .cancel(
            &principal,
            id,
            Some("cancelled through the HITL API".to_owned()),
        )
        .await?;
    Ok(Json(Acknowledged::new("Request canceled successfully")))
}

/// Pending HITL requests the caller may see: their own, those they may vote on, all for admins.
#[utoipa::path(
    get,
    path = "/hitl/pending",
    tag = "hitl",
    summary = "Pending requests the caller may see",
    responses((status = 200, description = "Done", body = PendingList), (status = 401, description = "Missing or invalid credentials"))
)]
async fn pending(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<PendingList>, ApiError> {
    let filter = ApprovalFilter {
        state: Some(ApprovalState::Pending),
        requester_id: None,
        limit: 1000,
    };
    let requests = state.governor.list_requests(&principal, &filter).await?;
    Ok(Json(
        requests
            .iter()
            .filter(|r| r.tool.exposed_name == REQUEST_APPROVAL)
            .map(HitlRequestView::from)
            .collect(),
    ))
}

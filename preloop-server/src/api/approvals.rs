//! `/api/v1/approval-requests`: list, get, approve, decline, decide.

use super::ApiError;
use super::extract::{Body, Param, QueryParams};
use crate::http::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use preloop_core::Principal;
use preloop_core::approval::{ApprovalRequest, ApprovalState, VoteCast, VoteDecision};
use preloop_core::store::ApprovalFilter;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/approval-requests", get(list))
        .route("/approval-requests/{id}", get(show))
        .route("/approval-requests/{id}/approve", post(approve))
        .route("/approval-requests/{id}/decline", post(decline))
        .route("/approval-requests/{id}/decide", post(decide))
}

/// A request as the API shows it: everything but the decision-link token's hash.
pub(crate) fn view(request: &ApprovalRequest) -> Value {
    let mut value = serde_json::to_value(request).unwrap_or(Value::Null);
    if let Some(object) = value.as_object_mut() {
        object.remove("token_hash");
        object.insert(
            "effective_arguments".to_owned(),
            request.effective_arguments().clone(),
        );
    }
    value
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<ApprovalState>,
    limit: Option<usize>,
}

/// Approvers and admins see the organization's requests; everyone else sees their own.
async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let sees_all = principal.has_role("admin") || principal.has_role("approver");
    let filter = ApprovalFilter {
        state: query.status,
        requester_id: (!sees_all).then(|| principal.id.clone()),
        limit: query.limit.unwrap_or(100).min(1000),
    };
    let requests = state.governor.list_requests(&principal, &filter).await?;
    Ok(Json(
        json!({"items": requests.iter().map(view).collect::<Vec<_>>()}),
    ))
}

async fn show(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&state.governor.request(&principal, id).await?)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VoteBody {
    decision: Option<VoteDecision>,
    comment: Option<String>,
    /// Edited arguments (approvals only, when the policy allows editing).
    approved_arguments: Option<Value>,
    /// Allow this tool for the requester for this many minutes (when the policy allows grants).
    grant_minutes: Option<u64>,
}

/// A JSON body that may be absent: empty means the defaults; anything else must parse.
fn optional_body(bytes: &[u8]) -> Result<VoteBody, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(VoteBody::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

async fn vote(
    state: &AppState,
    principal: Principal,
    id: Uuid,
    decision: VoteDecision,
    body: VoteBody,
) -> Result<Json<Value>, ApiError> {
    let vote = VoteCast {
        approver: principal.clone(),
        decision,
        comment: body.comment,
        edited_arguments: body.approved_arguments,
        grant: body
            .grant_minutes
            .map(|m| Duration::from_secs(m.saturating_mul(60))),
    };
    let request = state.governor.decide(&principal, id, vote).await?;
    run_if_approved(state, &request);
    Ok(Json(view(&request)))
}

/// Runs an approved request's call in the background; a blocked caller or a poller may win the
/// claim instead, and the call still runs exactly once.
pub(super) fn run_if_approved(state: &AppState, request: &ApprovalRequest) {
    if request.state != ApprovalState::Approved {
        return;
    }
    let governor = state.governor.clone();
    let organization = request.organization_id.clone();
    let id = request.id;
    tokio::spawn(async move {
        if let Err(error) = governor.execute_approved(&organization, id).await {
            tracing::warn!(%error, request = %id, "running an approved call failed");
        }
    });
}

async fn approve(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    vote(
        &state,
        principal,
        id,
        VoteDecision::Approve,
        optional_body(&body)?,
    )
    .await
}

async fn decline(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    vote(
        &state,
        principal,
        id,
        VoteDecision::Decline,
        optional_body(&body)?,
    )
    .await
}

async fn decide(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
    Body(body): Body<VoteBody>,
) -> Result<Json<Value>, ApiError> {
    let decision = body.decision.ok_or_else(|| {
        ApiError::BadRequest("`decision` must be \"approve\" or \"decline\"".to_owned())
    })?;
    vote(&state, principal, id, decision, body).await
}

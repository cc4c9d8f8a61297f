//! `/api/v1/approval-requests`: list, get, approve, decline, decide.

use super::views::Items;
use super::views::approvals::{ApprovalRequestView, VoteChoice};
use crate::http::extract::{Body, Param, QueryParams};
use crate::http::{ApiError, bounds};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::{Extension, Json};
use preloop_core::Principal;
use preloop_core::approval::{ApprovalState, VoteCast, VoteDecision};
use preloop_core::store::ApprovalFilter;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(approve))
        .routes(routes!(decline))
        .routes(routes!(decide))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<ApprovalState>,
    limit: Option<usize>,
}

/// The requests the caller may see: their own, those they may vote on, all for admins.
#[utoipa::path(
    get,
    path = "/approval-requests",
    tag = "approval-requests",
    summary = "List approval requests",
    params(("status" = Option<String>, Query, description = "pending, approved, declined, expired, cancelled, executing, executed or failed"), ("limit" = Option<usize>, Query, description = "At most this many (default 100)")),
    responses((status = 200, description = "Done", body = Items<ApprovalRequestView>), (status = 400, description = "Malformed request"), (status = 401, description = "Missing or invalid credentials"))
)]
async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Items<ApprovalRequestView>>, ApiError> {
    let limit = query.limit.unwrap_or(100).min(1000);
    let filter = ApprovalFilter {
        state: query.status,
        requester_id: None,
        // Read the most there can be: some are filtered out by visibility.
        limit: 1000,
    };
    let mut requests = state.governor.list_requests(&principal, &filter).await?;
    requests.truncate(limit);
    Ok(Json(
        requests
            .into_iter()
            .map(ApprovalRequestView::from)
            .collect(),
    ))
}

#[utoipa::path(
    get,
    path = "/approval-requests/{id}",
    tag = "approval-requests",
    summary = "An approval request, with its channel history (every message sent or tried)",
    params(("id" = uuid::Uuid, Path, description = "Id")),
    responses((status = 200, description = "Done", body = ApprovalRequestView), (status = 404, description = "Not found in the caller's organization"))
)]
async fn show(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
) -> Result<Json<ApprovalRequestView>, ApiError> {
    let request = state.governor.request(&principal, id).await?;
    // Who approves, through which channels and escalations, is for those who decide: a
    // requester (an agent) sees its request, its votes and its result, not the policy.
    let decides = principal.has_role("admin")
        || request
            .policy
            .is_approver(&principal, request.escalation_stage);
    let shown = ApprovalRequestView::from(request);
    Ok(Json(if decides {
        let history = state
            .channels
            .history(&principal.organization_id, id)
            .await?;
        shown.with_channel_history(history)
    } else {
        shown.without_policy()
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct VoteBody {
    /// `approve` or `decline` (for `/decide`).
    #[schema(value_type = Option<VoteChoice>)]
    decision: Option<VoteDecision>,
    /// The approver's comment (required when the policy asks for a reason).
    comment: Option<String>,
    /// Edited arguments (approvals only, when the policy allows editing).
    #[schema(value_type = Option<Object>)]
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
) -> Result<Json<ApprovalRequestView>, ApiError> {
    bounds::optional("comment", body.comment.as_deref(), bounds::TEXT)?;
    let vote = VoteCast {
        approver: principal.clone(),
        decision,
        comment: body.comment,
        edited_arguments: body.approved_arguments,
        grant: body
            .grant_minutes
            .map(|m| Duration::from_secs(m.saturating_mul(60))),
    };
    let request = state.approvals.vote(&principal, id, vote).await?;
    Ok(Json(request.into()))
}

#[utoipa::path(
    post,
    path = "/approval-requests/{id}/approve",
    tag = "approval-requests",
    summary = "Approve (optionally with a comment, edited arguments, a grant)",
    params(("id" = uuid::Uuid, Path, description = "Id")),
    request_body = VoteBody,
    responses((status = 200, description = "Done", body = ApprovalRequestView), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"), (status = 409, description = "Conflicts with the current state"), (status = 422, description = "Does not validate"))
)]
async fn approve(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
    body: Bytes,
) -> Result<Json<ApprovalRequestView>, ApiError> {
    vote(
        &state,
        principal,
        id,
        VoteDecision::Approve,
        optional_body(&body)?,
    )
    .await
}

#[utoipa::path(
    post,
    path = "/approval-requests/{id}/decline",
    tag = "approval-requests",
    summary = "Decline (optionally with a comment)",
    params(("id" = uuid::Uuid, Path, description = "Id")),
    request_body = VoteBody,
    responses((status = 200, description = "Done", body = ApprovalRequestView), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"), (status = 409, description = "Conflicts with the current state"))
)]
async fn decline(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
    body: Bytes,
) -> Result<Json<ApprovalRequestView>, ApiError> {
    vote(
        &state,
        principal,
        id,
        VoteDecision::Decline,
        optional_body(&body)?,
    )
    .await
}

#[utoipa::path(
    post,
    path = "/approval-requests/{id}/decide",
    tag = "approval-requests",
    summary = "Approve or decline, as `decision` says",
    params(("id" = uuid::Uuid, Path, description = "Id")),
    request_body = VoteBody,
    responses((status = 200, description = "Done", body = ApprovalRequestView), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"), (status = 409, description = "Conflicts with the current state"), (status = 422, description = "Does not validate"))
)]
async fn decide(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
    Body(body): Body<VoteBody>,
) -> Result<Json<ApprovalRequestView>, ApiError> {
    let decision = body.decision.ok_or_else(|| {
        ApiError::BadRequest("`decision` must be \"approve\" or \"decline\"".to_owned())
    })?;
    vote(&state, principal, id, decision, body).await
}

//! The public decision-link endpoints, for approvers without an account: the link's token
//! (sent by an approval channel) is the credential. `GET /api/v1/approval/{id}/data?token=`
//! shows the request; `POST /api/v1/approval/{id}/decide?token=` records the link's vote.
//! A wrong token and an unknown id both answer 404, so links cannot be probed.

use super::ApiError;
use super::approvals::{run_if_approved, view};
use super::extract::{Body, Param, QueryParams};
use crate::http::AppState;
use axum::Json;
use axum::extract::State;
use preloop_core::approval::VoteDecision;
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(data))
        .routes(routes!(decide))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkQuery {
    token: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LinkDecision {
    /// `approve` or `decline`.
    #[schema(value_type = String)]
    decision: VoteDecision,
    comment: Option<String>,
}

#[utoipa::path(
    get,
    path = "/approval/{id}/data",
    tag = "decision-links",
    summary = "The request a decision link points at (the token is the credential)",
    params(("id" = uuid::Uuid, Path, description = "Id"), ("token" = String, Query, description = "The link token")),
    responses((status = 200, description = "Done"), (status = 400, description = "Malformed request"), (status = 404, description = "Not found in the caller's organization"))
)]
async fn data(
    State(state): State<AppState>,
    Param(id): Param<Uuid>,
    QueryParams(query): QueryParams<LinkQuery>,
) -> Result<Json<Value>, ApiError> {
    let request = state.governor.request_by_link(id, &query.token).await?;
    Ok(Json(view(&request)))
}

#[utoipa::path(
    post,
    path = "/approval/{id}/decide",
    tag = "decision-links",
    summary = "Vote through a decision link",
    params(("id" = uuid::Uuid, Path, description = "Id"), ("token" = String, Query, description = "The link token")),
    request_body = LinkDecision,
    responses((status = 200, description = "Done"), (status = 400, description = "Malformed request"), (status = 404, description = "Not found in the caller's organization"), (status = 409, description = "Conflicts with the current state"))
)]
async fn decide(
    State(state): State<AppState>,
    Param(id): Param<Uuid>,
    QueryParams(query): QueryParams<LinkQuery>,
    Body(body): Body<LinkDecision>,
) -> Result<Json<Value>, ApiError> {
    let request = state
        .governor
        .decide_by_link(id, &query.token, body.decision, body.comment)
        .await?;
    run_if_approved(&state, &request);
    Ok(Json(view(&request)))
}

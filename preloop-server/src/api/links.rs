//! The public decision-link endpoints, for approvers without an account: the link's token
//! (sent by an approval channel) is the credential. `GET /api/v1/approval/{id}/data?token=`
//! shows the request; `POST /api/v1/approval/{id}/decide?token=` records the link's vote.
//! A wrong token and an unknown id both answer 404, so links cannot be probed.

use super::ApiError;
use super::approvals::{run_if_approved, view};
use super::extract::{Body, Param, QueryParams};
use crate::http::AppState;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use preloop_core::approval::VoteDecision;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/approval/{id}/data", get(data))
        .route("/approval/{id}/decide", post(decide))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkQuery {
    token: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkDecision {
    decision: VoteDecision,
    comment: Option<String>,
}

async fn data(
    State(state): State<AppState>,
    Param(id): Param<Uuid>,
    QueryParams(query): QueryParams<LinkQuery>,
) -> Result<Json<Value>, ApiError> {
    let request = state.governor.request_by_link(id, &query.token).await?;
    Ok(Json(view(&request)))
}

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

//! The public decision-link endpoints, for approvers without an account: the link's token
//! (sent by an approval channel) is the credential. `GET /api/v1/approval/{id}/data?token=`
//! shows the request; `POST /api/v1/approval/{id}/decide?token=` records the link's vote.
//! A wrong token and an unknown id both answer 404, so links cannot be probed.

use super::views::approvals::{RequestContextView, RequestState, VoteChoice};
use crate::channels::Redactor;
use crate::http::extract::{Body, Param, QueryParams};
use crate::http::{ApiError, bounds};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use preloop_core::approval::{ApprovalRequest, ApprovalState, VoteDecision};
use serde::{Deserialize, Serialize};
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
    #[schema(value_type = VoteChoice)]
    decision: VoteDecision,
    comment: Option<String>,
}

/// What a decision link shows: what a decider needs, nothing more. Arguments are redacted as
/// the channels redact them; the requester is a name (no roles); the tool's output, the votes
/// and the policy are not shown. Once the request is decided, only its outcome.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LinkView {
    id: Uuid,
    /// Where the request is.
    state: RequestState,
    /// What happened, in words.
    outcome: String,
    /// Absent once decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pending: Option<PendingView>,
}

/// The part of a [`LinkView`] shown while the request waits.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PendingView {
    tool: String,
    server: String,
    requested_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
    /// Why the agent asked, when it said.
    #[serde(flatten)]
    context: RequestContextView,
    /// Redacted.
    #[schema(value_type = Object)]
    arguments: Value,
    require_reason: bool,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl LinkView {
    /// `request` as a link shows it.
    pub fn of(request: &ApprovalRequest, redactor: &Redactor) -> Self {
        let pending = (request.state == ApprovalState::Pending).then(|| PendingView {
            tool: request.tool.exposed_name.clone(),
            server: request.tool.server.clone(),
            requested_by: request.requester.display_name(),
            rule: request.matched_rule.clone(),
            context: request.context.clone().into(),
            arguments: redactor.redact(request.effective_arguments()),
            require_reason: request.policy.require_reason,
            created_at: request.created_at,
            expires_at: request.expires_at,
        });
        Self {
            id: request.id,
            state: request.state.into(),
            outcome: crate::channels::outcome_text(request),
            pending,
        }
    }
}

#[utoipa::path(
    get,
    path = "/approval/{id}/data",
    tag = "decision-links",
    summary = "The request a decision link points at (the token is the credential)",
    params(("id" = uuid::Uuid, Path, description = "Id"), ("token" = String, Query, description = "The link token")),
    responses((status = 200, description = "Done", body = LinkView), (status = 400, description = "Malformed request"), (status = 404, description = "Not found in the caller's organization"))
)]
async fn data(
    State(state): State<AppState>,
    Param(id): Param<Uuid>,
    QueryParams(query): QueryParams<LinkQuery>,
) -> Result<Json<LinkView>, ApiError> {
    let request = state.governor.request_by_link(id, &query.token).await?;
    Ok(Json(LinkView::of(&request, state.channels.redactor())))
}

#[utoipa::path(
    post,
    path = "/approval/{id}/decide",
    tag = "decision-links",
    summary = "Vote through a decision link",
    params(("id" = uuid::Uuid, Path, description = "Id"), ("token" = String, Query, description = "The link token")),
    request_body = LinkDecision,
    responses((status = 200, description = "Done", body = LinkView), (status = 400, description = "Malformed request"), (status = 404, description = "Not found in the caller's organization"), (status = 409, description = "Conflicts with the current state"))
)]
async fn decide(
    State(state): State<AppState>,
    Param(id): Param<Uuid>,
    QueryParams(query): QueryParams<LinkQuery>,
    Body(body): Body<LinkDecision>,
) -> Result<Json<LinkView>, ApiError> {
    bounds::optional("comment", body.comment.as_deref(), bounds::TEXT)?;
    // A decided request's link votes no longer (409; the governor refuses it).
    let request = state
        .approvals
        .vote_by_link(id, &query.token, body.decision, body.comment)
        .await?;
    Ok(Json(LinkView::of(&request, state.channels.redactor())))
}

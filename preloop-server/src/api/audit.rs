//! `/api/v1/audit`: the organization's audit chain, paged and filtered, and its verification.
//! Admins only: the log holds every call's arguments.

use super::views::audit::{AuditPage, ChainCheck};
use crate::app::audit::{AuditFilter, list_events, verify_stored_chain};
use crate::http::ApiError;
use crate::http::extract::{QueryParams, require_role};
use crate::state::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use preloop_core::Principal;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(verify))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Events after this sequence number (paging cursor; default 0).
    after: Option<u64>,
    /// At most this many events (default 100, at most 1,000).
    limit: Option<usize>,
    /// Only events of this type (`executed`, `decision`, `approval_requested`, ...).
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// Only events mentioning this call, request or principal id anywhere in their content.
    subject: Option<String>,
}

#[utoipa::path(
    get,
    path = "/audit",
    tag = "audit",
    summary = "Page through the audit chain, filtered (admins)",
    params(("after" = Option<u64>, Query, description = "Events after this sequence number"), ("limit" = Option<usize>, Query, description = "At most this many (default 100, at most 1,000)"), ("type" = Option<String>, Query, description = "Only events of this type"), ("subject" = Option<String>, Query, description = "Only events mentioning this id")),
    responses((status = 200, description = "Done", body = AuditPage), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"))
)]
async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    require_role(&principal, "admin", "read the audit log")?;
    let filter = AuditFilter {
        after: query.after.unwrap_or(0),
        limit: query.limit.unwrap_or(100).clamp(1, 1000),
        event_type: query.event_type,
        subject: query.subject,
    };
    let slice = list_events(&*state.store, &principal.organization_id, &filter).await?;
    Ok(Json(AuditPage::new(slice.items, slice.next)))
}

#[utoipa::path(
    get,
    path = "/audit/verify",
    tag = "audit",
    summary = "Verify the organization's audit chain (admins)",
    responses((status = 200, description = "Done", body = ChainCheck), (status = 403, description = "Not allowed for this principal"))
)]
async fn verify(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<ChainCheck>, ApiError> {
    require_role(&principal, "admin", "verify the audit log")?;
    let verdict = verify_stored_chain(&*state.store, &principal.organization_id).await?;
    Ok(Json(verdict.into()))
}

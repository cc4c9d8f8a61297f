//! `/api/v1/audit`: the organization's audit chain, paged and filtered, and its verification.
//! Admins only: the log holds every call's arguments.

use super::views::audit::{AuditPage, ChainCheck};
use crate::http::ApiError;
use crate::http::extract::{QueryParams, require_role};
use crate::state::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use preloop_core::Principal;
use preloop_core::audit::{AuditEvent, ChainBreak, ChainSummary, GENESIS_HASH, verify_from};
use preloop_core::store::{AuditStore, StoreError};
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Events read from the store per page while filtering or verifying.
const PAGE: usize = 1000;
/// Most events one listing request looks at while filtering.
const MAX_SCANNED: usize = 20_000;

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

fn event_type(event: &AuditEvent) -> String {
    serde_json::to_value(&event.kind)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

fn mentions(event: &AuditEvent, subject: &str) -> bool {
    serde_json::to_string(&event.kind).is_ok_and(|text| text.contains(subject))
}

/// Pages through the chain, keeping matching events, until `limit` match or the scan budget is
/// spent; `next` is the cursor to continue from (absent at the end of the chain).
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
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let mut cursor = query.after.unwrap_or(0);
    let mut items = Vec::new();
    let mut scanned = 0;
    let at_end = loop {
        let page = state
            .store
            .events(&principal.organization_id, cursor + 1, PAGE)
            .await?;
        let exhausted = page.len() < PAGE;
        for event in page {
            scanned += 1;
            cursor = event.sequence;
            let keep = query
                .event_type
                .as_deref()
                .is_none_or(|t| event_type(&event) == t)
                && query.subject.as_deref().is_none_or(|s| mentions(&event, s));
            if keep {
                items.push(event);
                if items.len() == limit {
                    break;
                }
            }
        }
        if items.len() == limit || scanned >= MAX_SCANNED {
            break false;
        }
        if exhausted {
            break true;
        }
    };
    Ok(Json(AuditPage::new(items, (!at_end).then_some(cursor))))
}

/// Verifies a stored chain page by page, so a long chain never sits in memory at once.
pub async fn verify_stored_chain(
    store: &dyn AuditStore,
    organization_id: &str,
) -> Result<Result<ChainSummary, ChainBreak>, StoreError> {
    let mut summary = ChainSummary {
        events: 0,
        head: GENESIS_HASH.to_owned(),
    };
    loop {
        let page = store
            .events(organization_id, summary.events + 1, PAGE)
            .await?;
        if page.is_empty() {
            return Ok(Ok(summary));
        }
        match verify_from(&page, summary.events + 1, &summary.head) {
            Ok(segment) => {
                summary = ChainSummary {
                    events: summary.events + segment.events,
                    head: segment.head,
                };
            }
            Err(broken) => return Ok(Err(broken)),
        }
    }
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

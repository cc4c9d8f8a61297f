//! The organization's audit chain as callers read it: paged and filtered (the REST API), and
//! verified page by page (the REST API and the command line).

use preloop_core::audit::{AuditEvent, ChainBreak, ChainSummary, GENESIS_HASH, verify_from};
use preloop_core::store::{AuditStore, StoreError};
use serde_json::Value;

/// Events read from the store per page while filtering or verifying.
const PAGE: usize = 1000;
/// Most events one listing looks at while filtering.
const MAX_SCANNED: usize = 20_000;

/// Which events to list.
#[derive(Debug, Default)]
pub struct AuditFilter {
    /// Events after this sequence number (the paging cursor; 0 from the start).
    pub after: u64,
    /// At most this many events.
    pub limit: usize,
    /// Only events of this type (`executed`, `decision`, `approval_requested`, ...).
    pub event_type: Option<String>,
    /// Only events mentioning this call, request or principal id anywhere in their content.
    pub subject: Option<String>,
}

/// One page of a listing.
#[derive(Debug)]
pub struct AuditSlice {
    /// The events, in chain order.
    pub items: Vec<AuditEvent>,
    /// Where the next page starts (`None` at the end of the chain).
    pub next: Option<u64>,
}

/// The organization's events that `filter` selects, looking at no more than
/// [`MAX_SCANNED`] events (the cursor then says where to go on).
pub async fn list_events(
    store: &dyn AuditStore,
    organization_id: &str,
    filter: &AuditFilter,
) -> Result<AuditSlice, StoreError> {
    let mut cursor = filter.after;
    let mut items = Vec::new();
    let mut scanned = 0;
    let at_end = loop {
        let page = store.events(organization_id, cursor + 1, PAGE).await?;
        let exhausted = page.len() < PAGE;
        for event in page {
            scanned += 1;
            cursor = event.sequence;
            let keep = filter
                .event_type
                .as_deref()
                .is_none_or(|t| event_type(&event) == t)
                && filter
                    .subject
                    .as_deref()
                    .is_none_or(|s| mentions(&event, s));
            if keep {
                items.push(event);
                if items.len() == filter.limit {
                    break;
                }
            }
        }
        if items.len() == filter.limit || scanned >= MAX_SCANNED {
            break false;
        }
        if exhausted {
            break true;
        }
    };
    Ok(AuditSlice {
        items,
        next: (!at_end).then_some(cursor),
    })
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

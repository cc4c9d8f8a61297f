//! Listing a project's issues changed since a time, a page at a time, without missing any.
//!
//! GitLab's `Link: rel="next"` (keyset pagination) is followed exactly as given. Offset
//! pagination (`x-next-page`) is not safe under `order_by=updated_at`: an issue updated while
//! the pages are read moves to the end and shifts every later issue one place earlier, so the
//! first issue of the next page would slip onto a page already read and never be seen (the
//! caller then resumes after a later `updated_at`). So while `x-next-page` says there is more,
//! the next page is asked for by time instead: `updated_after` the newest `updated_at` of this
//! page (inclusive, so issues at that very time come again, which upserts absorb). Only when a
//! whole page shares the time it was asked from does the offset move, to `x-next-page`.

use chrono::{DateTime, SecondsFormat, Utc};
use preloop_core::tracker::TrackerError;
use url::Url;

use super::convert::parse_time;
use crate::http::{Answer, Api};

/// Issues per page (GitLab's maximum).
pub(crate) const PER_PAGE: &str = "100";

/// GitLab's `updated_after` parameter.
pub(crate) const UPDATED_AFTER: &str = "updated_after";

/// A time as GitLab's ISO 8601 parameters take it (milliseconds, as its answers give them).
pub(crate) fn iso(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The URL of the page after `page`, whose newest issue was updated at `newest`; `None` after
/// the last page.
pub(crate) fn next_page(
    api: &Api,
    page: &Url,
    answer: &Answer,
    newest: Option<DateTime<Utc>>,
) -> Result<Option<Url>, TrackerError> {
    if let Some(link) = answer.next_link() {
        return api.same_origin(&link).map(Some);
    }
    let Some(offset) = answer
        .header("x-next-page")
        .map(str::trim)
        .filter(|next| !next.is_empty())
    else {
        return Ok(None);
    };
    if !offset.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TrackerError::Unavailable(format!(
            "GitLab gave a bad x-next-page: {offset:?}"
        )));
    }
    let asked_from = page
        .query_pairs()
        .find(|(name, _)| name == UPDATED_AFTER)
        .and_then(|(_, value)| parse_time(&value));
    let later = newest.filter(|newest| asked_from.is_none_or(|from| *newest > from));
    let mut pairs: Vec<(String, String)> = page
        .query_pairs()
        .filter(|(name, _)| name != "page" && (later.is_none() || name != UPDATED_AFTER))
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    pairs.push(match later {
        Some(newest) => (UPDATED_AFTER.to_owned(), iso(newest)),
        None => ("page".to_owned(), offset.to_owned()),
    });
    let mut url = page.clone();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    Ok(Some(url))
}

//! Issues of a project updated since a time, a page at a time, by JQL.
//!
//! JQL compares `updated` at minute precision in the requesting user's time zone, which the
//! adapter does not know. So the time asked for is `since` minus [`SINCE_MARGIN`] (24 hours:
//! more than any time zone's offset from UTC), written in UTC and rounded down to the minute:
//! whatever the user's zone, nothing updated at or after `since` is left out. The pages repeat
//! issues the caller already has; it upserts them.
//!
//! Cloud pages with `POST /rest/api/3/search/jql` and its `nextPageToken` (the cursor handed
//! out is that token). Server / Data Center pages with `POST /rest/api/2/search` and `startAt`,
//! but offsets are places in a list ordered by update time: an issue updated while the pages
//! are read moves to the end and the ones after it move up, so a plain offset would skip one.
//! The cursor therefore also names the last issue handed out (its update time and key), each
//! page is read from one place before the end of the previous one, and when that place no
//! longer holds an issue at or before the last one handed out, the page is read again from
//! further up. Only issues after the last one handed out are answered.

use super::convert::{FIELDS, RawIssue};
use super::{Flavor, Jira};
use chrono::{DateTime, TimeDelta, Utc};
use preloop_core::tracker::{Issue, IssuePage, TrackerError};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

/// Issues asked for per page.
const PAGE_SIZE: usize = 100;

/// How far before `since` the search starts (see the module's documentation).
pub(crate) const SINCE_MARGIN: TimeDelta = TimeDelta::hours(24);

/// A page of `POST /rest/api/3/search/jql`.
#[derive(Debug, Deserialize)]
struct CloudPage {
    #[serde(default)]
    issues: Vec<RawIssue>,
    #[serde(default, rename = "nextPageToken")]
    next_page_token: Option<String>,
    #[serde(default, rename = "isLast")]
    is_last: Option<bool>,
}

/// A page of `POST /rest/api/2/search`.
#[derive(Debug, Deserialize)]
struct ServerPage {
    #[serde(default)]
    total: usize,
    #[serde(default)]
    issues: Vec<RawIssue>,
}

/// Where a Server sync stands: the first `seen` issues of the search sort at or before `last`,
/// the (update time, key number) of the last issue handed out. As cursor: `seen:millis:number`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Position {
    seen: usize,
    last: Option<(DateTime<Utc>, u64)>,
}

impl Position {
    fn parse(cursor: &str) -> Option<Self> {
        let mut parts = cursor.split(':');
        let seen = parts.next()?.parse().ok()?;
        let updated = DateTime::from_timestamp_millis(parts.next()?.parse().ok()?)?;
        let number = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Self {
            seen,
            last: Some((updated, number)),
        })
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (updated, number) = self.last.unwrap_or_default();
        write!(f, "{}:{}:{number}", self.seen, updated.timestamp_millis())
    }
}

/// Where an issue sorts in `ORDER BY updated ASC, key ASC` (within one project).
fn order(issue: &Issue) -> (DateTime<Utc>, u64) {
    let number = issue
        .key
        .rsplit_once('-')
        .and_then(|(_, number)| number.parse().ok())
        .unwrap_or_default();
    (issue.updated_at, number)
}

/// A JQL string literal: `"` and `\` escaped.
pub(crate) fn jql_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// `project = "PROJ" [AND updated >= "yyyy-MM-dd HH:mm"] ORDER BY updated ASC, key ASC`.
pub(crate) fn jql(project: &str, since: Option<DateTime<Utc>>) -> String {
    let mut jql = format!("project = {}", jql_string(project));
    if let Some(since) = since {
        let from = (since - SINCE_MARGIN).format("%Y-%m-%d %H:%M").to_string();
        jql.push_str(&format!(" AND updated >= {}", jql_string(&from)));
    }
    jql.push_str(" ORDER BY updated ASC, key ASC");
    jql
}

impl Jira {
    pub(crate) async fn search(
        &self,
        project: &str,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<IssuePage, TrackerError> {
        let jql = jql(project, since);
        match self.flavor {
            Flavor::Cloud => self.search_cloud(jql, cursor).await,
            Flavor::Server => self.search_server(jql, cursor).await,
        }
    }

    async fn search_cloud(
        &self,
        jql: String,
        cursor: Option<&str>,
    ) -> Result<IssuePage, TrackerError> {
        let mut body = json!({"jql": jql, "fields": FIELDS, "maxResults": PAGE_SIZE});
        if let Some(token) = cursor {
            body["nextPageToken"] = Value::String(token.to_owned());
        }
        let page: CloudPage = self.post_search("search/jql", &body).await?;
        let next_cursor = match page.is_last {
            Some(true) => None,
            _ => page.next_page_token.filter(|token| !token.is_empty()),
        };
        Ok(IssuePage {
            issues: self.issues(page.issues)?,
            next_cursor,
        })
    }

    /// A Server page: the issues after `cursor`'s last one, read from one place before where
    /// it was (so that place is checked to still hold an issue at or before it), or from
    /// further back when issues moved up.
    async fn search_server(
        &self,
        jql: String,
        cursor: Option<&str>,
    ) -> Result<IssuePage, TrackerError> {
        let position = match cursor {
            None => Position::default(),
            Some(cursor) => Position::parse(cursor).ok_or_else(|| {
                TrackerError::Invalid(format!("{cursor:?} is not a cursor this adapter gave"))
            })?,
        };
        let mut start = position.seen.saturating_sub(1);
        loop {
            let body =
                json!({"jql": jql, "startAt": start, "maxResults": PAGE_SIZE, "fields": FIELDS});
            let page: ServerPage = self.post_search("search", &body).await?;
            let total = page.total;
            let issues = self.issues(page.issues)?;
            let from_there = start == 0
                || issues
                    .first()
                    .is_some_and(|first| position.last.is_some_and(|last| order(first) <= last));
            if !from_there {
                // Issues before the last one handed out were updated (moved to the end) or
                // left: the next ones are further up.
                start = start.saturating_sub(PAGE_SIZE);
                continue;
            }
            let read = start + issues.len();
            let last = issues.iter().map(order).chain(position.last).max();
            let issues: Vec<Issue> = issues
                .into_iter()
                .filter(|issue| position.last.is_none_or(|last| order(issue) > last))
                .collect();
            let next = Position { seen: read, last };
            // Only a Jira answering one issue per page (the one read again) could stay put.
            let stuck = next == position && issues.is_empty();
            if stuck {
                tracing::warn!("Jira answers one issue per page: the search ends here");
            }
            let next_cursor = (read > 0 && read < total && !stuck).then(|| next.to_string());
            return Ok(IssuePage {
                issues,
                next_cursor,
            });
        }
    }

    async fn post_search<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        body: &Value,
    ) -> Result<T, TrackerError> {
        let url = self.api.url(&self.path(endpoint), &[])?;
        self.api.send(Method::POST, url, Some(body)).await?.json()
    }

    fn issues(&self, raw: Vec<RawIssue>) -> Result<Vec<Issue>, TrackerError> {
        raw.into_iter().map(|issue| self.issue(issue)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
        Ok(DateTime::parse_from_rfc3339(text)?.with_timezone(&Utc))
    }

    #[test]
    fn jql_quotes_and_starts_a_day_early_at_minute_precision() -> Result<(), chrono::ParseError> {
        let since = DateTime::parse_from_rfc3339("2026-11-30T10:15:59Z")?.with_timezone(&Utc);
        assert_eq!(
            jql("PROJ", Some(since)),
            r#"project = "PROJ" AND updated >= "2026-11-29 10:15" ORDER BY updated ASC, key ASC"#
        );
        assert_eq!(
            jql("PROJ", None),
            r#"project = "PROJ" ORDER BY updated ASC, key ASC"#
        );
        assert_eq!(jql_string(r#"a"b\c"#), r#""a\"b\\c""#);
        Ok(())
    }

    #[test]
    fn server_cursors_name_the_place_and_the_last_issue() -> Result<(), chrono::ParseError> {
        let last = Some((time("2026-11-30T11:00:00Z")?, 2));
        let position = Position { seen: 2, last };
        assert_eq!(position.to_string(), "2:1796036400000:2");
        assert_eq!(Position::parse("2:1796036400000:2"), Some(position));
        for bad in ["", "2", "2:x:2", "2:1:2:3", "-1:1:2"] {
            assert_eq!(Position::parse(bad), None, "{bad}");
        }
        Ok(())
    }
}

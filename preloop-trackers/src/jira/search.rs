//! Issues of a project updated since a time, a page at a time, by JQL.
//!
//! JQL compares `updated` at minute precision in the requesting user's time zone, which the
//! adapter does not know. So the time asked for is `since` minus [`SINCE_MARGIN`] (24 hours:
//! more than any time zone's offset from UTC), written in UTC and rounded down to the minute:
//! whatever the user's zone, nothing updated at or after `since` is left out. The pages repeat
//! issues the caller already has; it upserts them.
//!
//! Cloud pages with `POST /rest/api/3/search/jql` and its `nextPageToken` (the cursor handed
//! out is that token); Server / Data Center with `POST /rest/api/2/search` and `startAt` (the
//! cursor is the next `startAt`).

use super::convert::{FIELDS, RawIssue};
use super::{Flavor, Jira};
use chrono::{DateTime, TimeDelta, Utc};
use preloop_core::tracker::{IssuePage, TrackerError};
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
    #[serde(default, rename = "startAt")]
    start_at: usize,
    #[serde(default)]
    total: usize,
    #[serde(default)]
    issues: Vec<RawIssue>,
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

    async fn search_server(
        &self,
        jql: String,
        cursor: Option<&str>,
    ) -> Result<IssuePage, TrackerError> {
        let start_at = match cursor {
            None => 0,
            Some(cursor) => cursor.parse::<usize>().map_err(|_| {
                TrackerError::Invalid(format!("{cursor:?} is not a cursor this adapter gave"))
            })?,
        };
        let body =
            json!({"jql": jql, "startAt": start_at, "maxResults": PAGE_SIZE, "fields": FIELDS});
        let page: ServerPage = self.post_search("search", &body).await?;
        let next = page.start_at + page.issues.len();
        let next_cursor = (!page.issues.is_empty() && next < page.total).then(|| next.to_string());
        Ok(IssuePage {
            issues: self.issues(page.issues)?,
            next_cursor,
        })
    }

    async fn post_search<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        body: &Value,
    ) -> Result<T, TrackerError> {
        let url = self.api.url(&self.path(endpoint), &[])?;
        self.api.send(Method::POST, url, Some(body)).await?.json()
    }

    fn issues(
        &self,
        raw: Vec<RawIssue>,
    ) -> Result<Vec<preloop_core::tracker::Issue>, TrackerError> {
        raw.into_iter().map(|issue| self.issue(issue)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

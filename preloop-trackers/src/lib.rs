//! Issue-tracker adapters for Preloop: GitHub, GitLab and Jira, each implementing
//! [`preloop_core::tracker::Tracker`], with their webhooks' verification and normalization.
//!
//! Every adapter talks HTTP through [`http::Api`]: per-request timeouts, bounded retries with
//! backoff and jitter on server errors and lost connections, rate limits honoured by waiting
//! for their reset, and the tracker's own error messages as typed
//! [`TrackerError`](preloop_core::tracker::TrackerError)s.

#![deny(missing_docs)]

pub mod compliance;
pub mod github;
pub mod gitlab;
pub mod http;
pub mod jira;
pub mod sync;
pub mod tools;
pub mod webhook;

/// Where a tracker is and how to sign in to it. The token never appears in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Connection {
    /// API base URL: `https://api.github.com` (or GitHub Enterprise's `https://host/api/v3`),
    /// a GitLab host (`https://gitlab.com`), a Jira site (`https://acme.atlassian.net`).
    pub url: String,
    /// Access token (Jira Cloud: an API token).
    pub token: String,
    /// Jira Cloud's e-mail for basic authentication; without it Jira is Server / Data Center
    /// with a personal access token.
    pub username: Option<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("username", &self.username)
            .finish()
    }
}

/// The API base a tracker kind uses when none is configured (Jira has none: every site has
/// its own host).
pub fn default_url(kind: preloop_core::documents::TrackerKind) -> Option<&'static str> {
    use preloop_core::documents::TrackerKind;
    match kind {
        TrackerKind::Github => Some("https://api.github.com"),
        TrackerKind::Gitlab => Some("https://gitlab.com"),
        TrackerKind::Jira => None,
    }
}

/// The adapter for a tracker of `kind`.
pub fn connect(
    kind: preloop_core::documents::TrackerKind,
    connection: &Connection,
    options: http::ClientOptions,
) -> Result<std::sync::Arc<dyn preloop_core::tracker::Tracker>, preloop_core::tracker::TrackerError>
{
    use preloop_core::documents::TrackerKind;
    use std::sync::Arc;
    Ok(match kind {
        TrackerKind::Github => Arc::new(github::GitHub::new(connection, options)?),
        TrackerKind::Gitlab => Arc::new(gitlab::GitLab::new(connection, options)?),
        TrackerKind::Jira => Arc::new(jira::Jira::new(connection, options)?),
    })
}

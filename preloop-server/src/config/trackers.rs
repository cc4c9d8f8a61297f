//! `[[trackers]]`: the issue trackers the configuration file connects (also the body of
//! `POST /api/v1/trackers`).

use crate::app::trackers::{MIN_SYNC_INTERVAL_SECONDS, TrackerInput};
use preloop_core::documents::{DEFAULT_SYNC_INTERVAL_SECONDS, TrackerKind};
use serde::Deserialize;

/// One `[[trackers]]` entry.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackerEntry {
    /// Unique name in the organization.
    pub name: String,
    /// `github`, `gitlab` or `jira`.
    #[schema(value_type = String, example = "github")]
    pub kind: TrackerKind,
    /// API base: GitHub Enterprise (`https://HOST/api/v3`), a self-hosted GitLab, a Jira site
    /// (default: `https://api.github.com`, `https://gitlab.com`; Jira needs one).
    pub url: Option<String>,
    /// Access token (Jira Cloud: an API token). Write-only: never returned. On a change,
    /// leave it out (or send `<redacted>`) to keep the stored one.
    pub token: Option<String>,
    /// Jira Cloud: the e-mail the API token belongs to (basic authentication). Without it,
    /// Jira is Server / Data Center with a personal access token.
    pub username: Option<String>,
    /// Projects to synchronize: `owner/repo`, `group/project`, Jira project keys.
    #[serde(default)]
    pub projects: Vec<String>,
    /// Secret webhook deliveries are signed with. Write-only, like the token.
    pub webhook_secret: Option<String>,
    /// Time between synchronizations (`5m`, `1h`; default 5 minutes, at least 1 minute).
    pub sync_interval: Option<String>,
    /// Whether the tracker is synchronized and its tools offered (default true).
    pub enabled: Option<bool>,
}

impl std::fmt::Debug for TrackerEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackerEntry")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("username", &self.username)
            .field("projects", &self.projects)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("sync_interval", &self.sync_interval)
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// What is wrong with a `[[trackers]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrackerEntryError {
    /// The interval is not a duration.
    #[error("tracker `{name}`: sync_interval {given:?} is not a duration such as \"5m\" or \"1h\"")]
    Interval {
        /// The tracker.
        name: String,
        /// What was given.
        given: String,
    },
    /// The interval is too short.
    #[error("tracker `{name}`: sync_interval must be at least {MIN_SYNC_INTERVAL_SECONDS} seconds")]
    TooFrequent {
        /// The tracker.
        name: String,
    },
}

impl TrackerEntry {
    /// The tracker this entry describes.
    pub fn to_input(&self) -> Result<TrackerInput, TrackerEntryError> {
        let sync_interval_seconds = match self.sync_interval.as_deref() {
            None => DEFAULT_SYNC_INTERVAL_SECONDS,
            Some(text) => humantime::parse_duration(text.trim())
                .map_err(|_| TrackerEntryError::Interval {
                    name: self.name.clone(),
                    given: text.to_owned(),
                })?
                .as_secs(),
        };
        if sync_interval_seconds < MIN_SYNC_INTERVAL_SECONDS {
            return Err(TrackerEntryError::TooFrequent {
                name: self.name.clone(),
            });
        }
        Ok(TrackerInput {
            name: self.name.clone(),
            kind: self.kind,
            url: self.url.clone(),
            token: self.token.clone(),
            username: self.username.clone(),
            projects: self.projects.clone(),
            webhook_secret: self.webhook_secret.clone(),
            sync_interval_seconds,
            enabled: self.enabled.unwrap_or(true),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(toml_text: &str) -> Result<TrackerEntry, toml::de::Error> {
        toml::from_str(toml_text)
    }

    #[test]
    fn an_entry_becomes_a_tracker_with_defaults() -> Result<(), Box<dyn std::error::Error>> {
        let parsed = entry(
            r#"
name = "gh"
kind = "github"
token = "ghp_secret"
projects = ["acme/web"]
webhook_secret = "whsec"
sync_interval = "10m"
"#,
        )?;
        assert!(!format!("{parsed:?}").contains("ghp_secret"));
        assert!(!format!("{parsed:?}").contains("whsec"));
        let input = parsed.to_input()?;
        assert_eq!(input.sync_interval_seconds, 600);
        assert!(input.enabled);
        assert_eq!(input.url, None);
        Ok(())
    }

    #[test]
    fn unknown_kinds_and_bad_intervals_are_clear_errors() -> Result<(), Box<dyn std::error::Error>>
    {
        let unknown = entry("name = \"x\"\nkind = \"bugzilla\"\ntoken = \"t\"").err();
        assert!(
            unknown.is_some_and(|e| e.to_string().contains(
                "unknown variant `bugzilla`, expected one of `github`, `gitlab`, `jira`"
            ))
        );
        let bad = entry("name = \"x\"\nkind = \"gitlab\"\nsync_interval = \"often\"")?.to_input();
        assert_eq!(
            bad.err().map(|e| e.to_string()),
            Some(
                "tracker `x`: sync_interval \"often\" is not a duration such as \"5m\" or \"1h\""
                    .to_owned()
            )
        );
        let fast = entry("name = \"x\"\nkind = \"jira\"\nsync_interval = \"5s\"")?.to_input();
        assert!(matches!(fast, Err(TrackerEntryError::TooFrequent { .. })));
        Ok(())
    }
}

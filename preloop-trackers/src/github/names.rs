//! GitHub's names for repositories and issues: `owner/repo`, `owner/repo#12`, and an issue's
//! web URL on the web host of the API base (`https://github.com` for `https://api.github.com`,
//! `https://HOST` for GitHub Enterprise's `https://HOST/api/v3`).

use preloop_core::tracker::TrackerError;
use url::Url;

/// A repository, `owner/repo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Repo {
    owner: String,
    name: String,
}

impl Repo {
    /// `owner/repo`, or [`TrackerError::Invalid`] saying the accepted form.
    pub(crate) fn parse(project: &str) -> Result<Self, TrackerError> {
        Self::read(project.trim()).ok_or_else(|| {
            TrackerError::Invalid(format!(
                "{project:?} is not a GitHub repository: give it as owner/repo"
            ))
        })
    }

    fn read(text: &str) -> Option<Self> {
        let (owner, name) = text.split_once('/')?;
        (valid_owner(owner) && valid_name(name)).then(|| Self {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The API path `repos/{owner}/{repo}{rest}` (the names hold no character to encode).
    pub(crate) fn path(&self, rest: &str) -> String {
        format!("repos/{}/{}{rest}", self.owner, self.name)
    }
}

impl std::fmt::Display for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// An issue: its repository and number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IssueRef {
    /// The repository.
    pub(crate) repo: Repo,
    /// The issue's number.
    pub(crate) number: u64,
}

impl IssueRef {
    /// The canonical key, `owner/repo#12`.
    pub(crate) fn key(&self) -> String {
        format!("{}#{}", self.repo, self.number)
    }

    /// The API path of the issue, with `rest` after it (`/comments`).
    pub(crate) fn path(&self, rest: &str) -> String {
        self.repo.path(&format!("/issues/{}{rest}", self.number))
    }
}

/// Where GitHub's web pages are, for the issue URLs `issue_key` accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebHost {
    /// The web root, ending in `/`.
    root: Url,
}

impl WebHost {
    /// The web host of an API base: `github.com` for `api.github.com`; otherwise the base with
    /// a trailing `api/v3/` removed (GitHub Enterprise serves its web pages from the host).
    pub(crate) fn of_api(base: &Url) -> Self {
        let mut root = base.clone();
        if base.host_str() == Some("api.github.com") {
            root = Url::parse("https://github.com/").unwrap_or(root);
        } else if let Some(prefix) = base.path().strip_suffix("api/v3/") {
            let prefix = prefix.to_owned();
            root.set_path(&prefix);
        }
        root.set_query(None);
        root.set_fragment(None);
        Self { root }
    }

    /// The issue `reference` names: `owner/repo#12` or the issue's web URL on this host.
    pub(crate) fn issue(&self, reference: &str) -> Option<IssueRef> {
        let reference = reference.trim();
        match reference.split_once('#') {
            Some((repo, number)) if !reference.contains("://") => Some(IssueRef {
                repo: Repo::read(repo)?,
                number: issue_number(number)?,
            }),
            _ => self.issue_url(reference),
        }
    }

    fn issue_url(&self, reference: &str) -> Option<IssueRef> {
        let url = Url::parse(reference).ok()?;
        if url.origin() != self.root.origin() {
            return None;
        }
        let rest = url.path().strip_prefix(self.root.path())?;
        let mut segments = rest.trim_end_matches('/').split('/');
        let (Some(owner), Some(name), Some("issues"), Some(number), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return None;
        };
        Some(IssueRef {
            repo: Repo::read(&format!("{owner}/{name}"))?,
            number: issue_number(number)?,
        })
    }

    /// The issue reference forms accepted, for error messages.
    pub(crate) fn accepted_forms(&self) -> String {
        format!("owner/repo#12 or {}owner/repo/issues/12", self.root)
    }
}

fn issue_number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|n| *n > 0)
}

/// A GitHub user or organization name: letters, digits and hyphens, at most 39.
fn valid_owner(owner: &str) -> bool {
    !owner.is_empty()
        && owner.len() <= 39
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A repository name: letters, digits, `-`, `_` and `.`, at most 100, not only dots.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.bytes().all(|b| b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(api: &str) -> Result<WebHost, url::ParseError> {
        Ok(WebHost::of_api(&Url::parse(api)?))
    }

    #[test]
    fn enterprise_issue_urls_are_on_the_web_host() -> Result<(), Box<dyn std::error::Error>> {
        let web = host("https://ghe.example.com/api/v3/")?;
        assert_eq!(
            web.issue("https://ghe.example.com/acme/app/issues/7#issuecomment-1")
                .map(|r| r.key()),
            Some("acme/app#7".to_owned())
        );
        assert_eq!(
            web.issue("https://ghe.example.com/api/v3/acme/app/issues/7"),
            None
        );
        assert_eq!(web.issue("https://github.com/acme/app/issues/7"), None);
        assert_eq!(
            web.accepted_forms(),
            "owner/repo#12 or https://ghe.example.com/owner/repo/issues/12"
        );
        Ok(())
    }

    #[test]
    fn names_that_could_escape_the_path_are_refused() -> Result<(), Box<dyn std::error::Error>> {
        let web = host("https://api.github.com/")?;
        for reference in [
            "../x#1",
            "a/..#1",
            "a/b#0",
            "a/b#-1",
            "a/b#+1",
            "a/b/c#1",
            "a b/c#1",
            "a/b%2F#1",
            "https://github.com/a/b/pull/1",
            "https://github.com/a/b/issues/1/x",
        ] {
            assert_eq!(web.issue(reference), None, "{reference}");
        }
        assert!(matches!(Repo::parse("a/."), Err(TrackerError::Invalid(_))));
        assert_eq!(Repo::parse(" a-b/c.d_e ")?.path(""), "repos/a-b/c.d_e");
        Ok(())
    }
}

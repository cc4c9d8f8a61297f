//! GitLab's names for projects and issues: project paths (`group/sub/project`), issue keys
//! (`group/project#12`, the number being the project-scoped `iid`) and issue web URLs
//! (`https://HOST/group/sub/project/-/issues/12`).

use preloop_core::tracker::TrackerError;
use url::Url;

/// One issue: its project's path and its `iid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IssueRef {
    /// The project's path (`group/sub/project`).
    pub(crate) project: String,
    /// The project-scoped number (never the global id).
    pub(crate) iid: u64,
}

impl IssueRef {
    /// `group/project#12`.
    pub(crate) fn key(&self) -> String {
        format!("{}#{}", self.project, self.iid)
    }

    /// A key (`group/project#12`) or a web URL of an issue on the instance at `web`.
    pub(crate) fn parse(reference: &str, web: &Url) -> Option<Self> {
        let reference = reference.trim();
        if let Some((project, iid)) = reference.rsplit_once('#')
            && is_project_path(project)
        {
            return Some(Self {
                project: project.to_owned(),
                iid: parse_iid(iid)?,
            });
        }
        Self::from_web_url(reference, web)
    }

    fn from_web_url(reference: &str, web: &Url) -> Option<Self> {
        let url = Url::parse(reference).ok()?;
        if !matches!(url.scheme(), "http" | "https")
            || url.host_str() != web.host_str()
            || url.port() != web.port()
        {
            return None;
        }
        let path = url.path().strip_prefix(web.path())?;
        let (project, rest) = path.split_once("/-/issues/")?;
        if !is_project_path(project) {
            return None;
        }
        Some(Self {
            project: project.to_owned(),
            iid: parse_iid(rest.trim_end_matches('/'))?,
        })
    }
}

/// The project path `project` names, or [`TrackerError::Invalid`] saying what a path is.
pub(crate) fn project_path(project: &str) -> Result<&str, TrackerError> {
    let path = project.trim().trim_matches('/');
    if is_project_path(path) {
        Ok(path)
    } else {
        Err(TrackerError::Invalid(format!(
            "{project:?} is not a GitLab project path: give it as group/project (or group/subgroup/project)"
        )))
    }
}

/// `group/project` or deeper, each segment made of GitLab's path characters.
fn is_project_path(path: &str) -> bool {
    let mut segments = 0;
    for segment in path.split('/') {
        let valid = !segment.is_empty()
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return false;
        }
        segments += 1;
    }
    segments >= 2
}

fn parse_iid(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|iid| *iid > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(url: &str) -> Result<Url, url::ParseError> {
        Url::parse(url)
    }

    #[test]
    fn keys_and_web_urls_name_the_same_issue() -> Result<(), url::ParseError> {
        let web = web("https://gitlab.example.com/")?;
        let expected = Some(IssueRef {
            project: "group/sub/project".to_owned(),
            iid: 12,
        });
        assert_eq!(IssueRef::parse("group/sub/project#12", &web), expected);
        assert_eq!(
            IssueRef::parse(
                "https://gitlab.example.com/group/sub/project/-/issues/12#note_5",
                &web
            ),
            expected
        );
        assert_eq!(
            IssueRef::parse(
                "https://gitlab.example.com/group/sub/project/-/issues/12/",
                &web
            ),
            expected
        );
        Ok(())
    }

    #[test]
    fn instances_under_a_path_keep_it_out_of_the_project() -> Result<(), url::ParseError> {
        let web = web("https://example.com/gitlab/")?;
        assert_eq!(
            IssueRef::parse("https://example.com/gitlab/team/app/-/issues/3", &web)
                .map(|r| r.key()),
            Some("team/app#3".to_owned())
        );
        assert_eq!(
            IssueRef::parse("https://example.com/team/app/-/issues/3", &web),
            None
        );
        Ok(())
    }

    #[test]
    fn other_references_name_no_issue() -> Result<(), url::ParseError> {
        let web = web("https://gitlab.example.com/")?;
        for reference in [
            "PROJ-12",
            "project#12",
            "group/project#0",
            "group/project#-1",
            "group/project#12a",
            "group//project#1",
            "group/pro ject#1",
            "https://gitlab.com/group/project/-/issues/12",
            "https://gitlab.example.com/group/project/-/merge_requests/12",
            "https://gitlab.example.com/group/project/issues/abc",
        ] {
            assert_eq!(IssueRef::parse(reference, &web), None, "{reference}");
        }
        Ok(())
    }

    #[test]
    fn project_paths_are_checked() {
        assert_eq!(
            project_path("/group/sub/project/").ok(),
            Some("group/sub/project")
        );
        assert!(matches!(
            project_path("project"),
            Err(TrackerError::Invalid(_))
        ));
        assert!(matches!(
            project_path("a/b?c"),
            Err(TrackerError::Invalid(_))
        ));
    }
}

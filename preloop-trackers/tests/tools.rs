//! The issue tools over an in-memory tracker and the in-memory index: resolution of keys, web
//! URLs and store ids, the index fallback, creation with a status, search after a write,
//! compliance, and every failure as a clear tool error.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use preloop_core::executor::{ExecutionContext, ToolOutput};
use preloop_core::registry::RegisteredTool;
use preloop_core::store::{IssueStore, MemoryStore};
use preloop_core::tracker::{
    Issue, IssueComment, IssuePage, IssueState, IssueUpdate, NewIssue, ProjectInfo, Tracker,
    TrackerError,
};
use preloop_trackers::sync::{SyncTarget, sync_project};
use preloop_trackers::tools::{ConnectedTracker, FixedDirectory, IssueTools, TOOL_NAMES};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Issues of one project `acme/web` kept in memory; `down` makes every call unavailable.
#[derive(Default)]
struct MemoryTracker {
    issues: Mutex<Vec<Issue>>,
    down: Mutex<bool>,
}

impl MemoryTracker {
    fn check(&self) -> Result<(), TrackerError> {
        if self.down.lock().map(|d| *d).unwrap_or(true) {
            Err(TrackerError::Unavailable(
                "could not connect to tracker.test".into(),
            ))
        } else {
            Ok(())
        }
    }

    fn with_issue<T>(
        &self,
        key: &str,
        change: impl FnOnce(&mut Issue) -> T,
    ) -> Result<T, TrackerError> {
        self.check()?;
        let mut issues = self
            .issues
            .lock()
            .map_err(|_| TrackerError::Unavailable("poisoned".into()))?;
        let issue = issues
            .iter_mut()
            .find(|i| i.key == key)
            .ok_or_else(|| TrackerError::NotFound(format!("no issue {key}")))?;
        Ok(change(issue))
    }
}

fn at(minute: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + i64::from(minute) * 60, 0).unwrap_or_default()
}

#[async_trait]
impl Tracker for MemoryTracker {
    fn kind(&self) -> &str {
        "memory"
    }

    fn issue_key(&self, reference: &str) -> Option<String> {
        let reference = reference
            .strip_prefix("https://tracker.test/acme/web/issues/")
            .map(|n| format!("acme/web#{n}"))
            .unwrap_or_else(|| reference.to_owned());
        reference.starts_with("acme/web#").then_some(reference)
    }

    async fn get_issue(&self, key: &str) -> Result<Issue, TrackerError> {
        self.with_issue(key, |issue| issue.clone())
    }

    async fn create_issue(&self, new: &NewIssue) -> Result<Issue, TrackerError> {
        self.check()?;
        let mut issues = self
            .issues
            .lock()
            .map_err(|_| TrackerError::Unavailable("poisoned".into()))?;
        let number = issues.len() + 1;
        let issue = Issue {
            id: number.to_string(),
            key: format!("acme/web#{number}"),
            project: new.project.clone(),
            title: new.title.clone(),
            body: new.body.clone(),
            state: IssueState::Open,
            status: None,
            labels: new.labels.clone(),
            assignees: new.assignees.clone(),
            author: Some("agent".into()),
            priority: new.priority.clone(),
            url: Some(format!("https://tracker.test/acme/web/issues/{number}")),
            created_at: at(number as u32),
            updated_at: at(number as u32),
        };
        issues.push(issue.clone());
        Ok(issue)
    }

    async fn update_issue(&self, key: &str, update: &IssueUpdate) -> Result<Issue, TrackerError> {
        self.with_issue(key, |issue| {
            if let Some(title) = &update.title {
                issue.title = title.clone();
            }
            if let Some(state) = update.status.as_deref().and_then(IssueState::from_word) {
                issue.state = state;
            }
            if let Some(labels) = &update.labels {
                issue.labels = labels.clone();
            }
            if let Some(assignees) = &update.assignees {
                issue.assignees = assignees.clone();
            }
            issue.clone()
        })
    }

    async fn add_comment(&self, key: &str, body: &str) -> Result<IssueComment, TrackerError> {
        self.with_issue(key, |_| IssueComment {
            id: "c1".into(),
            author: Some("agent".into()),
            body: body.to_owned(),
            created_at: at(0),
        })
    }

    async fn list_updated_since(
        &self,
        _project: &str,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<IssuePage, TrackerError> {
        self.check()?;
        let issues = self
            .issues
            .lock()
            .map_err(|_| TrackerError::Unavailable("poisoned".into()))?;
        let changed: Vec<Issue> = issues
            .iter()
            .filter(|i| since.is_none_or(|s| i.updated_at >= s))
            .cloned()
            .collect();
        // Two issues a page; the cursor is the next page's offset.
        let start: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        let end = (start + 2).min(changed.len());
        Ok(IssuePage {
            issues: changed[start.min(end)..end].to_vec(),
            next_cursor: (end < changed.len()).then(|| end.to_string()),
        })
    }

    async fn get_project(&self, project: &str) -> Result<ProjectInfo, TrackerError> {
        Ok(ProjectInfo {
            key: project.to_owned(),
            name: "Web".into(),
            url: None,
        })
    }
}

struct Harness {
    tracker: Arc<MemoryTracker>,
    index: Arc<MemoryStore>,
    tools: Vec<RegisteredTool>,
}

fn harness() -> Harness {
    let tracker = Arc::new(MemoryTracker::default());
    let index = Arc::new(MemoryStore::new());
    let directory = FixedDirectory(vec![ConnectedTracker {
        id: "t1".into(),
        name: "mem".into(),
        projects: vec!["acme/web".into()],
        tracker: tracker.clone(),
    }]);
    let tools = IssueTools::new(Arc::new(directory), index.clone()).tools();
    Harness {
        tracker,
        index,
        tools,
    }
}

fn context() -> ExecutionContext {
    ExecutionContext {
        call_id: uuid::Uuid::new_v4(),
        approval_request_id: None,
        principal_id: "agent".into(),
        organization_id: "acme".into(),
        observer: None,
        answers: None,
    }
}

impl Harness {
    async fn call(
        &self,
        name: &str,
        arguments: Value,
    ) -> Result<ToolOutput, Box<dyn std::error::Error>> {
        let tool = self
            .tools
            .iter()
            .find(|t| t.descriptor.name == name)
            .ok_or("no such tool")?;
        if let Err(problems) = tool.check_arguments(&arguments) {
            return Err(format!("schema refused {arguments}: {problems:?}").into());
        }
        Ok(tool
            .executor
            .execute(&tool.descriptor, arguments, &context())
            .await?)
    }
}

fn structured(output: &ToolOutput) -> Value {
    output.structured_content.clone().unwrap_or_default()
}

#[tokio::test]
async fn the_seven_tools_keep_the_original_names() {
    let names: Vec<String> = harness()
        .tools
        .iter()
        .map(|t| t.descriptor.exposed_name.clone())
        .collect();
    assert_eq!(names, TOOL_NAMES);
}

#[tokio::test]
async fn created_issues_are_searchable_at_once_and_found_by_key_url_and_id() -> TestResult {
    let h = harness();
    let created = h
        .call(
            "create_issue",
            json!({"project": "acme/web", "title": "Login fails after SSO refresh", "description": "Users are signed out.", "labels": ["bug"], "assignee": "ann", "priority": "High"}),
        )
        .await?;
    assert!(!created.is_error, "{}", created.joined_text());
    let issue = &structured(&created)["issue"];
    assert_eq!(issue["key"], "acme/web#1");
    assert_eq!(issue["assignees"], json!(["ann"]));
    assert_eq!(issue["tracker"], "mem");
    let store_id = issue["store_id"].as_str().unwrap_or_default().to_owned();

    let found = h.call("search", json!({"query": "sso login"})).await?;
    assert_eq!(structured(&found)["results"][0]["key"], "acme/web#1");
    assert!(
        found
            .joined_text()
            .contains("acme/web#1 [open] Login fails after SSO refresh")
    );

    for reference in [
        "acme/web#1",
        "https://tracker.test/acme/web/issues/1",
        store_id.as_str(),
    ] {
        let got = h.call("get_issue", json!({"issue": reference})).await?;
        assert!(!got.is_error, "{reference}: {}", got.joined_text());
        assert_eq!(
            structured(&got)["issue"]["title"],
            "Login fails after SSO refresh"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_status_on_creation_moves_the_new_issue_and_updates_are_indexed() -> TestResult {
    let h = harness();
    let created = h
        .call(
            "create_issue",
            json!({"project": "acme/web", "title": "Already done work", "status": "closed"}),
        )
        .await?;
    assert_eq!(structured(&created)["issue"]["state"], "closed");

    let updated = h
        .call("update_issue", json!({"issue": "acme/web#1", "title": "Renamed entirely", "status": "reopen", "assignee": ""}))
        .await?;
    let issue = &structured(&updated)["issue"];
    assert_eq!(
        (issue["title"].as_str(), issue["state"].as_str()),
        (Some("Renamed entirely"), Some("open"))
    );
    assert_eq!(issue["assignees"], json!([]));
    let hits = h
        .call("search", json!({"query": "renamed", "status": "open"}))
        .await?;
    assert_eq!(
        structured(&hits)["results"].as_array().map(Vec::len),
        Some(1)
    );

    let nothing = h
        .call("update_issue", json!({"issue": "acme/web#1"}))
        .await?;
    assert!(nothing.is_error && nothing.joined_text().contains("nothing to change"));
    let comment = h
        .call(
            "add_comment",
            json!({"issue": "acme/web#1", "body": "On it."}),
        )
        .await?;
    assert_eq!(structured(&comment)["comment"]["body"], "On it.");
    Ok(())
}

#[tokio::test]
async fn a_tracker_that_is_down_is_answered_from_the_index_with_a_note() -> TestResult {
    let h = harness();
    h.call(
        "create_issue",
        json!({"project": "acme/web", "title": "Cached issue title"}),
    )
    .await?;
    *h.tracker.down.lock().map_err(|_| "poisoned")? = true;
    let got = h.call("get_issue", json!({"issue": "acme/web#1"})).await?;
    assert!(!got.is_error);
    assert!(
        got.joined_text()
            .contains("(from the index: tracker unavailable: could not connect to tracker.test)")
    );
    let never_seen = h.call("get_issue", json!({"issue": "acme/web#9"})).await?;
    assert!(never_seen.is_error);
    assert_eq!(
        never_seen.joined_text(),
        "tracker unavailable: could not connect to tracker.test"
    );
    let create = h
        .call(
            "create_issue",
            json!({"project": "acme/web", "title": "Not while down"}),
        )
        .await?;
    assert!(create.is_error);
    Ok(())
}

#[tokio::test]
async fn bad_references_and_arguments_are_clear_tool_errors() -> TestResult {
    let h = harness();
    let cases = [
        (
            "get_issue",
            json!({"issue": "OTHER-1"}),
            "no connected tracker knows the issue \"OTHER-1\"",
        ),
        (
            "get_issue",
            json!({"issue": "acme/web#404"}),
            "not found: no issue acme/web#404",
        ),
        (
            "create_issue",
            json!({"project": "acme/api", "title": "x"}),
            "unknown project \"acme/api\"; the connected projects are: acme/web (mem)",
        ),
        (
            "create_issue",
            json!({"project": "acme/web", "title": "  "}),
            "the title must not be empty",
        ),
        (
            "estimate_compliance",
            json!({"issues": [], "compliance_metric": "DoR"}),
            "give between 1 and 50 issues",
        ),
        (
            "improve_compliance",
            json!({"issues": "acme/web#1", "compliance_metric": "INVEST"}),
            "unknown compliance metric \"INVEST\"; available: DoR",
        ),
    ];
    for (tool, arguments, expected) in cases {
        let output = h.call(tool, arguments.clone()).await?;
        assert!(output.is_error, "{tool} {arguments}");
        assert!(
            output.joined_text().contains(expected),
            "{tool} {arguments}: {}",
            output.joined_text()
        );
    }
    Ok(())
}

#[tokio::test]
async fn compliance_scores_each_issue_and_suggests_improvements() -> TestResult {
    let h = harness();
    h.call(
        "create_issue",
        json!({"project": "acme/web", "title": "fix"}),
    )
    .await?;
    let estimate = h
        .call("estimate_compliance", json!({"issues": ["acme/web#1"]}))
        .await?;
    let result = &structured(&estimate)["results"][0];
    assert_eq!(result["issue"], "acme/web#1");
    assert_eq!(result["ready"], false);
    assert!(result["score"].as_f64().is_some_and(|s| s < 0.5));
    assert!(result.get("suggestions").is_none());
    let improve = h
        .call("improve_compliance", json!({"issues": "acme/web#1"}))
        .await?;
    let suggestions = &structured(&improve)["results"][0]["suggestions"];
    assert!(
        suggestions.as_array().is_some_and(|s| s.len() >= 3),
        "{suggestions}"
    );
    assert!(improve.joined_text().contains("To improve:"));
    Ok(())
}

#[tokio::test]
async fn a_sync_indexes_every_page_and_resumes_from_the_newest_update() -> TestResult {
    let h = harness();
    for n in 1..=5 {
        h.call(
            "create_issue",
            json!({"project": "acme/web", "title": format!("Issue number {n}")}),
        )
        .await?;
    }
    let fresh = MemoryStore::new();
    let target = SyncTarget {
        organization_id: "acme",
        tracker_id: "t1",
        project: "acme/web",
    };
    let mut pages_seen = Vec::new();
    let report = sync_project(h.tracker.as_ref(), &fresh, target, None, |r| {
        pages_seen.push(r.pages)
    })
    .await?;
    assert_eq!((report.issues, report.pages), (5, 3));
    assert_eq!(pages_seen, [1, 2, 3]);
    assert_eq!(report.newest, Some(at(5)));
    assert_eq!(fresh.count_issues("acme", Some("t1")).await?, 5);
    let again = sync_project(h.tracker.as_ref(), &fresh, target, report.newest, |_| {}).await?;
    assert_eq!(
        (again.issues, again.pages),
        (1, 1),
        "only the newest is seen again"
    );
    assert_eq!(h.index.count_issues("acme", None).await?, 5);
    Ok(())
}

//! Writing a custom tracker adapter, and serving it to agents through the governor.
//!
//! The adapter, [`JsonFileTracker`], keeps issues in a local JSON file (read and written on
//! every operation). Copy it and replace the file with your tracker's API: the [`Tracker`]
//! trait is eight methods, and the seven built-in issue tools (`search`, `get_issue`,
//! `create_issue`, `update_issue`, `add_comment`, `estimate_compliance`,
//! `improve_compliance`) then work over it under the organization's policy, approvals and
//! audit, like over GitHub or GitLab.
//!
//! The run: a sync indexes the file, then an agent searches, reads, scores and files an issue
//! (held until a simulated maintainer approves it), is refused a close by the policy, comments
//! instead, and the audit chain is verified. No network, no database, no server.
//!
//! ```text
//! cargo run --example custom_tracker
//! ```

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use preloop_core::Principal;
use preloop_core::approval::VoteCast;
use preloop_core::audit::{AuditEventKind, verify_chain};
use preloop_core::executor::ToolOutput;
use preloop_core::governor::{Governor, Notification, Notifier, NotifyError, Outcome, ToolCall};
use preloop_core::policy::{Format, GovernanceDocument};
use preloop_core::registry::Registry;
use preloop_core::store::{AuditStore, MemoryStore};
use preloop_core::tracker::{
    Issue, IssueComment, IssuePage, IssueState, IssueUpdate, NewIssue, ProjectInfo, Tracker,
    TrackerError,
};
use preloop_trackers::sync::{SyncReport, SyncTarget, sync_project};
use preloop_trackers::tools::{ConnectedTracker, FixedDirectory, IssueTools};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// The adapter
// ---------------------------------------------------------------------------------------------

/// Every key starts with this: `local/app#3` is issue 3 of the file's project `app`.
const KEY_PREFIX: &str = "local/";

/// Issues per page of [`Tracker::list_updated_since`] (small, so the sync shows paging).
const PAGE_SIZE: usize = 2;

/// The file: projects by name (`app`), each with its issues.
#[derive(Debug, Default, Serialize, Deserialize)]
struct IssueFile {
    projects: BTreeMap<String, LocalProject>,
}

impl IssueFile {
    /// The project the file calls `name`.
    fn project(&mut self, name: &str) -> Result<&mut LocalProject, TrackerError> {
        self.projects
            .get_mut(name)
            .ok_or_else(|| TrackerError::NotFound(format!("project {KEY_PREFIX}{name}")))
    }
}

/// A project as the file keeps it.
#[derive(Debug, Serialize, Deserialize)]
struct LocalProject {
    name: String,
    #[serde(default)]
    issues: Vec<LocalIssue>,
}

/// An issue as the file keeps it: the tracker's own shape, mapped to [`Issue`] by
/// [`JsonFileTracker::to_issue`].
#[derive(Debug, Serialize, Deserialize)]
struct LocalIssue {
    number: u64,
    title: String,
    #[serde(default)]
    body: String,
    state: IssueState,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    assignees: Vec<String>,
    author: Option<String>,
    priority: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[serde(default)]
    comments: Vec<LocalComment>,
}

/// A comment as the file keeps it; its id is its 1-based position.
#[derive(Debug, Serialize, Deserialize)]
struct LocalComment {
    author: Option<String>,
    body: String,
    created_at: DateTime<Utc>,
}

/// A [`Tracker`] over one JSON file. Keys are `local/<project>#<number>`, web URLs
/// `file://<the file's directory>/<project>/<number>`. Writes are serialized within the process
/// and replace the file atomically (write, then rename); one process owns the file.
#[derive(Debug)]
struct JsonFileTracker {
    path: PathBuf,
    /// `file://<dir>/`: what web URLs start with.
    url_base: String,
    /// The login issues and comments are created as.
    login: String,
    /// Held for a whole read-modify-write.
    lock: Mutex<()>,
}

impl JsonFileTracker {
    /// An adapter over the file at `path`, writing as `login`.
    fn new(path: &Path, login: &str) -> Self {
        let dir = path.parent().unwrap_or(Path::new("/"));
        Self {
            path: path.to_owned(),
            url_base: format!("file://{}/", dir.display()),
            login: login.to_owned(),
            lock: Mutex::new(()),
        }
    }

    /// Reads the file, lets `operation` look at it (and change it when `save`), and writes it
    /// back when `save`.
    fn with_file<T>(
        &self,
        save: bool,
        operation: impl FnOnce(&mut IssueFile) -> Result<T, TrackerError>,
    ) -> Result<T, TrackerError> {
        let unavailable = |what: String| TrackerError::Unavailable(what);
        let _guard = self
            .lock
            .lock()
            .map_err(|_| unavailable("a writer panicked".into()))?;
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| unavailable(format!("cannot read {}: {e}", self.path.display())))?;
        let mut file: IssueFile = serde_json::from_str(&text).map_err(|e| {
            unavailable(format!("{} is not an issue file: {e}", self.path.display()))
        })?;
        let answer = operation(&mut file)?;
        if save {
            let text = serde_json::to_string_pretty(&file)
                .map_err(|e| unavailable(format!("cannot encode the issues: {e}")))?;
            let temporary = self.path.with_extension("json.tmp");
            std::fs::write(&temporary, text)
                .and_then(|()| std::fs::rename(&temporary, &self.path))
                .map_err(|e| unavailable(format!("cannot write {}: {e}", self.path.display())))?;
        }
        Ok(answer)
    }

    /// The project and number a key or web URL names.
    fn parse<'a>(&self, reference: &'a str) -> Option<(&'a str, u64)> {
        let reference = reference.trim();
        let (project, number) = match reference.strip_prefix(&self.url_base) {
            Some(path) => path.split_once('/')?,
            None => reference.strip_prefix(KEY_PREFIX)?.split_once('#')?,
        };
        let number = number.parse().ok()?;
        (!project.is_empty() && !project.contains(['/', '#'])).then_some((project, number))
    }

    /// The issue `reference` names, for `operation`.
    fn with_issue<T>(
        &self,
        reference: &str,
        save: bool,
        operation: impl FnOnce(&mut LocalIssue) -> Result<T, TrackerError>,
    ) -> Result<(T, Issue), TrackerError> {
        let (project, number) = self.parse(reference).ok_or_else(|| {
            TrackerError::Invalid(format!(
                "{reference:?} is neither a key ({KEY_PREFIX}<project>#<number>) nor a URL under {}",
                self.url_base
            ))
        })?;
        self.with_file(save, |file| {
            let issue = file
                .projects
                .get_mut(project)
                .and_then(|p| p.issues.iter_mut().find(|i| i.number == number))
                .ok_or_else(|| TrackerError::NotFound(key(project, number)))?;
            let answer = operation(issue)?;
            Ok((answer, self.to_issue(project, issue)))
        })
    }

    /// The file's name of a project key (`local/app` is `app`).
    fn project_name(project: &str) -> Result<&str, TrackerError> {
        project
            .strip_prefix(KEY_PREFIX)
            .ok_or_else(|| TrackerError::NotFound(format!("project {project}")))
    }

    /// The file's issue as every tracker describes one.
    fn to_issue(&self, project: &str, issue: &LocalIssue) -> Issue {
        Issue {
            id: format!("{project}/{}", issue.number),
            key: key(project, issue.number),
            project: format!("{KEY_PREFIX}{project}"),
            title: issue.title.clone(),
            body: issue.body.clone(),
            state: issue.state,
            status: None,
            labels: issue.labels.clone(),
            assignees: issue.assignees.clone(),
            author: issue.author.clone(),
            priority: issue.priority.clone(),
            url: Some(format!("{}{project}/{}", self.url_base, issue.number)),
            created_at: issue.created_at,
            updated_at: issue.updated_at,
        }
    }
}

#[async_trait]
impl Tracker for JsonFileTracker {
    fn kind(&self) -> &str {
        "local"
    }

    fn issue_key(&self, reference: &str) -> Option<String> {
        self.parse(reference)
            .map(|(project, number)| key(project, number))
    }

    async fn get_issue(&self, key: &str) -> Result<Issue, TrackerError> {
        Ok(self.with_issue(key, false, |_| Ok(()))?.1)
    }

    async fn create_issue(&self, new: &NewIssue) -> Result<Issue, TrackerError> {
        let name = Self::project_name(&new.project)?;
        self.with_file(true, |file| {
            let project = file.project(name)?;
            let now = Utc::now();
            let issue = LocalIssue {
                number: project.issues.iter().map(|i| i.number).max().unwrap_or(0) + 1,
                title: new.title.clone(),
                body: new.body.clone(),
                state: IssueState::Open,
                labels: new.labels.clone(),
                assignees: new.assignees.clone(),
                author: Some(self.login.clone()),
                priority: new.priority.clone(),
                created_at: now,
                updated_at: now,
                comments: Vec::new(),
            };
            let created = self.to_issue(name, &issue);
            project.issues.push(issue);
            Ok(created)
        })
    }

    async fn update_issue(&self, key: &str, update: &IssueUpdate) -> Result<Issue, TrackerError> {
        // Validate before changing anything: an update applies whole or not at all.
        let state = match update.status.as_deref() {
            None => None,
            Some(word) => Some(IssueState::from_word(word).ok_or_else(|| {
                TrackerError::Invalid(format!("local issues are open or closed, not {word:?}"))
            })?),
        };
        let ((), issue) = self.with_issue(key, true, |issue| {
            replace(&mut issue.title, update.title.as_ref());
            replace(&mut issue.body, update.body.as_ref());
            replace(&mut issue.state, state.as_ref());
            replace(&mut issue.labels, update.labels.as_ref());
            replace(&mut issue.assignees, update.assignees.as_ref());
            if update.priority.is_some() {
                issue.priority.clone_from(&update.priority);
            }
            issue.updated_at = Utc::now();
            Ok(())
        })?;
        Ok(issue)
    }

    async fn add_comment(&self, key: &str, body: &str) -> Result<IssueComment, TrackerError> {
        let (comment, _) = self.with_issue(key, true, |issue| {
            let created_at = Utc::now();
            issue.comments.push(LocalComment {
                author: Some(self.login.clone()),
                body: body.to_owned(),
                created_at,
            });
            issue.updated_at = created_at;
            Ok(IssueComment {
                id: issue.comments.len().to_string(),
                author: Some(self.login.clone()),
                body: body.to_owned(),
                created_at,
            })
        })?;
        Ok(comment)
    }

    async fn list_updated_since(
        &self,
        project: &str,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<IssuePage, TrackerError> {
        let name = Self::project_name(project)?;
        // The cursor is the offset of the next page in the list by number: numbers never change
        // and new issues come last, so an issue edited between two pages shifts no other one
        // (sorted by update time, it would move to the end and could push one past the cursor).
        let offset: usize = match cursor {
            None => 0,
            Some(cursor) => cursor
                .parse()
                .map_err(|_| TrackerError::Invalid(format!("bad cursor {cursor:?}")))?,
        };
        self.with_file(false, |file| {
            let local = file.project(name)?;
            let mut changed: Vec<&LocalIssue> = local
                .issues
                .iter()
                .filter(|i| since.is_none_or(|since| i.updated_at >= since))
                .collect();
            changed.sort_by_key(|i| i.number);
            let end = offset.saturating_add(PAGE_SIZE).min(changed.len());
            Ok(IssuePage {
                issues: changed
                    .get(offset..end)
                    .unwrap_or_default()
                    .iter()
                    .map(|i| self.to_issue(name, i))
                    .collect(),
                next_cursor: (end < changed.len()).then(|| end.to_string()),
            })
        })
    }

    async fn get_project(&self, project: &str) -> Result<ProjectInfo, TrackerError> {
        let name = Self::project_name(project)?;
        self.with_file(false, |file| {
            let local = file.project(name)?;
            Ok(ProjectInfo {
                key: project.to_owned(),
                name: local.name.clone(),
                url: Some(format!("{}{name}", self.url_base)),
            })
        })
    }
}

/// The key of issue `number` of the file's project `project`.
fn key(project: &str, number: u64) -> String {
    format!("{KEY_PREFIX}{project}#{number}")
}

/// Sets `field` to `value`, when there is one.
fn replace<T: Clone>(field: &mut T, value: Option<&T>) {
    if let Some(value) = value {
        field.clone_from(value);
    }
}

// ---------------------------------------------------------------------------------------------
// The demonstration
// ---------------------------------------------------------------------------------------------

/// The organization, the tracker's id in the index, and the project the run works in.
const ORGANIZATION: &str = "acme";
const TRACKER_ID: &str = "local-1";
const PROJECT: &str = "local/app";

/// Issue 2, the security bug the agent tries to close.
const SECURITY_ISSUE: &str = "local/app#2";

/// Agents may not close issues, and new issues wait for a maintainer. A policy sees the call
/// (`tool`, `args`, `user`, `client`, `now`), not the issue it names: it cannot read #2's
/// `security` label, so the rule refuses every close by an agent instead of trusting the
/// agent to mention the label. Its words are those [`IssueState::from_word`] reads as closed,
/// and the adapter refuses any other status, so no other word closes an issue.
const POLICY: &str = r#"
[[approval_policies]]
name = "maintainers"
approvers = ["role:maintainer"]
timeout = "5m"

[policy]
default = "allow"

[[policy.rules]]
id = "agents-do-not-close"
tools = ["update_issue"]
principals = ["role:agent"]
when = 'has(args.status) && args.status.matches("(?i)^\\s*(close|closed|done|resolved)\\s*$")'
action = "deny"
message = "Agents do not close issues: a maintainer verifies the fix and closes it"

[[policy.rules]]
id = "new-issues-need-a-maintainer"
tools = ["create_issue"]
action = "require_approval"
approval_policy = "maintainers"
"#;

/// The issue the agent files: written to meet the Definition of Ready.
const NEW_TITLE: &str = "Offer a dark theme that follows the system setting";
const NEW_BODY: &str = "Several customers read the dashboard at night and asked for a darker \
theme. The app should follow the operating system's colour scheme by default and let people \
override it in their profile settings, so the choice survives a new device.

## Acceptance criteria
- [ ] With the system in dark mode, every page renders with the dark palette
- [ ] The profile settings offer System, Light and Dark, and the choice is stored per user
- [ ] Text contrast meets WCAG AA in both palettes";

/// Three realistic issues in project `app`: a bug with steps, a security bug, a vague request.
fn seed() -> Value {
    json!({"projects": {"app": {"name": "Example App", "issues": [
        {
            "number": 1, "state": "open", "author": "ann", "priority": "High",
            "title": "Login fails after the SSO session is refreshed",
            "body": "Steps to reproduce:\n1. Sign in with SSO\n2. Wait for the session refresh (15 min)\n3. Open any page\n\nExpected: still signed in.\nActual: redirected to the login page with error 401.",
            "labels": ["bug"], "assignees": ["ann"],
            "created_at": "2026-11-02T09:15:00Z", "updated_at": "2026-11-03T14:02:00Z"
        },
        {
            "number": 2, "state": "open", "author": "sam", "priority": "Critical",
            "title": "Stored XSS in the comment preview",
            "body": "A comment containing <img src=x onerror=alert(1)> runs script in the preview pane for every reader.",
            "labels": ["security", "bug"], "assignees": ["sam"],
            "created_at": "2026-11-10T11:40:00Z", "updated_at": "2026-11-12T08:30:00Z"
        },
        {
            "number": 3, "state": "open", "author": "lee",
            "title": "dark mode",
            "body": "make it look nicer at night somehow, asap",
            "created_at": "2026-11-20T17:05:00Z", "updated_at": "2026-11-20T17:05:00Z"
        }
    ]}}})
}

/// What a run did, as measured.
#[derive(Debug)]
struct Summary {
    /// The sync into the index.
    synced: SyncReport,
    /// Keys `search` found for the vague request, best first.
    found: Vec<String>,
    /// The vague request's Definition-of-Ready score.
    vague_score: f64,
    /// How many suggestions `improve_compliance` made for it.
    suggestions: usize,
    /// The issue `create_issue` made after approval.
    created: String,
    /// Issues titled [`NEW_TITLE`] in the file afterwards.
    copies_in_file: usize,
    /// The best `search` hit for the new issue's words.
    found_created: Option<String>,
    /// Whether the new issue is ready by the Definition of Ready.
    created_ready: bool,
    /// The rule that refused the close.
    denied_by: Option<String>,
    /// The security issue's state in the file after the refused close.
    security_state: IssueState,
    /// Audit events, all verified.
    audit_events: u64,
    /// `executed` audit events of the approved creation.
    creations_executed: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "synced {} issues in {} pages; search found {}",
            self.synced.issues,
            self.synced.pages,
            self.found.join(", ")
        )?;
        writeln!(
            f,
            "the vague request scored {:.2} with {} suggestions",
            self.vague_score, self.suggestions
        )?;
        writeln!(
            f,
            "filed {} (ready: {}): in the file {} time(s), run {} time(s), found by search as {}",
            self.created,
            self.created_ready,
            self.copies_in_file,
            self.creations_executed,
            self.found_created.as_deref().unwrap_or("nothing")
        )?;
        write!(
            f,
            "close of {SECURITY_ISSUE} denied by {}, it is still {}; {} audit events verified",
            self.denied_by.as_deref().unwrap_or("no rule"),
            self.security_state.as_str(),
            self.audit_events
        )
    }
}

/// Forwards each new approval request to the maintainer's task.
#[derive(Debug)]
struct ChannelNotifier(mpsc::UnboundedSender<Uuid>);

#[async_trait]
impl Notifier for ChannelNotifier {
    async fn notify(&self, notification: Notification<'_>) -> Result<(), NotifyError> {
        if let Notification::Created { request, .. } = notification {
            println!(
                "  [notify] {} needs a maintainer",
                request.tool.exposed_name
            );
            self.0
                .send(request.id)
                .map_err(|e| NotifyError(e.to_string()))?;
        }
        Ok(())
    }
}

/// A maintainer working on another task: approves whatever reaches the inbox.
fn spawn_maintainer(
    governor: Arc<Governor>,
    mut inbox: mpsc::UnboundedReceiver<Uuid>,
) -> tokio::task::JoinHandle<()> {
    let maintainer = Principal::new("u-1", ORGANIZATION).with_role("maintainer");
    tokio::spawn(async move {
        while let Some(request_id) = inbox.recv().await {
            let vote = VoteCast::approve(maintainer.clone()).with_comment("well specified");
            match governor.decide(&maintainer, request_id, vote).await {
                Ok(request) => println!("  [maintainer] approved: request is {}", request.state),
                Err(error) => println!("  [maintainer] could not approve: {error}"),
            }
        }
    })
}

/// The agent's side: one governed call at a time.
struct Agent {
    governor: Arc<Governor>,
    principal: Principal,
}

impl Agent {
    /// Calls `tool` and answers how the governor ended the call.
    async fn call(&self, tool: &str, arguments: Value) -> Result<Outcome, Box<dyn Error>> {
        println!("agent: {tool} {}", brief(&arguments));
        let outcome = self
            .governor
            .call(&self.principal, ToolCall::new(tool, arguments))
            .await?;
        Ok(outcome)
    }

    /// Calls `tool` and answers its output, which must be a success.
    async fn run(&self, tool: &str, arguments: Value) -> Result<ToolOutput, Box<dyn Error>> {
        match self.call(tool, arguments).await? {
            Outcome::Executed { output, .. } if !output.is_error => {
                let text = output.joined_text();
                println!("  -> {}", text.lines().next().unwrap_or_default());
                Ok(output)
            }
            other => Err(format!("{tool} did not succeed: {}", other.message()).into()),
        }
    }

    /// Searches the index through the `search` tool and answers the keys found, best first.
    async fn search(&self, query: &str) -> Result<Vec<String>, Box<dyn Error>> {
        let hits = self.run("search", json!({ "query": query })).await?;
        for line in hits.joined_text().lines().skip(1) {
            println!("     {line}");
        }
        Ok(hits
            .structured_content
            .as_ref()
            .and_then(|content| content["results"].as_array())
            .map(|results| {
                results
                    .iter()
                    .filter_map(|r| r["key"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// `arguments` for printing, long texts cut short.
fn brief(arguments: &Value) -> Value {
    match arguments {
        Value::String(text) if text.chars().count() > 40 => {
            json!(format!("{}...", text.chars().take(40).collect::<String>()))
        }
        Value::Object(fields) => fields
            .iter()
            .map(|(name, value)| (name.clone(), brief(value)))
            .collect(),
        other => other.clone(),
    }
}

/// `field` of the structured content's first result.
fn first_result<'a>(output: &'a ToolOutput, field: &str) -> &'a Value {
    output
        .structured_content
        .as_ref()
        .map_or(&Value::Null, |content| &content["results"][0][field])
}

/// The governor serving the seven issue tools over `tracker`, indexing into `store` (which
/// also keeps approvals and the audit log), with [`POLICY`] and a maintainer on another task.
fn govern(
    tracker: Arc<JsonFileTracker>,
    store: Arc<MemoryStore>,
) -> Result<(Arc<Governor>, tokio::task::JoinHandle<()>), Box<dyn Error>> {
    let directory = FixedDirectory(vec![ConnectedTracker {
        id: TRACKER_ID.to_owned(),
        name: "local".to_owned(),
        projects: vec![PROJECT.to_owned()],
        tracker,
    }]);
    let registry = Arc::new(Registry::new());
    for tool in IssueTools::new(Arc::new(directory), store.clone()).tools() {
        registry.register(tool)?;
    }
    let (to_maintainer, inbox) = mpsc::unbounded_channel();
    let governor = Arc::new(
        Governor::builder(registry)
            .store(store)
            .notifier(Arc::new(ChannelNotifier(to_maintainer)))
            .build(),
    );
    governor.set_policy(
        ORGANIZATION,
        &GovernanceDocument::parse(POLICY, Format::Toml)?,
    )?;
    let maintainer = spawn_maintainer(governor.clone(), inbox);
    Ok((governor, maintainer))
}

/// Runs the whole demonstration in `dir` (where the issue file goes).
async fn run(dir: &Path) -> Result<Summary, Box<dyn Error>> {
    let path = dir.join("issues.json");
    std::fs::write(&path, serde_json::to_string_pretty(&seed())?)?;
    let tracker = Arc::new(JsonFileTracker::new(&path, "agent-7"));
    let project = tracker.get_project(PROJECT).await?;
    println!(
        "tracker: {} ({:?}) in {}",
        project.name,
        project.key,
        path.display()
    );

    // The index the tools search, filled by a sync (what the server does on a schedule).
    let store = Arc::new(MemoryStore::new());
    let target = SyncTarget {
        organization_id: ORGANIZATION,
        tracker_id: TRACKER_ID,
        project: PROJECT,
    };
    let synced = sync_project(tracker.as_ref(), store.as_ref(), target, None, |report| {
        println!(
            "  sync: page {}, {} issues so far",
            report.pages, report.issues
        );
    })
    .await?;

    let (governor, maintainer) = govern(tracker.clone(), store.clone())?;
    let agent = Agent {
        governor: governor.clone(),
        principal: Principal::new("agent-7", ORGANIZATION).with_role("agent"),
    };

    // Find the vague request, read it by its web URL, and score it.
    let found = agent.search("dark mode at night").await?;
    let vague = found.first().ok_or("search found nothing")?;
    let url = tracker
        .get_issue(vague)
        .await?
        .url
        .ok_or("the issue has no URL")?;
    agent.run("get_issue", json!({"issue": url})).await?;
    let estimate = agent
        .run("estimate_compliance", json!({"issues": [vague]}))
        .await?;
    let vague_score = first_result(&estimate, "score")
        .as_f64()
        .ok_or("no score")?;
    let improve = agent
        .run("improve_compliance", json!({"issues": vague}))
        .await?;
    let suggestions = first_result(&improve, "suggestions")
        .as_array()
        .cloned()
        .unwrap_or_default();
    for suggestion in &suggestions {
        println!("     * {}", suggestion.as_str().unwrap_or_default());
    }

    // File a well-specified issue: held until the maintainer approves, then run once.
    let outcome = agent
        .call(
            "create_issue",
            json!({"project": PROJECT, "title": NEW_TITLE, "description": NEW_BODY,
                   "labels": ["feature", "ui"], "priority": "Medium"}),
        )
        .await?;
    let (request_id, output) = match outcome {
        Outcome::Executed {
            request_id: Some(request_id),
            output,
            ..
        } if !output.is_error => (request_id, output),
        other => {
            return Err(
                format!("create_issue was not approved and run: {}", other.message()).into(),
            );
        }
    };
    let created = output
        .structured_content
        .as_ref()
        .and_then(|content| content["issue"]["key"].as_str())
        .ok_or("create_issue answered no key")?
        .to_owned();
    println!("  -> executed after approval: {created}");
    let file: IssueFile = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let copies_in_file = file
        .projects
        .values()
        .flat_map(|p| &p.issues)
        .filter(|i| i.title == NEW_TITLE)
        .count();
    println!(
        "  in {}: {copies_in_file} issue titled {NEW_TITLE:?}",
        path.display()
    );
    let found_created = agent
        .search("dark theme system setting")
        .await?
        .into_iter()
        .next();
    let ready = agent
        .run("estimate_compliance", json!({"issues": created}))
        .await?;
    let created_ready = first_result(&ready, "ready").as_bool() == Some(true);

    // Closing the security bug is refused; the agent comments instead.
    let close = agent
        .call(
            "update_issue",
            json!({"issue": SECURITY_ISSUE, "status": "closed"}),
        )
        .await?;
    let denied_by = match &close {
        Outcome::Denied { rule, message, .. } => {
            println!(
                "  -> denied by {}: {message}",
                rule.as_deref().unwrap_or("default")
            );
            rule.clone()
        }
        other => return Err(format!("the close was not denied: {}", other.message()).into()),
    };
    let security_state = tracker.get_issue(SECURITY_ISSUE).await?.state;
    agent
        .run(
            "add_comment",
            json!({"issue": SECURITY_ISSUE, "body": "The preview now escapes HTML; please verify and close."}),
        )
        .await?;

    // Every step is in the hash-chained audit log.
    let events = store.events(ORGANIZATION, 1, 0).await?;
    let chain = verify_chain(&events)?;
    let creations_executed = events
        .iter()
        .filter(|e| {
            matches!(e.kind, AuditEventKind::Executed { request_id: Some(id), .. } if id == request_id)
        })
        .count();
    println!(
        "audit: {} events, chain intact; the approved creation ran {creations_executed} time(s)",
        chain.events
    );
    drop(agent);
    drop(governor);
    maintainer.abort();
    Ok(Summary {
        synced,
        found,
        vague_score,
        suggestions: suggestions.len(),
        created,
        copies_in_file,
        found_created,
        created_ready,
        denied_by,
        security_state,
        audit_events: chain.events,
        creations_executed,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let summary = run(dir.path()).await?;
    println!("\nsummary:\n{summary}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn Error>>;

    #[tokio::test]
    async fn the_agent_loop_is_governed_over_the_json_file() -> TestResult {
        let dir = tempfile::tempdir()?;
        let summary = run(dir.path()).await?;
        assert_eq!((summary.synced.issues, summary.synced.pages), (3, 2));
        assert_eq!(
            summary.found.first().map(String::as_str),
            Some("local/app#3")
        );
        assert!(summary.vague_score < 0.5, "{summary:?}");
        assert!(summary.suggestions >= 3, "{summary:?}");
        assert_eq!(summary.created, "local/app#4");
        assert_eq!(summary.copies_in_file, 1);
        assert_eq!(summary.found_created.as_deref(), Some("local/app#4"));
        assert!(summary.created_ready, "{summary:?}");
        assert_eq!(summary.denied_by.as_deref(), Some("agents-do-not-close"));
        assert_eq!(summary.security_state, IssueState::Open);
        assert_eq!(summary.creations_executed, 1);
        assert!(summary.audit_events > 0);
        Ok(())
    }

    #[tokio::test]
    async fn keys_and_urls_name_issues_and_pages_survive_edits_between_them() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("issues.json");
        std::fs::write(&path, seed().to_string())?;
        let tracker = JsonFileTracker::new(&path, "tester");
        let url = format!("file://{}/app/2", dir.path().display());
        for reference in ["local/app#2", url.as_str(), " local/app#2 "] {
            assert_eq!(tracker.issue_key(reference).as_deref(), Some("local/app#2"));
        }
        for foreign in [
            "acme/web#2",
            "local/app#two",
            "local/#2",
            "https://example.com/app/2",
        ] {
            assert_eq!(tracker.issue_key(foreign), None, "{foreign}");
        }
        assert_eq!(
            tracker.get_issue(&url).await?.title,
            "Stored XSS in the comment preview"
        );
        assert!(matches!(
            tracker.get_issue("local/app#9").await,
            Err(TrackerError::NotFound(_))
        ));
        let first = tracker.list_updated_since(PROJECT, None, None).await?;
        assert_eq!(first.next_cursor.as_deref(), Some("2"));
        // An edit between two pages must not push an issue past the cursor.
        let edit = IssueUpdate {
            priority: Some("Low".into()),
            ..IssueUpdate::default()
        };
        tracker.update_issue("local/app#1", &edit).await?;
        let rest = tracker
            .list_updated_since(PROJECT, None, first.next_cursor.as_deref())
            .await?;
        let keys: Vec<&str> = first
            .issues
            .iter()
            .chain(&rest.issues)
            .map(|i| i.key.as_str())
            .collect();
        assert_eq!(keys, ["local/app#1", "local/app#2", "local/app#3"]);
        assert_eq!(rest.next_cursor, None);
        Ok(())
    }

    #[tokio::test]
    async fn updates_are_written_to_the_file_and_bad_ones_change_nothing() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("issues.json");
        std::fs::write(&path, seed().to_string())?;
        let tracker = JsonFileTracker::new(&path, "tester");
        let bad = IssueUpdate {
            title: Some("Renamed".into()),
            status: Some("In Review".into()),
            ..IssueUpdate::default()
        };
        assert!(matches!(
            tracker.update_issue("local/app#1", &bad).await,
            Err(TrackerError::Invalid(_))
        ));
        let close = IssueUpdate {
            status: Some("done".into()),
            labels: Some(vec!["bug".into(), "fixed".into()]),
            ..IssueUpdate::default()
        };
        tracker.update_issue("local/app#1", &close).await?;
        let comment = tracker.add_comment("local/app#1", "Fixed in 2.4.1").await?;
        assert_eq!(comment.id, "1");
        let reopened = JsonFileTracker::new(&path, "someone else");
        let issue = reopened.get_issue("local/app#1").await?;
        assert_eq!(
            issue.title,
            "Login fails after the SSO session is refreshed"
        );
        assert_eq!(
            (issue.state, issue.labels),
            (IssueState::Closed, vec!["bug".into(), "fixed".into()])
        );
        let since = reopened
            .list_updated_since(PROJECT, Some(issue.updated_at), None)
            .await?;
        assert_eq!(
            since.issues.len(),
            1,
            "only the updated issue changed since"
        );
        Ok(())
    }
}

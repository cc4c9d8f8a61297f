//! A local stand-in for GitHub's REST API for one repository, `acme/web`: the repository, its
//! issues in pages of two (`since` honoured, the next page linked at `/repositories/1/issues`
//! as GitHub does), one issue, creating and changing issues, and comments. Every request needs
//! the token it was started with (anything else is answered 401 `Bad credentials`, as GitHub
//! does), and is recorded.

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the stand-in holds and saw.
#[derive(Debug, Default)]
pub struct Repository {
    /// Its API base URL.
    pub base: String,
    /// The issues, as GitHub's REST API shows them.
    pub issues: Vec<Value>,
    /// How many issues were created through it.
    pub created: usize,
    /// The bodies of the comments it received, with the issue number.
    pub comments: Vec<(usize, String)>,
    /// Every authorized request's path and query.
    pub requests: Vec<String>,
}

/// The running stand-in; it stops when the handle is dropped.
#[derive(Debug)]
pub struct FakeGitHub {
    /// Its API base URL (the tracker's `url`).
    pub url: String,
    /// Its state, to add issues or read what it received.
    pub repo: Arc<Mutex<Repository>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An issue of `acme/web` as GitHub shows it, updated at `10:{minute}` on 2026-11-30.
pub fn issue(base: &str, number: usize, title: &str, body: &str, minute: usize) -> Value {
    json!({
        "id": 1000 + number,
        "node_id": format!("I_{number}"),
        "number": number,
        "title": title,
        "body": body,
        "state": "open",
        "labels": [{"id": 1, "name": "bug", "color": "d73a4a"}],
        "assignees": [{"login": "octocat", "id": 1}],
        "user": {"login": "octocat", "id": 1},
        "html_url": format!("{base}/acme/web/issues/{number}"),
        "url": format!("{base}/repos/acme/web/issues/{number}"),
        "created_at": format!("2026-11-30T10:{minute:02}:00Z"),
        "updated_at": format!("2026-11-30T10:{minute:02}:00Z"),
    })
}

/// Three issues of `acme/web` (a login bug, a CSV export, dark mode), updated at 10:01 to 10:03.
pub fn sample_issues(base: &str) -> Vec<Value> {
    vec![
        issue(
            base,
            1,
            "Login fails after SSO token refresh",
            "Users are signed out.",
            1,
        ),
        issue(
            base,
            2,
            "Export audit events as CSV",
            "Admins want a spreadsheet.",
            2,
        ),
        issue(base, 3, "Dark mode for the settings page", "Colours.", 3),
    ]
}

type Shared = Arc<Mutex<Repository>>;

fn locked(repo: &Shared) -> std::sync::MutexGuard<'_, Repository> {
    repo.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FakeGitHub {
    /// Starts the stand-in accepting `token`, with `issues(base)` as the repository's issues.
    pub async fn start(token: &str, issues: impl FnOnce(&str) -> Vec<Value>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let repo: Shared = Arc::new(Mutex::new(Repository {
            base: url.clone(),
            issues: issues(&url),
            ..Repository::default()
        }));
        let expected = format!("Bearer {token}");
        let recorder = repo.clone();
        let app = axum::Router::new()
            .route("/repos/acme/web", get(repository))
            .route("/repos/acme/web/issues", get(list).post(create))
            .route("/repositories/1/issues", get(list))
            .route("/repos/acme/web/issues/{number}", get(one).patch(change))
            .route("/repos/acme/web/issues/{number}/comments", post(comment))
            .layer(axum::middleware::from_fn(
                move |request: Request, next: Next| {
                    let allowed = request
                        .headers()
                        .get(header::AUTHORIZATION)
                        .is_some_and(|given| given.as_bytes() == expected.as_bytes());
                    if allowed {
                        locked(&recorder).requests.push(request.uri().to_string());
                    }
                    async move {
                        if allowed {
                            next.run(request).await
                        } else {
                            unauthorized()
                        }
                    }
                },
            ))
            .with_state(repo.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the stand-in serves");
        });
        Self { url, repo, task }
    }

    /// Adds an issue (numbered after the others) updated at `10:{minute}`.
    pub fn add_issue(&self, title: &str, body: &str, minute: usize) {
        let mut repo = locked(&self.repo);
        let number = repo.issues.len() + 1;
        let added = issue(&self.url, number, title, body, minute);
        repo.issues.push(added);
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})),
    )
        .into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response()
}

/// GitHub's labels for the names an issue was given.
fn labels(names: &Value) -> Value {
    let names = names.as_array().cloned().unwrap_or_default();
    json!(names.iter().map(|l| json!({"name": l})).collect::<Vec<_>>())
}

async fn repository(State(repo): State<Shared>) -> Json<Value> {
    let base = locked(&repo).base.clone();
    Json(
        json!({"id": 1, "name": "web", "full_name": "acme/web", "html_url": format!("{base}/acme/web")}),
    )
}

/// Issues pages of two, the next page linked at `/repositories/1/issues` as GitHub does.
async fn list(
    State(repo): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let repo = locked(&repo);
    let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let since = query.get("since").cloned().unwrap_or_default();
    let matching: Vec<&Value> = repo
        .issues
        .iter()
        .filter(|i| i["updated_at"].as_str().unwrap_or_default() >= since.as_str())
        .collect();
    let items: Vec<&Value> = matching
        .iter()
        .skip((page - 1) * 2)
        .take(2)
        .copied()
        .collect();
    let mut headers = HeaderMap::new();
    if matching.len() > page * 2 {
        let next = format!(
            "<{}/repositories/1/issues?page={}&since={since}>; rel=\"next\"",
            repo.base,
            page + 1
        );
        headers.insert("link", next.parse().expect("a header value"));
    }
    (headers, Json(json!(items)))
}

async fn one(State(repo): State<Shared>, Path(number): Path<usize>) -> Response {
    let repo = locked(&repo);
    match repo.issues.iter().find(|i| i["number"] == number) {
        Some(found) => Json(found.clone()).into_response(),
        None => not_found(),
    }
}

async fn create(State(repo): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut repo = locked(&repo);
    repo.created += 1;
    let number = repo.issues.len() + 1;
    let mut created = issue(
        &repo.base,
        number,
        body["title"].as_str().unwrap_or_default(),
        body["body"].as_str().unwrap_or_default(),
        50,
    );
    created["labels"] = labels(&body["labels"]);
    repo.issues.push(created.clone());
    (StatusCode::CREATED, Json(created)).into_response()
}

async fn change(
    State(repo): State<Shared>,
    Path(number): Path<usize>,
    Json(body): Json<Value>,
) -> Response {
    let mut repo = locked(&repo);
    let Some(changed) = repo.issues.iter_mut().find(|i| i["number"] == number) else {
        return not_found();
    };
    for field in ["title", "body", "state"] {
        if let Some(value) = body.get(field) {
            changed[field] = value.clone();
        }
    }
    if body["labels"].is_array() {
        changed["labels"] = labels(&body["labels"]);
    }
    changed["updated_at"] = json!("2026-11-30T11:00:00Z");
    Json(changed.clone()).into_response()
}

async fn comment(
    State(repo): State<Shared>,
    Path(number): Path<usize>,
    Json(body): Json<Value>,
) -> Response {
    let text = body["body"].as_str().unwrap_or_default().to_owned();
    locked(&repo).comments.push((number, text.clone()));
    (
        StatusCode::CREATED,
        Json(json!({
            "id": 77, "body": text, "user": {"login": "octocat"},
            "created_at": "2026-11-30T12:00:00Z",
            "html_url": format!("https://github.test/acme/web/issues/{number}#issuecomment-77")
        })),
    )
        .into_response()
}

/// The first tracker of the default organization on the gateway at `base`, as its admin sees
/// it (`GET /api/v1/trackers`).
pub async fn first_tracker(base: &str) -> Value {
    let (status, list) = crate::rest(
        reqwest::Method::GET,
        &format!("{base}/api/v1/trackers"),
        Some(crate::ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    list["items"][0].clone()
}

/// The gateway's view of its only tracker, once its synchronization has finished with `issues`
/// indexed (issues are indexed page by page, before the sync is dated and stops running).
pub async fn synchronized_tracker(base: &str, issues: u64) -> Value {
    crate::wait::eventually_some("the first synchronization ends", async || {
        let tracker = first_tracker(base).await;
        let done = tracker["issues_indexed"] == issues
            && tracker["running"].is_null()
            && tracker["last_synced_at"].is_string();
        done.then_some(tracker)
    })
    .await
}

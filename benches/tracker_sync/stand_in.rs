//! A local GitHub stand-in for the sync load tool: one repository's issues list as GitHub's
//! REST API v3 serves it (`state`, `since`, `sort`, `direction`, `per_page`, `page`; pages
//! linked by a `Link` header whose `next` points at `/repositories/{id}/issues` with the same
//! filters), each issue in GitHub's JSON shape, and every request counted as it arrives.

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, TimeDelta, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// The issue every listed issue is shaped after: GitHub's documented example.
const TEMPLATE: &str = include_str!("../../preloop-trackers/tests/fixtures/github/issue.json");

/// The repository's numeric id, in the `Link` URLs as in GitHub's.
const REPOSITORY_ID: u64 = 1;

/// GitHub's largest page.
const MAX_PER_PAGE: usize = 100;

const COMPONENTS: [&str; 8] = [
    "login",
    "checkout",
    "search",
    "billing",
    "webhooks",
    "dashboard",
    "export",
    "sync",
];
const SYMPTOMS: [&str; 6] = [
    "fails with a 500",
    "times out",
    "shows stale data",
    "crashes the worker",
    "is slow on large accounts",
    "loses the user's changes",
];
const SENTENCES: [&str; 10] = [
    "Steps to reproduce: sign in as an organization admin and open the page from the sidebar.",
    "Expected the request to finish in under a second; it takes more than thirty.",
    "The server log shows a connection reset from the upstream service at the same moment.",
    "This started after the last deploy and affects roughly one request in twenty.",
    "Workaround: reload the page, which succeeds on the second attempt most of the time.",
    "Acceptance criteria: the operation succeeds or reports a clear, actionable error.",
    "Attached are the browser console output and the response headers of a failing call.",
    "Customers on the enterprise plan reported this twice this week.",
    "The retry in the client masks the failure but doubles the load on the database.",
    "Probably related to the cache invalidation change in the previous release.",
];
const LABELS: [&str; 8] = [
    "bug",
    "enhancement",
    "documentation",
    "question",
    "priority: high",
    "priority: low",
    "help wanted",
    "good first issue",
];

/// One issue as the stand-in keeps it.
#[derive(Debug, Clone)]
struct Record {
    number: u64,
    title: String,
    body: String,
    labels: Vec<&'static str>,
    open: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A spread-out integer from `n` (Fibonacci hashing), to vary generated issues without
/// randomness.
fn mix(n: u64) -> usize {
    (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize
}

/// A label's id, the same for every use of the name.
fn label_id(name: &str) -> u64 {
    name.bytes()
        .fold(17, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
}

impl Record {
    /// Issue `number`, last updated `number` minutes after the start of 2024.
    fn generated(number: u64) -> Self {
        let h = mix(number);
        let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single().unwrap();
        let minutes = i64::try_from(number).unwrap();
        let sentences = 2 + h % 5;
        let body: Vec<&str> = (0..sentences)
            .map(|k| SENTENCES[(h / 7 + k * 3) % SENTENCES.len()])
            .collect();
        Self {
            number,
            title: format!(
                "{} {} (case {number})",
                COMPONENTS[h % COMPONENTS.len()],
                SYMPTOMS[(h / 11) % SYMPTOMS.len()]
            ),
            body: body.join(" "),
            labels: (0..h % 3)
                .map(|k| LABELS[(h / 13 + k * 5) % LABELS.len()])
                .collect(),
            open: !h.is_multiple_of(4),
            created_at: start + TimeDelta::minutes(minutes) - TimeDelta::days(30),
            updated_at: start + TimeDelta::minutes(minutes),
        }
    }

    /// The issue in GitHub's JSON shape: the template with this issue's fields.
    fn to_json(&self, template: &Value, owner: &str, repo: &str) -> Value {
        let mut issue = template.clone();
        let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        let api = format!("https://api.github.com/repos/{owner}/{repo}");
        let labels: Vec<Value> = self
            .labels
            .iter()
            .map(|name| json!({"id": label_id(name), "name": name, "color": "d73a4a", "default": false, "description": null}))
            .collect();
        let fields = [
            ("id", json!(1_000_000 + self.number)),
            ("number", json!(self.number)),
            ("title", json!(self.title)),
            ("body", json!(self.body)),
            ("labels", json!(labels)),
            ("state", json!(if self.open { "open" } else { "closed" })),
            ("created_at", json!(time(self.created_at))),
            ("updated_at", json!(time(self.updated_at))),
            (
                "closed_at",
                if self.open {
                    Value::Null
                } else {
                    json!(time(self.updated_at))
                },
            ),
            ("url", json!(format!("{api}/issues/{}", self.number))),
            ("repository_url", json!(api)),
            (
                "html_url",
                json!(format!(
                    "https://github.com/{owner}/{repo}/issues/{}",
                    self.number
                )),
            ),
        ];
        for (name, value) in fields {
            issue[name] = value;
        }
        issue
    }
}

/// The list's parameters, GitHub's defaults when absent.
#[derive(Debug, Deserialize)]
struct ListQuery {
    state: Option<String>,
    since: Option<DateTime<Utc>>,
    sort: Option<String>,
    direction: Option<String>,
    per_page: Option<usize>,
    page: Option<usize>,
}

#[derive(Debug)]
struct Shared {
    base: String,
    owner: String,
    repo: String,
    template: Value,
    issues: RwLock<Vec<Record>>,
    requests: AtomicU64,
    served: AtomicU64,
}

/// What the stand-in has served so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Served {
    /// Requests received (any path, any answer).
    pub requests: u64,
    /// Issues sent in list answers.
    pub issues: u64,
}

impl std::ops::Sub for Served {
    type Output = Self;

    fn sub(self, earlier: Self) -> Self {
        Self {
            requests: self.requests - earlier.requests,
            issues: self.issues - earlier.issues,
        }
    }
}

/// A running stand-in for one repository.
#[derive(Debug)]
pub struct StandIn {
    shared: Arc<Shared>,
}

impl StandIn {
    /// Serves `owner/repo` with issues 1 to `count` on a free loopback port.
    pub async fn start(owner: &str, repo: &str, count: u64) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shared = Arc::new(Shared {
            base: format!("http://{}", listener.local_addr().unwrap()),
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            template: serde_json::from_str(TEMPLATE).unwrap(),
            issues: RwLock::new((1..=count).map(Record::generated).collect()),
            requests: AtomicU64::new(0),
            served: AtomicU64::new(0),
        });
        let router = Router::new()
            .route("/repos/{owner}/{repo}/issues", get(repository_issues))
            .route("/repositories/{id}/issues", get(issues_by_id))
            .layer(middleware::from_fn_with_state(
                shared.clone(),
                count_request,
            ))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { shared }
    }

    /// The API base URL.
    pub fn base(&self) -> &str {
        &self.shared.base
    }

    /// Requests and issues served so far.
    pub fn served(&self) -> Served {
        Served {
            requests: self.shared.requests.load(Ordering::SeqCst),
            issues: self.shared.served.load(Ordering::SeqCst),
        }
    }

    /// Edits `count` issues spread over the repository (new title and body, one label more or
    /// less), each updated a second after the previous, starting an hour after the newest
    /// update; answers their numbers and new titles.
    pub fn change(&self, count: usize) -> Vec<(u64, String)> {
        let mut issues = self.shared.issues.write().unwrap();
        let newest = issues.iter().map(|r| r.updated_at).max().unwrap();
        let step = (issues.len() / count.max(1)).max(1);
        let mut changed = Vec::new();
        for (k, record) in issues.iter_mut().step_by(step).take(count).enumerate() {
            record.title = format!("{} after the fix", record.title);
            record
                .body
                .push_str(" Update: reopened, the fix did not cover this case.");
            if record.labels.pop().is_none() {
                record.labels.push("regression");
            }
            record.updated_at =
                newest + TimeDelta::hours(1) + TimeDelta::seconds(i64::try_from(k).unwrap());
            changed.push((record.number, record.title.clone()));
        }
        changed
    }
}

async fn count_request(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    next.run(request).await
}

async fn repository_issues(
    State(shared): State<Arc<Shared>>,
    Path((owner, repo)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> Response {
    if owner != shared.owner || repo != shared.repo {
        return not_found();
    }
    list(&shared, &query)
}

async fn issues_by_id(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u64>,
    Query(query): Query<ListQuery>,
) -> Response {
    if id != REPOSITORY_ID {
        return not_found();
    }
    list(&shared, &query)
}

fn not_found() -> Response {
    let body = json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"});
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

fn invalid(field: &str) -> Response {
    let body = json!({
        "message": "Validation Failed",
        "errors": [{"resource": "Issue", "field": field, "code": "invalid"}],
        "documentation_url": "https://docs.github.com/rest/issues/issues#list-repository-issues",
    });
    (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response()
}

/// One page of the list, as GitHub answers it.
fn list(shared: &Shared, query: &ListQuery) -> Response {
    let state = query.state.as_deref().unwrap_or("open");
    let sort = query.sort.as_deref().unwrap_or("created");
    let direction = query.direction.as_deref().unwrap_or("desc");
    let per_page = query.per_page.unwrap_or(30).clamp(1, MAX_PER_PAGE);
    let page = query.page.unwrap_or(1).max(1);
    let admits_state: fn(&Record) -> bool = match state {
        "all" => |_: &Record| true,
        "open" => |r: &Record| r.open,
        "closed" => |r: &Record| !r.open,
        _ => return invalid("state"),
    };
    let sort_key: fn(&Record) -> (DateTime<Utc>, u64) = match sort {
        "updated" => |r: &Record| (r.updated_at, r.number),
        "created" => |r: &Record| (r.created_at, r.number),
        _ => return invalid("sort"),
    };
    if direction != "asc" && direction != "desc" {
        return invalid("direction");
    }
    let issues = shared.issues.read().unwrap();
    // GitHub's `since`: issues updated at or after the time.
    let mut matching: Vec<&Record> = issues
        .iter()
        .filter(|r| admits_state(r) && query.since.is_none_or(|since| r.updated_at >= since))
        .collect();
    matching.sort_by_key(|r| sort_key(r));
    if direction == "desc" {
        matching.reverse();
    }
    let pages = matching.len().div_ceil(per_page).max(1);
    let items: Vec<Value> = matching
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|r| r.to_json(&shared.template, &shared.owner, &shared.repo))
        .collect();
    shared
        .served
        .fetch_add(items.len() as u64, Ordering::SeqCst);
    let link = |n: usize, rel: &str| {
        let mut params = vec![
            ("state", state.to_owned()),
            ("sort", sort.to_owned()),
            ("direction", direction.to_owned()),
            ("per_page", per_page.to_string()),
        ];
        params.extend(
            query
                .since
                .map(|s| ("since", s.to_rfc3339_opts(SecondsFormat::Secs, true))),
        );
        params.push(("page", n.to_string()));
        let query = serde_urlencoded::to_string(params).unwrap();
        format!(
            "<{}/repositories/{REPOSITORY_ID}/issues?{query}>; rel=\"{rel}\"",
            shared.base
        )
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < pages {
        links.push(link(page + 1, "next"));
        links.push(link(pages, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
    }
    let mut response = axum::Json(items).into_response();
    if !links.is_empty() {
        response.headers_mut().insert(
            header::LINK,
            HeaderValue::from_str(&links.join(", ")).unwrap(),
        );
    }
    response
}

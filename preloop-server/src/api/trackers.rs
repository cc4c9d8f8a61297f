//! `/api/v1/trackers` (connect, read, change, disconnect, sync, test a connection, each
//! tracker's status and webhook URL; admins), the trackers' webhooks (public: deliveries are
//! authenticated by their signature), and `/api/v1/issues` (search and read the index; create,
//! change and comment in the tracker). What each does is [`crate::app::Trackers`]'s.

use super::views::Items;
use super::views::trackers::{
    CommentView, DeliveryView, IssueView, ProjectInfoView, ProjectView, SyncView, TrackerView,
};
use crate::config::TrackerEntry;
use crate::http::ApiError;
use crate::http::extract::{Body, Param, QueryParams, require_role};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use preloop_core::Principal;
use preloop_core::tracker::{IssueUpdate, NewIssue};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, replace, remove))
        .routes(routes!(sync))
        .routes(routes!(test_connection))
        .routes(routes!(list_projects))
        .routes(routes!(show_project))
        .routes(routes!(search))
        .routes(routes!(create_issue))
        .routes(routes!(show_issue, update_issue, forget_issue))
        .routes(routes!(comment))
}

/// The webhook route, which carries no bearer token.
pub(super) fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(webhook))
}

fn admin(principal: &Principal) -> Result<(), ApiError> {
    require_role(principal, "admin", "see or manage issue trackers")
}

/// People change issues over REST; agents go through the governed tools.
fn person(principal: &Principal) -> Result<(), ApiError> {
    require_role(
        principal,
        "member",
        "change issues over REST (agents use the governed tools)",
    )
}

fn input(entry: &TrackerEntry) -> Result<crate::app::TrackerInput, ApiError> {
    entry
        .to_input()
        .map_err(|e| ApiError::Unprocessable(e.to_string()))
}

#[utoipa::path(
    get,
    path = "/trackers",
    tag = "trackers",
    summary = "The organization's trackers with their status (admins; tokens never shown)",
    responses((status = 200, description = "Done", body = Items<TrackerView>), (status = 403, description = "Not allowed for this principal"))
)]
async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Items<TrackerView>>, ApiError> {
    admin(&principal)?;
    let trackers = state.trackers.list(&principal.organization_id).await?;
    Ok(Json(
        trackers
            .iter()
            .map(|t| TrackerView::new(t, &state.public_url))
            .collect(),
    ))
}

#[utoipa::path(
    get,
    path = "/trackers/{id}",
    tag = "trackers",
    summary = "One tracker: last sync, issues indexed, last error, webhook URL",
    params(("id" = uuid::Uuid, Path, description = "Id")),
    responses((status = 200, description = "Done", body = TrackerView), (status = 404, description = "Not found in the caller's organization"))
)]
async fn show(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
) -> Result<Json<TrackerView>, ApiError> {
    admin(&principal)?;
    let status = state.trackers.get(&principal.organization_id, id).await?;
    Ok(Json(TrackerView::new(&status, &state.public_url)))
}

#[utoipa::path(
    post,
    path = "/trackers",
    tag = "trackers",
    summary = "Connect a tracker; it is synchronized at once and its issue tools offered (admins)",
    request_body = TrackerEntry,
    responses((status = 201, description = "Created", body = TrackerView), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 409, description = "Conflicts with the current state"), (status = 422, description = "Does not validate"))
)]
async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(entry): Body<TrackerEntry>,
) -> Result<(StatusCode, Json<TrackerView>), ApiError> {
    admin(&principal)?;
    let org = &principal.organization_id;
    let tracker = state.trackers.create(org, input(&entry)?).await?;
    let status = state.trackers.get(org, tracker.id).await?;
    Ok((
        StatusCode::CREATED,
        Json(TrackerView::new(&status, &state.public_url)),
    ))
}

#[utoipa::path(
    put,
    path = "/trackers/{id}",
    tag = "trackers",
    summary = "Change a tracker; a token or secret left out (or `<redacted>`) is kept (admins)",
    params(("id" = uuid::Uuid, Path, description = "Id")),
    request_body = TrackerEntry,
    responses((status = 200, description = "Done", body = TrackerView), (status = 400, description = "Malformed request"), (status = 404, description = "Not found in the caller's organization"), (status = 422, description = "Does not validate"))
)]
async fn replace(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
    Body(entry): Body<TrackerEntry>,
) -> Result<Json<TrackerView>, ApiError> {
    admin(&principal)?;
    let org = &principal.organization_id;
    state.trackers.update(org, id, input(&entry)?).await?;
    let status = state.trackers.get(org, id).await?;
    Ok(Json(TrackerView::new(&status, &state.public_url)))
}

#[utoipa::path(
    delete,
    path = "/trackers/{id}",
    tag = "trackers",
    summary = "Disconnect a tracker (admins)",
    params(("id" = uuid::Uuid, Path, description = "Id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "Not found in the caller's organization"))
)]
async fn remove(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
) -> Result<StatusCode, ApiError> {
    admin(&principal)?;
    state
        .trackers
        .delete(&principal.organization_id, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /trackers/{id}/sync`'s query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct SyncQuery {
    /// Wait for the synchronization to end and answer what it did (default: start it and
    /// answer 202 at once; follow it in the tracker's status or on the `issues` topic).
    #[serde(default)]
    wait: bool,
}

/// A synchronization started in the background.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct SyncStartedView {
    /// Always true: a sync that cannot start answers 409.
    started: bool,
}

#[utoipa::path(
    post,
    path = "/trackers/{id}/sync",
    tag = "trackers",
    summary = "Synchronize a tracker now: started in the background (202), or waited for with `wait=true` (admins)",
    params(("id" = uuid::Uuid, Path, description = "Id"), SyncQuery),
    responses((status = 200, description = "Done (`wait=true`)", body = SyncView), (status = 202, description = "Started", body = SyncStartedView), (status = 404, description = "Not found in the caller's organization"), (status = 409, description = "A synchronization of this tracker is running"), (status = 502, description = "The tracker could not be reached"))
)]
async fn sync(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
    QueryParams(query): QueryParams<SyncQuery>,
) -> Result<Response, ApiError> {
    admin(&principal)?;
    let organization_id = &principal.organization_id;
    if query.wait {
        let summary = state.trackers.sync_now(organization_id, id).await?;
        return Ok(Json(SyncView::from(summary)).into_response());
    }
    if !state.trackers.start_sync(organization_id, id).await? {
        return Err(ApiError::Conflict(
            "a synchronization of this tracker is running; follow it in the tracker's status"
                .to_owned(),
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(SyncStartedView { started: true }),
    )
        .into_response())
}

#[utoipa::path(
    post,
    path = "/projects/test-connection",
    tag = "trackers",
    summary = "Check that a described tracker can be reached and read: each project as the tracker describes it (admins)",
    request_body = TrackerEntry,
    responses((status = 200, description = "Done", body = Items<ProjectInfoView>), (status = 422, description = "Does not validate"), (status = 502, description = "The tracker refused or could not be reached"))
)]
async fn test_connection(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(entry): Body<TrackerEntry>,
) -> Result<Json<Items<ProjectInfoView>>, ApiError> {
    admin(&principal)?;
    let projects = state
        .trackers
        .test_connection(&principal.organization_id, input(&entry)?)
        .await?;
    Ok(Json(
        projects.into_iter().map(ProjectInfoView::from).collect(),
    ))
}

#[utoipa::path(
    get,
    path = "/organizations/{org_id}/projects",
    tag = "trackers",
    summary = "The organization's synchronized projects: each one's last sync, cursor and last error",
    params(("org_id" = String, Path, description = "The caller's organization")),
    responses((status = 200, description = "Done", body = Items<ProjectView>), (status = 404, description = "Not the caller's organization"))
)]
async fn list_projects(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(org_id): Param<String>,
) -> Result<Json<Items<ProjectView>>, ApiError> {
    if org_id != principal.organization_id {
        return Err(ApiError::NotFound(format!("no organization `{org_id}`")));
    }
    let projects = state.trackers.projects(&principal.organization_id).await?;
    Ok(Json(projects.iter().map(ProjectView::from).collect()))
}

#[utoipa::path(
    get,
    path = "/projects/{id}",
    tag = "trackers",
    summary = "One synchronized project",
    params(("id" = uuid::Uuid, Path, description = "Id")),
    responses((status = 200, description = "Done", body = ProjectView), (status = 404, description = "Not found in the caller's organization"))
)]
async fn show_project(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
) -> Result<Json<ProjectView>, ApiError> {
    let project = state
        .trackers
        .project(&principal.organization_id, id)
        .await?;
    Ok(Json((&project).into()))
}

/// A tracker's webhook payload (GitHub `issues` / `issue_comment`, GitLab `Issue Hook` /
/// `Note Hook`, Jira `jira:issue_*` / `comment_created`), read exactly as signed.
#[derive(Debug, utoipa::ToSchema)]
#[schema(value_type = Object)]
#[expect(
    dead_code,
    reason = "documents the body the handler reads as raw bytes"
)]
struct WebhookPayload(serde_json::Value);

/// A webhook delivery: authenticated by its signature, never by a bearer token.
#[utoipa::path(
    post,
    path = "/trackers/{id}/webhook",
    tag = "trackers",
    summary = "A tracker's webhook delivery (GitHub X-Hub-Signature-256, GitLab X-Gitlab-Token, Jira X-Hub-Signature)",
    params(("id" = uuid::Uuid, Path, description = "The tracker's id")),
    request_body(content = WebhookPayload, content_type = "application/json", description = "The tracker's payload, exactly as signed"),
    responses((status = 200, description = "Accepted (replays too, flagged `duplicate`)", body = DeliveryView), (status = 400, description = "Not a payload of this tracker"), (status = 401, description = "Missing or wrong signature"), (status = 404, description = "No such tracker")),
    security(())
)]
async fn webhook(
    State(state): State<AppState>,
    Param(id): Param<Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<DeliveryView>, ApiError> {
    let outcome = state.trackers.receive_webhook(id, &headers, &body).await?;
    Ok(Json(outcome.into()))
}

/// `GET /issues/search`'s query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    /// Words to look for (empty: the most recently updated issues).
    #[serde(default)]
    query: String,
    /// Only this project (empty: every project).
    project: Option<String>,
    /// Most results (1 to 100; default 10).
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/issues/search",
    tag = "issues",
    summary = "Full-text search over the synchronized issues, best first",
    params(SearchQuery),
    responses((status = 200, description = "Done", body = Items<IssueView>), (status = 400, description = "Malformed request"))
)]
async fn search(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    QueryParams(query): QueryParams<SearchQuery>,
) -> Result<Json<Items<IssueView>>, ApiError> {
    let hits = state
        .trackers
        .search(
            &principal.organization_id,
            &query.query,
            query.project.filter(|project| !project.is_empty()),
            query.limit.unwrap_or(10),
        )
        .await?;
    Ok(Json(hits.iter().map(IssueView::from).collect()))
}

/// `POST /issues`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    /// The project: `owner/repo`, `group/project`, a Jira key.
    project: String,
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    assignees: Vec<String>,
    priority: Option<String>,
    /// The tracker's name, when several have the project.
    tracker: Option<String>,
}

#[utoipa::path(
    post,
    path = "/issues",
    tag = "issues",
    summary = "Create an issue in the tracker that has the project",
    request_body = IssueBody,
    responses((status = 201, description = "Created", body = IssueView), (status = 403, description = "Not allowed for this principal"), (status = 422, description = "Does not validate"), (status = 502, description = "The tracker refused or could not be reached"))
)]
async fn create_issue(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<IssueBody>,
) -> Result<(StatusCode, Json<IssueView>), ApiError> {
    person(&principal)?;
    let issue = NewIssue {
        project: body.project,
        title: body.title,
        body: body.description,
        labels: body.labels,
        assignees: body.assignees,
        priority: body.priority,
    };
    let stored = state
        .trackers
        .create_issue(&principal.organization_id, issue, body.tracker.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json((&stored).into())))
}

#[utoipa::path(
    get,
    path = "/issues/{id}",
    tag = "issues",
    summary = "An issue of the index",
    params(("id" = String, Path, description = "The index's id")),
    responses((status = 200, description = "Done", body = IssueView), (status = 404, description = "Not found in the caller's organization"))
)]
async fn show_issue(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<String>,
) -> Result<Json<IssueView>, ApiError> {
    let stored = state
        .trackers
        .issue(&principal.organization_id, &id)
        .await?;
    Ok(Json((&stored).into()))
}

/// `PUT /issues/{id}`'s body: what to change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct IssueChange {
    title: Option<String>,
    description: Option<String>,
    /// `open`, `closed` (close, reopen...) or a Jira workflow status.
    status: Option<String>,
    priority: Option<String>,
    labels: Option<Vec<String>>,
    assignees: Option<Vec<String>>,
}

#[utoipa::path(
    put,
    path = "/issues/{id}",
    tag = "issues",
    summary = "Change an issue in its tracker",
    params(("id" = String, Path, description = "The index's id")),
    request_body = IssueChange,
    responses((status = 200, description = "Done", body = IssueView), (status = 404, description = "Not found in the caller's organization"), (status = 422, description = "Does not validate"), (status = 502, description = "The tracker refused or could not be reached"))
)]
async fn update_issue(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<String>,
    Body(change): Body<IssueChange>,
) -> Result<Json<IssueView>, ApiError> {
    person(&principal)?;
    let update = IssueUpdate {
        title: change.title,
        body: change.description,
        status: change.status,
        priority: change.priority,
        labels: change.labels,
        assignees: change.assignees,
    };
    let stored = state
        .trackers
        .update_issue(&principal.organization_id, &id, update)
        .await?;
    Ok(Json((&stored).into()))
}

#[utoipa::path(
    delete,
    path = "/issues/{id}",
    tag = "issues",
    summary = "Remove an issue from the index (not from its tracker)",
    params(("id" = String, Path, description = "The index's id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "Not found in the caller's organization"))
)]
async fn forget_issue(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<String>,
) -> Result<StatusCode, ApiError> {
    person(&principal)?;
    state
        .trackers
        .forget_issue(&principal.organization_id, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /issues/{id}/comments`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    body: String,
}

#[utoipa::path(
    post,
    path = "/issues/{id}/comments",
    tag = "issues",
    summary = "Comment on an issue in its tracker",
    params(("id" = String, Path, description = "The index's id")),
    request_body = CommentBody,
    responses((status = 201, description = "Created", body = CommentView), (status = 404, description = "Not found in the caller's organization"), (status = 422, description = "Does not validate"), (status = 502, description = "The tracker refused or could not be reached"))
)]
async fn comment(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<String>,
    Body(body): Body<CommentBody>,
) -> Result<(StatusCode, Json<CommentView>), ApiError> {
    person(&principal)?;
    let comment = state
        .trackers
        .comment(&principal.organization_id, &id, &body.body)
        .await?;
    Ok((StatusCode::CREATED, Json(comment.into())))
}

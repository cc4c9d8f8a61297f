//! `/api/v1/organizations`: the caller's organization (every organization for the operator, an
//! admin of the default one), renamed by its admins; created and closed by the operator.
//! Tenants create organizations by registering. The rules are [`crate::app::Organizations`]'s.

use super::accounts::UserView;
use super::views::Items;
use crate::app::NewOrganization;
use crate::http::extract::{Body, Param};
use crate::http::{ApiError, bounds};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use preloop_core::Principal;
use preloop_core::accounts::Organization;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, rename, close))
}

/// An organization as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct OrganizationView {
    id: String,
    name: String,
    created_at: DateTime<Utc>,
    /// When it was closed (its users disabled, its keys revoked, its calls denied); null while
    /// it is open.
    #[schema(required = true)]
    closed_at: Option<DateTime<Utc>>,
}

impl From<Organization> for OrganizationView {
    fn from(organization: Organization) -> Self {
        Self {
            id: organization.id,
            name: organization.name,
            created_at: organization.created_at,
            closed_at: organization.closed_at,
        }
    }
}

/// A new organization and its first admin.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewOrganizationBody {
    name: String,
    admin_email: String,
    /// Omitted: the admin cannot sign in with a password (identity provider or keys only).
    admin_password: Option<String>,
    admin_name: Option<String>,
}

/// The organization created and its first admin.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct CreatedOrganizationView {
    organization: OrganizationView,
    admin: UserView,
}

/// A change of an organization.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct OrganizationChange {
    name: String,
}

#[utoipa::path(
    get,
    path = "/organizations",
    tag = "organizations",
    summary = "The caller's organization (every organization for the operator)",
    responses((status = 200, description = "Done", body = Items<OrganizationView>))
)]
async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Items<OrganizationView>>, ApiError> {
    let organizations = state.organizations.list(&principal).await?;
    Ok(Json(
        organizations
            .into_iter()
            .map(OrganizationView::from)
            .collect(),
    ))
}

#[utoipa::path(
    post,
    path = "/organizations",
    tag = "organizations",
    summary = "Create an organization with its first admin (the operator; others register)",
    request_body = NewOrganizationBody,
    responses((status = 201, description = "Created", body = CreatedOrganizationView), (status = 400, description = "Malformed request"), (status = 403, description = "Not the operator"), (status = 409, description = "The admin's e-mail address has an account"), (status = 422, description = "Does not validate"))
)]
async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<NewOrganizationBody>,
) -> Result<(StatusCode, Json<CreatedOrganizationView>), ApiError> {
    bounds::text("name", &body.name, bounds::NAME)?;
    bounds::text("admin_email", &body.admin_email, bounds::EMAIL)?;
    bounds::optional("admin_name", body.admin_name.as_deref(), bounds::NAME)?;
    bounds::optional(
        "admin_password",
        body.admin_password.as_deref(),
        bounds::PASSWORD,
    )?;
    let new = NewOrganization {
        name: body.name,
        admin_email: body.admin_email,
        admin_password: body.admin_password,
        admin_name: body.admin_name,
    };
    let (organization, admin) = state.organizations.create(&principal, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedOrganizationView {
            organization: organization.into(),
            admin: (&admin).into(),
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/organizations/{org_id}",
    tag = "organizations",
    summary = "One organization: the caller's own (any for the operator)",
    params(("org_id" = String, Path, description = "Id")),
    responses((status = 200, description = "Done", body = OrganizationView), (status = 404, description = "Not one the caller may see"))
)]
async fn show(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(org_id): Param<String>,
) -> Result<Json<OrganizationView>, ApiError> {
    let organization = state.organizations.get(&principal, &org_id).await?;
    Ok(Json(organization.into()))
}

#[utoipa::path(
    put,
    path = "/organizations/{org_id}",
    tag = "organizations",
    summary = "Rename an organization (its admins, or the operator)",
    params(("org_id" = String, Path, description = "Id")),
    request_body = OrganizationChange,
    responses((status = 200, description = "Done", body = OrganizationView), (status = 400, description = "Malformed request"), (status = 403, description = "Not an admin"), (status = 404, description = "Not one the caller may see"), (status = 422, description = "Does not validate"))
)]
async fn rename(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(org_id): Param<String>,
    Body(body): Body<OrganizationChange>,
) -> Result<Json<OrganizationView>, ApiError> {
    bounds::text("name", &body.name, bounds::NAME)?;
    let organization = state
        .organizations
        .rename(&principal, &org_id, &body.name)
        .await?;
    Ok(Json(organization.into()))
}

#[utoipa::path(
    delete,
    path = "/organizations/{org_id}",
    tag = "organizations",
    summary = "Close an organization (the operator): its users disabled, its keys revoked, its calls denied, its records kept",
    params(("org_id" = String, Path, description = "Id")),
    responses((status = 200, description = "Closed (or already closed)", body = OrganizationView), (status = 403, description = "Not the operator"), (status = 404, description = "No such organization"), (status = 409, description = "The operator's own organization"))
)]
async fn close(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(org_id): Param<String>,
) -> Result<Json<OrganizationView>, ApiError> {
    let organization = state.organizations.close(&principal, &org_id).await?;
    Ok(Json(organization.into()))
}

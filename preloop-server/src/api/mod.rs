//! The REST API under `/api/v1`: JSON in and out, organization-scoped, errors as
//! `{"error": {"code", "message"}}` with the right status.

mod accounts;
mod approvals;
mod audit;
mod auth;
pub(crate) mod hitl;
mod links;
mod organizations;
mod policy;
mod servers;
mod trackers;
mod views;

use crate::state::AppState;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// The `/api/v1` routes that need no bearer token (sign-in, decision links, trackers'
/// webhooks, which are authenticated by their signatures).
pub fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::routes())
        .merge(links::routes())
        .merge(trackers::public_routes())
}

/// The `/api/v1` routes (authentication is applied by the caller).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(accounts::routes())
        .merge(approvals::routes())
        .merge(audit::routes())
        .merge(organizations::routes())
        .merge(policy::routes())
        .merge(servers::routes())
        .merge(trackers::routes())
}

/// The document's frame; the paths come from the routes themselves.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Preloop",
        description = "Governance for AI agents' tool calls: policy, human approval and audit. \
                       Authenticate with `Authorization: Bearer <API key or access token>`; \
                       errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Declares bearer authentication and applies it to every operation but the public ones.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

//! The REST API under `/api/v1`: JSON in and out, organization-scoped, errors as
//! `{"error": {"code", "message"}}` with the right status.

mod accounts;
mod approvals;
mod audit;
mod auth;
mod error;
mod extract;
mod links;
mod policy;
mod servers;

pub use audit::verify_stored_chain;
pub use error::ApiError;
pub use extract::{Body, QueryParams};

use crate::http::AppState;
use axum::Router;

/// The `/api/v1` routes that need no bearer token (sign-in, decision links).
pub fn public_routes() -> Router<AppState> {
    Router::new().merge(auth::routes()).merge(links::routes())
}

/// The `/api/v1` routes (authentication is applied by the caller).
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(accounts::routes())
        .merge(approvals::routes())
        .merge(audit::routes())
        .merge(policy::routes())
        .merge(servers::routes())
}

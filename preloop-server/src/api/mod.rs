//! The REST API under `/api/v1`: JSON in and out, organization-scoped, errors as
//! `{"error": {"code", "message"}}` with the right status.

mod approvals;
mod auth;
mod error;
mod policy;

pub use error::ApiError;

use crate::http::AppState;
use axum::Router;

/// The `/api/v1` routes that need no bearer token (sign-in).
pub fn public_routes() -> Router<AppState> {
    auth::routes()
}

/// The `/api/v1` routes (authentication is applied by the caller).
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(approvals::routes())
        .merge(policy::routes())
}

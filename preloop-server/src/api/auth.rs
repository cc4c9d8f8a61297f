//! `/api/v1/auth`: password sign-in for tokens, refresh, and registration. These routes are the
//! only ones under `/api/v1` that need no bearer token.

use crate::app::accounts::Registrant;
use crate::auth::tokens::{ACCESS_TTL_SECONDS, TokenKind};
use crate::http::extract::ClientAddress;
use crate::http::{ApiError, bounds};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum_extra::extract::WithRejection;
use preloop_core::accounts::User;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(token))
        .routes(routes!(refresh))
        .routes(routes!(register))
}

/// What signing in (or refreshing) answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct TokenPair {
    /// The bearer token for requests.
    access_token: String,
    /// Seconds the access token is valid.
    expires_in: i64,
    /// Exchanged for a new pair at `POST /api/v1/auth/refresh`.
    refresh_token: String,
    /// Always `bearer`.
    token_type: &'static str,
}

fn token_pair(state: &AppState, user: &User) -> Json<TokenPair> {
    Json(TokenPair {
        access_token: state.tokens.issue(user, TokenKind::Access),
        expires_in: ACCESS_TTL_SECONDS,
        refresh_token: state.tokens.issue(user, TokenKind::Refresh),
        token_type: "bearer",
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
}

#[utoipa::path(
    post,
    path = "/auth/token",
    tag = "auth",
    summary = "Sign in: an access token and a refresh token",
    request_body = Credentials,
    responses((status = 200, description = "Done", body = TokenPair), (status = 400, description = "Malformed request"), (status = 401, description = "Missing or invalid credentials"), (status = 429, description = "Too many wrong passwords"))
)]
async fn token(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    WithRejection(Json(credentials), _): WithRejection<Json<Credentials>, ApiError>,
) -> Result<Json<TokenPair>, ApiError> {
    bounds::text("email", &credentials.email, bounds::EMAIL)?;
    bounds::text("password", &credentials.password, bounds::PASSWORD)?;
    let user = state
        .accounts
        .sign_in(address, &credentials.email, &credentials.password)
        .await?;
    Ok(token_pair(&state, &user))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    summary = "A new token pair for a refresh token",
    request_body = RefreshBody,
    responses((status = 200, description = "Done", body = TokenPair), (status = 400, description = "Malformed request"), (status = 401, description = "Missing or invalid credentials"))
)]
async fn refresh(
    State(state): State<AppState>,
    WithRejection(Json(body), _): WithRejection<Json<RefreshBody>, ApiError>,
) -> Result<Json<TokenPair>, ApiError> {
    let invalid = || ApiError::Unauthorized("invalid or expired refresh token".to_owned());
    let claims = state
        .tokens
        .verify(&body.refresh_token, TokenKind::Refresh)
        .ok_or_else(invalid)?;
    let user = state
        .accounts
        .active_user(&claims.org, &claims.sub)
        .await?
        .filter(|u| claims.is_current_for(u))
        .ok_or_else(invalid)?;
    Ok(token_pair(&state, &user))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Registration {
    email: String,
    password: String,
    name: Option<String>,
    organization: Option<String>,
}

/// What registration answers, whether or not the address was new: an answer that differed
/// would tell anyone which addresses have accounts.
const REGISTRATION_ACCEPTED: &str = "if this e-mail address had no account, an organization was created with it as its admin: sign in with POST /api/v1/auth/token";

/// What registration answers, always.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Accepted {
    /// What to do next.
    message: &'static str,
    /// Always `accepted`.
    status: &'static str,
}

/// Creates a new organization with the registrant as its admin. The answer is the same
/// whether or not the address already had an account (no tokens: the registrant signs in).
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    summary = "Create an organization and its first admin, then sign in (403 when registration is disabled)",
    request_body = Registration,
    responses((status = 202, description = "Accepted: sign in with the password given", body = Accepted), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 422, description = "Does not validate"), (status = 429, description = "Too many registrations from this address"))
)]
async fn register(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    WithRejection(Json(body), _): WithRejection<Json<Registration>, ApiError>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    if !state.registration_enabled {
        return Err(ApiError::Forbidden(
            "registration is disabled on this server".to_owned(),
        ));
    }
    bounds::text("email", &body.email, bounds::EMAIL)?;
    bounds::text("password", &body.password, bounds::PASSWORD)?;
    bounds::optional("name", body.name.as_deref(), bounds::NAME)?;
    bounds::optional("organization", body.organization.as_deref(), bounds::NAME)?;
    let registrant = Registrant {
        email: body.email,
        password: body.password,
        name: body.name,
        organization: body.organization,
    };
    state.accounts.register(address, registrant).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            message: REGISTRATION_ACCEPTED,
            status: "accepted",
        }),
    ))
}

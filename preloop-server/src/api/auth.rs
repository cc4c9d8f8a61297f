//! `/api/v1/auth`: password sign-in for tokens, refresh, and registration. These routes are the
//! only ones under `/api/v1` that need no bearer token.

use crate::auth::throttle::Throttles;
use crate::auth::tokens::{ACCESS_TTL_SECONDS, TokenKind};
use crate::http::extract::ClientAddress;
use crate::http::{ApiError, bounds};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum_extra::extract::WithRejection;
use chrono::Utc;
use preloop_core::accounts::{Organization, User, hash_password, verify_password};
use preloop_core::policy::GovernanceDocument;
use preloop_core::store::{AccountStore, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(token))
        .routes(routes!(refresh))
        .routes(routes!(register))
}

fn token_pair(state: &AppState, user: &User) -> Json<Value> {
    Json(json!({
        "access_token": state.tokens.issue(user, TokenKind::Access),
        "refresh_token": state.tokens.issue(user, TokenKind::Refresh),
        "token_type": "bearer",
        "expires_in": ACCESS_TTL_SECONDS,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
}

/// A real argon2 hash to verify against when the e-mail is unknown (or has no password), so
/// every failed sign-in takes the same time and reveals nothing about which accounts exist.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&uuid::Uuid::new_v4().to_string()).unwrap_or_default())
}

#[utoipa::path(
    post,
    path = "/auth/token",
    tag = "auth",
    summary = "Sign in: an access token and a refresh token",
    request_body = Credentials,
    responses((status = 200, description = "Done"), (status = 400, description = "Malformed request"), (status = 401, description = "Missing or invalid credentials"))
)]
async fn token(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    WithRejection(Json(credentials), _): WithRejection<Json<Credentials>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    bounds::text("email", &credentials.email, bounds::EMAIL)?;
    bounds::text("password", &credentials.password, bounds::PASSWORD)?;
    let keys = Throttles::password_keys(address, &credentials.email);
    // A blocked key answers 429 before the password is even looked at, right or wrong.
    if let Some(wait) = state.throttles.password_blocked(&keys) {
        return Err(ApiError::TooManyRequests(wait));
    }
    let user = state.store.find_user_by_email(&credentials.email).await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let matches = verify_password(
        &credentials.password,
        hash.as_deref().unwrap_or_else(|| decoy_hash()),
    );
    match user {
        Some(user) if matches && hash.is_some() && !user.disabled => Ok(token_pair(&state, &user)),
        _ => {
            // Failures spend every bucket; the next attempt past any is blocked.
            state
                .throttles
                .wrong_password(&keys)
                .map_err(ApiError::TooManyRequests)?;
            Err(ApiError::Unauthorized(
                "wrong e-mail address or password".to_owned(),
            ))
        }
    }
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
    responses((status = 200, description = "Done"), (status = 400, description = "Malformed request"), (status = 401, description = "Missing or invalid credentials"))
)]
async fn refresh(
    State(state): State<AppState>,
    WithRejection(Json(body), _): WithRejection<Json<RefreshBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let invalid = || ApiError::Unauthorized("invalid or expired refresh token".to_owned());
    let claims = state
        .tokens
        .verify(&body.refresh_token, TokenKind::Refresh)
        .ok_or_else(invalid)?;
    let user = state
        .store
        .get_user(&claims.org, &claims.sub)
        .await?
        .filter(|u| !u.disabled && claims.is_current_for(u))
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

/// Creates a new organization with the registrant as its admin. The answer is the same
/// whether or not the address already had an account (no tokens: the registrant signs in).
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    summary = "Create an organization and its first admin, then sign in (403 when registration is disabled)",
    request_body = Registration,
    responses((status = 202, description = "Accepted: sign in with the password given"), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 422, description = "Does not validate"), (status = 429, description = "Too many registrations from this address"))
)]
async fn register(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    WithRejection(Json(body), _): WithRejection<Json<Registration>, ApiError>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !state.registration_enabled {
        return Err(ApiError::Forbidden(
            "registration is disabled on this server".to_owned(),
        ));
    }
    bounds::text("email", &body.email, bounds::EMAIL)?;
    bounds::text("password", &body.password, bounds::PASSWORD)?;
    bounds::optional("name", body.name.as_deref(), bounds::NAME)?;
    bounds::optional("organization", body.organization.as_deref(), bounds::NAME)?;
    if !body.email.contains('@') {
        return Err(ApiError::Unprocessable(format!(
            "`{}` is not an e-mail address",
            body.email
        )));
    }
    if body.password.len() < 12 {
        return Err(ApiError::Unprocessable(
            "passwords must have at least 12 characters".to_owned(),
        ));
    }
    state
        .throttles
        .registration
        .spend(&crate::auth::throttle::client_key(address))
        .map_err(ApiError::TooManyRequests)?;
    let accepted = (
        StatusCode::ACCEPTED,
        Json(json!({"status": "accepted", "message": REGISTRATION_ACCEPTED})),
    );
    let now = Utc::now();
    let organization = Organization {
        id: uuid::Uuid::new_v4().to_string(),
        name: body
            .organization
            .unwrap_or_else(|| format!("{}'s organization", body.email)),
        created_at: now,
    };
    let mut user = User::new(&organization.id, &body.email, vec!["admin".to_owned()], now);
    user.name = body.name;
    // Hashed whether or not the address is new, so both answers take as long.
    user.password_hash =
        Some(hash_password(&body.password).map_err(|e| ApiError::Unprocessable(e.to_string()))?);
    if state.store.find_user_by_email(&user.email).await?.is_some() {
        return Ok(accepted);
    }
    state.store.create_organization(&organization).await?;
    match state.store.create_user(&user).await {
        // Registered concurrently: the same answer.
        Err(StoreError::AlreadyExists) => return Ok(accepted),
        other => other?,
    }
    // A new organization starts with the empty policy (allow, no rules) until an admin writes one.
    state
        .governor
        .set_policy(&organization.id, &GovernanceDocument::default())?;
    state.replicas.announce(&organization.id).await;
    Ok(accepted)
}

//! `/api/v1/users` and `/api/v1/api-keys`: the organization's people and their keys.
//! Admins manage users; everyone manages their own API keys (admins every key). A key's secret
//! is shown once, in the creation response.

use crate::auth::Credential;
use crate::auth::throttle::Throttles;
use crate::http::extract::{Body, ClientAddress, Param, require_role};
use crate::http::{ApiError, bounds};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use preloop_core::Principal;
use preloop_core::accounts::{ApiKey, User, hash_password, verify_password};
use preloop_core::store::{AccountStore, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// Roles a user may hold.
pub const ROLES: [&str; 4] = ["admin", "approver", "member", "agent"];

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(me))
        .routes(routes!(show_user, update_user))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
}

/// A user as the API shows it: never the password hash.
fn user_view(user: &User) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "roles": user.roles,
        "disabled": user.disabled,
        "created_at": user.created_at,
    })
}

/// A key as the API shows it: never the secret or its hash.
fn key_view(key: &ApiKey) -> Value {
    json!({
        "id": key.id,
        "name": key.name,
        "user_id": key.user_id,
        "prefix": key.prefix,
        "scopes": key.scopes,
        "expires_at": key.expires_at,
        "last_used_at": key.last_used_at,
        "revoked": key.revoked,
        "created_at": key.created_at,
    })
}

fn check_roles(roles: &[String]) -> Result<(), ApiError> {
    match roles.iter().find(|r| !ROLES.contains(&r.as_str())) {
        Some(role) => Err(ApiError::Unprocessable(format!(
            "unknown role `{role}`; roles are {}",
            ROLES.join(", ")
        ))),
        None => Ok(()),
    }
}

async fn user_of(state: &AppState, principal: &Principal, id: &str) -> Result<User, ApiError> {
    state
        .store
        .get_user(&principal.organization_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user `{id}`")))
}

#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    summary = "List the organization's users (admins)",
    responses((status = 200, description = "Done"), (status = 401, description = "Missing or invalid credentials"), (status = 403, description = "Not allowed for this principal"))
)]
async fn list_users(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    require_role(&principal, "admin", "list users")?;
    let users = state.store.list_users(&principal.organization_id).await?;
    Ok(Json(
        json!({"items": users.iter().map(user_view).collect::<Vec<_>>()}),
    ))
}

#[utoipa::path(
    get,
    path = "/users/me",
    tag = "users",
    summary = "The caller, with the roles in effect",
    responses((status = 200, description = "Done"), (status = 401, description = "Missing or invalid credentials"))
)]
async fn me(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let user = user_of(&state, &principal, &principal.id).await?;
    let mut view = user_view(&user);
    view["organization_id"] = json!(user.organization_id);
    // A scoped API key acts with fewer roles than its user has.
    view["effective_roles"] = json!(principal.roles);
    Ok(Json(view))
}

#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "users",
    summary = "A user (admins, or oneself)",
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "Done"), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"))
)]
async fn show_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<String>,
) -> Result<Json<Value>, ApiError> {
    if id != principal.id {
        require_role(&principal, "admin", "see other users")?;
    }
    Ok(Json(user_view(&user_of(&state, &principal, &id).await?)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
    name: Option<String>,
    roles: Vec<String>,
    /// Omitted: the user cannot sign in with a password (API keys only).
    password: Option<String>,
}

fn checked_password(password: &str) -> Result<String, ApiError> {
    if password.chars().count() < 12 {
        return Err(ApiError::Unprocessable(
            "passwords must have at least 12 characters".to_owned(),
        ));
    }
    hash_password(password).map_err(|e| ApiError::Unprocessable(e.to_string()))
}

#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    summary = "Create a user (admins)",
    request_body = NewUser,
    responses((status = 201, description = "Created"), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 409, description = "Conflicts with the current state"), (status = 422, description = "Does not validate"))
)]
async fn create_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<NewUser>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_role(&principal, "admin", "create users")?;
    bounds::text("email", &body.email, bounds::EMAIL)?;
    bounds::optional("name", body.name.as_deref(), bounds::NAME)?;
    bounds::optional("password", body.password.as_deref(), bounds::PASSWORD)?;
    if !body.email.contains('@') {
        return Err(ApiError::Unprocessable(format!(
            "`{}` is not an e-mail address",
            body.email
        )));
    }
    check_roles(&body.roles)?;
    let mut user = User::new(
        &principal.organization_id,
        &body.email,
        body.roles,
        Utc::now(),
    );
    user.name = body.name;
    user.password_hash = body.password.as_deref().map(checked_password).transpose()?;
    // Addresses are unique across organizations, so a conflict says the address has an
    // account somewhere: an organization may learn that only a few times a minute.
    if let Some(wait) = state
        .throttles
        .existing_accounts
        .blocked(&principal.organization_id)
    {
        return Err(ApiError::TooManyRequests(wait));
    }
    match state.store.create_user(&user).await {
        Err(StoreError::AlreadyExists) => {
            state
                .throttles
                .existing_accounts
                .spend(&principal.organization_id)
                .map_err(ApiError::TooManyRequests)?;
            return Err(ApiError::Conflict(
                "an account with this e-mail address exists".to_owned(),
            ));
        }
        other => other?,
    }
    Ok((StatusCode::CREATED, Json(user_view(&user))))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UserChange {
    name: Option<String>,
    roles: Option<Vec<String>>,
    disabled: Option<bool>,
    /// A new password; needs a signed-in session (not an API key), and for one's own password
    /// `current_password` as well.
    password: Option<String>,
    /// The password being replaced (when changing one's own).
    current_password: Option<String>,
}

/// Admins change anything but may not lock themselves out; users change their own name and
/// password.
#[utoipa::path(
    patch,
    path = "/users/{id}",
    tag = "users",
    summary = "Change a user's name, roles, password or disabled flag",
    params(("id" = String, Path, description = "User id")),
    request_body = UserChange,
    responses((status = 200, description = "Done"), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"), (status = 409, description = "Conflicts with the current state"), (status = 422, description = "Does not validate"))
)]
async fn update_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(credential): Extension<Credential>,
    ClientAddress(address): ClientAddress,
    Param(id): Param<String>,
    Body(change): Body<UserChange>,
) -> Result<Json<Value>, ApiError> {
    bounds::optional("name", change.name.as_deref(), bounds::NAME)?;
    bounds::optional("password", change.password.as_deref(), bounds::PASSWORD)?;
    let is_admin = principal.has_role("admin");
    let own = id == principal.id;
    if !is_admin && (!own || change.roles.is_some() || change.disabled.is_some()) {
        return Err(ApiError::Forbidden(
            "only admins can change other users, roles or the disabled flag".to_owned(),
        ));
    }
    let mut user = user_of(&state, &principal, &id).await?;
    if let Some(roles) = change.roles {
        check_roles(&roles)?;
        if own && !roles.iter().any(|r| r == "admin") {
            return Err(ApiError::Conflict(
                "you cannot remove your own admin role".to_owned(),
            ));
        }
        user.roles = roles;
    }
    if let Some(disabled) = change.disabled {
        if own && disabled {
            return Err(ApiError::Conflict("you cannot disable yourself".to_owned()));
        }
        user.disabled = disabled;
    }
    if let Some(name) = change.name {
        user.name = Some(name);
    }
    if let Some(password) = change.password {
        // INVARIANT (keys do not become passwords): a program's key, scoped or not, cannot set
        // a password and sign in with everything its user may do; a person must.
        if !credential.is_interactive() {
            return Err(ApiError::Forbidden(
                "passwords are changed by a signed-in person (an access token from `POST /api/v1/auth/token`), not with an API key".to_owned(),
            ));
        }
        if own {
            // Guessed like a sign-in, so throttled like one.
            let keys = Throttles::password_keys(address, &user.email);
            if let Some(wait) = state.throttles.password_blocked(&keys) {
                return Err(ApiError::TooManyRequests(wait));
            }
            let current = change.current_password.as_deref().unwrap_or_default();
            let matches = user
                .password_hash
                .as_deref()
                .is_none_or(|hash| verify_password(current, hash));
            if !matches {
                state
                    .throttles
                    .wrong_password(&keys)
                    .map_err(ApiError::TooManyRequests)?;
                return Err(ApiError::Forbidden(
                    "`current_password` is missing or wrong".to_owned(),
                ));
            }
        }
        user.password_hash = Some(checked_password(&password)?);
    }
    state.store.update_user(&user).await?;
    state.authenticator.forget_user(&user.id);
    Ok(Json(user_view(&user)))
}

#[utoipa::path(
    get,
    path = "/api-keys",
    tag = "api-keys",
    summary = "List API keys (never their secrets)",
    responses((status = 200, description = "Done"), (status = 401, description = "Missing or invalid credentials"))
)]
async fn list_keys(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let keys = state
        .store
        .list_api_keys(&principal.organization_id)
        .await?;
    let is_admin = principal.has_role("admin");
    let items: Vec<Value> = keys
        .iter()
        .filter(|k| is_admin || k.user_id == principal.id)
        .map(key_view)
        .collect();
    Ok(Json(json!({"items": items})))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    /// Roles the key is limited to (a subset of the user's); empty: all of them.
    #[serde(default)]
    scopes: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
    /// Admins may issue keys for other users of the organization (e.g. an agent account).
    user_id: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api-keys",
    tag = "api-keys",
    summary = "Create an API key; the response shows its secret once",
    request_body = NewKey,
    responses((status = 201, description = "Created"), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"), (status = 422, description = "Does not validate"))
)]
async fn create_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(credential): Extension<Credential>,
    Body(body): Body<NewKey>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user_id = body.user_id.unwrap_or_else(|| principal.id.clone());
    let own = user_id == principal.id;
    if !own {
        require_role(&principal, "admin", "issue keys for other users")?;
    }
    let user = user_of(&state, &principal, &user_id).await?;
    // INVARIANT (keys only narrow): one's own new key carries at most the roles the caller
    // acts with now, so a scoped key cannot mint a wider one.
    let grantable: &[String] = if own { &principal.roles } else { &user.roles };
    if let Some(scope) = body.scopes.iter().find(|s| !grantable.contains(s)) {
        return Err(ApiError::Unprocessable(format!(
            "scope `{scope}` is not one of the roles this key may carry ({})",
            grantable.join(", ")
        )));
    }
    let narrower = grantable.len() < user.roles.len();
    let scopes = if body.scopes.is_empty() && narrower {
        // Unscoped would mean every role of the user: give the caller's instead.
        if grantable.is_empty() {
            return Err(ApiError::Forbidden(
                "this credential carries none of its user's roles and cannot issue keys".to_owned(),
            ));
        }
        grantable.to_vec()
    } else {
        body.scopes
    };
    let now = Utc::now();
    if body.expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::Unprocessable(
            "`expires_at` is in the past".to_owned(),
        ));
    }
    let name = body.name.trim();
    bounds::text("name", name, bounds::NAME)?;
    if name.is_empty() {
        return Err(ApiError::Unprocessable("a key needs a name".to_owned()));
    }
    // A key made with a key lives no longer than the key that made it.
    let expires_at = match (body.expires_at, credential) {
        (
            requested,
            Credential::ApiKey {
                expires_at: Some(limit),
                ..
            },
        ) => Some(requested.map_or(limit, |requested| requested.min(limit))),
        (requested, _) => requested,
    };
    let issued = ApiKey::issue(&user, name, scopes, expires_at, now);
    state.store.insert_api_key(&issued.key).await?;
    let mut view = key_view(&issued.key);
    view["secret"] = json!(issued.secret);
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(
    delete,
    path = "/api-keys/{id}",
    tag = "api-keys",
    summary = "Revoke an API key",
    params(("id" = uuid::Uuid, Path, description = "Id")),
    responses((status = 204, description = "Done, nothing to return"), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"))
)]
async fn revoke_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<Uuid>,
) -> Result<StatusCode, ApiError> {
    let org = &principal.organization_id;
    let key = state
        .store
        .list_api_keys(org)
        .await?
        .into_iter()
        .find(|k| k.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no API key `{id}`")))?;
    if key.user_id != principal.id {
        require_role(&principal, "admin", "revoke other users' keys")?;
    }
    state.store.revoke_api_key(org, id).await?;
    state.authenticator.forget(id);
    Ok(StatusCode::NO_CONTENT)
}

//! `/api/v1/users` and `/api/v1/api-keys`: the organization's people and their keys.
//! Admins manage users; everyone manages their own API keys (admins every key). A key's secret
//! is shown once, in the creation response. The rules are [`crate::app::Accounts`]'s.

use super::views::Items;
use crate::app::accounts::{Caller, KeyDraft, UserDraft, UserEdit};
use crate::auth::Credential;
use crate::http::extract::{Body, ClientAddress, Param, require_role};
use crate::http::{ApiError, bounds};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use preloop_core::Principal;
use preloop_core::accounts::{ApiKey, IssuedApiKey, User};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(me))
        .routes(routes!(show_user, update_user))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
}

/// A user as the API shows it: never the password hash.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct UserView {
    created_at: DateTime<Utc>,
    /// Disabled users cannot authenticate.
    disabled: bool,
    email: String,
    id: String,
    #[schema(required = true)]
    name: Option<String>,
    roles: Vec<String>,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            created_at: user.created_at,
            disabled: user.disabled,
            email: user.email.clone(),
            id: user.id.clone(),
            name: user.name.clone(),
            roles: user.roles.clone(),
        }
    }
}

/// The caller as `GET /users/me` shows them: their user, their organization and the roles
/// their credential carries.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct MeView {
    created_at: DateTime<Utc>,
    disabled: bool,
    /// The roles in effect: a scoped API key acts with fewer roles than its user has.
    effective_roles: Vec<String>,
    email: String,
    id: String,
    #[schema(required = true)]
    name: Option<String>,
    organization_id: String,
    roles: Vec<String>,
}

/// A key as the API shows it: never the secret or its hash.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct KeyView {
    created_at: DateTime<Utc>,
    #[schema(required = true)]
    expires_at: Option<DateTime<Utc>>,
    id: Uuid,
    #[schema(required = true)]
    last_used_at: Option<DateTime<Utc>>,
    name: String,
    /// The first characters of the secret, to tell keys apart.
    prefix: String,
    revoked: bool,
    /// Roles the key is limited to; empty: all of its user's.
    scopes: Vec<String>,
    user_id: String,
}

impl From<&ApiKey> for KeyView {
    fn from(key: &ApiKey) -> Self {
        Self {
            created_at: key.created_at,
            expires_at: key.expires_at,
            id: key.id,
            last_used_at: key.last_used_at,
            name: key.name.clone(),
            prefix: key.prefix.clone(),
            revoked: key.revoked,
            scopes: key.scopes.clone(),
            user_id: key.user_id.clone(),
        }
    }
}

/// A key just issued: as listed, plus its secret, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct IssuedKeyView {
    #[serde(flatten)]
    key: KeyView,
    /// The secret (`pl_...`): store it now, it is never shown again.
    secret: String,
}

impl From<IssuedApiKey> for IssuedKeyView {
    fn from(IssuedApiKey { secret, key }: IssuedApiKey) -> Self {
        Self {
            key: KeyView::from(&key),
            secret,
        }
    }
}

/// How the request's credential bears on account changes.
fn caller(principal: &Principal, credential: Credential) -> Caller<'_> {
    Caller {
        principal,
        interactive: credential.is_interactive(),
        key_expires_at: match credential {
            Credential::ApiKey { expires_at, .. } => expires_at,
            Credential::Session | Credential::IdentityProvider => None,
        },
    }
}

#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    summary = "List the organization's users (admins)",
    responses((status = 200, description = "Done", body = Items<UserView>), (status = 401, description = "Missing or invalid credentials"), (status = 403, description = "Not allowed for this principal"))
)]
async fn list_users(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Items<UserView>>, ApiError> {
    require_role(&principal, "admin", "list users")?;
    let users = state.accounts.users(&principal.organization_id).await?;
    Ok(Json(users.iter().map(UserView::from).collect()))
}

#[utoipa::path(
    get,
    path = "/users/me",
    tag = "users",
    summary = "The caller, with the roles in effect",
    responses((status = 200, description = "Done", body = MeView), (status = 401, description = "Missing or invalid credentials"))
)]
async fn me(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<MeView>, ApiError> {
    let user = state
        .accounts
        .user(&principal.organization_id, &principal.id)
        .await?;
    Ok(Json(MeView {
        created_at: user.created_at,
        disabled: user.disabled,
        effective_roles: principal.roles,
        email: user.email,
        id: user.id,
        name: user.name,
        organization_id: user.organization_id,
        roles: user.roles,
    }))
}

#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "users",
    summary = "A user (admins, or oneself)",
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "Done", body = UserView), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"))
)]
async fn show_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<String>,
) -> Result<Json<UserView>, ApiError> {
    if id != principal.id {
        require_role(&principal, "admin", "see other users")?;
    }
    let user = state.accounts.user(&principal.organization_id, &id).await?;
    Ok(Json((&user).into()))
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

#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    summary = "Create a user (admins)",
    request_body = NewUser,
    responses((status = 201, description = "Created", body = UserView), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 409, description = "Conflicts with the current state"), (status = 422, description = "Does not validate"), (status = 429, description = "Too many attempts with addresses that have accounts"))
)]
async fn create_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<NewUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    require_role(&principal, "admin", "create users")?;
    bounds::text("email", &body.email, bounds::EMAIL)?;
    bounds::optional("name", body.name.as_deref(), bounds::NAME)?;
    bounds::optional("password", body.password.as_deref(), bounds::PASSWORD)?;
    let draft = UserDraft {
        email: body.email,
        name: body.name,
        roles: body.roles,
        password: body.password,
    };
    let user = state
        .accounts
        .create_user(&principal.organization_id, draft)
        .await?;
    Ok((StatusCode::CREATED, Json((&user).into())))
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
    responses((status = 200, description = "Done", body = UserView), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"), (status = 409, description = "Conflicts with the current state"), (status = 422, description = "Does not validate"), (status = 429, description = "Too many wrong current passwords"))
)]
async fn update_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(credential): Extension<Credential>,
    ClientAddress(address): ClientAddress,
    Param(id): Param<String>,
    Body(change): Body<UserChange>,
) -> Result<Json<UserView>, ApiError> {
    bounds::optional("name", change.name.as_deref(), bounds::NAME)?;
    bounds::optional("password", change.password.as_deref(), bounds::PASSWORD)?;
    let edit = UserEdit {
        name: change.name,
        roles: change.roles,
        disabled: change.disabled,
        password: change.password,
        current_password: change.current_password,
    };
    let user = state
        .accounts
        .update_user(caller(&principal, credential), address, &id, edit)
        .await?;
    Ok(Json((&user).into()))
}

#[utoipa::path(
    get,
    path = "/api-keys",
    tag = "api-keys",
    summary = "List API keys (never their secrets)",
    responses((status = 200, description = "Done", body = Items<KeyView>), (status = 401, description = "Missing or invalid credentials"))
)]
async fn list_keys(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Items<KeyView>>, ApiError> {
    let keys = state.accounts.keys(&principal).await?;
    Ok(Json(keys.iter().map(KeyView::from).collect()))
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
    responses((status = 201, description = "Created", body = IssuedKeyView), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"), (status = 422, description = "Does not validate"))
)]
async fn create_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(credential): Extension<Credential>,
    Body(body): Body<NewKey>,
) -> Result<(StatusCode, Json<IssuedKeyView>), ApiError> {
    let name = body.name.trim();
    bounds::text("name", name, bounds::NAME)?;
    let draft = KeyDraft {
        name: name.to_owned(),
        scopes: body.scopes,
        expires_at: body.expires_at,
        user_id: body.user_id,
    };
    let issued = state
        .accounts
        .create_key(caller(&principal, credential), draft)
        .await?;
    Ok((StatusCode::CREATED, Json(issued.into())))
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
    state.accounts.revoke_key(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Users and keys show as these routes answered before they had types, byte for byte, and
    /// never with a password hash or a key's digest.
    #[test]
    fn users_and_keys_show_as_before_without_their_secrets() {
        let mut user = User::new(
            "org",
            "dana@example.com",
            vec!["admin".to_owned()],
            Utc::now(),
        );
        user.password_hash = Some("argon2-hash".to_owned());
        let shown = serde_json::to_string(&UserView::from(&user)).unwrap();
        let expected = json!({
            "id": user.id,
            "email": user.email,
            "name": user.name,
            "roles": user.roles,
            "disabled": user.disabled,
            "created_at": user.created_at,
        });
        assert_eq!(shown, expected.to_string());
        assert!(!shown.contains("argon2-hash"));

        let issued = ApiKey::issue(&user, "ci", Vec::new(), None, Utc::now());
        let key = &issued.key;
        let mut expected = json!({
            "id": key.id,
            "name": key.name,
            "user_id": key.user_id,
            "prefix": key.prefix,
            "scopes": key.scopes,
            "expires_at": key.expires_at,
            "last_used_at": key.last_used_at,
            "revoked": key.revoked,
            "created_at": key.created_at,
        });
        let shown = serde_json::to_string(&KeyView::from(key)).unwrap();
        assert_eq!(shown, expected.to_string());
        assert!(!shown.contains(&key.hash) && !shown.contains(&issued.secret));
        expected["secret"] = json!(issued.secret);
        assert_eq!(
            serde_json::to_value(IssuedKeyView::from(issued)).unwrap(),
            expected
        );
    }
}

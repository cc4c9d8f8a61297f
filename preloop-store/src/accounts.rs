//! Organizations, users and API keys.

use crate::connect::{Database, with_connection};
use crate::error::{backend, corrupt};
use crate::schema::{api_keys, organizations, users};
use crate::time::{from_micros, to_micros};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use preloop_core::accounts::{ApiKey, Organization, User};
use preloop_core::store::{AccountStore, StoreError};
use uuid::Uuid;

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
struct UserRow {
    id: String,
    organization_id: String,
    email: String,
    name: Option<String>,
    roles: String,
    password_hash: Option<String>,
    disabled: bool,
    created_at: i64,
}

impl UserRow {
    fn of(user: &User) -> Result<Self, StoreError> {
        Ok(Self {
            id: user.id.clone(),
            organization_id: user.organization_id.clone(),
            email: user.email.to_lowercase(),
            name: user.name.clone(),
            roles: serde_json::to_string(&user.roles)
                .map_err(|e| StoreError::Backend(e.to_string()))?,
            password_hash: user.password_hash.clone(),
            disabled: user.disabled,
            created_at: to_micros(user.created_at),
        })
    }

    fn into_user(self) -> Result<User, StoreError> {
        Ok(User {
            roles: serde_json::from_str(&self.roles).map_err(|e| corrupt("user roles", e))?,
            id: self.id,
            organization_id: self.organization_id,
            email: self.email,
            name: self.name,
            password_hash: self.password_hash,
            disabled: self.disabled,
            created_at: from_micros(self.created_at),
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
struct ApiKeyRow {
    id: String,
    organization_id: String,
    user_id: String,
    name: String,
    prefix: String,
    hash: String,
    scopes: String,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    revoked: bool,
    created_at: i64,
}

impl ApiKeyRow {
    fn of(key: &ApiKey) -> Result<Self, StoreError> {
        Ok(Self {
            id: key.id.to_string(),
            organization_id: key.organization_id.clone(),
            user_id: key.user_id.clone(),
            name: key.name.clone(),
            prefix: key.prefix.clone(),
            hash: key.hash.clone(),
            scopes: serde_json::to_string(&key.scopes)
                .map_err(|e| StoreError::Backend(e.to_string()))?,
            expires_at: key.expires_at.map(to_micros),
            last_used_at: key.last_used_at.map(to_micros),
            revoked: key.revoked,
            created_at: to_micros(key.created_at),
        })
    }

    fn into_key(self) -> Result<ApiKey, StoreError> {
        Ok(ApiKey {
            id: Uuid::parse_str(&self.id).map_err(|e| corrupt("API key", e))?,
            scopes: serde_json::from_str(&self.scopes).map_err(|e| corrupt("API key scopes", e))?,
            organization_id: self.organization_id,
            user_id: self.user_id,
            name: self.name,
            prefix: self.prefix,
            hash: self.hash,
            expires_at: self.expires_at.map(from_micros),
            last_used_at: self.last_used_at.map(from_micros),
            revoked: self.revoked,
            created_at: from_micros(self.created_at),
        })
    }
}

fn found(updated: usize) -> Result<(), StoreError> {
    if updated == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

#[async_trait]
impl AccountStore for Database {
    async fn create_organization(&self, organization: &Organization) -> Result<(), StoreError> {
        with_connection!(self, |conn| {
            diesel::insert_into(organizations::table)
                .values((
                    organizations::id.eq(&organization.id),
                    organizations::name.eq(&organization.name),
                    organizations::created_at.eq(to_micros(organization.created_at)),
                    organizations::closed_at.eq(organization.closed_at.map(to_micros)),
                ))
                .execute(conn)
                .await
                .map_err(backend)?;
        });
        Ok(())
    }

    async fn get_organization(&self, id: &str) -> Result<Option<Organization>, StoreError> {
        let row: Option<OrganizationRow> = with_connection!(self, |conn| {
            organizations::table
                .find(id)
                .first(conn)
                .await
                .optional()
                .map_err(backend)?
        });
        Ok(row.map(organization_of))
    }

    async fn list_organizations(&self) -> Result<Vec<Organization>, StoreError> {
        let rows: Vec<OrganizationRow> = with_connection!(self, |conn| {
            organizations::table
                .order(organizations::id)
                .load(conn)
                .await
                .map_err(backend)?
        });
        Ok(rows.into_iter().map(organization_of).collect())
    }

    async fn update_organization(&self, organization: &Organization) -> Result<(), StoreError> {
        let updated = with_connection!(self, |conn| {
            diesel::update(organizations::table.find(&organization.id))
                .set((
                    organizations::name.eq(&organization.name),
                    organizations::closed_at.eq(organization.closed_at.map(to_micros)),
                ))
                .execute(conn)
                .await
                .map_err(backend)?
        });
        found(updated)
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let row = UserRow::of(user)?;
        with_connection!(self, |conn| {
            diesel::insert_into(users::table)
                .values(&row)
                .execute(conn)
                .await
                .map_err(backend)?;
        });
        Ok(())
    }

    async fn get_user(&self, organization_id: &str, id: &str) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = with_connection!(self, |conn| {
            users::table
                .filter(users::id.eq(id))
                .filter(users::organization_id.eq(organization_id))
                .select(UserRow::as_select())
                .first(conn)
                .await
                .optional()
                .map_err(backend)?
        });
        row.map(UserRow::into_user).transpose()
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let email = email.to_lowercase();
        let row: Option<UserRow> = with_connection!(self, |conn| {
            users::table
                .filter(users::email.eq(&email))
                .select(UserRow::as_select())
                .first(conn)
                .await
                .optional()
                .map_err(backend)?
        });
        row.map(UserRow::into_user).transpose()
    }

    async fn list_users(&self, organization_id: &str) -> Result<Vec<User>, StoreError> {
        let rows: Vec<UserRow> = with_connection!(self, |conn| {
            users::table
                .filter(users::organization_id.eq(organization_id))
                .order(users::email.asc())
                .select(UserRow::as_select())
                .load(conn)
                .await
                .map_err(backend)?
        });
        rows.into_iter().map(UserRow::into_user).collect()
    }

    async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        let row = UserRow::of(user)?;
        let updated = with_connection!(self, |conn| {
            diesel::update(
                users::table
                    .filter(users::id.eq(&row.id))
                    .filter(users::organization_id.eq(&row.organization_id)),
            )
            .set((
                users::name.eq(&row.name),
                users::roles.eq(&row.roles),
                users::password_hash.eq(&row.password_hash),
                users::disabled.eq(row.disabled),
            ))
            .execute(conn)
            .await
            .map_err(backend)?
        });
        found(updated)
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        let count: i64 = with_connection!(self, |conn| {
            users::table
                .count()
                .get_result(conn)
                .await
                .map_err(backend)?
        });
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let row = ApiKeyRow::of(key)?;
        with_connection!(self, |conn| {
            diesel::insert_into(api_keys::table)
                .values(&row)
                .execute(conn)
                .await
                .map_err(backend)?;
        });
        Ok(())
    }

    async fn find_api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let row: Option<ApiKeyRow> = with_connection!(self, |conn| {
            api_keys::table
                .filter(api_keys::hash.eq(hash))
                .select(ApiKeyRow::as_select())
                .first(conn)
                .await
                .optional()
                .map_err(backend)?
        });
        row.map(ApiKeyRow::into_key).transpose()
    }

    async fn list_api_keys(&self, organization_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        let rows: Vec<ApiKeyRow> = with_connection!(self, |conn| {
            api_keys::table
                .filter(api_keys::organization_id.eq(organization_id))
                .order((api_keys::created_at.desc(), api_keys::id.desc()))
                .select(ApiKeyRow::as_select())
                .load(conn)
                .await
                .map_err(backend)?
        });
        rows.into_iter().map(ApiKeyRow::into_key).collect()
    }

    async fn touch_api_key(&self, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        let updated = with_connection!(self, |conn| {
            diesel::update(api_keys::table.find(id.to_string()))
                .set(api_keys::last_used_at.eq(to_micros(now)))
                .execute(conn)
                .await
                .map_err(backend)?
        });
        found(updated)
    }

    async fn revoke_api_key(&self, organization_id: &str, id: Uuid) -> Result<(), StoreError> {
        let updated = with_connection!(self, |conn| {
            diesel::update(
                api_keys::table
                    .filter(api_keys::id.eq(id.to_string()))
                    .filter(api_keys::organization_id.eq(organization_id)),
            )
            .set(api_keys::revoked.eq(true))
            .execute(conn)
            .await
            .map_err(backend)?
        });
        found(updated)
    }
}

/// An `organizations` row: id, name, creation and closing times.
type OrganizationRow = (String, String, i64, Option<i64>);

fn organization_of((id, name, created_at, closed_at): OrganizationRow) -> Organization {
    Organization {
        id,
        name,
        created_at: from_micros(created_at),
        closed_at: closed_at.map(from_micros),
    }
}

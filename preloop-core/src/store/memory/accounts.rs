//! The in-memory store's organizations, users and API keys.

use super::MemoryStore;
use crate::accounts::{ApiKey, Organization, User};
use crate::store::{AccountStore, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[async_trait]
impl AccountStore for MemoryStore {
    async fn create_organization(&self, organization: &Organization) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.organizations.contains_key(&organization.id) {
            return Err(StoreError::AlreadyExists);
        }
        state
            .organizations
            .insert(organization.id.clone(), organization.clone());
        Ok(())
    }

    async fn get_organization(&self, id: &str) -> Result<Option<Organization>, StoreError> {
        Ok(self.state().organizations.get(id).cloned())
    }

    async fn list_organizations(&self) -> Result<Vec<Organization>, StoreError> {
        let mut organizations: Vec<_> = self.state().organizations.values().cloned().collect();
        organizations.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(organizations)
    }

    async fn update_organization(&self, organization: &Organization) -> Result<(), StoreError> {
        match self.state().organizations.get_mut(&organization.id) {
            Some(stored) => {
                stored.clone_from(organization);
                Ok(())
            }
            None => Err(StoreError::NotFound),
        }
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let mut state = self.state();
        let email = user.email.to_lowercase();
        if state.users.contains_key(&user.id) || state.users.values().any(|u| u.email == email) {
            return Err(StoreError::AlreadyExists);
        }
        state.users.insert(
            user.id.clone(),
            User {
                email,
                ..user.clone()
            },
        );
        Ok(())
    }

    async fn get_user(&self, organization_id: &str, id: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .state()
            .users
            .get(id)
            .filter(|u| u.organization_id == organization_id)
            .cloned())
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let email = email.to_lowercase();
        Ok(self
            .state()
            .users
            .values()
            .find(|u| u.email == email)
            .cloned())
    }

    async fn list_users(&self, organization_id: &str) -> Result<Vec<User>, StoreError> {
        let mut users: Vec<User> = self
            .state()
            .users
            .values()
            .filter(|u| u.organization_id == organization_id)
            .cloned()
            .collect();
        users.sort_by(|a, b| a.email.cmp(&b.email));
        Ok(users)
    }

    async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        let mut state = self.state();
        let stored = state
            .users
            .get_mut(&user.id)
            .filter(|u| u.organization_id == user.organization_id)
            .ok_or(StoreError::NotFound)?;
        stored.roles.clone_from(&user.roles);
        stored.password_hash.clone_from(&user.password_hash);
        stored.disabled = user.disabled;
        stored.name.clone_from(&user.name);
        Ok(())
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        Ok(self.state().users.len() as u64)
    }

    async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.api_keys.contains_key(&key.id)
            || state.api_keys.values().any(|k| k.hash == key.hash)
        {
            return Err(StoreError::AlreadyExists);
        }
        state.api_keys.insert(key.id, key.clone());
        Ok(())
    }

    async fn find_api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        Ok(self
            .state()
            .api_keys
            .values()
            .find(|k| k.hash == hash)
            .cloned())
    }

    async fn list_api_keys(&self, organization_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        let mut keys: Vec<ApiKey> = self
            .state()
            .api_keys
            .values()
            .filter(|k| k.organization_id == organization_id)
            .cloned()
            .collect();
        keys.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(keys)
    }

    async fn touch_api_key(&self, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut state = self.state();
        let key = state.api_keys.get_mut(&id).ok_or(StoreError::NotFound)?;
        key.last_used_at = Some(now);
        Ok(())
    }

    async fn revoke_api_key(&self, organization_id: &str, id: Uuid) -> Result<(), StoreError> {
        let mut state = self.state();
        let key = state
            .api_keys
            .get_mut(&id)
            .filter(|k| k.organization_id == organization_id)
            .ok_or(StoreError::NotFound)?;
        key.revoked = true;
        Ok(())
    }
}

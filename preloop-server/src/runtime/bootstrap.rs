//! First start: an empty database gets an organization, an admin user and an admin API key.

use crate::tenancy::DEFAULT_ORGANIZATION;
use chrono::Utc;
use preloop_core::accounts::{ApiKey, Organization, User};
use preloop_core::store::{AccountStore, StoreError};

/// What the first start created.
#[derive(Debug)]
pub struct Bootstrapped {
    /// The admin user.
    pub admin: User,
    /// The admin API key's secret: generated (to print once) or taken from the environment.
    pub api_key: String,
    /// Whether the key came from `PRELOOP_ADMIN_API_KEY` (then it is not printed).
    pub from_environment: bool,
}

/// Why bootstrapping failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `PRELOOP_ADMIN_API_KEY` is too weak to be a key.
    #[error("PRELOOP_ADMIN_API_KEY must be at least 32 characters long")]
    WeakKey,
}

/// Creates the organization, admin and API key if the default organization has no enabled admin
/// yet (an empty database, or users created with `preloop user create` but no admin); `None`
/// otherwise.
pub async fn bootstrap(
    store: &dyn AccountStore,
    admin_api_key: Option<String>,
) -> Result<Option<Bootstrapped>, BootstrapError> {
    let users = store.list_users(DEFAULT_ORGANIZATION).await?;
    if users
        .iter()
        .any(|u| u.roles.iter().any(|r| r == "admin") && !u.disabled)
    {
        return Ok(None);
    }
    if admin_api_key.as_ref().is_some_and(|key| key.len() < 32) {
        return Err(BootstrapError::WeakKey);
    }
    let now = Utc::now();
    let organization = Organization {
        id: DEFAULT_ORGANIZATION.to_owned(),
        name: "Default organization".to_owned(),
        created_at: now,
        closed_at: None,
    };
    match store.create_organization(&organization).await {
        Ok(()) | Err(StoreError::AlreadyExists) => {}
        Err(error) => return Err(error.into()),
    }
    let admin = User::new(
        DEFAULT_ORGANIZATION,
        "admin@localhost",
        vec!["admin".to_owned()],
        now,
    );
    store.create_user(&admin).await?;
    let from_environment = admin_api_key.is_some();
    let issued = match admin_api_key {
        Some(secret) => ApiKey::from_secret(&admin, "admin", Vec::new(), None, now, secret),
        None => ApiKey::issue(&admin, "admin", Vec::new(), None, now),
    };
    store.insert_api_key(&issued.key).await?;
    Ok(Some(Bootstrapped {
        admin,
        api_key: issued.secret,
        from_environment,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use preloop_core::store::MemoryStore;

    #[tokio::test]
    async fn an_empty_store_gets_an_admin_once() {
        let store = MemoryStore::new();
        let first = bootstrap(&store, None).await.unwrap().unwrap();
        assert!(first.api_key.starts_with("pl_"));
        assert!(!first.from_environment);
        assert!(bootstrap(&store, None).await.unwrap().is_none());
        assert_eq!(store.count_users().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn users_without_an_admin_still_get_one() {
        let store = MemoryStore::new();
        let organization = Organization {
            id: DEFAULT_ORGANIZATION.into(),
            name: "x".into(),
            created_at: Utc::now(),
            closed_at: None,
        };
        store.create_organization(&organization).await.unwrap();
        store
            .create_user(&User::new(
                DEFAULT_ORGANIZATION,
                "dev@example.com",
                vec!["member".into()],
                Utc::now(),
            ))
            .await
            .unwrap();
        assert!(bootstrap(&store, None).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn the_environment_key_is_used_and_must_be_strong() {
        let store = MemoryStore::new();
        assert!(matches!(
            bootstrap(&store, Some("short".into())).await,
            Err(BootstrapError::WeakKey)
        ));
        let key = "k".repeat(40);
        let done = bootstrap(&store, Some(key.clone())).await.unwrap().unwrap();
        assert_eq!(done.api_key, key);
        let stored = store
            .find_api_key_by_hash(&preloop_core::approval::hash_secret(&key))
            .await
            .unwrap()
            .unwrap();
        assert!(stored.accepts(&key, Utc::now()));
    }
}

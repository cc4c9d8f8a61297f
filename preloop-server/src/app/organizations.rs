//! Organizations: listed, read and renamed by their own admins; created and closed by the
//! operator (an admin of the default organization). Tenants create their own by registering.
//!
//! Closing an organization keeps its records (audit log, requests, issues) and shuts it out:
//! its users are disabled, its keys revoked, its calls denied, its upstreams and trackers
//! stopped, on every replica and after restarts.

use super::accounts::{AccountError, Guards, check_email, checked_password};
use super::replicas::Replicas;
use crate::tenancy::is_operator;
use async_trait::async_trait;
use chrono::{SubsecRound, Utc};
use preloop_core::accounts::{Organization, User};
use preloop_core::principal::Principal;
use preloop_core::store::{AccountStore, StoreError};
use preloop_store::Database;
use std::sync::Arc;
use uuid::Uuid;

/// Puts an organization's stored configuration in force on this replica (what a replica does
/// when another announces a change). The runtime implements it.
#[async_trait]
pub trait Reload: Send + Sync {
    /// Reloads `organization_id`.
    async fn reload(&self, organization_id: &str);
}

/// A new organization and its first admin.
pub struct NewOrganization {
    /// Display name.
    pub name: String,
    /// E-mail address of its first admin.
    pub admin_email: String,
    /// Their password; `None`: they sign in through the identity provider or get keys only.
    pub admin_password: Option<String>,
    /// Their display name.
    pub admin_name: Option<String>,
}

impl std::fmt::Debug for NewOrganization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewOrganization")
            .field("name", &self.name)
            .field("admin_email", &self.admin_email)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The organizations service.
#[derive(Clone)]
pub struct Organizations {
    store: Arc<Database>,
    replicas: Replicas,
    guards: Arc<dyn Guards>,
    reload: Arc<dyn Reload>,
}

impl std::fmt::Debug for Organizations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Organizations")
    }
}

/// Whether `principal` is the operator: an admin of the default organization.
fn operator(principal: &Principal) -> bool {
    is_operator(&principal.organization_id) && principal.has_role("admin")
}

impl Organizations {
    /// Organizations kept in `store`; changes are put in force by `reload` and told to the
    /// other replicas through `replicas`; `guards` forgets the credentials a closing revokes.
    pub fn new(
        store: Arc<Database>,
        replicas: Replicas,
        guards: Arc<dyn Guards>,
        reload: Arc<dyn Reload>,
    ) -> Self {
        Self {
            store,
            replicas,
            guards,
            reload,
        }
    }

    /// The organizations `principal` may see: every one for the operator, else their own.
    pub async fn list(&self, principal: &Principal) -> Result<Vec<Organization>, AccountError> {
        if operator(principal) {
            return Ok(self.store.list_organizations().await?);
        }
        Ok(self
            .store
            .get_organization(&principal.organization_id)
            .await?
            .into_iter()
            .collect())
    }

    /// One organization `principal` may see (others do not exist for them).
    pub async fn get(&self, principal: &Principal, id: &str) -> Result<Organization, AccountError> {
        let missing = || AccountError::NoOrganization { id: id.to_owned() };
        if id != principal.organization_id && !operator(principal) {
            return Err(missing());
        }
        self.store.get_organization(id).await?.ok_or_else(missing)
    }

    /// Creates an organization with its first admin (the operator only).
    pub async fn create(
        &self,
        principal: &Principal,
        new: NewOrganization,
    ) -> Result<(Organization, User), AccountError> {
        if !operator(principal) {
            return Err(AccountError::OperatorOnly {
                action: "create organizations (others register)",
            });
        }
        let name = checked_name(&new.name)?;
        check_email(&new.admin_email)?;
        let now = Utc::now();
        let organization = Organization {
            id: Uuid::new_v4().to_string(),
            name,
            created_at: now,
            closed_at: None,
        };
        let mut admin = User::new(
            &organization.id,
            &new.admin_email,
            vec!["admin".to_owned()],
            now,
        );
        admin.name = new.admin_name;
        admin.password_hash = new
            .admin_password
            .as_deref()
            .map(checked_password)
            .transpose()?;
        if self.store.find_user_by_email(&admin.email).await?.is_some() {
            return Err(AccountError::EmailTaken);
        }
        self.store.create_organization(&organization).await?;
        match self.store.create_user(&admin).await {
            Err(StoreError::AlreadyExists) => return Err(AccountError::EmailTaken),
            other => other?,
        }
        self.changed(&organization.id).await;
        Ok((organization, admin))
    }

    /// Renames an organization: its own admins, or the operator.
    pub async fn rename(
        &self,
        principal: &Principal,
        id: &str,
        name: &str,
    ) -> Result<Organization, AccountError> {
        let mut organization = self.get(principal, id).await?;
        if !principal.has_role("admin") {
            return Err(AccountError::AdminsOnly {
                action: "rename the organization",
            });
        }
        organization.name = checked_name(name)?;
        self.store.update_organization(&organization).await?;
        Ok(organization)
    }

    /// Closes an organization (the operator only; never the operator's own): its users
    /// disabled, its keys revoked, its configuration taken out of force here and on every
    /// replica. Closing a closed organization changes nothing.
    pub async fn close(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<Organization, AccountError> {
        if !operator(principal) {
            return Err(AccountError::OperatorOnly {
                action: "close organizations",
            });
        }
        if is_operator(id) {
            return Err(AccountError::OperatorOrganization);
        }
        let mut organization = self.get(principal, id).await?;
        if organization.closed_at.is_some() {
            return Ok(organization);
        }
        // Closed first: from here every reload, on any replica, keeps it shut.
        // At the store's precision, so the answer is what a later read shows.
        organization.closed_at = Some(Utc::now().trunc_subsecs(6));
        self.store.update_organization(&organization).await?;
        for mut user in self.store.list_users(id).await? {
            if !user.disabled {
                user.disabled = true;
                self.store.update_user(&user).await?;
            }
            self.guards.forget_user(&user.id);
        }
        for key in self.store.list_api_keys(id).await? {
            if !key.revoked {
                self.store.revoke_api_key(id, key.id).await?;
            }
            self.guards.forget_key(key.id);
        }
        self.changed(id).await;
        tracing::warn!(organization = id, by = %principal.id, "organization closed");
        Ok(organization)
    }

    /// Puts the organization's state in force here and tells the other replicas.
    async fn changed(&self, organization_id: &str) {
        self.reload.reload(organization_id).await;
        self.replicas.announce(organization_id).await;
    }
}

/// An organization's name, trimmed: not empty, at most 200 characters.
fn checked_name(name: &str) -> Result<String, AccountError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AccountError::OrganizationName);
    }
    Ok(name.to_owned())
}

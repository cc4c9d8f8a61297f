//! Organizations' people and their credentials: users, API keys, passwords, sign-in and
//! registration. Passwords are stored as argon2id hashes and keys as SHA-256 digests; neither
//! is ever returned (a key's secret is handed out once, when it is issued).

use super::Replicas;
use chrono::{DateTime, Utc};
use preloop_core::Principal;
use preloop_core::accounts::{
    ApiKey, IssuedApiKey, Organization, PasswordError, User, hash_password, verify_password,
};
use preloop_core::governor::{Governor, GovernorError};
use preloop_core::policy::GovernanceDocument;
use preloop_core::store::{AccountStore, StoreError};
use preloop_store::Database;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Roles a user may hold.
pub const ROLES: [&str; 4] = ["admin", "approver", "member", "agent"];

/// Fewest characters a password may have.
const MIN_PASSWORD_CHARACTERS: usize = 12;

/// What this service needs of authentication, a layer above it: the throttles on password
/// guesses, registrations and probes for addresses that have accounts, and the cache of
/// verified credentials (see `state`, which implements it).
pub trait Guards: Send + Sync {
    /// How long password attempts for `email` from `address` must still wait, if they must.
    fn password_wait(&self, address: IpAddr, email: &str) -> Option<Duration>;
    /// Counts a wrong password for `email` from `address`; the wait once a throttle is empty.
    fn wrong_password(&self, address: IpAddr, email: &str) -> Result<(), Duration>;
    /// How long the organization must wait before it may learn again that an address has an
    /// account, if it must.
    fn existing_account_wait(&self, organization_id: &str) -> Option<Duration>;
    /// Counts that the organization learnt that an address has an account.
    fn existing_account(&self, organization_id: &str) -> Result<(), Duration>;
    /// Counts a registration from `address`.
    fn registration(&self, address: IpAddr) -> Result<(), Duration>;
    /// Forgets the user's cached credentials (their roles, password or flag changed).
    fn forget_user(&self, user_id: &str);
    /// Forgets a cached API key (it was revoked).
    fn forget_key(&self, key_id: Uuid);
}

/// Why an account change, a sign-in or a registration did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Only admins may do this.
    #[error("only admins can {action}")]
    AdminsOnly {
        /// What was refused, completing "only admins can ...".
        action: &'static str,
    },
    /// Non-admins change only their own name and password.
    #[error("only admins can change other users, roles or the disabled flag")]
    NotOwn,
    /// No such user in the organization.
    #[error("no user `{id}`")]
    NoUser {
        /// The id asked for.
        id: String,
    },
    /// No such organization (or not one the caller may see).
    #[error("no organization `{id}`")]
    NoOrganization {
        /// The id asked for.
        id: String,
    },
    /// Only the operator (an admin of the default organization) may do this.
    #[error("only the operator can {action}")]
    OperatorOnly {
        /// What was refused, completing "only the operator can ...".
        action: &'static str,
    },
    /// The operator's own organization cannot be closed.
    #[error("the operator's organization cannot be closed")]
    OperatorOrganization,
    /// An empty or over-long organization name.
    #[error("an organization needs a name of 1 to 200 characters")]
    OrganizationName,
    /// No such API key in the organization.
    #[error("no API key `{id}`")]
    NoKey {
        /// The id asked for.
        id: Uuid,
    },
    /// Not an e-mail address.
    #[error("`{email}` is not an e-mail address")]
    NotAnEmail {
        /// What was given.
        email: String,
    },
    /// A role that does not exist.
    #[error("unknown role `{role}`; roles are {}", ROLES.join(", "))]
    UnknownRole {
        /// The role.
        role: String,
    },
    /// A password shorter than 12 characters.
    #[error("passwords must have at least 12 characters")]
    ShortPassword,
    /// A password argon2 refuses.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The address has an account (in this organization or another).
    #[error("an account with this e-mail address exists")]
    EmailTaken,
    /// An admin removing their own admin role.
    #[error("you cannot remove your own admin role")]
    OwnAdminRole,
    /// An admin disabling themselves.
    #[error("you cannot disable yourself")]
    DisablingSelf,
    /// A password change with a program's credential.
    #[error(
        "passwords are changed by a signed-in person (an access token from `POST /api/v1/auth/token`), not with an API key"
    )]
    NotInteractive,
    /// One's own password change without the right current one.
    #[error("`current_password` is missing or wrong")]
    WrongCurrentPassword,
    /// A key scope beyond what the new key may carry.
    #[error("scope `{scope}` is not one of the roles this key may carry ({grantable})")]
    ScopeNotGrantable {
        /// The scope asked for.
        scope: String,
        /// The roles it may carry, comma-separated.
        grantable: String,
    },
    /// A credential that carries none of its user's roles cannot issue keys.
    #[error("this credential carries none of its user's roles and cannot issue keys")]
    NothingToGrant,
    /// An expiry that has passed.
    #[error("`expires_at` is in the past")]
    ExpiryPassed,
    /// A key without a name.
    #[error("a key needs a name")]
    Unnamed,
    /// Sign-in with a wrong address or password (or a disabled account).
    #[error("wrong e-mail address or password")]
    WrongCredentials,
    /// Too many attempts; retry after this long.
    #[error("too many attempts; retry in {} s", .wait.as_secs() + 1)]
    Throttled {
        /// How long to wait.
        wait: Duration,
    },
    /// The new organization's policy could not be put in force.
    #[error(transparent)]
    Governor(#[from] GovernorError),
    /// The store failed, or holds nothing under that key.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Duration> for AccountError {
    fn from(wait: Duration) -> Self {
        Self::Throttled { wait }
    }
}

/// Who asks for an account change, and with what kind of credential.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The principal, with the roles in effect (a scoped key carries fewer than its user).
    pub principal: &'a Principal,
    /// Whether a person signed in for the credential (not a program's API key).
    pub interactive: bool,
    /// When the API key used expires, if it is a key that does.
    pub key_expires_at: Option<DateTime<Utc>>,
}

/// A new user.
pub struct UserDraft {
    /// E-mail address (the sign-in name).
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// Roles, each one of [`ROLES`].
    pub roles: Vec<String>,
    /// `None`: the user cannot sign in with a password (API keys only).
    pub password: Option<String>,
}

/// A change to a user; `None` leaves a field alone.
pub struct UserEdit {
    /// A new display name.
    pub name: Option<String>,
    /// New roles (admins only).
    pub roles: Option<Vec<String>>,
    /// Disable or enable (admins only).
    pub disabled: Option<bool>,
    /// A new password.
    pub password: Option<String>,
    /// The password being replaced, when changing one's own.
    pub current_password: Option<String>,
}

/// A new API key.
#[derive(Debug)]
pub struct KeyDraft {
    /// A name for people (already trimmed).
    pub name: String,
    /// Roles the key is limited to; empty: all of its user's.
    pub scopes: Vec<String>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// The user it acts as; `None`: the caller.
    pub user_id: Option<String>,
}

/// Someone registering a new organization.
pub struct Registrant {
    /// E-mail address of its first admin.
    pub email: String,
    /// Their password.
    pub password: String,
    /// Their display name.
    pub name: Option<String>,
    /// The organization's name (default: "<email>'s organization").
    pub organization: Option<String>,
}

macro_rules! debug_without_secrets {
    ($($type:ident { $($field:ident),* }),*) => {$(
        impl std::fmt::Debug for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($type))
                    $(.field(stringify!($field), &self.$field))*
                    .finish_non_exhaustive()
            }
        }
    )*};
}

debug_without_secrets!(
    UserDraft { email, name, roles },
    UserEdit {
        name,
        roles,
        disabled
    },
    Registrant {
        email,
        name,
        organization
    }
);

/// Users, API keys, passwords, sign-in and registration, with their rules: roles from
/// [`ROLES`], passwords of at least 12 characters changed only by a signed-in person (one's own
/// only with the current one, throttled like a sign-in), new keys no wider than the caller's
/// roles in effect and living no longer than the key that made them.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<Database>,
    governor: Arc<Governor>,
    replicas: Replicas,
    guards: Arc<dyn Guards>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Accounts")
    }
}

impl Accounts {
    /// Accounts kept in `store`; new organizations' policies go into `governor`.
    pub fn new(
        store: Arc<Database>,
        governor: Arc<Governor>,
        replicas: Replicas,
        guards: Arc<dyn Guards>,
    ) -> Self {
        Self {
            store,
            governor,
            replicas,
            guards,
        }
    }

    /// The organization's users.
    pub async fn users(&self, organization_id: &str) -> Result<Vec<User>, AccountError> {
        Ok(self.store.list_users(organization_id).await?)
    }

    /// One user of the organization.
    pub async fn user(&self, organization_id: &str, id: &str) -> Result<User, AccountError> {
        self.store
            .get_user(organization_id, id)
            .await?
            .ok_or_else(|| AccountError::NoUser { id: id.to_owned() })
    }

    /// Creates a user in the organization. An address with an account elsewhere is a
    /// conflict an organization may learn of only a few times a minute.
    pub async fn create_user(
        &self,
        organization_id: &str,
        draft: UserDraft,
    ) -> Result<User, AccountError> {
        let user = new_user(organization_id, draft)?;
        // Addresses are unique across organizations, so a conflict says the address has an
        // account somewhere.
        if let Some(wait) = self.guards.existing_account_wait(organization_id) {
            return Err(wait.into());
        }
        match self.store.create_user(&user).await {
            Ok(()) => Ok(user),
            Err(StoreError::AlreadyExists) => {
                self.guards.existing_account(organization_id)?;
                Err(AccountError::EmailTaken)
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Changes a user. Admins change anything but may not lock themselves out; others change
    /// their own name and password. A password is changed only by a signed-in person, one's
    /// own only with the current one (guesses are throttled like sign-ins from `address`).
    pub async fn update_user(
        &self,
        caller: Caller<'_>,
        address: IpAddr,
        id: &str,
        edit: UserEdit,
    ) -> Result<User, AccountError> {
        let principal = caller.principal;
        let own = id == principal.id;
        if !principal.has_role("admin") && (!own || edit.roles.is_some() || edit.disabled.is_some())
        {
            return Err(AccountError::NotOwn);
        }
        let mut user = self.user(&principal.organization_id, id).await?;
        if let Some(roles) = edit.roles {
            check_roles(&roles)?;
            if own && !roles.iter().any(|r| r == "admin") {
                return Err(AccountError::OwnAdminRole);
            }
            user.roles = roles;
        }
        if let Some(disabled) = edit.disabled {
            if own && disabled {
                return Err(AccountError::DisablingSelf);
            }
            user.disabled = disabled;
        }
        if let Some(name) = edit.name {
            user.name = Some(name);
        }
        if let Some(password) = edit.password {
            // INVARIANT (keys do not become passwords): a program's key, scoped or not, cannot
            // set a password and sign in with everything its user may do; a person must.
            if !caller.interactive {
                return Err(AccountError::NotInteractive);
            }
            if own {
                // Guessed like a sign-in, so throttled like one.
                if let Some(wait) = self.guards.password_wait(address, &user.email) {
                    return Err(wait.into());
                }
                let current = edit.current_password.as_deref().unwrap_or_default();
                let matches = user
                    .password_hash
                    .as_deref()
                    .is_none_or(|hash| verify_password(current, hash));
                if !matches {
                    self.guards.wrong_password(address, &user.email)?;
                    return Err(AccountError::WrongCurrentPassword);
                }
            }
            user.password_hash = Some(checked_password(&password)?);
        }
        self.store.update_user(&user).await?;
        self.guards.forget_user(&user.id);
        Ok(user)
    }

    /// The keys `principal` may see: an admin every key of the organization, others their own.
    pub async fn keys(&self, principal: &Principal) -> Result<Vec<ApiKey>, AccountError> {
        let is_admin = principal.has_role("admin");
        let mut keys = self.store.list_api_keys(&principal.organization_id).await?;
        keys.retain(|k| is_admin || k.user_id == principal.id);
        Ok(keys)
    }

    /// Issues a key for the caller, or (admins) for another user of the organization.
    pub async fn create_key(
        &self,
        caller: Caller<'_>,
        draft: KeyDraft,
    ) -> Result<IssuedApiKey, AccountError> {
        let principal = caller.principal;
        let user_id = draft.user_id.unwrap_or_else(|| principal.id.clone());
        let own = user_id == principal.id;
        if !own && !principal.has_role("admin") {
            return Err(AccountError::AdminsOnly {
                action: "issue keys for other users",
            });
        }
        let user = self.user(&principal.organization_id, &user_id).await?;
        // INVARIANT (keys only narrow): one's own new key carries at most the roles the caller
        // acts with now, so a scoped key cannot mint a wider one.
        let grantable: &[String] = if own { &principal.roles } else { &user.roles };
        if let Some(scope) = draft.scopes.iter().find(|s| !grantable.contains(s)) {
            return Err(AccountError::ScopeNotGrantable {
                scope: scope.clone(),
                grantable: grantable.join(", "),
            });
        }
        let narrower = grantable.len() < user.roles.len();
        let scopes = if draft.scopes.is_empty() && narrower {
            // Unscoped would mean every role of the user: give the caller's instead.
            if grantable.is_empty() {
                return Err(AccountError::NothingToGrant);
            }
            grantable.to_vec()
        } else {
            draft.scopes
        };
        let now = Utc::now();
        if draft.expires_at.is_some_and(|e| e <= now) {
            return Err(AccountError::ExpiryPassed);
        }
        if draft.name.is_empty() {
            return Err(AccountError::Unnamed);
        }
        // A key made with a key lives no longer than the key that made it.
        let expires_at = match (draft.expires_at, caller.key_expires_at) {
            (requested, Some(limit)) => Some(requested.map_or(limit, |r| r.min(limit))),
            (requested, None) => requested,
        };
        let issued = ApiKey::issue(&user, draft.name, scopes, expires_at, now);
        self.store.insert_api_key(&issued.key).await?;
        Ok(issued)
    }

    /// Revokes a key: one's own, or (admins) anyone's in the organization.
    pub async fn revoke_key(&self, principal: &Principal, id: Uuid) -> Result<(), AccountError> {
        let organization_id = &principal.organization_id;
        let key = self
            .store
            .list_api_keys(organization_id)
            .await?
            .into_iter()
            .find(|k| k.id == id)
            .ok_or(AccountError::NoKey { id })?;
        if key.user_id != principal.id && !principal.has_role("admin") {
            return Err(AccountError::AdminsOnly {
                action: "revoke other users' keys",
            });
        }
        self.store.revoke_api_key(organization_id, id).await?;
        self.guards.forget_key(id);
        Ok(())
    }

    /// The user a password sign-in from `address` is for. Every failure takes as long and
    /// answers the same; failures are throttled, and a throttled attempt is refused before its
    /// password is looked at.
    pub async fn sign_in(
        &self,
        address: IpAddr,
        email: &str,
        password: &str,
    ) -> Result<User, AccountError> {
        if let Some(wait) = self.guards.password_wait(address, email) {
            return Err(wait.into());
        }
        let user = self.store.find_user_by_email(email).await?;
        let hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let matches = verify_password(password, hash.as_deref().unwrap_or_else(|| decoy_hash()));
        match user {
            Some(user) if matches && hash.is_some() && !user.disabled => Ok(user),
            _ => {
                // Failures spend every bucket; the next attempt past any is blocked.
                self.guards.wrong_password(address, email)?;
                Err(AccountError::WrongCredentials)
            }
        }
    }

    /// The user, if they exist and are not disabled (refreshing a sign-in).
    pub async fn active_user(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<User>, AccountError> {
        let user = self.store.get_user(organization_id, id).await?;
        Ok(user.filter(|u| !u.disabled))
    }

    /// Creates an organization with the registrant as its admin, unless the address has an
    /// account; the caller cannot tell which happened (both take as long). Registrations are
    /// throttled per client `address`.
    pub async fn register(
        &self,
        address: IpAddr,
        registrant: Registrant,
    ) -> Result<(), AccountError> {
        check_email(&registrant.email)?;
        check_password(&registrant.password)?;
        self.guards.registration(address)?;
        let now = Utc::now();
        let organization = Organization {
            id: Uuid::new_v4().to_string(),
            name: registrant
                .organization
                .unwrap_or_else(|| format!("{}'s organization", registrant.email)),
            created_at: now,
            closed_at: None,
        };
        let mut user = User::new(
            &organization.id,
            &registrant.email,
            vec!["admin".to_owned()],
            now,
        );
        user.name = registrant.name;
        // Hashed whether or not the address is new, so both answers take as long.
        user.password_hash = Some(hash_password(&registrant.password)?);
        if self.store.find_user_by_email(&user.email).await?.is_some() {
            return Ok(());
        }
        self.store.create_organization(&organization).await?;
        match self.store.create_user(&user).await {
            // Registered concurrently: the same answer.
            Err(StoreError::AlreadyExists) => return Ok(()),
            other => other?,
        }
        // A new organization starts with the empty policy (allow, no rules) until an admin
        // writes one.
        self.governor
            .set_policy(&organization.id, &GovernanceDocument::default())?;
        self.replicas.announce(&organization.id).await;
        Ok(())
    }
}

/// A new user of `organization_id` as `draft` describes them, checked: an e-mail address,
/// known roles, a long enough password (hashed).
pub fn new_user(organization_id: &str, draft: UserDraft) -> Result<User, AccountError> {
    check_email(&draft.email)?;
    check_roles(&draft.roles)?;
    let mut user = User::new(organization_id, &draft.email, draft.roles, Utc::now());
    user.name = draft.name;
    user.password_hash = draft
        .password
        .as_deref()
        .map(checked_password)
        .transpose()?;
    Ok(user)
}

pub(super) fn check_email(email: &str) -> Result<(), AccountError> {
    if email.contains('@') {
        Ok(())
    } else {
        Err(AccountError::NotAnEmail {
            email: email.to_owned(),
        })
    }
}

fn check_roles(roles: &[String]) -> Result<(), AccountError> {
    match roles.iter().find(|r| !ROLES.contains(&r.as_str())) {
        Some(role) => Err(AccountError::UnknownRole { role: role.clone() }),
        None => Ok(()),
    }
}

fn check_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARACTERS {
        return Err(AccountError::ShortPassword);
    }
    Ok(())
}

/// The hash of a password long enough.
pub(super) fn checked_password(password: &str) -> Result<String, AccountError> {
    check_password(password)?;
    Ok(hash_password(password)?)
}

/// A real argon2 hash to verify against when the e-mail is unknown (or has no password), so
/// every failed sign-in takes the same time and reveals nothing about which accounts exist.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&Uuid::new_v4().to_string()).unwrap_or_default())
}

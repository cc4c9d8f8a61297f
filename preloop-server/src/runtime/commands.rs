//! The administrative CLI commands; each opens the database, does one thing and exits.

use crate::app::accounts::{AccountError, UserDraft, new_user};
use crate::app::rewrite_stored;
use crate::tenancy::DEFAULT_ORGANIZATION;
use chrono::Utc;
use preloop_core::accounts::{ApiKey, Organization};
use preloop_core::audit::{AuditEntry, AuditEventKind, ChainBreak};
use preloop_core::policy::{
    EvaluationInput, Format, Governance, GovernanceDocument, GovernanceError, RenderError,
    SyntaxError,
};
use preloop_core::registry::{ToolDescriptor, ToolSource};
use preloop_core::store::{AccountStore, AuditStore, PolicyStore, StoreError};
use preloop_core::{ClientInfo, Principal};
use preloop_store::Database;
use std::path::{Path, PathBuf};

/// Why a command failed: printed as `error: ...` with exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A synchronization could not run or failed.
    #[error("{0}")]
    Sync(String),
    /// A policy file of a kind the command cannot read.
    #[error("{}: the file must end in .toml, .yaml or .yml", .path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// A policy file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// A policy file is not TOML or YAML of a governance document.
    #[error("{}: {source}", .path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where and why.
        #[source]
        source: SyntaxError,
    },
    /// A policy file's document does not compile.
    #[error("{}:\n{source}", .path.display())]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// Every broken rule.
        #[source]
        source: GovernanceError,
    },
    /// The stored policy does not compile.
    #[error(transparent)]
    InvalidStored(#[from] GovernanceError),
    /// The policy cannot be written in the format asked for.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// `--args` is not JSON.
    #[error("--args is not JSON: {0}")]
    Arguments(#[source] serde_json::Error),
    /// The user cannot be made as described.
    #[error(transparent)]
    User(#[from] AccountError),
    /// A user with the e-mail exists already.
    #[error("a user with e-mail {email} already exists")]
    UserExists {
        /// The e-mail.
        email: String,
    },
    /// The organization does not exist (only the default one is created on first use).
    #[error("organization `{organization}` does not exist")]
    NoOrganization {
        /// Its id.
        organization: String,
    },
    /// No user has the e-mail.
    #[error("no user with e-mail {email}")]
    NoUser {
        /// The e-mail.
        email: String,
    },
    /// The text is not an API key id.
    #[error("`{id}` is not an API key id")]
    NotAKeyId {
        /// The text given.
        id: String,
    },
    /// The key could not be revoked.
    #[error("cannot revoke {id}: {source}")]
    Revoke {
        /// The key.
        id: uuid::Uuid,
        /// Why not.
        #[source]
        source: StoreError,
    },
    /// The audit chain does not verify.
    #[error("audit chain broken: {0}")]
    ChainBroken(#[source] ChainBreak),
    /// An audit event could not be written out.
    #[error("cannot write an audit event: {0}")]
    Export(#[source] serde_json::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A command's outcome.
pub type CommandResult = Result<(), CommandError>;

fn format_of(path: &Path) -> Result<Format, CommandError> {
    Format::from_file_name(&path.display().to_string()).ok_or_else(|| CommandError::UnknownFormat {
        path: path.to_owned(),
    })
}

fn read_policy(path: &Path) -> Result<GovernanceDocument, CommandError> {
    let text = std::fs::read_to_string(path).map_err(|source| CommandError::Read {
        path: path.to_owned(),
        source,
    })?;
    let document = GovernanceDocument::parse(&text, format_of(path)?).map_err(|source| {
        CommandError::Syntax {
            path: path.to_owned(),
            source,
        }
    })?;
    Governance::compile(&document).map_err(|source| CommandError::InvalidFile {
        path: path.to_owned(),
        source,
    })?;
    Ok(document)
}

/// `policy apply FILE`: validates and stores the organization's policy (idempotent).
pub async fn policy_apply(database: &Database, organization: &str, path: &Path) -> CommandResult {
    let document = read_policy(path)?;
    let stored = rewrite_stored(database, organization, |stored| {
        if stored.as_ref() == Some(&document) {
            return None;
        }
        let change = AuditEntry::new(
            organization,
            Utc::now(),
            AuditEventKind::PolicyChanged {
                changed_by: "cli".to_owned(),
                rules: document.policy.rules.len(),
            },
        );
        Some((document.clone(), vec![change]))
    })
    .await?;
    if !stored {
        println!("policy unchanged ({} rules)", document.policy.rules.len());
        return Ok(());
    }
    println!(
        "policy applied: {} rules, {} approval policies (a running server picks it up when restarted)",
        document.policy.rules.len(),
        document.approval_policies.len()
    );
    Ok(())
}

/// `policy export`: prints the stored policy.
pub async fn policy_export(
    database: &Database,
    organization: &str,
    format: Format,
) -> CommandResult {
    let document = database
        .load_policy(organization)
        .await?
        .map(|stored| stored.document)
        .unwrap_or_default();
    print!("{}", document.render(format)?);
    Ok(())
}

/// What `policy test` evaluates.
#[derive(Debug)]
pub struct TestCall<'a> {
    /// Exposed tool name; the server is the part before `__`.
    pub tool: &'a str,
    /// Arguments as JSON.
    pub arguments: &'a str,
    /// Roles of the hypothetical caller.
    pub roles: Vec<String>,
    /// E-mail of the hypothetical caller.
    pub user: Option<String>,
    /// A policy file to test instead of the stored policy.
    pub file: Option<&'a Path>,
}

/// `policy test TOOL`: explains the decision for a hypothetical call; nothing runs.
pub async fn policy_test(
    database: &Database,
    organization: &str,
    call: TestCall<'_>,
) -> CommandResult {
    let document = match call.file {
        Some(path) => read_policy(path)?,
        None => database
            .load_policy(organization)
            .await?
            .map(|stored| stored.document)
            .unwrap_or_default(),
    };
    let governance = Governance::compile(&document)?;
    let arguments: serde_json::Value =
        serde_json::from_str(call.arguments).map_err(CommandError::Arguments)?;
    let (server, name) = call.tool.split_once("__").unwrap_or(("preloop", call.tool));
    let tool = ToolDescriptor::new(server, name, ToolSource::Upstream).with_exposed_name(call.tool);
    let mut principal = Principal::new("policy-test", organization);
    principal.roles = call.roles;
    principal.email = call.user;
    let decision = governance.policy().evaluate(&EvaluationInput {
        tool: &tool,
        args: &arguments,
        principal: &principal,
        client: &ClientInfo::named("preloop-cli"),
        now: Utc::now(),
    });
    println!("{}", decision.explanation());
    Ok(())
}

/// `user create EMAIL`: creates a user; the password, if any, is read from standard input.
/// The user is checked as the API checks one (an e-mail address, known roles, a long enough
/// password).
pub async fn user_create(
    database: &Database,
    organization: &str,
    email: &str,
    roles: Vec<String>,
    password: Option<String>,
) -> CommandResult {
    let draft = UserDraft {
        email: email.to_owned(),
        name: None,
        roles,
        password,
    };
    let user = new_user(organization, draft)?;
    ensure_organization(database, organization).await?;
    database.create_user(&user).await.map_err(|e| match e {
        StoreError::AlreadyExists => CommandError::UserExists {
            email: email.to_owned(),
        },
        other => other.into(),
    })?;
    println!(
        "created user {} ({}) with roles {:?}",
        user.email, user.id, user.roles
    );
    Ok(())
}

/// The default organization is created on first use (as `serve` would); others must exist.
async fn ensure_organization(database: &Database, organization: &str) -> CommandResult {
    if database.get_organization(organization).await?.is_some() {
        return Ok(());
    }
    if organization != DEFAULT_ORGANIZATION {
        return Err(CommandError::NoOrganization {
            organization: organization.to_owned(),
        });
    }
    let default = Organization {
        id: DEFAULT_ORGANIZATION.to_owned(),
        name: "Default organization".to_owned(),
        created_at: Utc::now(),
        closed_at: None,
    };
    Ok(database.create_organization(&default).await?)
}

/// `apikey create --user EMAIL --name NAME`: prints the secret once.
pub async fn apikey_create(
    database: &Database,
    email: &str,
    name: &str,
    expires_in: Option<std::time::Duration>,
) -> CommandResult {
    let user = database
        .find_user_by_email(email)
        .await?
        .ok_or_else(|| CommandError::NoUser {
            email: email.to_owned(),
        })?;
    let now = Utc::now();
    let expires_at = expires_in.map(|d| preloop_core::clock::later(now, d));
    let issued = ApiKey::issue(&user, name, Vec::new(), expires_at, now);
    database.insert_api_key(&issued.key).await?;
    println!(
        "API key {} for {} (shown once, store it now):",
        issued.key.id, user.email
    );
    println!("{}", issued.secret);
    Ok(())
}

/// `apikey revoke ID`.
pub async fn apikey_revoke(database: &Database, organization: &str, id: &str) -> CommandResult {
    let id =
        uuid::Uuid::parse_str(id).map_err(|_| CommandError::NotAKeyId { id: id.to_owned() })?;
    database
        .revoke_api_key(organization, id)
        .await
        .map_err(|source| CommandError::Revoke { id, source })?;
    println!("revoked API key {id} (servers stop accepting it within 5 seconds)");
    Ok(())
}

/// `audit verify`: checks the organization's whole chain.
pub async fn audit_verify(database: &Database, organization: &str) -> CommandResult {
    let summary = crate::app::audit::verify_stored_chain(database, organization)
        .await?
        .map_err(CommandError::ChainBroken)?;
    println!(
        "audit chain intact: {} events, head {}",
        summary.events, summary.head
    );
    Ok(())
}

/// `audit export`: prints the events as JSON lines.
pub async fn audit_export(database: &Database, organization: &str) -> CommandResult {
    for event in database.events(organization, 1, 0).await? {
        println!(
            "{}",
            serde_json::to_string(&event).map_err(CommandError::Export)?
        );
    }
    Ok(())
}

/// `sync [--tracker NAME]`: applies the configuration file's `[[trackers]]`, then synchronizes
/// the organization's trackers (or the one named) now, in the foreground, and says what each
/// did. A tracker that fails does not stop the others; the command then exits non-zero.
pub async fn sync(
    database: std::sync::Arc<Database>,
    settings: &crate::config::Settings,
    organization: &str,
    tracker: Option<&str>,
) -> CommandResult {
    use preloop_core::governor::Governor;
    use preloop_core::registry::Registry;
    let egress = crate::gateway::upstream::egress::Egress::new(&settings.file.security)
        .map_err(|e| CommandError::Sync(e.to_string()))?;
    let governor = std::sync::Arc::new(
        Governor::builder(std::sync::Arc::new(Registry::new()))
            .store(database.clone())
            .build(),
    );
    let trackers = crate::app::Trackers::new(
        governor,
        database.clone(),
        std::sync::Arc::new(egress),
        crate::app::Replicas::new(database.clone()),
        crate::events::EventBus::default(),
    );
    if organization == crate::tenancy::DEFAULT_ORGANIZATION {
        for entry in &settings.file.trackers {
            let input = entry
                .to_input()
                .map_err(|e| CommandError::Sync(e.to_string()))?;
            trackers
                .apply(organization, input)
                .await
                .map_err(|e| CommandError::Sync(format!("tracker `{}`: {e}", entry.name)))?;
        }
    }
    let statuses = trackers
        .list(organization)
        .await
        .map_err(|e| CommandError::Sync(e.to_string()))?;
    let chosen: Vec<_> = statuses
        .iter()
        .filter(|s| tracker.is_none_or(|name| s.tracker.name == name))
        .collect();
    if chosen.is_empty() {
        return Err(CommandError::Sync(match tracker {
            Some(name) => format!("no tracker `{name}` in organization `{organization}`"),
            None => format!("organization `{organization}` has no tracker"),
        }));
    }
    let mut failed = 0;
    for status in chosen {
        let name = &status.tracker.name;
        match trackers.sync_now(organization, status.tracker.id).await {
            Ok(summary) if summary.skipped => {
                println!("{name}: another replica is synchronizing it; skipped");
            }
            Ok(summary) => {
                println!(
                    "{name}: {} issues indexed from {} pages",
                    summary.issues, summary.pages
                );
                for (project, error) in &summary.failures {
                    println!("{name}: {project} failed: {error}");
                    failed += 1;
                }
            }
            Err(error) => {
                println!("{name}: {error}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(CommandError::Sync(format!(
            "{failed} synchronization(s) failed"
        )));
    }
    Ok(())
}

//! The administrative CLI commands; each opens the database, does one thing and exits.

use crate::app::accounts::{UserDraft, new_user};
use crate::app::rewrite_stored;
use crate::tenancy::DEFAULT_ORGANIZATION;
use chrono::Utc;
use preloop_core::accounts::{ApiKey, Organization};
use preloop_core::audit::{AuditEntry, AuditEventKind};
use preloop_core::policy::{EvaluationInput, Format, Governance, GovernanceDocument};
use preloop_core::registry::{ToolDescriptor, ToolSource};
use preloop_core::store::{AccountStore, AuditStore, PolicyStore};
use preloop_core::{ClientInfo, Principal};
use preloop_store::Database;
use std::path::Path;

/// A command's failure: printed as `error: ...` with exit code 1.
pub type CommandResult = Result<(), String>;

fn format_of(path: &Path) -> Result<Format, String> {
    Format::from_file_name(&path.display().to_string()).ok_or_else(|| {
        format!(
            "{}: the file must end in .toml, .yaml or .yml",
            path.display()
        )
    })
}

fn read_policy(path: &Path) -> Result<GovernanceDocument, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let document = GovernanceDocument::parse(&text, format_of(path)?)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Governance::compile(&document).map_err(|e| format!("{}:\n{e}", path.display()))?;
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
    .await
    .map_err(|e| e.to_string())?;
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
        .await
        .map_err(|e| e.to_string())?
        .map(|stored| stored.document)
        .unwrap_or_default();
    print!("{}", document.render(format).map_err(|e| e.to_string())?);
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
            .await
            .map_err(|e| e.to_string())?
            .map(|stored| stored.document)
            .unwrap_or_default(),
    };
    let governance = Governance::compile(&document).map_err(|e| e.to_string())?;
    let arguments: serde_json::Value =
        serde_json::from_str(call.arguments).map_err(|e| format!("--args is not JSON: {e}"))?;
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
    let user = new_user(organization, draft).map_err(|e| e.to_string())?;
    ensure_organization(database, organization).await?;
    database.create_user(&user).await.map_err(|e| match e {
        preloop_core::store::StoreError::AlreadyExists => {
            format!("a user with e-mail {email} already exists")
        }
        other => other.to_string(),
    })?;
    println!(
        "created user {} ({}) with roles {:?}",
        user.email, user.id, user.roles
    );
    Ok(())
}

/// The default organization is created on first use (as `serve` would); others must exist.
async fn ensure_organization(database: &Database, organization: &str) -> CommandResult {
    if database
        .get_organization(organization)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(());
    }
    if organization != DEFAULT_ORGANIZATION {
        return Err(format!("organization `{organization}` does not exist"));
    }
    let default = Organization {
        id: DEFAULT_ORGANIZATION.to_owned(),
        name: "Default organization".to_owned(),
        created_at: Utc::now(),
    };
    database
        .create_organization(&default)
        .await
        .map_err(|e| e.to_string())
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
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no user with e-mail {email}"))?;
    let now = Utc::now();
    let expires_at = expires_in.map(|d| preloop_core::clock::later(now, d));
    let issued = ApiKey::issue(&user, name, Vec::new(), expires_at, now);
    database
        .insert_api_key(&issued.key)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "API key {} for {} (shown once, store it now):",
        issued.key.id, user.email
    );
    println!("{}", issued.secret);
    Ok(())
}

/// `apikey revoke ID`.
pub async fn apikey_revoke(database: &Database, organization: &str, id: &str) -> CommandResult {
    let id = uuid::Uuid::parse_str(id).map_err(|_| format!("`{id}` is not an API key id"))?;
    database
        .revoke_api_key(organization, id)
        .await
        .map_err(|e| format!("cannot revoke {id}: {e}"))?;
    println!("revoked API key {id} (servers stop accepting it within 5 seconds)");
    Ok(())
}

/// `audit verify`: checks the organization's whole chain.
pub async fn audit_verify(database: &Database, organization: &str) -> CommandResult {
    let summary = crate::api::verify_stored_chain(database, organization)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("audit chain broken: {e}"))?;
    println!(
        "audit chain intact: {} events, head {}",
        summary.events, summary.head
    );
    Ok(())
}

/// `audit export`: prints the events as JSON lines.
pub async fn audit_export(database: &Database, organization: &str) -> CommandResult {
    for event in database
        .events(organization, 1, 0)
        .await
        .map_err(|e| e.to_string())?
    {
        println!(
            "{}",
            serde_json::to_string(&event).map_err(|e| e.to_string())?
        );
    }
    Ok(())
}

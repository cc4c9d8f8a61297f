//! The tool registry: built-in, upstream and embedded tools in one namespace, with per-principal
//! visibility.
//!
//! Reads take a snapshot (an `Arc`), so a call never holds a lock while it runs and a rescan that
//! replaces a server's tools never blocks callers.

mod tool;

pub use tool::{
    EXPOSED_NAME_SEPARATOR, OperationKind, ToolAnnotations, ToolDescriptor, ToolSource,
    exposed_name,
};

mod changes;

pub use changes::ToolChanges;

use crate::approval::ArgumentSchema;
use crate::executor::ToolExecutor;
use crate::principal::{Principal, PrincipalSelector};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

/// A tool with the executor that runs it and who may see it.
#[derive(Clone)]
pub struct RegisteredTool {
    /// The descriptor.
    pub descriptor: Arc<ToolDescriptor>,
    /// Runs the tool once a call is allowed.
    pub executor: Arc<dyn ToolExecutor>,
    /// The organization the tool belongs to; `None` shares it with every organization (built-in
    /// tools, tools an embedder registers).
    pub organization: Option<String>,
    /// Who may see and call the tool; empty means everyone in the organization.
    pub visible_to: Vec<PrincipalSelector>,
    /// Disabled tools are invisible to everyone.
    pub enabled: bool,
    /// The approval policy for calls a rule holds for approval without naming one (instead of
    /// the organization's default).
    pub approval_policy: Option<String>,
    /// The input schema, compiled on first use and shared by every copy of this registration.
    schema: Arc<OnceLock<ArgumentSchema>>,
    /// Where its server lists it among its tools: listings keep each server's order.
    position: usize,
}

impl std::fmt::Debug for RegisteredTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredTool")
            .field("descriptor", &self.descriptor)
            .field("organization", &self.organization)
            .field("visible_to", &self.visible_to)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl RegisteredTool {
    /// An enabled tool shared with every organization and visible to everyone.
    pub fn new(descriptor: ToolDescriptor, executor: Arc<dyn ToolExecutor>) -> Self {
        Self {
            descriptor: Arc::new(descriptor),
            executor,
            organization: None,
            visible_to: Vec::new(),
            enabled: true,
            approval_policy: None,
            schema: Arc::new(OnceLock::new()),
            position: 0,
        }
    }

    /// Makes the tool private to one organization.
    #[must_use]
    pub fn in_organization(mut self, organization: impl Into<String>) -> Self {
        self.organization = Some(organization.into());
        self
    }

    /// Checks call arguments against the tool's input schema. A schema that does not compile
    /// cannot judge anything, so it is skipped here (the policy still decides); edits made by
    /// approvers are held to it strictly.
    pub fn check_arguments(&self, arguments: &serde_json::Value) -> Result<(), Vec<String>> {
        let schema = self
            .schema
            .get_or_init(|| ArgumentSchema::compile(&self.descriptor.input_schema));
        if schema.is_valid() {
            schema.check(arguments)
        } else {
            Ok(())
        }
    }

    /// Restricts visibility to the selected principals.
    #[must_use]
    pub fn visible_to(mut self, selectors: Vec<PrincipalSelector>) -> Self {
        self.visible_to = selectors;
        self
    }

    /// Whether `principal` may see the tool.
    pub fn is_visible_to(&self, principal: &Principal) -> bool {
        self.enabled
            && self
                .organization
                .as_ref()
                .is_none_or(|o| *o == principal.organization_id)
            && (self.visible_to.is_empty() || self.visible_to.iter().any(|s| s.matches(principal)))
    }

    fn apply(&mut self, settings: &ToolSettings) {
        self.enabled = settings.enabled;
        self.visible_to.clone_from(&settings.visible_to);
        self.approval_policy.clone_from(&settings.approval_policy);
        if let Some(description) = &settings.description {
            Arc::make_mut(&mut self.descriptor)
                .description
                .clone_from(description);
        }
    }
}

/// Administrator settings for one tool, kept across rescans: a tool that disappears and comes
/// back gets them again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolSettings {
    /// Disabled tools are invisible to everyone.
    pub enabled: bool,
    /// Who may see the tool (empty: everyone in the organization).
    pub visible_to: Vec<PrincipalSelector>,
    /// A description shown instead of the server's.
    pub description: Option<String>,
    /// The approval policy for calls a rule holds without naming one.
    pub approval_policy: Option<String>,
}

impl Default for ToolSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            visible_to: Vec::new(),
            description: None,
            approval_policy: None,
        }
    }
}

/// Why a tool could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Another tool already uses the exposed name.
    #[error(
        "tool name `{exposed_name}` from server `{server}` collides with the tool of the same name from server `{existing_server}`"
    )]
    NameCollision {
        /// The contested exposed name.
        exposed_name: String,
        /// The server that tried to register it.
        server: String,
        /// The server that already has it.
        existing_server: String,
    },
    /// The exposed name is empty or has characters MCP clients reject.
    #[error("tool name `{exposed_name}` is invalid: use 1 to 128 letters, digits, `_`, `-` or `.`")]
    InvalidName {
        /// The offending name.
        exposed_name: String,
    },
}

/// The key of the shared scope (organization ids are never empty).
const SHARED: &str = "";

/// Tools by scope (organization id, or [`SHARED`]) and exposed name, with the settings that
/// apply to them.
#[derive(Debug, Default, Clone)]
struct Tables {
    tools: HashMap<String, HashMap<String, RegisteredTool>>,
    settings: HashMap<String, HashMap<String, ToolSettings>>,
}

impl Tables {
    /// A shared tool with the organization's settings for it applied.
    fn as_seen_by(&self, organization: &str, shared: &RegisteredTool) -> RegisteredTool {
        let mut tool = shared.clone();
        if let Some(settings) = self
            .settings
            .get(organization)
            .and_then(|s| s.get(&shared.descriptor.exposed_name))
        {
            tool.apply(settings);
        }
        tool
    }

    fn scope(organization: Option<&str>) -> &str {
        organization.unwrap_or(SHARED)
    }

    /// Inserts after the checks, applying any stored settings.
    fn insert(&mut self, mut tool: RegisteredTool) -> Result<(), RegistryError> {
        self.check_insert(&tool)?;
        let scope = Self::scope(tool.organization.as_deref()).to_owned();
        let name = tool.descriptor.exposed_name.clone();
        if let Some(settings) = self.settings.get(&scope).and_then(|s| s.get(&name)) {
            tool.apply(settings);
        }
        self.tools.entry(scope).or_default().insert(name, tool);
        Ok(())
    }

    fn remove_server(&mut self, organization: Option<&str>, server: &str) {
        if let Some(tools) = self.tools.get_mut(Self::scope(organization)) {
            tools.retain(|_, t| t.descriptor.server != server);
        }
    }

    /// Refuses invalid names and names another server already uses where callers would see
    /// both: in the same organization, or between an organization and the shared scope.
    fn check_insert(&self, tool: &RegisteredTool) -> Result<(), RegistryError> {
        let name = &tool.descriptor.exposed_name;
        let valid = !name.is_empty()
            && name.len() <= 128
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(RegistryError::InvalidName {
                exposed_name: name.clone(),
            });
        }
        let scope = Self::scope(tool.organization.as_deref());
        let clashing = self.tools.iter().filter_map(|(other_scope, tools)| {
            let overlaps = other_scope == scope || scope == SHARED || other_scope == SHARED;
            let existing = tools.get(name)?;
            let same = other_scope == scope && existing.descriptor.server == tool.descriptor.server;
            (overlaps && !same).then_some(existing)
        });
        match clashing.into_iter().next() {
            Some(existing) => Err(RegistryError::NameCollision {
                exposed_name: name.clone(),
                server: tool.descriptor.server.clone(),
                existing_server: existing.descriptor.server.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// All tools, keyed by organization and exposed name.
#[derive(Debug, Default)]
pub struct Registry {
    tables: RwLock<Arc<Tables>>,
    changes: changes::ChangeFeed,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn snapshot(&self) -> Arc<Tables> {
        Arc::clone(&self.tables.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Looks a tool up by exposed name as `organization` sees it: its own tools, then the
    /// shared ones.
    pub fn get(&self, organization: &str, exposed_name: &str) -> Option<RegisteredTool> {
        let snapshot = self.snapshot();
        if let Some(own) = snapshot
            .tools
            .get(organization)
            .and_then(|t| t.get(exposed_name))
        {
            return Some(own.clone());
        }
        let shared = snapshot.tools.get(SHARED)?.get(exposed_name)?;
        Some(snapshot.as_seen_by(organization, shared))
    }

    /// Registers one tool, refusing an exposed name another server already uses. Registering the
    /// same exposed name from the same server replaces the previous registration.
    pub fn register(&self, tool: RegisteredTool) -> Result<(), RegistryError> {
        let scope = tool.organization.clone();
        self.update(scope.as_deref(), |tables| tables.insert(tool))
    }

    /// Replaces every tool of `server` (in `organization`, or shared) with `tools` at once (a
    /// scan or a `tools/list_changed` refresh): tools the server no longer lists disappear.
    /// Nothing changes if any name collides.
    pub fn replace_server_tools(
        &self,
        organization: Option<&str>,
        server: &str,
        tools: Vec<RegisteredTool>,
    ) -> Result<(), RegistryError> {
        self.update(organization, |tables| {
            tables.remove_server(organization, server);
            tools
                .into_iter()
                .enumerate()
                .try_for_each(|(position, tool)| {
                    tables.insert(RegisteredTool {
                        organization: organization.map(str::to_owned),
                        position,
                        ..tool
                    })
                })
        })
    }

    /// Removes every tool of `server` (in `organization`, or shared).
    pub fn remove_server(&self, organization: Option<&str>, server: &str) {
        // Removing cannot collide, so the update cannot fail.
        let _ = self.update(organization, |tables| {
            tables.remove_server(organization, server);
            Ok(())
        });
    }

    /// Sets (or, with `None`, clears) the settings of one tool of `organization` (or a shared
    /// tool); they apply now if it is registered and whenever it is registered again. Clearing
    /// enables the tool for everyone; a replaced description stays until the next scan. Returns
    /// whether the tool is registered now.
    pub fn configure(
        &self,
        organization: Option<&str>,
        exposed_name: &str,
        settings: Option<ToolSettings>,
    ) -> bool {
        let mut found = false;
        let _ = self.update(organization, |tables| {
            let scope = Tables::scope(organization).to_owned();
            // A shared tool takes an organization's settings when that organization looks it up.
            found = tables
                .tools
                .get(SHARED)
                .is_some_and(|t| t.contains_key(exposed_name));
            if let Some(tool) = tables
                .tools
                .get_mut(&scope)
                .and_then(|t| t.get_mut(exposed_name))
            {
                found = true;
                tool.apply(settings.as_ref().unwrap_or(&ToolSettings::default()));
            }
            let stored = tables.settings.entry(scope).or_default();
            match settings {
                Some(settings) => stored.insert(exposed_name.to_owned(), settings),
                None => stored.remove(exposed_name),
            };
            Ok(())
        });
        found
    }

    /// Replaces every setting of `organization` at once (after reloading them from the store):
    /// tools whose settings disappear get the defaults, so no caller sees a half-applied set.
    pub fn replace_settings(&self, organization: &str, settings: HashMap<String, ToolSettings>) {
        let _ = self.update(Some(organization), |tables| {
            if let Some(tools) = tables.tools.get_mut(organization) {
                let defaults = ToolSettings::default();
                for (name, tool) in tools.iter_mut() {
                    tool.apply(settings.get(name).unwrap_or(&defaults));
                }
            }
            tables.settings.insert(organization.to_owned(), settings);
            Ok(())
        });
    }

    /// The tools `principal` may see: by server name, each server's in the order it listed them.
    pub fn visible_to(&self, principal: &Principal) -> Vec<RegisteredTool> {
        let snapshot = self.snapshot();
        let org = principal.organization_id.as_str();
        let own = snapshot
            .tools
            .get(org)
            .into_iter()
            .flat_map(HashMap::values)
            .cloned();
        let shared = snapshot
            .tools
            .get(SHARED)
            .into_iter()
            .flat_map(HashMap::values)
            .map(|t| snapshot.as_seen_by(org, t));
        let mut tools: Vec<_> = own
            .chain(shared)
            .filter(|t| t.is_visible_to(principal))
            .collect();
        // By server, each in its own order (an upstream's tools as it lists them).
        tools.sort_by(|a, b| {
            (&a.descriptor.server, a.position, &a.descriptor.exposed_name).cmp(&(
                &b.descriptor.server,
                b.position,
                &b.descriptor.exposed_name,
            ))
        });
        tools
    }

    /// The tools of one server (in `organization`, or shared), sorted by exposed name.
    pub fn server_tools(&self, organization: Option<&str>, server: &str) -> Vec<RegisteredTool> {
        let snapshot = self.snapshot();
        let mut tools: Vec<_> = snapshot
            .tools
            .get(Tables::scope(organization))
            .into_iter()
            .flat_map(HashMap::values)
            .filter(|t| t.descriptor.server == server)
            .cloned()
            .collect();
        // By server, each in its own order (an upstream's tools as it lists them).
        tools.sort_by(|a, b| {
            (&a.descriptor.server, a.position, &a.descriptor.exposed_name).cmp(&(
                &b.descriptor.server,
                b.position,
                &b.descriptor.exposed_name,
            ))
        });
        tools
    }

    /// Number of registered tools (enabled or not) in every scope.
    pub fn len(&self) -> usize {
        self.snapshot().tools.values().map(HashMap::len).sum()
    }

    /// Whether no tool is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Notes that what `organization` (or, with `None`, everyone) may see changed for a reason
    /// outside the registry, such as a new policy hiding tools.
    pub fn note_change(&self, organization: Option<&str>) {
        self.changes.note(organization);
    }

    /// Waits until some organization's tools change, and says whose (everything since the last
    /// call). One task should take them: each change is handed out once.
    pub async fn changes(&self) -> ToolChanges {
        self.changes.next().await
    }

    /// Copy-on-write update of `scope`'s tools (`None`: the shared ones): builds the new tables
    /// aside and publishes them only if `change` succeeds.
    fn update(
        &self,
        scope: Option<&str>,
        change: impl FnOnce(&mut Tables) -> Result<(), RegistryError>,
    ) -> Result<(), RegistryError> {
        {
            let mut guard = self.tables.write().unwrap_or_else(PoisonError::into_inner);
            let mut next = Tables::clone(&guard);
            change(&mut next)?;
            *guard = Arc::new(next);
        }
        self.changes.note(scope);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::FnExecutor;
    use crate::executor::ToolOutput;

    fn tool(server: &str, name: &str, exposed: Option<&str>) -> RegisteredTool {
        let mut descriptor = ToolDescriptor::new(server, name, ToolSource::Upstream);
        if let Some(exposed) = exposed {
            descriptor = descriptor.with_exposed_name(exposed);
        }
        RegisteredTool::new(
            descriptor,
            Arc::new(FnExecutor::new(|_, _| Ok(ToolOutput::text("ok")))),
        )
    }

    #[test]
    fn collisions_between_servers_are_refused() {
        let registry = Registry::new();
        registry
            .register(tool("a", "search", Some("search")))
            .unwrap();
        let error = registry
            .register(tool("b", "search", Some("search")))
            .unwrap_err();
        assert!(matches!(error, RegistryError::NameCollision { .. }));
        assert!(error.to_string().contains("from server `a`"));
        // Same server re-registering replaces.
        registry
            .register(tool("a", "search", Some("search")))
            .unwrap();
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn invalid_names_are_refused() {
        let registry = Registry::new();
        for bad in ["", "has space", "slash/name"] {
            assert!(
                registry.register(tool("a", "x", Some(bad))).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rescans_drop_stale_tools_atomically() {
        let registry = Registry::new();
        registry
            .replace_server_tools(
                None,
                "a",
                vec![tool("a", "one", None), tool("a", "two", None)],
            )
            .unwrap();
        registry.register(tool("b", "x", Some("clash"))).unwrap();
        registry
            .replace_server_tools(None, "a", vec![tool("a", "two", None)])
            .unwrap();
        assert!(registry.get("o", "a__one").is_none());
        assert!(registry.get("o", "a__two").is_some());
        // A colliding rescan changes nothing.
        let result = registry.replace_server_tools(
            None,
            "a",
            vec![tool("a", "three", None), tool("a", "y", Some("clash"))],
        );
        assert!(result.is_err());
        assert!(registry.get("o", "a__two").is_some());
        assert!(registry.get("o", "a__three").is_none());
    }

    #[test]
    fn visibility_follows_selectors_and_enabled_flag() {
        let registry = Registry::new();
        registry
            .register(tool("a", "admin_only", None).visible_to(vec!["role:admin".parse().unwrap()]))
            .unwrap();
        registry.register(tool("a", "public", None)).unwrap();
        let admin = Principal::new("1", "o").with_role("admin");
        let agent = Principal::new("2", "o").with_role("agent");
        assert_eq!(registry.visible_to(&admin).len(), 2);
        let names: Vec<_> = registry
            .visible_to(&agent)
            .into_iter()
            .map(|t| t.descriptor.exposed_name.clone())
            .collect();
        assert_eq!(names, ["a__public"]);
        let disabled = ToolSettings {
            enabled: false,
            ..ToolSettings::default()
        };
        assert!(registry.configure(None, "a__public", Some(disabled.clone())));
        assert!(registry.visible_to(&agent).is_empty());
        assert!(!registry.configure(None, "missing", Some(disabled)));
    }

    #[test]
    fn organizations_see_their_own_tools_and_the_shared_ones() {
        let registry = Registry::new();
        registry.register(tool("preloop", "shared", None)).unwrap();
        registry
            .replace_server_tools(Some("a"), "gh", vec![tool("gh", "issue", None)])
            .unwrap();
        // Another organization may use the same server and tool names.
        registry
            .replace_server_tools(Some("b"), "gh", vec![tool("gh", "issue", None)])
            .unwrap();
        let alice = Principal::new("1", "a");
        let carol = Principal::new("3", "c");
        let names = |p: &Principal| -> Vec<String> {
            registry
                .visible_to(p)
                .into_iter()
                .map(|t| t.descriptor.exposed_name.clone())
                .collect()
        };
        assert_eq!(names(&alice), ["gh__issue", "preloop__shared"]);
        assert_eq!(names(&carol), ["preloop__shared"]);
        assert!(registry.get("c", "gh__issue").is_none());
        assert_eq!(
            registry
                .get("b", "gh__issue")
                .unwrap()
                .organization
                .as_deref(),
            Some("b")
        );
        // An organization's tool cannot shadow a shared one, nor the reverse.
        let clash = registry.replace_server_tools(
            Some("a"),
            "other",
            vec![tool("other", "x", Some("preloop__shared"))],
        );
        assert!(matches!(clash, Err(RegistryError::NameCollision { .. })));
        assert!(
            registry
                .register(tool("x", "y", Some("gh__issue")))
                .is_err()
        );
        // Removing one organization's server leaves the other's alone.
        registry.remove_server(Some("a"), "gh");
        assert!(registry.get("a", "gh__issue").is_none());
        assert!(registry.get("b", "gh__issue").is_some());
    }

    #[test]
    fn settings_survive_rescans() {
        let registry = Registry::new();
        let hidden = ToolSettings {
            enabled: false,
            visible_to: Vec::new(),
            description: Some("curated".to_owned()),
            approval_policy: None,
        };
        assert!(!registry.configure(Some("o"), "gh__issue", Some(hidden)));
        registry
            .replace_server_tools(Some("o"), "gh", vec![tool("gh", "issue", None)])
            .unwrap();
        let registered = registry.get("o", "gh__issue").unwrap();
        assert!(!registered.enabled);
        assert_eq!(registered.descriptor.description, "curated");
        assert!(registry.configure(Some("o"), "gh__issue", None));
        assert!(registry.get("o", "gh__issue").unwrap().enabled);
        // A shared tool configured by one organization changes only for it.
        registry.register(tool("preloop", "ask", None)).unwrap();
        let off = ToolSettings {
            enabled: false,
            ..ToolSettings::default()
        };
        assert!(registry.configure(Some("o"), "preloop__ask", Some(off)));
        assert!(!registry.get("o", "preloop__ask").unwrap().enabled);
        assert!(registry.get("p", "preloop__ask").unwrap().enabled);
        assert!(
            registry
                .visible_to(&Principal::new("1", "o"))
                .iter()
                .all(|t| t.descriptor.name != "ask")
        );
        assert_eq!(registry.visible_to(&Principal::new("1", "p")).len(), 1);
        // Replacing the organization's settings drops the ones not given.
        registry.replace_settings("o", HashMap::new());
        assert!(registry.get("o", "preloop__ask").unwrap().enabled);
        assert!(registry.get("o", "gh__issue").unwrap().enabled);
    }
}

//! The tool registry: built-in, upstream and embedded tools in one namespace, with per-principal
//! visibility.
//!
//! Reads take a snapshot (an `Arc`), so a call never holds a lock while it runs and a rescan that
//! replaces a server's tools never blocks callers.

mod tool;

pub use tool::{EXPOSED_NAME_SEPARATOR, ToolAnnotations, ToolDescriptor, ToolSource, exposed_name};

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
    /// Who may see and call the tool; empty means everyone in the organization.
    pub visible_to: Vec<PrincipalSelector>,
    /// Disabled tools are invisible to everyone.
    pub enabled: bool,
    /// The input schema, compiled on first use and shared by every copy of this registration.
    schema: Arc<OnceLock<ArgumentSchema>>,
}

impl std::fmt::Debug for RegisteredTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredTool")
            .field("descriptor", &self.descriptor)
            .field("visible_to", &self.visible_to)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl RegisteredTool {
    /// An enabled tool visible to everyone.
    pub fn new(descriptor: ToolDescriptor, executor: Arc<dyn ToolExecutor>) -> Self {
        Self {
            descriptor: Arc::new(descriptor),
            executor,
            visible_to: Vec::new(),
            enabled: true,
            schema: Arc::new(OnceLock::new()),
        }
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
            && (self.visible_to.is_empty() || self.visible_to.iter().any(|s| s.matches(principal)))
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

type Snapshot = Arc<HashMap<String, RegisteredTool>>;

/// All tools, keyed by exposed name.
#[derive(Debug, Default)]
pub struct Registry {
    tools: RwLock<Snapshot>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn snapshot(&self) -> Snapshot {
        Arc::clone(&self.tools.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Looks a tool up by exposed name.
    pub fn get(&self, exposed_name: &str) -> Option<RegisteredTool> {
        self.snapshot().get(exposed_name).cloned()
    }

    /// Registers one tool, refusing an exposed name another server already uses. Registering the
    /// same exposed name from the same server replaces the previous registration.
    pub fn register(&self, tool: RegisteredTool) -> Result<(), RegistryError> {
        let server = tool.descriptor.server.clone();
        self.update(|tools| {
            check_insert(tools, &tool, &server)?;
            tools.insert(tool.descriptor.exposed_name.clone(), tool);
            Ok(())
        })
    }

    /// Replaces every tool of `server` with `tools` at once (a scan or a `tools/list_changed`
    /// refresh): tools the server no longer lists disappear. Nothing changes if any name collides.
    pub fn replace_server_tools(
        &self,
        server: &str,
        tools: Vec<RegisteredTool>,
    ) -> Result<(), RegistryError> {
        self.update(|current| {
            current.retain(|_, t| t.descriptor.server != server);
            for tool in tools {
                check_insert(current, &tool, server)?;
                current.insert(tool.descriptor.exposed_name.clone(), tool);
            }
            Ok(())
        })
    }

    /// Removes every tool of `server`.
    pub fn remove_server(&self, server: &str) {
        // Removing cannot collide, so the update cannot fail.
        let _ = self.update(|tools| {
            tools.retain(|_, t| t.descriptor.server != server);
            Ok(())
        });
    }

    /// Enables or disables one tool; returns whether it exists.
    pub fn set_enabled(&self, exposed_name: &str, enabled: bool) -> bool {
        let mut found = false;
        let _ = self.update(|tools| {
            if let Some(tool) = tools.get_mut(exposed_name) {
                tool.enabled = enabled;
                found = true;
            }
            Ok(())
        });
        found
    }

    /// The tools `principal` may see, sorted by exposed name.
    pub fn visible_to(&self, principal: &Principal) -> Vec<RegisteredTool> {
        let snapshot = self.snapshot();
        let mut tools: Vec<_> = snapshot
            .values()
            .filter(|t| t.is_visible_to(principal))
            .cloned()
            .collect();
        tools.sort_by(|a, b| a.descriptor.exposed_name.cmp(&b.descriptor.exposed_name));
        tools
    }

    /// Number of registered tools (enabled or not).
    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    /// Whether no tool is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copy-on-write update: builds the new map aside and publishes it only if `change` succeeds.
    fn update(
        &self,
        change: impl FnOnce(&mut HashMap<String, RegisteredTool>) -> Result<(), RegistryError>,
    ) -> Result<(), RegistryError> {
        let mut guard = self.tools.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = HashMap::clone(&guard);
        change(&mut next)?;
        *guard = Arc::new(next);
        Ok(())
    }
}

fn check_insert(
    tools: &HashMap<String, RegisteredTool>,
    tool: &RegisteredTool,
    server: &str,
) -> Result<(), RegistryError> {
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
    match tools.get(name) {
        Some(existing) if existing.descriptor.server != server => {
            Err(RegistryError::NameCollision {
                exposed_name: name.clone(),
                server: server.to_owned(),
                existing_server: existing.descriptor.server.clone(),
            })
        }
        _ => Ok(()),
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
            .replace_server_tools("a", vec![tool("a", "one", None), tool("a", "two", None)])
            .unwrap();
        registry.register(tool("b", "x", Some("clash"))).unwrap();
        registry
            .replace_server_tools("a", vec![tool("a", "two", None)])
            .unwrap();
        assert!(registry.get("a__one").is_none());
        assert!(registry.get("a__two").is_some());
        // A colliding rescan changes nothing.
        let result = registry.replace_server_tools(
            "a",
            vec![tool("a", "three", None), tool("a", "y", Some("clash"))],
        );
        assert!(result.is_err());
        assert!(registry.get("a__two").is_some());
        assert!(registry.get("a__three").is_none());
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
        assert!(registry.set_enabled("a__public", false));
        assert!(registry.visible_to(&agent).is_empty());
        assert!(!registry.set_enabled("missing", false));
    }
}

//! What an upstream offers besides tools (prompts, resources and resource templates),
//! discovered with its tools, and how agents see their names.
//!
//! Several upstreams must stay apart, as their tools do with `{prefix}__`:
//! - prompts are named like tools, `{prefix}__{name}`;
//! - resource URIs (and templates) get the prefix in front of their scheme, `{prefix}+{uri}`
//!   (`docs+file:///a.txt`): still a URI (RFC 3986 allows `+` in schemes), and turned back
//!   into the upstream's own without any state.
//!
//! With `tool_prefix = ""` names and URIs are the upstream's own. A URI in the upstream's own
//! form (say one a tool returned in a `resource_link`) is still found: by the server that lists
//! it, or whose template matches it.

use super::caller::{MAX_PAGES, MAX_TOOLS, UpstreamClient, ask};
use super::eras::Eras;
use super::error::UpstreamError;
use preloop_core::registry::{EXPOSED_NAME_SEPARATOR, OperationKind, exposed_name};
use rmcp::model::{
    ClientRequest, ListPromptsRequest, ListPromptsResult, ListResourceTemplatesRequest,
    ListResourceTemplatesResult, ListResourcesRequest, ListResourcesResult, PaginatedRequestParams,
    Prompt, Resource, ResourceTemplate,
};
use serde::de::DeserializeOwned;

/// Longest compiled URI template matcher, in bytes (a hostile template cannot make a huge one).
const MAX_TEMPLATE_REGEX_BYTES: usize = 1 << 16;

/// An upstream's prompts, resources and resource templates, under its own names.
#[derive(Debug, Clone, Default)]
pub struct Offerings {
    /// Its prompts.
    pub prompts: Vec<Prompt>,
    /// Its listed resources.
    pub resources: Vec<Resource>,
    /// Its resource templates.
    pub templates: Vec<ResourceTemplate>,
}

impl Offerings {
    /// Lists everything `client` offers. A list the server does not have (or fails to give)
    /// is empty: prompts and resources are optional, and a server's tools do not depend on them.
    pub async fn discover(client: &dyn UpstreamClient) -> Self {
        let prompts = all_pages(
            client,
            |params| ClientRequest::ListPromptsRequest(ListPromptsRequest::with_param(params)),
            |page: ListPromptsResult| (page.prompts, page.next_cursor),
        );
        let resources = all_pages(
            client,
            |params| ClientRequest::ListResourcesRequest(ListResourcesRequest::with_param(params)),
            |page: ListResourcesResult| (page.resources, page.next_cursor),
        );
        let templates = all_pages(
            client,
            |params| {
                ClientRequest::ListResourceTemplatesRequest(
                    ListResourceTemplatesRequest::with_param(params),
                )
            },
            |page: ListResourceTemplatesResult| (page.resource_templates, page.next_cursor),
        );
        let (prompts, resources, templates) = tokio::join!(prompts, resources, templates);
        Self {
            prompts,
            resources,
            templates,
        }
    }

    /// What the two generations offer together ([`Eras::merge`]).
    pub fn merge(eras: &mut Eras, modern: Self, legacy: Self) -> Self {
        Self {
            prompts: eras.merge(OperationKind::Prompt, modern.prompts, legacy.prompts, |p| {
                p.name.as_str()
            }),
            resources: eras.merge(
                OperationKind::Resource,
                modern.resources,
                legacy.resources,
                |r| r.uri.as_str(),
            ),
            templates: eras.merge(
                OperationKind::Resource,
                modern.templates,
                legacy.templates,
                |t| t.uri_template.as_str(),
            ),
        }
    }

    /// Whether it offers any resource, listed or templated.
    pub fn has_resources(&self) -> bool {
        !self.resources.is_empty() || !self.templates.is_empty()
    }

    /// Whether `uri` (in the upstream's own form) is one of its resources: listed, or matching
    /// one of its templates.
    pub fn offers_resource(&self, uri: &str) -> bool {
        self.resources.iter().any(|r| r.uri == uri)
            || self
                .templates
                .iter()
                .any(|t| template_matches(&t.uri_template, uri))
    }
}

/// Every item of a paginated list, within [`MAX_TOOLS`] items and [`MAX_PAGES`] pages; empty
/// if the first page fails, what was read if a later one does.
async fn all_pages<T, R: DeserializeOwned>(
    client: &dyn UpstreamClient,
    request: impl Fn(PaginatedRequestParams) -> ClientRequest,
    split: impl Fn(R) -> (Vec<T>, Option<String>),
) -> Vec<T> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = PaginatedRequestParams::default().with_cursor(cursor.take());
        let page: Result<R, UpstreamError> = ask(client, request(params)).await;
        let Ok(page) = page else { break };
        let (page, next) = split(page);
        items.extend(page);
        cursor = next;
        if cursor.is_none() || items.len() >= MAX_TOOLS {
            break;
        }
    }
    items.truncate(MAX_TOOLS);
    items
}

/// How one upstream's prompt names and resource URIs appear to agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    /// The tool prefix (empty: names unchanged).
    prefix: String,
    /// The prefix as a URI scheme's start (lower case, only characters schemes allow).
    scheme: String,
}

impl Naming {
    /// The naming of a server whose tools have `prefix`.
    pub fn new(prefix: &str) -> Self {
        let mut scheme: String = prefix
            .chars()
            .map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9' | '.' | '-') => c,
                _ => '-',
            })
            .collect();
        if !scheme.starts_with(|c: char| c.is_ascii_lowercase()) && !scheme.is_empty() {
            scheme.insert(0, 'x');
        }
        Self {
            prefix: prefix.to_owned(),
            scheme,
        }
    }

    /// Whether names and URIs are the upstream's own (`tool_prefix = ""`).
    pub fn keeps_names(&self) -> bool {
        self.prefix.is_empty()
    }

    /// The name agents see for prompt `name`.
    pub fn prompt(&self, name: &str) -> String {
        exposed_name(&self.prefix, name)
    }

    /// The upstream's own name of the prompt agents call `exposed`, if it is one of its names.
    pub fn own_prompt<'a>(&self, exposed: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            return Some(exposed);
        }
        exposed
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(EXPOSED_NAME_SEPARATOR)
    }

    /// The URI (or URI template) agents see for the upstream's `uri`.
    pub fn uri(&self, uri: &str) -> String {
        if self.scheme.is_empty() {
            uri.to_owned()
        } else {
            format!("{}+{uri}", self.scheme)
        }
    }

    /// The upstream's own form of a URI in this naming, if it is one.
    pub fn own_uri<'a>(&self, exposed: &'a str) -> Option<&'a str> {
        if self.scheme.is_empty() {
            return None;
        }
        let (scheme, rest) = exposed.split_at_checked(self.scheme.len())?;
        scheme
            .eq_ignore_ascii_case(&self.scheme)
            .then_some(rest)?
            .strip_prefix('+')
    }
}

/// Whether `uri` is one of the URIs RFC 6570 template `template` expands to: its literal
/// parts in order, each expression (`{name}`, `{+path}`, `{?q}`, ...) standing for a
/// non-empty run of characters.
pub fn template_matches(template: &str, uri: &str) -> bool {
    let mut pattern = String::from("^");
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return false;
        };
        pattern.push_str(&regex::escape(&rest[..open]));
        pattern.push_str("(.+?)");
        rest = &rest[open + close + 1..];
    }
    pattern.push_str(&regex::escape(rest));
    pattern.push('$');
    regex::RegexBuilder::new(&pattern)
        .size_limit(MAX_TEMPLATE_REGEX_BYTES)
        .build()
        .is_ok_and(|matcher| matcher.is_match(uri))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_uris_get_the_prefix_and_lose_it_again() {
        let docs = Naming::new("Docs_1");
        assert_eq!(docs.prompt("greet"), "Docs_1__greet");
        assert_eq!(docs.own_prompt("Docs_1__greet"), Some("greet"));
        assert_eq!(docs.own_prompt("other__greet"), None);
        assert_eq!(docs.uri("file:///a.txt"), "docs-1+file:///a.txt");
        assert_eq!(docs.own_uri("docs-1+file:///a.txt"), Some("file:///a.txt"));
        assert_eq!(docs.own_uri("file:///a.txt"), None);
        let digits = Naming::new("1password");
        assert_eq!(digits.uri("op://v/i"), "x1password+op://v/i");
        let bare = Naming::new("");
        assert_eq!(bare.prompt("greet"), "greet");
        assert_eq!(bare.own_prompt("greet"), Some("greet"));
        assert_eq!(bare.uri("file:///a.txt"), "file:///a.txt");
        assert_eq!(bare.own_uri("file:///a.txt"), None);
    }

    #[test]
    fn uris_match_the_templates_they_expand() {
        assert!(template_matches(
            "test://template/{id}/data",
            "test://template/42/data"
        ));
        assert!(!template_matches(
            "test://template/{id}/data",
            "test://template//data"
        ));
        assert!(!template_matches(
            "test://template/{id}/data",
            "test://other/1/data"
        ));
        assert!(template_matches("file:///{+path}", "file:///a/b.txt"));
        assert!(template_matches("s://x.y{?q}", "s://x.y?q=1"));
        // Regex syntax in the literals is literal.
        assert!(!template_matches("s://a.b/{x}", "s://aXb/1"));
        assert!(!template_matches("s://{unclosed", "s://anything"));
    }
}

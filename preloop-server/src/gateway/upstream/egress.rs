//! What organizations' upstream servers may reach: the programs they may start and the
//! network addresses they may connect to.
//!
//! The operator's upstreams (the configuration file's, and those the default organization's
//! administrators register) may run any program and reach any address: the operator already
//! runs the server. Every other organization is a tenant and gets only what the operator
//! allows in `[security]`:
//!
//! - **Programs.** A tenant's stdio server must match an entry of `[[security.stdio_servers]]`
//!   exactly (program and arguments), and may set only the environment variables the entry
//!   names. Anything else would let a stranger run commands as the server's user.
//! - **Addresses.** A tenant's HTTP server must resolve to public addresses: loopback,
//!   private, link-local (cloud metadata at 169.254.169.254), shared, multicast and reserved
//!   ranges are refused, as literals in the URL and after every DNS resolution (each new
//!   connection resolves through [`GuardedResolver`], so DNS rebinding does not help), unless
//!   a range is listed in `[security] allowed_networks`. Upstream clients never follow
//!   redirects, and tenants' clients ignore HTTP proxies (a proxy would resolve names itself).
//!
//! Every child process, the operator's included, gets an explicit environment: what its
//! configuration gives plus a minimal `PATH`, never the server's own (which holds
//! `SECRET_KEY`).

use crate::tenancy::is_operator;
use ipnet::IpNet;
use preloop_core::documents::{McpServer, McpTransport};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Most MCP servers an organization other than the default one may register.
pub const MAX_TENANT_SERVERS: usize = 50;

/// The `PATH` of a child process whose configuration sets none.
pub const CHILD_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// `[security]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySection {
    /// `[[security.stdio_servers]]`: the stdio servers organizations other than the default
    /// one may register (default: none).
    #[serde(default)]
    pub stdio_servers: Vec<AllowedStdioServer>,
    /// Address ranges (CIDR, e.g. `10.20.0.0/16`) other organizations' HTTP upstreams may
    /// reach although they are not public (default: none).
    #[serde(default)]
    pub allowed_networks: Vec<String>,
}

/// A stdio server tenants may register: exactly this program with exactly these arguments.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AllowedStdioServer {
    /// The program.
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables a tenant may set for it (values are the tenant's; no others).
    #[serde(default)]
    pub env: Vec<String>,
}

/// Why a server may not be registered or started for its organization: what it asked for that
/// the operator does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// A tenant asked for a program the operator did not allow.
    #[error(
        "this organization may not start programs: stdio MCP servers come from the operator (`[[security.stdio_servers]]` lists those other organizations may use; `{command}` with these arguments is not one)"
    )]
    Program {
        /// The program asked for.
        command: String,
    },
    /// A tenant set an environment variable the allowed entry does not name.
    #[error(
        "environment variable `{name}` may not be set for `{command}` (the operator allows: {allowed})"
    )]
    Variable {
        /// The program.
        command: String,
        /// The variable.
        name: String,
        /// The variables the entry allows, comma-separated.
        allowed: String,
    },
    /// A tenant's URL points at an address that is not public.
    #[error(
        "`{host}` is a loopback, private, link-local or reserved address; this organization's servers may reach only public addresses"
    )]
    Address {
        /// The host as written.
        host: String,
    },
}

/// Why `[security]` cannot be put in force.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityConfigError {
    /// An `allowed_networks` entry is not a CIDR range.
    #[error("[security] allowed_networks: `{text}` is not a CIDR range ({source})")]
    Network {
        /// The entry as written.
        text: String,
        /// Why it does not parse.
        #[source]
        source: ipnet::AddrParseError,
    },
    /// The HTTP client of upstream connections could not be built.
    #[error("cannot build the HTTP client of upstream servers: {source}")]
    Client {
        /// The client builder's error.
        #[source]
        source: reqwest::Error,
    },
}

/// The operator's rules for upstreams, and the HTTP clients that enforce them.
#[derive(Debug, Clone)]
pub struct Egress {
    stdio_servers: Arc<[AllowedStdioServer]>,
    reach: Reach,
    /// For the operator: pooled, and opening a connection per call.
    operator: Clients,
    /// For tenants: the same, resolving only to permitted addresses.
    tenant: Clients,
}

/// HTTP clients of upstream connections: no Nagle delay, and no redirects (a redirect could
/// replay an upstream's credentials to another origin, or lead a tenant's client inside).
/// `pooled` keeps connections; `fresh` opens one per call, as rmcp's default client does: a
/// server that does not set `TCP_NODELAY` holds the end of each response until the client's
/// delayed ACK (about 40 ms), and a pooled connection is only free again after that.
#[derive(Debug, Clone)]
struct Clients {
    pooled: reqwest::Client,
    fresh: reqwest::Client,
}

impl Clients {
    fn new(guard: Option<&GuardedResolver>) -> Result<Self, SecurityConfigError> {
        let build = |idle: usize| {
            let mut builder = reqwest::Client::builder()
                .tcp_nodelay(true)
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(idle)
                .pool_idle_timeout(Duration::from_secs(60));
            if let Some(guard) = guard {
                builder = builder.no_proxy().dns_resolver(Arc::new(guard.clone()));
            }
            builder
                .build()
                .map_err(|source| SecurityConfigError::Client { source })
        };
        Ok(Self {
            pooled: build(usize::MAX)?,
            fresh: build(0)?,
        })
    }

    fn get(&self, keep_alive: bool) -> reqwest::Client {
        if keep_alive {
            self.pooled.clone()
        } else {
            self.fresh.clone()
        }
    }
}

impl Egress {
    /// The rules of `section`; a range that does not parse is an error.
    pub fn new(section: &SecuritySection) -> Result<Self, SecurityConfigError> {
        let allowed_networks: Arc<[IpNet]> = section
            .allowed_networks
            .iter()
            .map(|text| {
                text.parse::<IpNet>()
                    .map_err(|source| SecurityConfigError::Network {
                        text: text.clone(),
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        // The host's own addresses, public ones included: a tenant's upstream on one of them
        // would reach services only the outside firewall keeps away, or the gateway itself.
        let own: Arc<[IpAddr]> = if_addrs::get_if_addrs()
            .map(|interfaces| interfaces.iter().map(if_addrs::Interface::ip).collect())
            .unwrap_or_default();
        let reach = Reach {
            allowed: allowed_networks,
            own,
        };
        let guard = GuardedResolver {
            reach: reach.clone(),
        };
        Ok(Self {
            stdio_servers: section.stdio_servers.clone().into(),
            reach,
            operator: Clients::new(None)?,
            tenant: Clients::new(Some(&guard))?,
        })
    }

    /// Whether `server` may be registered and started for its organization.
    pub fn check(&self, server: &McpServer) -> Result<(), EgressError> {
        if is_operator(&server.organization_id) {
            return Ok(());
        }
        match &server.transport {
            McpTransport::Stdio { command, args, env } => {
                let entry = self
                    .stdio_servers
                    .iter()
                    .find(|allowed| allowed.command == *command && allowed.args == *args)
                    .ok_or_else(|| EgressError::Program {
                        command: command.clone(),
                    })?;
                match env.keys().find(|name| !entry.env.contains(name)) {
                    Some(name) => Err(EgressError::Variable {
                        command: command.clone(),
                        name: name.clone(),
                        allowed: if entry.env.is_empty() {
                            "none".to_owned()
                        } else {
                            entry.env.join(", ")
                        },
                    }),
                    None => Ok(()),
                }
            }
            McpTransport::Http { url, .. } => self.check_url(url),
        }
    }

    /// Resolves a tenant's HTTP server's host now and refuses it if none of its addresses is
    /// permitted: the same answer the guarded resolver gives, with a message people can read
    /// (connection errors bury it). Connections still resolve through the guard.
    pub async fn check_resolved(&self, server: &McpServer) -> Result<(), EgressError> {
        self.check(server)?;
        let McpTransport::Http { url, .. } = &server.transport else {
            return Ok(());
        };
        if is_operator(&server.organization_id) {
            return Ok(());
        }
        let Some(host) = reqwest::Url::parse(url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
        else {
            return Ok(());
        };
        match self.reach.resolve(&host).await {
            // Unresolvable: the connection fails and says so.
            Ok(_) | Err(Resolution::Failed(_)) => Ok(()),
            Err(Resolution::Refused(error)) => Err(error),
        }
    }

    /// Whether an organization may send requests to `url` (its issue trackers): the operator
    /// anywhere, tenants only to permitted literal addresses (names are checked when they
    /// resolve, by the tenant client's resolver).
    pub fn permit_url(&self, organization_id: &str, url: &str) -> Result<(), EgressError> {
        if is_operator(organization_id) {
            Ok(())
        } else {
            self.check_url(url)
        }
    }

    /// Refuses a URL whose host is a literal address that is not permitted (names are checked
    /// when they resolve).
    fn check_url(&self, url: &str) -> Result<(), EgressError> {
        let Ok(parsed) = reqwest::Url::parse(url) else {
            // Not a URL: the server fails to connect, and says so.
            return Ok(());
        };
        let address = match parsed.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        if self.reach.permits(address) {
            Ok(())
        } else {
            Err(EgressError::Address {
                host: parsed.host_str().unwrap_or_default().to_owned(),
            })
        }
    }

    /// The HTTP client for an organization's upstream (pooled when `keep_alive`).
    pub fn http_client(&self, organization_id: &str, keep_alive: bool) -> reqwest::Client {
        if is_operator(organization_id) {
            self.operator.get(keep_alive)
        } else {
            self.tenant.get(keep_alive)
        }
    }
}

/// The environment of a child process: exactly `configured`, plus [`CHILD_PATH`] unless it
/// sets `PATH`.
pub fn child_environment(configured: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut environment = BTreeMap::from([("PATH".to_owned(), CHILD_PATH.to_owned())]);
    environment.extend(configured.clone());
    environment
}

/// Where tenants' upstreams may connect: public addresses that are not the host's own, and
/// the ranges the operator allows.
#[derive(Debug, Clone)]
struct Reach {
    allowed: Arc<[IpNet]>,
    own: Arc<[IpAddr]>,
}

/// Why a name yields no address a tenant may use.
enum Resolution {
    /// It does not resolve.
    Failed(std::io::Error),
    /// It resolves only to addresses tenants may not reach.
    Refused(EgressError),
}

impl Reach {
    /// Whether a tenant may connect to `address`.
    fn permits(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        (is_public(address) && !self.own.contains(&address))
            || self
                .allowed
                .iter()
                .any(|network| network.contains(&address))
    }

    /// The addresses of `host` a tenant may connect to (at least one, or why not).
    async fn resolve(&self, host: &str) -> Result<Vec<SocketAddr>, Resolution> {
        let permitted: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(Resolution::Failed)?
            .filter(|address| self.permits(address.ip()))
            .collect();
        if permitted.is_empty() {
            return Err(Resolution::Refused(EgressError::Address {
                host: host.to_owned(),
            }));
        }
        Ok(permitted)
    }
}

/// Resolves host names, keeping only addresses tenants may reach.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    reach: Reach,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let reach = self.reach.clone();
        Box::pin(async move {
            match reach.resolve(name.as_str()).await {
                Ok(permitted) => Ok(Box::new(permitted.into_iter()) as Addrs),
                Err(Resolution::Failed(error)) => {
                    Err(Box::new(error) as Box<dyn std::error::Error + Send + Sync>)
                }
                Err(Resolution::Refused(error)) => {
                    Err(Box::new(error) as Box<dyn std::error::Error + Send + Sync>)
                }
            }
        })
    }
}

/// Whether `address` is a public unicast address (not loopback, private, link-local, shared,
/// documentation, benchmarking, multicast, reserved or unspecified; IPv4 inside IPv6 is
/// judged as IPv4).
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24.
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking, 198.18.0.0/15.
        || (a == 198 && (b == 18 || b == 19))
        // Reserved, 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    let embedded = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    // NAT64 (64:ff9b::/96) and IPv4-translated (::ffff:0:0/96) addresses embed an IPv4
    // address in their last 32 bits, 6to4 (2002::/16) in the 32 bits after the prefix.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || segments[..6] == [0, 0, 0, 0, 0xffff, 0] {
        return is_public_v4(embedded(segments[6], segments[7]));
    }
    if segments[0] == 0x2002 {
        return is_public_v4(embedded(segments[1], segments[2]));
    }
    // Teredo (2001::/32) hides its client's address: not reachable by tenants.
    if segments[0] == 0x2001 && segments[1] == 0 {
        return false;
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local, fc00::/7.
        || (segments[0] & 0xfe00) == 0xfc00
        // Link-local, fe80::/10, and the deprecated site-local, fec0::/10.
        || (segments[0] & 0xffc0) == 0xfe80
        || (segments[0] & 0xffc0) == 0xfec0
        // Documentation, 2001:db8::/32.
        || (segments[0] == 0x2001 && segments[1] == 0x0db8)
        // IPv4-compatible (deprecated) and other addresses of ::/96.
        || segments[..6] == [0, 0, 0, 0, 0, 0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::DEFAULT_ORGANIZATION;
    use chrono::Utc;
    use uuid::Uuid;

    fn server(organization_id: &str, transport: McpTransport) -> McpServer {
        McpServer {
            id: Uuid::new_v4(),
            organization_id: organization_id.to_owned(),
            name: "s".to_owned(),
            transport,
            tool_prefix: None,
            enabled: true,
            timeout_seconds: 60,
            max_concurrency: 32,
            keep_alive: false,
            forward_unlisted: false,
            last_scanned_at: None,
            created_at: Utc::now(),
        }
    }

    fn stdio(command: &str, args: &[&str], env: &[(&str, &str)]) -> McpTransport {
        McpTransport::Stdio {
            command: command.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn http(url: &str) -> McpTransport {
        McpTransport::Http {
            url: url.to_owned(),
            headers: BTreeMap::new(),
        }
    }

    fn egress() -> Egress {
        Egress::new(&SecuritySection {
            stdio_servers: vec![AllowedStdioServer {
                command: "/usr/bin/mcp-time".to_owned(),
                args: vec!["--utc".to_owned()],
                env: vec!["TZ".to_owned()],
            }],
            allowed_networks: vec!["10.20.0.0/16".to_owned()],
        })
        .unwrap()
    }

    #[test]
    fn tenants_start_only_the_programs_the_operator_lists() {
        let egress = egress();
        let tenant = "9b1c-tenant";
        assert!(
            egress
                .check(&server(
                    DEFAULT_ORGANIZATION,
                    stdio("/bin/sh", &["-c", "env"], &[])
                ))
                .is_ok()
        );
        assert!(matches!(
            egress.check(&server(tenant, stdio("/bin/sh", &["-c", "env"], &[]))),
            Err(EgressError::Program { .. })
        ));
        // The listed program with other arguments is another program.
        assert!(
            egress
                .check(&server(tenant, stdio("/usr/bin/mcp-time", &[], &[])))
                .is_err()
        );
        assert!(
            egress
                .check(&server(
                    tenant,
                    stdio("/usr/bin/mcp-time", &["--utc"], &[("TZ", "UTC")])
                ))
                .is_ok()
        );
        assert!(matches!(
            egress.check(&server(
                tenant,
                stdio("/usr/bin/mcp-time", &["--utc"], &[("LD_PRELOAD", "/x.so")])
            )),
            Err(EgressError::Variable { .. })
        ));
    }

    #[test]
    fn tenants_reach_only_public_addresses_unless_allowed() {
        let egress = egress();
        let tenant = "9b1c-tenant";
        for url in [
            "http://127.0.0.1:9000/mcp",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/mcp",
            "http://[::ffff:127.0.0.1]/mcp",
            "http://10.0.0.1/mcp",
            "http://192.168.1.1/",
            "http://0.0.0.0/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://100.64.0.1/",
            // 6to4 of 127.0.0.1, IPv4-translated 127.0.0.1, and Teredo.
            "http://[2002:7f00:1::1]/",
            "http://[::ffff:0:7f00:1]/",
            "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
        ] {
            assert!(
                matches!(
                    egress.check(&server(tenant, http(url))),
                    Err(EgressError::Address { .. })
                ),
                "{url}"
            );
            assert!(
                egress
                    .check(&server(DEFAULT_ORGANIZATION, http(url)))
                    .is_ok()
            );
        }
        for url in [
            "http://10.20.3.4/mcp",
            "https://93.184.215.14/",
            "https://mcp.example.com/mcp",
        ] {
            assert!(egress.check(&server(tenant, http(url))).is_ok(), "{url}");
        }
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused() {
        let reach = |allowed: Vec<IpNet>| GuardedResolver {
            reach: Reach {
                allowed: allowed.into(),
                own: Arc::from(Vec::new()),
            },
        };
        let resolver = reach(Vec::new());
        let error = resolver
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost is refused");
        assert!(error.to_string().contains("private"), "{error}");
        let allowed = reach(vec!["127.0.0.0/8".parse().unwrap()]);
        let addresses: Vec<SocketAddr> = allowed
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addresses.iter().all(|a| a.ip().is_loopback()));
    }

    #[test]
    fn the_hosts_own_addresses_are_not_public_to_tenants() {
        let reach = Reach {
            allowed: Arc::from(Vec::new()),
            own: Arc::from(vec!["93.184.215.14".parse::<IpAddr>().unwrap()]),
        };
        assert!(!reach.permits("93.184.215.14".parse().unwrap()));
        assert!(!reach.permits("::ffff:93.184.215.14".parse().unwrap()));
        assert!(reach.permits("93.184.215.15".parse().unwrap()));
    }

    #[test]
    fn children_get_only_their_configured_environment() {
        let environment = child_environment(&BTreeMap::from([("TZ".to_owned(), "UTC".to_owned())]));
        assert_eq!(environment.len(), 2);
        assert_eq!(environment["PATH"], CHILD_PATH);
        let custom = child_environment(&BTreeMap::from([(
            "PATH".to_owned(),
            "/opt/bin".to_owned(),
        )]));
        assert_eq!(custom["PATH"], "/opt/bin");
    }
}

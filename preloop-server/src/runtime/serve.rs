//! `preloop serve`: open the store, bootstrap, apply the configuration, serve until a signal.

use crate::app::{
    Accounts, Approvals, Organizations, Policies, Replicas, Servers, Trackers, rewrite_stored,
};
use crate::auth::Authenticator;
use crate::auth::jwks::{Jwks, JwksError};
use crate::auth::limits::RateLimits;
use crate::auth::throttle::Throttles;
use crate::auth::tokens::{KeyError, TokenKeys};
use crate::channels::{Channels, ChannelsError};
use crate::config::Settings;
use crate::events::{EventBus, PublishingAudit, PublishingNotifier};
use crate::gateway::builtins;
use crate::gateway::sessions::SESSION_RETENTION;
use crate::gateway::upstream::Upstreams;
use crate::gateway::upstream::egress::SecurityConfigError;
use crate::router::app;
use crate::runtime::bootstrap::bootstrap;
use crate::runtime::startup::{ConfigReloads, ConfiguredServersError};
use crate::state::{AccountGuards, AppState, Shared};
use crate::tenancy::DEFAULT_ORGANIZATION;
use preloop_core::governor::{Governor, GovernorConfig, GovernorError};
use preloop_core::policy::GovernanceDocument;
use preloop_core::registry::Registry;
use preloop_core::store::{ApprovalStore, GroupCommitAudit};
use preloop_store::Database;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened.
    #[error(transparent)]
    Open(#[from] preloop_store::OpenError),
    /// Bootstrapping failed.
    #[error(transparent)]
    Bootstrap(#[from] crate::runtime::bootstrap::BootstrapError),
    /// The configured policy does not compile.
    #[error("the policy in the configuration file is invalid:\n{source}")]
    Policy {
        /// Why not.
        #[source]
        source: GovernorError,
    },
    /// The configuration file has approval policies but no `[policy]` to apply them with.
    #[error(
        "the policy in the configuration file is invalid:\n[[approval_policies]] are applied together with a [policy] section, and the file has none: add one (`[policy]` with `default = \"allow\"` keeps the default)"
    )]
    ApprovalPoliciesWithoutPolicy,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] preloop_core::store::StoreError),
    /// The built-in tools could not be registered.
    #[error(transparent)]
    Registry(#[from] preloop_core::registry::RegistryError),
    /// External sign-in (`[auth.jwks]`) is misconfigured.
    #[error("[auth.jwks]: {0}")]
    Auth(#[from] JwksError),
    /// The token signing key is unusable.
    #[error(transparent)]
    Secret(#[from] KeyError),
    /// An `[[mcp_servers]]` entry is incomplete.
    #[error(transparent)]
    Upstream(#[from] ConfiguredServersError),
    /// `[channels]` is misconfigured.
    #[error(transparent)]
    Channels(#[from] ChannelsError),
    /// `[security]` is misconfigured.
    #[error(transparent)]
    Security(#[from] SecurityConfigError),
    /// A `[[trackers]]` entry is invalid.
    #[error(transparent)]
    TrackerEntry(#[from] crate::config::TrackerEntryError),
    /// A `[[trackers]]` entry could not be applied.
    #[error("tracker `{name}`: {source}")]
    Tracker {
        /// The entry's name.
        name: String,
        /// Why not.
        #[source]
        source: crate::app::TrackerChangeError,
    },
    /// The address cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// How often due approval work (expiry, escalation) is claimed and applied.
const TICK_INTERVAL: Duration = Duration::from_secs(1);

/// Secrets and switches from the environment.
#[derive(Default)]
pub struct ServeOptions {
    /// `PRELOOP_ADMIN_API_KEY`.
    pub admin_api_key: Option<String>,
    /// `SECRET_KEY`.
    pub secret_key: Option<String>,
    /// `REGISTRATION_ENABLED` (default true).
    pub registration_enabled: bool,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("registration_enabled", &self.registration_enabled)
            .finish_non_exhaustive()
    }
}

/// The server, assembled and running its background work, but not listening yet.
pub struct Assembled {
    /// The routes, over the shared state.
    pub router: axum::Router,
    /// The shared state.
    pub state: AppState,
    /// Cancelling it ends background work and open MCP streams.
    pub shutdown: CancellationToken,
}

impl std::fmt::Debug for Assembled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Assembled")
    }
}

/// Runs the server until SIGINT/SIGTERM. In-flight requests finish; pending approvals stay
/// pending in the store.
pub async fn serve(mut settings: Settings, options: ServeOptions) -> Result<(), StartError> {
    // Bound first: a port in use fails fast, and a port chosen by the OS (`:0`) is known before
    // anything builds links with it.
    let listener = tokio::net::TcpListener::bind(settings.bind)
        .await
        .map_err(|source| StartError::Bind {
            address: settings.bind.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| StartError::Bind {
        address: settings.bind.to_string(),
        source,
    })?;
    if settings.file.server.public_url.is_none() {
        settings.public_url = format!("http://{local}");
    }
    let Assembled {
        router,
        state,
        shutdown,
    } = assemble(&settings, options).await?;
    tracing::info!(address = %local, "preloop listening; MCP endpoint at /mcp/v1");
    println!(
        "preloop listening on http://{local} (MCP endpoint: {}/mcp/v1)",
        settings.public_url
    );
    println!(
        "Console: {}/console/ (give yourself a sign-in: `preloop user create EMAIL --role admin --password-stdin`)",
        settings.public_url
    );
    let stop = shutdown.clone();
    let shutting_down = state.events.clone();
    // No Nagle delay: otherwise the end of each SSE response waits for the client's delayed ACK
    // (about 40 ms) whenever a client keeps its connection open between calls.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        shutting_down.system(None, "shutting_down", serde_json::Value::Null);
        stop.cancel();
    })
    .await
    .map_err(|source| StartError::Bind {
        address: local.to_string(),
        source,
    })
}

/// Opens the store, bootstraps it, loads every organization's configuration, starts the
/// upstream servers, channels and background work, and builds the routes: everything but
/// listening (tests and fuzz targets drive the router in process).
pub async fn assemble(settings: &Settings, options: ServeOptions) -> Result<Assembled, StartError> {
    let tokens = TokenKeys::load(options.secret_key, &settings.data_dir)?;
    let admin_api_key = options.admin_api_key;
    let database = Arc::new(Database::open(&settings.database_url).await?);
    tracing::info!(database = %database.redacted_url(), "database ready");
    if let Some(created) = bootstrap(&*database, admin_api_key).await? {
        print_bootstrap(settings, &created);
    }
    let channels = Arc::new(Channels::new(
        &settings.file.channels,
        &settings.public_url,
        database.clone(),
        tokens.clone(),
    )?);
    let events = EventBus::default();
    let registry = Arc::new(Registry::new());
    builtins::register(&registry)?;
    let governor = Arc::new(
        Governor::builder(registry)
            .store(database.clone())
            .audit(Arc::new(GroupCommitAudit::new(Arc::new(PublishingAudit {
                bus: events.clone(),
                inner: database.clone(),
            }))))
            .notifier(Arc::new(PublishingNotifier {
                bus: events.clone(),
                inner: channels.clone(),
            }))
            .decisions(Arc::new(
                crate::gateway::decisions::PooledDecisions::default(),
            ))
            .config(GovernorConfig::default())
            .build(),
    );
    apply_policy(settings, &database, &governor).await?;
    crate::runtime::startup::record_configured_servers(&settings.file.mcp_servers, &database)
        .await?;
    let egress = crate::gateway::upstream::egress::Egress::new(&settings.file.security)?;
    let upstreams = Arc::new(Upstreams::new(
        governor.registry().clone(),
        database.clone(),
        events.clone(),
        egress,
    ));
    let replicas = Replicas::new(database.clone());
    let trackers = Trackers::new(
        governor.clone(),
        database.clone(),
        Arc::new(upstreams.egress().clone()),
        replicas.clone(),
        events.clone(),
    );
    for entry in &settings.file.trackers {
        trackers
            .apply(DEFAULT_ORGANIZATION, entry.to_input()?)
            .await
            .map_err(|source| StartError::Tracker {
                name: entry.name.clone(),
                source,
            })?;
    }
    crate::runtime::startup::load_organizations(&database, &governor, &upstreams, &trackers)
        .await?;
    let shutdown = CancellationToken::new();
    spawn_background(&database, &governor, &events, &shutdown);
    let syncing = trackers.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = stop.cancelled() => {}
            () = syncing.run() => {}
        }
    });
    let reloads = ConfigReloads {
        database: database.clone(),
        governor: governor.clone(),
        upstreams: upstreams.clone(),
        trackers: trackers.clone(),
    };
    follow(&database, reloads.clone(), &shutdown);
    let mut authenticator = Authenticator::new(database.clone(), tokens.clone());
    if let Some(config) = settings.file.auth.jwks.clone() {
        let jwks = Jwks::load(config).await?;
        authenticator = authenticator.with_jwks(Arc::new(jwks));
    }
    let approvals = Approvals::new(governor.clone());
    let policies = Policies::new(governor.clone(), database.clone(), replicas.clone());
    let servers = Servers::new(
        governor.clone(),
        database.clone(),
        upstreams.clone(),
        replicas.clone(),
    );
    let throttles = Arc::new(Throttles::default());
    let guards = Arc::new(AccountGuards {
        throttles: throttles.clone(),
        authenticator: authenticator.clone(),
    });
    let accounts = Accounts::new(
        database.clone(),
        governor.clone(),
        replicas.clone(),
        guards.clone(),
    );
    let organizations = Organizations::new(
        database.clone(),
        replicas.clone(),
        guards,
        Arc::new(reloads),
    );
    let state = AppState::new(Shared {
        governor,
        store: database.clone(),
        upstreams,
        authenticator,
        tokens,
        public_url: settings.public_url.clone(),
        registration_enabled: options.registration_enabled,
        approvals,
        policies,
        servers,
        accounts,
        organizations,
        trackers,
        replicas,
        limits: RateLimits::new(settings.requests_per_second, settings.burst),
        channels: channels.clone(),
        events: events.clone(),
        websocket_heartbeat: settings.websocket_heartbeat,
        throttles,
    });
    channels.start(&state.channel_callbacks(), &shutdown);
    housekeeping(&state, &shutdown);
    let router = app(
        state.clone(),
        settings.allowed_hosts.clone(),
        shutdown.clone(),
    );
    Ok(Assembled {
        router,
        state,
        shutdown,
    })
}

fn print_bootstrap(settings: &Settings, created: &crate::runtime::bootstrap::Bootstrapped) {
    println!(
        "Created organization `{DEFAULT_ORGANIZATION}` and admin user {}.",
        created.admin.email
    );
    if created.from_environment {
        println!("The admin API key is the one in PRELOOP_ADMIN_API_KEY.");
        return;
    }
    println!(
        "Admin API key (shown once, store it now): {}",
        created.api_key
    );
    println!("Connect Claude Code:");
    println!(
        "  claude mcp add --transport http --header \"Authorization: Bearer {}\" preloop {}/mcp/v1",
        created.api_key, settings.public_url
    );
}

/// Applies the file's policy and approval policies (idempotently). Approval policies without a
/// `[policy]` would be read and silently not applied: that is an error.
async fn apply_policy(
    settings: &Settings,
    database: &Database,
    governor: &Governor,
) -> Result<(), StartError> {
    let file = &settings.file;
    // Without a policy in the file, the stored one is put in force with every other
    // organization's (`startup::load_organizations`), migrated and failing closed if invalid.
    let Some(policy) = &file.policy else {
        if !file.approval_policies.is_empty() {
            return Err(StartError::ApprovalPoliciesWithoutPolicy);
        }
        return Ok(());
    };
    let document = GovernanceDocument {
        policy: policy.clone(),
        approval_policies: file.approval_policies.clone(),
    };
    governor
        .set_policy(DEFAULT_ORGANIZATION, &document)
        .map_err(|source| StartError::Policy { source })?;
    rewrite_stored(database, DEFAULT_ORGANIZATION, |stored| {
        (stored.as_ref() != Some(&document)).then(|| (document.clone(), Vec::new()))
    })
    .await?;
    Ok(())
}

/// Once a minute: drops the rate-limit buckets of idle principals and the MCP sessions idle for
/// longer than [`SESSION_RETENTION`].
fn housekeeping(state: &AppState, shutdown: &CancellationToken) {
    let state = state.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = interval.tick() => {
                    state.limits.forget_idle();
                    state.throttles.forget_idle();
                    let cutoff = chrono::Utc::now()
                        - chrono::Duration::from_std(SESSION_RETENTION).unwrap_or_default();
                    if let Err(error) = state.store.prune_sessions(cutoff).await {
                        tracing::warn!(%error, "pruning idle MCP sessions failed");
                    }
                }
            }
        }
    });
}

/// What a replica does with notifications on one PostgreSQL channel.
pub(crate) trait Follower: Send + Sync + 'static {
    /// The channel.
    const CHANNEL: &'static str;
    /// One notification's payload.
    fn on_payload(&self, payload: String) -> impl Future<Output = ()> + Send;
    /// The subscription was renewed: notifications in between went unseen.
    fn on_renewed(&self) -> impl Future<Output = ()> + Send;
}

/// Follows `F::CHANNEL` until shutdown (nothing to follow on SQLite); a lost or failed
/// subscription is renewed every 5 s until it works, then `on_renewed` catches up.
fn follow<F: Follower>(database: &Arc<Database>, follower: F, shutdown: &CancellationToken) {
    let (database, stop) = (database.clone(), shutdown.clone());
    tokio::spawn(async move {
        let mut renewed = false;
        loop {
            let subscription = tokio::select! {
                () = stop.cancelled() => return,
                subscription = database.subscribe(F::CHANNEL) => subscription,
            };
            let mut subscription = match subscription {
                Ok(Some(subscription)) => subscription,
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(%error, channel = F::CHANNEL, "cannot subscribe; retrying in 5 s");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    }
                }
            };
            if renewed {
                follower.on_renewed().await;
            }
            renewed = true;
            loop {
                let next = tokio::select! {
                    () = stop.cancelled() => return,
                    next = subscription.next() => next,
                };
                match next {
                    Some(Ok(payload)) => follower.on_payload(payload).await,
                    Some(Err(error)) => {
                        tracing::warn!(%error, channel = F::CHANNEL, "bad notification")
                    }
                    None => {
                        tracing::warn!(
                            channel = F::CHANNEL,
                            "lost the notification connection; renewing"
                        );
                        break;
                    }
                }
            }
        }
    });
}

/// Decisions made on other replicas wake this replica's blocked calls, and reach this replica's
/// WebSocket subscribers.
struct ApprovalWakeups {
    governor: Arc<Governor>,
    database: Arc<Database>,
    events: EventBus,
}

impl Follower for ApprovalWakeups {
    const CHANNEL: &'static str = preloop_store::APPROVAL_CHANNEL;

    async fn on_payload(&self, payload: String) {
        let id = match uuid::Uuid::parse_str(&payload) {
            Ok(id) => id,
            Err(error) => {
                tracing::warn!(%error, "bad approval notification");
                return;
            }
        };
        self.governor.wake(id);
        if self.events.has_subscribers()
            && let Ok(Some(request)) = self.database.find_request(id).await
        {
            self.events.approval("changed", &request);
        }
    }

    async fn on_renewed(&self) {
        self.governor.wake_all();
    }
}

/// Due-work ticks and, on PostgreSQL, wake-ups from other replicas.
fn spawn_background(
    database: &Arc<Database>,
    governor: &Arc<Governor>,
    events: &EventBus,
    shutdown: &CancellationToken,
) {
    let ticker = governor.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(TICK_INTERVAL);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = interval.tick() => {
                    if let Err(error) = ticker.tick_due(100).await {
                        tracing::warn!(%error, "applying due approval work failed");
                    }
                }
            }
        }
    });
    follow(
        database,
        ApprovalWakeups {
            governor: governor.clone(),
            database: database.clone(),
            events: events.clone(),
        },
        shutdown,
    );
}

async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

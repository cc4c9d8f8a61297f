//! The `preloop` command.

use clap::{Parser, Subcommand, ValueEnum};
use preloop_core::policy::Format;
use preloop_server::config::{ConfigError, ConfigFile, Overrides, Settings};
use preloop_server::runtime::commands::{self, CommandError, CommandResult};
use preloop_server::runtime::serve::StartError;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "preloop",
    version,
    about = "Governance layer for AI agents: policy, human approval and audit for every tool call"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Location {
    /// Data directory (SQLite database and state).
    #[arg(long, env = "PRELOOP_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL (default: SQLite in the data directory).
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Configuration file (TOML).
    #[arg(long, env = "PRELOOP_CONFIG", global = true)]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        #[command(flatten)]
        location: Location,
        /// Listen address.
        #[arg(long, env = "PRELOOP_BIND")]
        bind: Option<String>,
        /// Log format.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate {
        #[command(flatten)]
        location: Location,
    },
    /// Manage the policy.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
        #[command(flatten)]
        location: Location,
        /// Organization.
        #[arg(long, global = true, default_value = "default")]
        org: String,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
        #[command(flatten)]
        location: Location,
        /// Organization.
        #[arg(long, global = true, default_value = "default")]
        org: String,
    },
    /// Manage API keys.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
        #[command(flatten)]
        location: Location,
        /// Organization.
        #[arg(long, global = true, default_value = "default")]
        org: String,
    },
    /// Synchronize issue trackers into the index now (the configuration file's `[[trackers]]`
    /// are applied first).
    Sync {
        #[command(flatten)]
        location: Location,
        /// Only this tracker (by name).
        #[arg(long)]
        tracker: Option<String>,
        /// Organization.
        #[arg(long, default_value = "default")]
        org: String,
    },
    /// Inspect the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
        #[command(flatten)]
        location: Location,
        /// Organization.
        #[arg(long, global = true, default_value = "default")]
        org: String,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy file (TOML or YAML) and store it; applying the same file again changes nothing.
    Apply {
        /// The policy file.
        file: PathBuf,
    },
    /// Explain the decision for a hypothetical call.
    Test {
        /// Exposed tool name, e.g. `github__create_issue`.
        tool: String,
        /// Arguments as JSON.
        #[arg(long, default_value = "{}")]
        args: String,
        /// A role of the caller (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// E-mail of the caller.
        #[arg(long)]
        user: Option<String>,
        /// Test this file instead of the stored policy.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Print the stored policy.
    Export {
        /// Output format.
        #[arg(long, value_enum, default_value = "toml")]
        format: ExportFormat,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Toml,
    Yaml,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; with --password-stdin the first line of standard input is the password.
    Create {
        /// E-mail address (the sign-in name).
        email: String,
        /// A role (repeatable): admin, approver, member, agent.
        #[arg(long = "role", default_value = "member")]
        roles: Vec<String>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum ApikeyCommand {
    /// Create an API key for a user; the secret is printed once.
    Create {
        /// The user's e-mail address.
        #[arg(long)]
        user: String,
        /// A name for the key.
        #[arg(long)]
        name: String,
        /// Lifetime, e.g. `30d`, `12h`.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<std::time::Duration>,
    },
    /// Revoke an API key.
    Revoke {
        /// The key's id.
        id: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the hash chain; exits non-zero at the first broken link.
    Verify,
    /// Print every event as a JSON line.
    Export,
}

/// Why a command failed: printed as `error: ...`, with exit code 1.
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// The configuration file or a setting is unusable.
    #[error(transparent)]
    Config {
        /// What is wrong.
        #[from]
        source: ConfigError,
    },
    /// The database cannot be opened.
    #[error(transparent)]
    Open {
        /// Why.
        #[from]
        source: preloop_store::OpenError,
    },
    /// The server did not start, or stopped with an error.
    #[error(transparent)]
    Serve {
        /// Why.
        #[from]
        source: StartError,
    },
    /// The password could not be read from standard input.
    #[error("{source}")]
    Stdin {
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// An administrative command failed.
    #[error(transparent)]
    Command(#[from] CommandError),
}

async fn open(location: Location) -> Result<preloop_store::Database, CliError> {
    let settings = settings(location, None)?;
    Ok(preloop_store::Database::open(&settings.database_url).await?)
}

fn settings(location: Location, bind: Option<String>) -> Result<Settings, CliError> {
    let file = match &location.config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    let overrides = Overrides {
        bind,
        data_dir: location.data_dir,
        database_url: location.database_url,
    };
    Ok(Settings::resolve(file, overrides)?)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let outcome: CommandResult = match cli.command {
        Command::Serve {
            location,
            bind,
            log_format,
        } => {
            init_logging(log_format);
            let settings = settings(location, bind)?;
            let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            let options = preloop_server::runtime::serve::ServeOptions {
                admin_api_key: env("PRELOOP_ADMIN_API_KEY"),
                secret_key: env("SECRET_KEY"),
                registration_enabled: !matches!(
                    env("REGISTRATION_ENABLED").as_deref(),
                    Some("false" | "0" | "no")
                ),
            };
            preloop_server::runtime::serve::serve(settings, options).await?;
            return Ok(());
        }
        Command::Sync {
            location,
            tracker,
            org,
        } => {
            init_logging(LogFormat::Text);
            let settings = settings(location, None)?;
            let database =
                std::sync::Arc::new(preloop_store::Database::open(&settings.database_url).await?);
            commands::sync(database, &settings, &org, tracker.as_deref()).await
        }
        Command::Migrate { location } => {
            let database = open(location).await?;
            println!("database at {} is up to date", database.redacted_url());
            return Ok(());
        }
        Command::Policy {
            command,
            location,
            org,
        } => {
            let database = open(location).await?;
            match command {
                PolicyCommand::Apply { file } => {
                    commands::policy_apply(&database, &org, &file).await
                }
                PolicyCommand::Test {
                    tool,
                    args,
                    roles,
                    user,
                    file,
                } => {
                    let call = commands::TestCall {
                        tool: &tool,
                        arguments: &args,
                        roles,
                        user,
                        file: file.as_deref(),
                    };
                    commands::policy_test(&database, &org, call).await
                }
                PolicyCommand::Export { format } => {
                    let format = match format {
                        ExportFormat::Toml => Format::Toml,
                        ExportFormat::Yaml => Format::Yaml,
                    };
                    commands::policy_export(&database, &org, format).await
                }
            }
        }
        Command::User {
            command:
                UserCommand::Create {
                    email,
                    roles,
                    password_stdin,
                },
            location,
            org,
        } => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|source| CliError::Stdin { source })?;
                Some(line.trim_end_matches(['\n', '\r']).to_owned())
            } else {
                None
            };
            let database = open(location).await?;
            commands::user_create(&database, &org, &email, roles, password).await
        }
        Command::Apikey {
            command,
            location,
            org,
        } => {
            let database = open(location).await?;
            match command {
                ApikeyCommand::Create {
                    user,
                    name,
                    expires_in,
                } => commands::apikey_create(&database, &user, &name, expires_in).await,
                ApikeyCommand::Revoke { id } => commands::apikey_revoke(&database, &org, &id).await,
            }
        }
        Command::Audit {
            command,
            location,
            org,
        } => {
            let database = open(location).await?;
            match command {
                AuditCommand::Verify => commands::audit_verify(&database, &org).await,
                AuditCommand::Export => commands::audit_export(&database, &org).await,
            }
        }
    };
    Ok(outcome?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

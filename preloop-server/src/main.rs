//! The `preloop` command.

use clap::{Parser, Subcommand, ValueEnum};
use preloop_server::config::{ConfigFile, Overrides, Settings};
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
    #[arg(long, env = "PRELOOP_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL (default: SQLite in the data directory).
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Configuration file (TOML).
    #[arg(long, env = "PRELOOP_CONFIG")]
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
}

fn settings(location: Location, bind: Option<String>) -> Result<Settings, String> {
    let file = match &location.config {
        Some(path) => ConfigFile::load(path).map_err(|e| e.to_string())?,
        None => ConfigFile::default(),
    };
    let overrides = Overrides {
        bind,
        data_dir: location.data_dir,
        database_url: location.database_url,
    };
    Settings::resolve(file, overrides).map_err(|e| e.to_string())
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

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve {
            location,
            bind,
            log_format,
        } => {
            init_logging(log_format);
            let settings = settings(location, bind)?;
            let admin_key = std::env::var("PRELOOP_ADMIN_API_KEY")
                .ok()
                .filter(|k| !k.is_empty());
            preloop_server::serve::serve(settings, admin_key)
                .await
                .map_err(|e| e.to_string())
        }
        Command::Migrate { location } => {
            let settings = settings(location, None)?;
            let database = preloop_store::Database::open(&settings.database_url)
                .await
                .map_err(|e| e.to_string())?;
            println!("database at {} is up to date", database.redacted_url());
            Ok(())
        }
    }
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
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

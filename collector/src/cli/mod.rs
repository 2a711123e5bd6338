//! The command line: `main.rs` parses [`Cli`] and calls [`run`]; each command group lives in a
//! module of its own and opens what it needs through the library.

mod cacti;
mod import;
mod kpi;
mod pki;
mod simulate;
mod token;

use crate::config::Settings;
use anyhow::{Context, Result};
use cacti::CactiCommand;
use clap::{Parser, Subcommand};
use import::ImportCommand;
use kpi::KpiCommand;
use pki::PkiCommand;
use simulate::SimulateCommand;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use token::TokenCommand;

#[derive(Parser)]
#[command(name = "netwarden-collector", version, about = "Netwarden collector")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector.
    Serve(ConfigArg),
    /// Check a configuration file (and the certificates it names) and exit.
    Validate(ConfigArg),
    /// Apply database migrations and exit.
    Migrate(ConfigArg),
    /// Scrape Cacti POI graphs (the `[cacti]` section) outside `serve`.
    Cacti {
        #[command(subcommand)]
        command: CactiCommand,
    },
    /// Compute KPIs from the flow files in `[kpi] directory` outside `serve`.
    Kpi {
        #[command(subcommand)]
        command: KpiCommand,
    },
    /// Import data from files.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Generate load and test data.
    Simulate {
        #[command(subcommand)]
        command: SimulateCommand,
    },
    /// Manage operator API tokens (the token is printed once; only its hash is stored).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage the certificate authority for agents and the collector.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
}

#[derive(clap::Args)]
struct ConfigArg {
    /// Configuration file (TOML).
    #[arg(
        long,
        short,
        env = "NETWARDEN_COLLECTOR_CONFIG",
        default_value = "/etc/netwarden/collector.toml"
    )]
    config: PathBuf,
}

/// Reads and checks the configuration file.
fn load(config: &Path) -> Result<Settings> {
    Ok(Settings::load(config)?)
}

/// Opens the configured database and brings its schema up to date.
async fn open_store(
    settings: &Settings,
    connections: u32,
) -> Result<Arc<dyn crate::storage::Store>> {
    let store = crate::storage::open(&settings.database, connections, settings.sqlite_sync).await?;
    store.migrate().await?;
    Ok(store)
}

/// An error that ends the process with its own exit status.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// Runs one parsed command.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve(&args.config).await,
        Command::Validate(args) => validate(&args.config),
        Command::Migrate(args) => migrate(&args.config).await,
        Command::Cacti { command } => cacti::run(command).await,
        Command::Kpi { command } => kpi::run(command).await,
        Command::Import { command } => import::run(command).await,
        Command::Simulate { command } => simulate::run(command).await,
        Command::Token { command } => token::run(command).await,
        Command::Pki { command } => pki::run(command).await,
    }
}

async fn serve(config: &Path) -> Result<()> {
    let settings = load(config)?;
    netwarden_shared::logging::init(&settings.log);
    let shutdown = netwarden_shared::shutdown::on_signal();
    let open_files = netwarden_shared::limits::raise_open_files();
    tracing::info!(open_files = ?open_files, "open-files limit");
    let running = crate::app::start(&settings, shutdown)
        .await
        .with_context(|| format!("cannot start the collector ({})", config.display()))?;
    running.wait().await.map_err(anyhow::Error::msg)
}

fn validate(config: &Path) -> Result<()> {
    let settings = load(config)?;
    println!(
        "{}: OK (gRPC {}, HTTP {}, database {})",
        config.display(),
        settings.grpc_listen,
        settings.http_listen,
        settings.database.describe()
    );
    let now = chrono::Utc::now().timestamp();
    for (what, path) in [
        ("the CA certificate", &settings.tls.ca),
        ("the server certificate", &settings.tls.cert),
    ] {
        if let Some(warning) = netwarden_shared::tls::expiry_warning(what, path, now) {
            println!("{warning}");
        }
    }
    Ok(())
}

async fn migrate(config: &Path) -> Result<()> {
    let settings = load(config)?;
    netwarden_shared::logging::init(&settings.log);
    let store = crate::storage::open(&settings.database, 1, settings.sqlite_sync).await?;
    let applied = store.migrate().await?;
    if applied.is_empty() {
        println!("database is up to date");
    }
    for name in applied {
        println!("applied {name}");
    }
    Ok(())
}

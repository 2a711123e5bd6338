//! `netwarden`, the operator's command line (as Alertmanager's `amtool`): devices, anomalies,
//! silences, agents and the fleet plan of a collector, over its REST API with a token from a config file or the
//! environment. Exit codes are part of the interface (see [`exit`]).

mod api;
mod commands;
mod config;
mod exit;
mod output;
mod plan;

use clap::{Args, Parser, Subcommand};
use output::Format;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "netwarden",
    version,
    about = "Operate a Netwarden collector from the shell",
    after_help = exit::HELP
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// Config file (TOML: url, token or token_file, ca_file, timeout_secs). Default: the
    /// first of $XDG_CONFIG_HOME/netwarden/cli.toml, ~/.config/netwarden/cli.toml and
    /// /etc/netwarden/cli.toml that exists. NETWARDEN_URL, NETWARDEN_TOKEN,
    /// NETWARDEN_TOKEN_FILE, NETWARDEN_CA_FILE and NETWARDEN_TIMEOUT_SECS override it.
    #[arg(long, global = true, env = "NETWARDEN_CONFIG")]
    config: Option<PathBuf>,
    /// The collector's HTTP address (default http://127.0.0.1:8080).
    #[arg(long, global = true)]
    url: Option<String>,
    /// How to print what comes back.
    #[arg(long, short, global = true, value_enum, default_value = "table")]
    output: Format,
}

#[derive(Subcommand)]
enum Command {
    /// Monitored devices.
    #[command(subcommand)]
    Devices(commands::Devices),
    /// Anomalies: list, acknowledge, resolve.
    #[command(subcommand)]
    Anomalies(commands::Anomalies),
    /// Silences: add, list, expire.
    #[command(subcommand)]
    Silences(commands::Silences),
    /// Agents that have reported.
    #[command(subcommand)]
    Agents(commands::Agents),
    /// The fleet plan agents run: get, diff, apply, history.
    #[command(subcommand)]
    Plan(plan::PlanCommand),
    /// Alert routes: list them, send a test notification.
    #[command(subcommand)]
    Routes(commands::Routes),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return exit::fail(&anyhow::anyhow!("cannot start: {err}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => exit::fail(&err),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = config::Settings::load(cli.global.config.as_deref(), cli.global.url)?;
    let api = api::Api::new(&settings)?;
    let out = cli.global.output;
    match cli.command {
        Command::Devices(c) => c.run(&api, out).await,
        Command::Anomalies(c) => c.run(&api, out).await,
        Command::Silences(c) => c.run(&api, out).await,
        Command::Agents(c) => c.run(&api, out).await,
        Command::Plan(c) => c.run(&api, out).await,
        Command::Routes(c) => c.run(&api, out).await,
    }
}

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use netwarden_collector::config::Settings;
use netwarden_collector::{cacti, commands, pki, server, storage};
use std::io::Write;
use std::path::PathBuf;

// A request allocates and frees a few dozen small blocks on whichever worker polls it; glibc's
// malloc spent about 15 % of the ingest path's CPU on that (and consolidating hyper's 8 KiB read
// buffers), mimalloc's per-thread pages far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "netwarden-collector", version, about = "Netwarden collector")]
struct Cli {
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

#[derive(Subcommand)]
enum CactiCommand {
    /// Scrape every configured source: once with --once, else on the configured interval
    /// until stopped. With --once the exit status is 0 when every graph was fetched, 1 when a
    /// graph failed (or another error), 3 when a source's graphs were fetched but not one of
    /// their titles names a POI (3 wins over 1).
    Scrape {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        once: bool,
    },
}

#[derive(Subcommand)]
enum KpiCommand {
    /// Compute every completed interval not computed yet (catching up after downtime, and
    /// again for late files): once with --once (exit 1 if a file could not be read), else on
    /// the configured scan interval until stopped. With --from and --to, once over that
    /// window whatever the look-back (history, or files the look-back left out).
    Run {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        once: bool,
        /// Start of a window to compute (RFC 3339); needs --once and --to.
        #[arg(long, requires_all = ["once", "to"])]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// End of the window (RFC 3339).
        #[arg(long, requires = "from")]
        to: Option<chrono::DateTime<chrono::Utc>>,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Circuits from CSV or XLSX (columns by header, case and spaces ignored: circuit_id,
    /// provisioned_mbps, burst_mbps, account, pop, provisioned_at, upgraded_at,
    /// decommissioned_at; rates may carry units, `1 Gbps`). Good rows are imported; each
    /// refused one is named by row and column (exit 1 if any).
    Circuits {
        #[command(flatten)]
        config: ConfigArg,
        file: PathBuf,
        /// Our column from the file's header: `--map provisioned_mbps="Speed (Mbps)"`.
        #[arg(long = "map", value_name = "COLUMN=HEADER")]
        map: Vec<String>,
        /// What the burst column means: a ceiling (at least the provisioned rate) or headroom
        /// above the provisioned rate.
        #[arg(long, value_enum, default_value_t = BurstMeans::Ceiling)]
        burst_means: BurstMeans,
        /// Create accounts the file names that do not exist (id derived from the name:
        /// "Acme Pty Ltd" is acme-pty-ltd). Accounts are matched by id or by name.
        #[arg(long)]
        create_accounts: bool,
    },
    /// Telemetry history of any age (NDJSON, or CSV with circuit_id, utilization_mbps,
    /// timestamp): stored, and evaluated in time order for maxouts (recorded as historical).
    Telemetry {
        #[command(flatten)]
        config: ConfigArg,
        file: PathBuf,
        /// Email customers about the maxouts found (off by default: it is history).
        #[arg(long)]
        notify: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BurstMeans {
    Ceiling,
    Headroom,
}

#[derive(Subcommand)]
enum SimulateCommand {
    /// Post realistic circuit utilisation (diurnal curve, noise, spikes, sustained maxouts)
    /// to a collector's batch endpoint. The same --seed gives the same circuits and values;
    /// with --start too, the same timestamps (and so exactly the same samples).
    Telemetry {
        /// The collector's HTTP base URL, e.g. http://127.0.0.1:8080
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 100)]
        circuits: u32,
        /// Samples per second, all circuits together.
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        /// Every Kth sample of a circuit is a single spike over its capacity (0: never).
        #[arg(long, default_value_t = 0)]
        spike_every: u32,
        /// Every Mth sample of a circuit starts a sustained maxout (0: never).
        #[arg(long, default_value_t = 0)]
        maxout_every: u32,
        /// How many samples a sustained maxout lasts.
        #[arg(long, default_value_t = 5)]
        maxout_samples: u32,
        #[arg(long, default_value_t = 60)]
        duration_secs: u64,
        /// Stop after this many samples.
        #[arg(long)]
        samples: Option<u64>,
        /// Register the circuits (with their capacities) first.
        #[arg(long)]
        register: bool,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "SIM-")]
        prefix: String,
        /// The account registered circuits belong to.
        #[arg(long)]
        account: Option<String>,
        /// API token (operator to post; admin with --register).
        #[arg(long, env = "NETWARDEN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Timestamp samples from this time (RFC 3339) instead of now: each circuit's samples
        /// are --step apart from here (the collector takes samples up to 30 days old).
        #[arg(long)]
        start: Option<chrono::DateTime<chrono::Utc>>,
        /// Seconds between one circuit's samples with --start (default: as posted,
        /// circuits ÷ rate).
        #[arg(long, requires = "start")]
        step: Option<f64>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token and print it (once).
    Create {
        #[command(flatten)]
        config: ConfigArg,
        /// viewer (read), operator (acknowledge, resolve, silence, post telemetry) or admin.
        #[arg(long)]
        role: netwarden_collector::auth::Role,
        /// A name to know it by (letters, digits, '-', '_', '.'), e.g. the script or person.
        #[arg(long)]
        name: String,
    },
    /// List tokens (names, roles, dates; never the tokens).
    List(ConfigArg),
    /// Revoke the token with this name; collectors stop taking it within seconds.
    Revoke {
        #[command(flatten)]
        config: ConfigArg,
        name: String,
    },
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Create a CA and the collector's server certificate.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// DNS name or IP address agents use to reach the collector (repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
        #[arg(long, default_value_t = 825)]
        days: u32,
        /// Replace an existing CA.
        #[arg(long)]
        force: bool,
    },
    /// Reissue the collector's server certificate from the existing CA (rotation).
    IssueServer {
        #[arg(long)]
        dir: PathBuf,
        /// DNS name or IP address agents use to reach the collector (repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// Issue a client certificate for an agent; its name becomes the agent's identity.
    IssueAgent {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        /// Where to write NAME.pem and NAME.key (default: DIR/agents).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 397)]
        days: u32,
    },
    /// Revoke an agent certificate (by serial or file: a stolen one), or retire an agent
    /// (every certificate of it issued until now). Collectors sharing the database refuse it
    /// within seconds, and close its open streams.
    Revoke {
        #[command(flatten)]
        config: ConfigArg,
        /// Retire this agent: refuse every certificate of it issued until now (one issued
        /// afterwards works).
        #[arg(long, conflicts_with_all = ["serial", "cert"])]
        agent: Option<String>,
        /// The certificate's serial in hex (`openssl x509 -serial`; colons allowed).
        #[arg(long, conflicts_with = "cert")]
        serial: Option<String>,
        /// The certificate file (PEM) to revoke.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Why, for the record.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List certificate revocations.
    Revocations(ConfigArg),
}

async fn revoke_certificate(command: PkiCommand) -> Result<()> {
    let config = match &command {
        PkiCommand::Revoke { config, .. } | PkiCommand::Revocations(config) => config,
        _ => anyhow::bail!("not a revocation command"),
    };
    let settings = load(&config.config)?;
    let store = storage::open(&settings.database, 1, settings.sqlite_sync).await?;
    store.migrate().await?;
    match command {
        PkiCommand::Revoke {
            agent,
            serial,
            cert,
            reason,
            ..
        } => {
            use netwarden_collector::grpc::revoke::normalise_serial;
            let (agent, serial) = match (agent, serial, cert) {
                (Some(agent), None, None) => {
                    netwarden_shared::AgentId::new(agent.as_str())
                        .map_err(|e| anyhow::anyhow!("--agent: {e}"))?;
                    (Some(agent), None)
                }
                (None, Some(serial), None) => {
                    let hex = normalise_serial(&serial);
                    anyhow::ensure!(
                        !hex.is_empty(),
                        "--serial {serial:?}: not a hex serial number"
                    );
                    (None, Some(hex))
                }
                (None, None, Some(path)) => {
                    let info = netwarden_shared::tls::cert_file_info(&path)?;
                    (Some(info.common_name), Some(info.serial))
                }
                _ => anyhow::bail!("give one of --agent, --serial or --cert"),
            };
            let done = store
                .revoke_certificate(&netwarden_collector::storage::tokens::CertRevocation {
                    id: 0,
                    agent,
                    serial,
                    revoked_at: chrono::Utc::now(),
                    reason,
                })
                .await?;
            println!("{}", describe_revocation(&done));
        }
        PkiCommand::Revocations(_) => {
            for r in store.cert_revocations().await? {
                println!("{}", describe_revocation(&r));
            }
        }
        _ => {}
    }
    Ok(())
}

fn describe_revocation(r: &netwarden_collector::storage::tokens::CertRevocation) -> String {
    let what = match (&r.agent, &r.serial) {
        (agent, Some(serial)) => format!(
            "certificate {serial}{}",
            agent
                .as_ref()
                .map(|a| format!(" of agent {a}"))
                .unwrap_or_default()
        ),
        (Some(agent), None) => format!("agent {agent} (certificates issued until then)"),
        (None, None) => "nothing".into(),
    };
    format!(
        "{}\trevoked {what} at {}{}",
        r.id,
        r.revoked_at.to_rfc3339(),
        if r.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", r.reason)
        }
    )
}

async fn token(command: TokenCommand) -> Result<()> {
    let config = match &command {
        TokenCommand::Create { config, .. } | TokenCommand::Revoke { config, .. } => config,
        TokenCommand::List(config) => config,
    };
    let settings = load(&config.config)?;
    let store = storage::open(&settings.database, 1, settings.sqlite_sync).await?;
    store.migrate().await?;
    match command {
        TokenCommand::Create { role, name, .. } => {
            let (token, secret) =
                netwarden_collector::rest::tokens::create_token(store.as_ref(), &name, role)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!(
                "token {:?} ({}) created; it is shown only now:",
                token.name, token.role
            );
            println!("{secret}");
        }
        TokenCommand::List(_) => {
            for t in store.tokens().await? {
                let state = match t.revoked_at {
                    Some(at) => format!("revoked {}", at.to_rfc3339()),
                    None => "active".into(),
                };
                println!(
                    "{}\t{}\t{}\tcreated {}\t{state}",
                    t.id,
                    t.name,
                    t.role,
                    t.created_at.to_rfc3339()
                );
            }
        }
        TokenCommand::Revoke { name, .. } => {
            let active = store
                .tokens()
                .await?
                .into_iter()
                .find(|t| t.name == name && t.revoked_at.is_none())
                .with_context(|| format!("no active token named {name:?}"))?;
            store.revoke_token(active.id, chrono::Utc::now()).await?;
            println!("revoked {name:?}");
        }
    }
    Ok(())
}

fn load(config: &std::path::Path) -> Result<Settings> {
    Ok(Settings::load(config)?)
}

/// `--map COLUMN=HEADER` options, checked.
fn column_map(map: &[String]) -> Result<std::collections::BTreeMap<String, String>> {
    map.iter()
        .map(|m| {
            let (ours, theirs) = m
                .split_once('=')
                .with_context(|| format!("--map {m:?}: write COLUMN=HEADER"))?;
            Ok((ours.trim().to_string(), theirs.trim().to_string()))
        })
        .collect()
}

async fn scrape(config: &std::path::Path, once: bool) -> Result<()> {
    let settings = load(config)?;
    netwarden_shared::logging::init(&settings.log);
    let Some(scrape) = &settings.scrape else {
        anyhow::bail!(
            "{}: no [[cacti.sources]] configured; nothing to scrape",
            config.display()
        );
    };
    let store = storage::open(&settings.database, 2, settings.sqlite_sync).await?;
    store.migrate().await?;
    let metrics = std::sync::Arc::new(netwarden_collector::metrics::Metrics::new());
    let scraper = cacti::Scraper::new(scrape, store, metrics).await?;
    if once && !scraper.claim().await? {
        anyhow::bail!(
            "another collector is scraping Cacti now (it holds the cacti-scrape lease); try again later"
        );
    }
    if !once {
        scraper.run(netwarden_shared::shutdown::on_signal()).await;
        return Ok(());
    }
    let runs = scraper.run_once(chrono::Utc::now()).await;
    scraper.release().await?;
    let mut failures = 0;
    let mut understood_nothing = Vec::new();
    for run in &runs {
        let r = &run.record;
        println!(
            "{}: fetched {} graphs, {} samples written, {} skipped, {} failed, {} new maxouts ({} extended), {} titles naming no POI",
            r.source,
            r.fetched,
            r.samples,
            r.skipped.len(),
            r.failed.len(),
            run.new_maxouts.len(),
            run.extended_maxouts,
            run.no_poi.len()
        );
        for (graph, title) in &run.no_poi {
            println!("  no POI in the title of graph {graph}: {title:?}");
        }
        if run.understood_nothing() {
            understood_nothing.push(r.source.clone());
        }
        for (graph, why) in &r.skipped {
            println!("  skipped graph {graph}: {why}");
        }
        for (graph, err) in &r.failed {
            println!("  failed graph {graph}: {err}");
        }
        for m in &run.new_maxouts {
            println!(
                "  maxout {} graph {} {} from {} to {} peak {:.1}%",
                m.poi_code.as_deref().unwrap_or("?"),
                m.graph_id,
                m.direction,
                m.start,
                m.end,
                m.peak_pct
            );
        }
        failures += r.failed.len();
    }
    if !understood_nothing.is_empty() {
        return Err(Exit {
            code: EXIT_NO_POI,
            message: format!(
                "{}: graphs were fetched but no title names a POI, so no maxout can be seen (add [[cacti.titles]] patterns, or check the graph ids)",
                understood_nothing.join(", ")
            ),
        }
        .into());
    }
    if failures > 0 {
        anyhow::bail!("{failures} graph fetches failed (listed above)");
    }
    Ok(())
}

/// `cacti scrape --once`: a source yielded graphs, none with a POI title.
const EXIT_NO_POI: u8 = 3;

/// An error that ends the process with its own exit status.
#[derive(Debug)]
struct Exit {
    code: u8,
    message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// Errors are printed whole (`error: context: cause`), without anyhow's debug dump, and exit 1.
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // Not eprintln!: with stderr closed it would panic and hide the exit code.
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            match err.downcast_ref::<Exit>() {
                Some(exit) => std::process::ExitCode::from(exit.code),
                None => std::process::ExitCode::FAILURE,
            }
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let settings = load(&args.config)?;
            netwarden_shared::logging::init(&settings.log);
            let shutdown = netwarden_shared::shutdown::on_signal();
            let open_files = netwarden_shared::limits::raise_open_files();
            tracing::info!(open_files = ?open_files, "open-files limit");
            let running = server::start(&settings, shutdown).await.with_context(|| {
                format!("cannot start the collector ({})", args.config.display())
            })?;
            running.wait().await.map_err(anyhow::Error::msg)
        }
        Command::Validate(args) => {
            let settings = load(&args.config)?;
            println!(
                "{}: OK (gRPC {}, HTTP {}, database {})",
                args.config.display(),
                settings.grpc_listen,
                settings.http_listen,
                server::describe_location(&settings.database)
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
        Command::Migrate(args) => {
            let settings = load(&args.config)?;
            netwarden_shared::logging::init(&settings.log);
            let store = storage::open(&settings.database, 1, settings.sqlite_sync).await?;
            let applied = store.migrate().await?;
            if applied.is_empty() {
                println!("database is up to date");
            }
            for name in applied {
                println!("applied {name}");
            }
            Ok(())
        }
        Command::Cacti {
            command: CactiCommand::Scrape { config, once },
        } => scrape(&config.config, once).await,
        Command::Kpi {
            command:
                KpiCommand::Run {
                    config,
                    once,
                    from,
                    to,
                },
        } => {
            let settings = load(&config.config)?;
            netwarden_shared::logging::init(&settings.log);
            if once {
                commands::kpi_once(&settings, &config.config, from.zip(to)).await
            } else {
                let Some(kpi) = &settings.kpi else {
                    anyhow::bail!(
                        "{}: [kpi] directory is not set; nothing to do",
                        config.config.display()
                    );
                };
                let store = storage::open(&settings.database, 2, settings.sqlite_sync).await?;
                store.migrate().await?;
                let metrics = std::sync::Arc::new(netwarden_collector::metrics::Metrics::new());
                netwarden_collector::kpi::KpiJob::new(kpi.clone(), store, metrics)
                    .run(netwarden_shared::shutdown::on_signal())
                    .await;
                Ok(())
            }
        }
        Command::Import {
            command:
                ImportCommand::Circuits {
                    config,
                    file,
                    map,
                    burst_means,
                    create_accounts,
                },
        } => {
            let options = netwarden_collector::telemetry::import::circuits::CircuitImportOptions {
                columns: column_map(&map)?,
                burst_means: match burst_means {
                    BurstMeans::Ceiling => {
                        netwarden_collector::telemetry::import::circuits::BurstMeans::Ceiling
                    }
                    BurstMeans::Headroom => {
                        netwarden_collector::telemetry::import::circuits::BurstMeans::Headroom
                    }
                },
                create_accounts,
            };
            commands::import_circuits(&load(&config.config)?, &file, &options).await
        }
        Command::Import {
            command:
                ImportCommand::Telemetry {
                    config,
                    file,
                    notify,
                },
        } => commands::import_telemetry(&load(&config.config)?, &file, notify).await,
        Command::Simulate {
            command:
                SimulateCommand::Telemetry {
                    url,
                    circuits,
                    rate,
                    spike_every,
                    maxout_every,
                    maxout_samples,
                    duration_secs,
                    samples,
                    register,
                    seed,
                    prefix,
                    account,
                    token,
                    start,
                    step,
                },
        } => {
            let step = step
                .map(|secs| {
                    std::time::Duration::try_from_secs_f64(secs)
                        .ok()
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| {
                            anyhow::anyhow!("--step: {secs} is not a positive number of seconds")
                        })
                })
                .transpose()?;
            let options = netwarden_collector::telemetry::simulate::SimulateOptions {
                url,
                circuits,
                rate,
                spike_every,
                maxout_every,
                maxout_samples,
                duration: std::time::Duration::from_secs(duration_secs),
                samples,
                register,
                seed,
                prefix,
                account,
                token,
                start,
                step,
            };
            let report = netwarden_collector::telemetry::simulate::run(&options).await?;
            println!(
                "posted {} samples in {} requests ({} spikes, {} maxout samples)",
                report.samples, report.requests, report.spikes, report.maxout_samples
            );
            Ok(())
        }
        Command::Token { command } => token(command).await,
        Command::Pki { command } => match command {
            PkiCommand::Init {
                dir,
                hosts,
                days,
                force,
            } => {
                let (ca, server) = pki::init(&dir, &hosts, days, force)?;
                println!("CA:     {} (key {})", ca.cert.display(), ca.key.display());
                println!(
                    "server: {} (key {})",
                    server.cert.display(),
                    server.key.display()
                );
                println!(
                    "Keep {} secret: it can issue agent certificates.",
                    ca.key.display()
                );
                Ok(())
            }
            PkiCommand::IssueServer { dir, hosts, days } => {
                let server = pki::issue_server(&dir, &hosts, days)?;
                println!(
                    "server: {} (key {}); restart the collector to use it",
                    server.cert.display(),
                    server.key.display()
                );
                Ok(())
            }
            PkiCommand::IssueAgent {
                dir,
                name,
                out,
                days,
            } => {
                let out = out.unwrap_or_else(|| dir.join("agents"));
                let issued = pki::issue_agent(&dir, &name, &out, days)?;
                let serial = netwarden_shared::tls::cert_file_info(&issued.cert)
                    .map(|info| info.serial)
                    .unwrap_or_default();
                println!(
                    "agent {name}: {} (key {}), serial {serial}",
                    issued.cert.display(),
                    issued.key.display()
                );
                Ok(())
            }
            command @ (PkiCommand::Revoke { .. } | PkiCommand::Revocations(_)) => {
                revoke_certificate(command).await
            }
        },
    }
}

//! `import circuits` and `import telemetry`: good rows imported, each refused one named by row
//! and column.

use super::{load, open_store};
use crate::config::Settings;
use crate::telemetry::backfill::{Backfill, BackfillReport};
use crate::telemetry::import::circuits::{self, CircuitImportOptions};
use crate::telemetry::import::samples::read_samples;
use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::Subcommand;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Circuits from CSV or XLSX (columns by header, case and spaces ignored: circuit_id,
    /// provisioned_mbps, burst_mbps, account, pop, provisioned_at, upgraded_at,
    /// decommissioned_at; rates may carry units, `1 Gbps`). Good rows are imported; each
    /// refused one is named by row and column (exit 1 if any).
    Circuits {
        #[command(flatten)]
        config: super::ConfigArg,
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
        config: super::ConfigArg,
        file: PathBuf,
        /// Email customers about the maxouts found (off by default: it is history).
        #[arg(long)]
        notify: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BurstMeans {
    Ceiling,
    Headroom,
}

pub async fn run(command: ImportCommand) -> Result<()> {
    match command {
        ImportCommand::Circuits {
            config,
            file,
            map,
            burst_means,
            create_accounts,
        } => {
            let options = CircuitImportOptions {
                columns: column_map(&map)?,
                burst_means: match burst_means {
                    BurstMeans::Ceiling => circuits::BurstMeans::Ceiling,
                    BurstMeans::Headroom => circuits::BurstMeans::Headroom,
                },
                create_accounts,
            };
            import_circuits(&load(&config.config)?, &file, &options).await
        }
        ImportCommand::Telemetry {
            config,
            file,
            notify,
        } => import_telemetry(&load(&config.config)?, &file, notify).await,
    }
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

/// `import circuits FILE`: good rows imported, each refused one named; exits non-zero when a
/// row was refused.
async fn import_circuits(
    settings: &Settings,
    file: &Path,
    options: &CircuitImportOptions,
) -> Result<()> {
    let store = open_store(settings, 2).await?;
    let report = circuits::import(store.as_ref(), file, options, Utc::now())
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    for account in &report.accounts_created {
        println!("created account {:?} ({})", account.id, account.name);
    }
    for refused in &report.refused {
        println!("{}: refused {refused}", file.display());
    }
    println!(
        "{}: {} circuits imported ({} new, {} changed, {} unchanged), {} rows refused",
        file.display(),
        report.new + report.changed + report.unchanged,
        report.new,
        report.changed,
        report.unchanged,
        report.refused.len()
    );
    if !report.refused.is_empty() {
        bail!(
            "{} rows refused (listed above); the other rows were imported",
            report.refused.len()
        );
    }
    Ok(())
}

/// `import telemetry FILE`: history of any age, stored and evaluated in time order.
async fn import_telemetry(settings: &Settings, file: &Path, notify: bool) -> Result<()> {
    let samples = read_samples(file, Utc::now()).map_err(|problems| {
        for p in &problems {
            eprintln!("{}: {p}", file.display());
        }
        anyhow::anyhow!("{} problems; nothing was imported", problems.len())
    })?;
    let store = open_store(settings, 2).await?;
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let customer_email = match (&settings.email, notify) {
        (Some(email), true) => Some(Arc::new(
            crate::alert::customer::CustomerEmail::new(
                email,
                Arc::new(
                    crate::alert::email::Mailer::new(email)
                        .map_err(|e| anyhow::anyhow!("customer email: {e}"))?,
                ),
                store.clone(),
                metrics.clone(),
                // A customer who could not be told is the NOC's anomaly here too; a running
                // collector's dispatcher tells the NOC's channels of it.
                Some(Arc::new(crate::alert::engine::Engine::new(
                    store.clone(),
                    settings.alerting.clone(),
                    metrics.clone(),
                ))),
                None,
            )
            .map_err(|e| anyhow::anyhow!("customer email: {e}"))?,
        )),
        (None, true) => bail!("--notify needs [email] in the configuration"),
        _ => None,
    };
    let backfill_store = store.clone();
    let backfill = Backfill {
        store,
        rule: settings.telemetry_detection.rule,
        customer_email: customer_email.clone(),
        retention_days: settings.telemetry_retention_days,
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(samples.rows.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} samples ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let progress = |done: u64, _total: u64| {
        if let Some(bar) = &bar {
            bar.set_position(done);
        }
    };
    let report = backfill.run(samples, &progress).await?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if let Some(customer_email) = customer_email {
        // No dispatcher runs here: the emails the import queued are sent before it returns.
        let a = &settings.alerting;
        let dispatcher = crate::alert::dispatch::Dispatcher::new(
            backfill_store,
            metrics,
            crate::alert::dispatch::DispatchSettings {
                holder: format!("import-{}", crate::storage::poi::lease_holder()),
                lease: std::time::Duration::from_secs(a.claim_lease_secs),
                retries: a.retries,
                backoff: std::time::Duration::from_millis(a.backoff_ms),
                clock: crate::alert::clock::system(),
            },
            Vec::new(),
            Arc::new(tokio::sync::Notify::new()),
        );
        dispatcher
            .drain(customer_email.as_ref(), &customer_email.queued())
            .await
            .map_err(|e| anyhow::anyhow!("sending the customer emails: {e}"))?;
    }
    print_backfill(file, &report, notify);
    Ok(())
}

fn print_backfill(file: &Path, r: &BackfillReport, notify: bool) {
    let span = r
        .span
        .map(|(a, b)| format!(" from {} to {}", a.to_rfc3339(), b.to_rfc3339()))
        .unwrap_or_default();
    println!(
        "{}: {} samples of {} circuits{span}: {} stored, {} already stored",
        file.display(),
        r.read,
        r.circuits,
        r.stored,
        r.already_stored
    );
    println!(
        "maxout events: {} new (historical{}), {} updated, {} withdrawn",
        r.events_new,
        if notify {
            ", customers emailed"
        } else {
            "; no customer email without --notify"
        },
        r.events_updated,
        r.events_withdrawn
    );
    if !r.unknown_circuits.is_empty() {
        println!(
            "not evaluated (no such circuit; register it, then import again): {}",
            r.unknown_circuits.join(", ")
        );
    }
    if r.older_than_retention > 0 {
        println!(
            "{} samples are older than the telemetry retention ([telemetry] retention_days): the next sweep removes them; their events stay",
            r.older_than_retention
        );
    }
}

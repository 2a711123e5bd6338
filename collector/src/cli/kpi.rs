//! `kpi run`: the KPI job outside `serve`, once (a window, or catching up) or on its interval.

use super::{load, open_store};
use crate::config::Settings;
use crate::kpi::job::KpiError;
use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use std::path::Path;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum KpiCommand {
    /// Compute every completed interval not computed yet (catching up after downtime, and
    /// again for late files): once with --once (exit 1 if a file could not be read), else on
    /// the configured scan interval until stopped. With --from and --to, once over that
    /// window whatever the look-back (history, or files the look-back left out).
    Run {
        #[command(flatten)]
        config: super::ConfigArg,
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

pub async fn run(command: KpiCommand) -> Result<()> {
    let KpiCommand::Run {
        config,
        once,
        from,
        to,
    } = command;
    let settings = load(&config.config)?;
    netwarden_shared::logging::init(&settings.log);
    if once {
        return kpi_once(&settings, &config.config, from.zip(to)).await;
    }
    let Some(kpi) = &settings.kpi else {
        bail!(
            "{}: [kpi] directory is not set; nothing to do",
            config.config.display()
        );
    };
    let store = open_store(&settings, 2).await?;
    let metrics = Arc::new(crate::metrics::Metrics::new());
    crate::kpi::KpiJob::new(kpi.clone(), store, metrics)
        .run(netwarden_shared::shutdown::on_signal())
        .await;
    Ok(())
}

/// `kpi run --once [--from T --to T]`.
async fn kpi_once(
    settings: &Settings,
    config: &Path,
    range: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Result<()> {
    let Some(kpi) = &settings.kpi else {
        bail!(
            "{}: [kpi] directory is not set; nothing to do",
            config.display()
        );
    };
    if let Some((from, to)) = range {
        if from >= to {
            bail!("--from must be before --to");
        }
    }
    let store = open_store(settings, 2).await?;
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let job = crate::kpi::KpiJob::new(kpi.clone(), store, metrics);
    let now = Utc::now();
    let outcome = match range {
        Some((from, to)) => job.run_range(now, from, to).await,
        None => job.run_once(now).await,
    };
    if !matches!(outcome, Err(KpiError::Busy)) {
        job.release().await?;
    }
    let report = outcome?;
    println!(
        "{} intervals and {} hours computed from {} files: {} rows counted, {} skipped",
        report.intervals.len(),
        report.hours.len(),
        report.files_read,
        report.rows,
        report.skipped_rows
    );
    for start in &report.intervals {
        println!("  interval {start}");
    }
    for start in &report.hours {
        println!("  hour {start}");
    }
    for (name, why) in &report.bad_names {
        println!("  ignored {name}: {why}");
    }
    for hour in &report.incomplete_hours {
        println!("  hour {hour} not recomputed: files it was computed from are gone");
    }
    if let Some(old) = &report.too_old {
        println!(
            "  {} files from {} to {} are older than the look-back ({} h) and were not computed; to compute them run:\n    {}",
            old.files, old.from, old.to, old.lookback_hours, old.command()
        );
    }
    if !report.unreadable.is_empty() {
        bail!(
            "could not read {} (their intervals wait for the next run)",
            report.unreadable.join(", ")
        );
    }
    Ok(())
}

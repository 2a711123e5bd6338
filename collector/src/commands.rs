//! The one-off commands behind `netwarden-collector import ...` and `kpi run --once`: each
//! opens the store, does the work through the library and prints a summary a person can act
//! on. (`main.rs` only parses the command line and calls these.)

use crate::config::Settings;
use crate::kpi::job::KpiError;
use crate::telemetry::backfill::{Backfill, BackfillReport};
use crate::telemetry::import::circuits::{self, CircuitImportOptions};
use crate::telemetry::import::samples::read_samples;
use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

async fn open(settings: &Settings) -> Result<Arc<dyn crate::storage::Store>> {
    let store = crate::storage::open(&settings.database, 2, settings.sqlite_sync).await?;
    store.migrate().await?;
    Ok(store)
}

/// `import circuits FILE`: good rows imported, each refused one named; exits non-zero when a
/// row was refused.
pub async fn import_circuits(
    settings: &Settings,
    file: &Path,
    options: &CircuitImportOptions,
) -> Result<()> {
    let store = open(settings).await?;
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
pub async fn import_telemetry(settings: &Settings, file: &Path, notify: bool) -> Result<()> {
    let samples = read_samples(file, Utc::now()).map_err(|problems| {
        for p in &problems {
            eprintln!("{}: {p}", file.display());
        }
        anyhow::anyhow!("{} problems; nothing was imported", problems.len())
    })?;
    let store = open(settings).await?;
    let notifier = match (&settings.email, notify) {
        (Some(email), true) => Some(Arc::new(
            crate::alert::customer::CustomerNotifier::new(
                email,
                store.clone(),
                Arc::new(crate::metrics::Metrics::new()),
                None,
            )
            .map_err(|e| anyhow::anyhow!("customer email: {e}"))?,
        )),
        (None, true) => bail!("--notify needs [email] in the configuration"),
        _ => None,
    };
    let backfill = Backfill {
        store,
        rule: settings.telemetry_detection.rule,
        notifier,
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

/// `kpi run --once [--from T --to T]`.
pub async fn kpi_once(
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
    let store = open(settings).await?;
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

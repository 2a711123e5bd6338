//! The KPI job: scan the directory, then compute every completed interval whose files are new
//! or changed since they were counted (so it catches up after downtime in one run, and a late
//! file makes its interval be computed again, from all its files), and every completed hour
//! that is new or has such an interval. Each result replaces the stored one in one
//! transaction: no file is ever counted twice.

use super::aggregate::{Aggregate, FileStats, Issue, IssueReason};
use super::files::{scan, FlowFile, Scan, HOUR_MS, INTERVAL_MS};
use crate::metrics::Metrics;
use crate::storage::kpi::{Granularity, KpiFileRecord, KpiFileState, KpiIssueRecord, KpiResult};
use crate::storage::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const JOB_NAME: &str = "kpi";

/// `[kpi]` in `collector.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KpiConfig {
    /// The directory the mobile core drops flow files into; unset turns the job off.
    pub directory: Option<PathBuf>,
    /// How often the directory is looked at.
    pub scan_interval_secs: u64,
    /// How long after an interval ends its files are taken as complete.
    pub grace_secs: u64,
    /// Files whose interval ended longer ago than this are not looked at.
    pub lookback_hours: u64,
    /// Malformed rows listed per file (the rest are counted).
    pub max_issues_per_file: usize,
}

impl Default for KpiConfig {
    fn default() -> Self {
        KpiConfig {
            directory: None,
            scan_interval_secs: 60,
            grace_secs: 60,
            lookback_hours: 7 * 24,
            max_issues_per_file: 100,
        }
    }
}

#[derive(Debug, Clone)]
pub struct KpiSettings {
    pub directory: PathBuf,
    pub scan_interval: Duration,
    pub grace: Duration,
    pub lookback: Duration,
    pub max_issues_per_file: usize,
}

impl KpiSettings {
    /// Checks `[kpi]`; `None` when no directory is set. Relative paths are relative to the
    /// config file.
    pub fn from_config(
        path: &Path,
        raw: &KpiConfig,
    ) -> Result<Option<KpiSettings>, netwarden_shared::config::ConfigError> {
        use netwarden_shared::config::{resolve, ConfigError};
        let Some(directory) = &raw.directory else {
            return Ok(None);
        };
        if !(1..=3600).contains(&raw.scan_interval_secs) {
            return Err(ConfigError::invalid(
                path,
                "kpi.scan_interval_secs",
                "must be between 1 and 3600",
            ));
        }
        if raw.grace_secs > 3600 {
            return Err(ConfigError::invalid(
                path,
                "kpi.grace_secs",
                "must be at most 3600",
            ));
        }
        if !(1..=24 * 366).contains(&raw.lookback_hours) {
            return Err(ConfigError::invalid(
                path,
                "kpi.lookback_hours",
                "must be between 1 and 8784",
            ));
        }
        Ok(Some(KpiSettings {
            directory: resolve(path, directory),
            scan_interval: Duration::from_secs(raw.scan_interval_secs),
            grace: Duration::from_secs(raw.grace_secs),
            lookback: Duration::from_secs(raw.lookback_hours * 3600),
            max_issues_per_file: raw.max_issues_per_file.clamp(1, 10_000),
        }))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KpiError {
    #[error("cannot read the KPI directory {dir}: {source}")]
    Directory {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "another collector is running the KPI job (it holds the \"kpi\" lease); try again later"
    )]
    Busy,
}

/// What one run did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct KpiRunReport {
    /// Starts of the five-minute intervals computed (again).
    pub intervals: Vec<DateTime<Utc>>,
    /// Starts of the hours computed (again).
    pub hours: Vec<DateTime<Utc>>,
    pub files_read: u64,
    pub rows: u64,
    pub skipped_rows: u64,
    /// Files that could not be read (their interval waits and is tried again next run).
    pub unreadable: Vec<String>,
    /// Names in the directory that are not flow file names.
    pub bad_names: Vec<(String, String)>,
    /// Intervals and hours not recomputed because files they were computed from are gone.
    pub incomplete_hours: Vec<DateTime<Utc>>,
    pub incomplete_intervals: Vec<DateTime<Utc>>,
    /// Files older than the look-back, not computed (a run over their range computes them).
    pub too_old: Option<TooOld>,
}

/// Files the look-back leaves out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TooOld {
    pub files: usize,
    /// The start of the first of their intervals and the end of the last.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub lookback_hours: u64,
}

impl TooOld {
    /// What to run to compute them.
    pub fn command(&self) -> String {
        format!(
            "netwarden-collector kpi run --once --from {} --to {}",
            self.from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }
}

pub struct KpiJob {
    settings: KpiSettings,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    holder: String,
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Everything read from one interval's files.
struct IntervalRead {
    aggregate: Aggregate,
    files: Vec<(FlowFile, FileStats)>,
    issues: Vec<Issue>,
    unreadable: Vec<Issue>,
}

impl KpiJob {
    pub fn new(settings: KpiSettings, store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        KpiJob {
            settings,
            store,
            metrics,
            holder: crate::storage::poi::lease_holder(),
        }
    }

    /// Runs every `scan_interval` while this collector holds the job lease, until cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(self.settings.scan_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            match self.run_once(Utc::now()).await {
                Ok(report) => log_report(&report),
                Err(KpiError::Busy) => tracing::debug!("another collector holds the KPI lease"),
                Err(err) => tracing::error!(error = %err, "KPI run failed; will retry"),
            }
        }
    }

    /// Takes or renews the job lease (one collector runs the job at a time, and a run renews
    /// it as it goes, so a long catch-up is not taken over midway); `Busy` if another holds it.
    async fn claim(&self) -> Result<(), KpiError> {
        let lease = self.settings.scan_interval + Duration::from_secs(120);
        match self
            .store
            .claim_job(JOB_NAME, &self.holder, lease, Utc::now())
            .await?
        {
            true => Ok(()),
            false => Err(KpiError::Busy),
        }
    }

    /// Gives the job lease back (after a one-off run).
    pub async fn release(&self) -> Result<(), KpiError> {
        Ok(self.store.release_job(JOB_NAME, &self.holder).await?)
    }

    /// One pass over the directory's last `lookback`, under the job lease.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<KpiRunReport, KpiError> {
        self.run_span(now, None).await
    }

    /// One pass over the intervals in `[from, to)` (whole hours around them), whatever the
    /// look-back: history loaded late, or files the look-back left out.
    pub async fn run_range(
        &self,
        now: DateTime<Utc>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<KpiRunReport, KpiError> {
        self.run_span(now, Some((from, to))).await
    }

    async fn run_span(
        &self,
        now: DateTime<Utc>,
        range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> Result<KpiRunReport, KpiError> {
        self.claim().await?;
        let dir = self.settings.directory.clone();
        let found: Scan = tokio::task::spawn_blocking(move || scan(&dir))
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?
            .map_err(|source| KpiError::Directory {
                dir: self.settings.directory.display().to_string(),
                source,
            })?;
        let mut report = KpiRunReport {
            bad_names: found.bad_names.clone(),
            ..KpiRunReport::default()
        };
        let lookback = chrono::Duration::from_std(self.settings.lookback).unwrap_or_default();
        let grace = chrono::Duration::from_std(self.settings.grace).unwrap_or_default();
        // Hours are computed whole: the window starts on an hour, so none is cut in two.
        let (oldest, cutoff) = match range {
            None => (
                ceil_hour((now - lookback).timestamp_millis()),
                (now - grace).timestamp_millis(),
            ),
            Some((from, to)) => {
                let from = from.timestamp_millis();
                (
                    from - from.rem_euclid(HOUR_MS),
                    ceil_hour(to.timestamp_millis()).min((now - grace).timestamp_millis()),
                )
            }
        };
        if range.is_none() {
            report.too_old = self.too_old(&found, oldest, now).await?;
        }
        let since = at(oldest - HOUR_MS);
        let recorded = self.store.kpi_files(since).await?;
        let computed_hours: BTreeSet<i64> = self
            .store
            .kpi_computed(Granularity::Hour, since)
            .await?
            .into_iter()
            .map(|t| t.timestamp_millis())
            .collect();

        // Completed intervals in the window, grouped by hour.
        let mut hours: BTreeMap<i64, Vec<(i64, &Vec<FlowFile>)>> = BTreeMap::new();
        let first_end = oldest + INTERVAL_MS;
        let window = if first_end <= cutoff {
            found.intervals.range(first_end..=cutoff)
        } else {
            found.intervals.range(0..0)
        };
        for (end, files) in window {
            let start = end - INTERVAL_MS;
            hours
                .entry(start - start.rem_euclid(HOUR_MS))
                .or_default()
                .push((*end, files));
        }
        for (hour, intervals) in hours {
            self.claim().await?;
            let changed: BTreeSet<i64> = intervals
                .iter()
                .filter(|(_, files)| files.iter().any(|f| is_new(f, &recorded)))
                .map(|(end, _)| *end)
                .collect();
            let hour_done = hour + HOUR_MS <= cutoff;
            let hour_needed = hour_done && (!changed.is_empty() || !computed_hours.contains(&hour));
            if changed.is_empty() && !hour_needed {
                continue;
            }
            let hour_ends: BTreeSet<i64> = (1..=HOUR_MS / INTERVAL_MS)
                .map(|k| hour + k * INTERVAL_MS)
                .collect();
            if hour_needed && !files_gone(&hour_ends, &intervals, &recorded).is_empty() {
                report.incomplete_hours.push(at(hour));
                self.store
                    .save_kpi_issues(&[KpiIssueRecord {
                        interval_end: at(hour + HOUR_MS),
                        file: "*".into(),
                        line: None,
                        reason: IssueReason::FilesGone.as_str().into(),
                        message: format!(
                            "the hour from {} was not computed again: files it was computed from are no longer in the directory",
                            at(hour)
                        ),
                        recorded_at: now,
                    }])
                    .await?;
            }
            let hour_needed = hour_needed && !report.incomplete_hours.contains(&at(hour));
            let mut hour_total = Aggregate::default();
            let mut hour_complete = true;
            for &(end, files) in &intervals {
                let interval_changed = changed.contains(&end);
                if !interval_changed && !hour_needed {
                    continue;
                }
                let gone = files_gone(&BTreeSet::from([end]), &intervals, &recorded);
                if interval_changed && !gone.is_empty() {
                    // Recomputing now would drop what those files counted: keep the stored
                    // figures and say so.
                    hour_complete = false;
                    report.incomplete_intervals.push(at(end - INTERVAL_MS));
                    self.store
                        .save_kpi_issues(&[KpiIssueRecord {
                            interval_end: at(end),
                            file: gone.join(", "),
                            line: None,
                            reason: IssueReason::FilesGone.as_str().into(),
                            message: "a new or changed file arrived, but files this interval was counted from are no longer in the directory; its figures were kept, not recomputed short".into(),
                            recorded_at: now,
                        }])
                        .await?;
                    continue;
                }
                let read = self.read_interval(files.clone()).await?;
                report.files_read += read.files.len() as u64;
                if !read.unreadable.is_empty() {
                    hour_complete = false;
                    report
                        .unreadable
                        .extend(read.unreadable.iter().map(|i| i.file.clone()));
                    let issues = to_records(&read.unreadable, end, now);
                    self.store.save_kpi_issues(&issues).await?;
                    continue; // counted next run, once it can be read
                }
                if interval_changed {
                    let result = self.result(Granularity::FiveMinutes, end, &read, now);
                    report.rows += read.files.iter().map(|f| f.1.rows).sum::<u64>();
                    report.skipped_rows += read.files.iter().map(|f| f.1.skipped_rows).sum::<u64>();
                    self.store.save_kpi_result(&result, now).await?;
                    report.intervals.push(result.start);
                }
                if hour_needed {
                    hour_total.absorb(read.aggregate);
                }
            }
            if hour_needed && hour_complete {
                let result = KpiResult {
                    granularity: Granularity::Hour,
                    start: at(hour),
                    end: at(hour + HOUR_MS),
                    services: as_i64(hour_total.services()),
                    cells: as_i64(hour_total.cells()),
                    files: Vec::new(),
                    issues: Vec::new(),
                };
                self.store.save_kpi_result(&result, now).await?;
                report.hours.push(result.start);
            }
        }
        self.count(&report);
        Ok(report)
    }

    /// The files before the look-back's first interval, recorded as one `too_old` issue
    /// (kept on the last of their intervals: recomputing it clears the issue).
    async fn too_old(
        &self,
        found: &Scan,
        oldest: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<TooOld>, KpiError> {
        let old = found.intervals.range(..oldest + INTERVAL_MS);
        let files: usize = old.clone().map(|(_, files)| files.len()).sum();
        let (Some((first, _)), Some((last, _))) = (old.clone().next(), old.last()) else {
            return Ok(None);
        };
        let too_old = TooOld {
            files,
            from: at(first - INTERVAL_MS),
            to: at(*last),
            lookback_hours: self.settings.lookback.as_secs() / 3600,
        };
        self.store
            .save_kpi_issues(&[KpiIssueRecord {
                interval_end: too_old.to,
                file: "(older than the look-back)".into(),
                line: None,
                reason: IssueReason::TooOld.as_str().into(),
                message: format!(
                    "{files} flow files from {} to {} are older than the look-back ({} h) and were not computed; run `{}`",
                    too_old.from,
                    too_old.to,
                    too_old.lookback_hours,
                    too_old.command()
                ),
                recorded_at: now,
            }])
            .await?;
        Ok(Some(too_old))
    }

    async fn read_interval(&self, files: Vec<FlowFile>) -> Result<IntervalRead, KpiError> {
        let max_issues = self.settings.max_issues_per_file;
        let read = tokio::task::spawn_blocking(move || {
            let mut read = IntervalRead {
                aggregate: Aggregate::default(),
                files: Vec::new(),
                issues: Vec::new(),
                unreadable: Vec::new(),
            };
            for file in files {
                match read
                    .aggregate
                    .add_file(&file.path, &file.name, &mut read.issues, max_issues)
                {
                    Ok(stats) => read.files.push((file, stats)),
                    Err(issue)
                        if issue.message.starts_with("cannot open")
                            || issue.message.starts_with("read failed") =>
                    {
                        read.unreadable.push(issue)
                    }
                    // A file with no usable header: reported, counted as read (with no rows).
                    Err(issue) => {
                        read.issues.push(issue);
                        read.files.push((file, FileStats::default()));
                    }
                }
            }
            read
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?;
        Ok(read)
    }

    fn result(
        &self,
        granularity: Granularity,
        end: i64,
        read: &IntervalRead,
        now: DateTime<Utc>,
    ) -> KpiResult {
        KpiResult {
            granularity,
            start: at(end - INTERVAL_MS),
            end: at(end),
            services: as_i64(read.aggregate.services()),
            cells: as_i64(read.aggregate.cells()),
            files: read
                .files
                .iter()
                .map(|(f, stats)| KpiFileRecord {
                    name: f.name.clone(),
                    interval_end: at(end),
                    size: f.size,
                    modified_ms: f.modified_ms,
                    rows: stats.rows as i64,
                    skipped_rows: stats.skipped_rows as i64,
                })
                .collect(),
            issues: to_records(&read.issues, end, now),
        }
    }

    fn count(&self, report: &KpiRunReport) {
        let m = &self.metrics;
        m.kpi_intervals
            .get_or_create(&Metrics::label("granularity", "5m"))
            .inc_by(report.intervals.len() as u64);
        m.kpi_intervals
            .get_or_create(&Metrics::label("granularity", "1h"))
            .inc_by(report.hours.len() as u64);
        m.kpi_rows
            .get_or_create(&Metrics::label("outcome", "counted"))
            .inc_by(report.rows);
        m.kpi_rows
            .get_or_create(&Metrics::label("outcome", "skipped"))
            .inc_by(report.skipped_rows);
        m.kpi_unreadable.set(report.unreadable.len() as i64);
    }
}

/// A file not counted yet, or changed since it was.
fn is_new(file: &FlowFile, recorded: &HashMap<String, KpiFileState>) -> bool {
    recorded
        .get(&file.name)
        .is_none_or(|r| r.size != file.size || r.modified_ms != file.modified_ms)
}

/// Files counted for the intervals ending at `ends` that are no longer in the directory
/// (then those intervals cannot be computed again exactly).
fn files_gone(
    ends: &BTreeSet<i64>,
    intervals: &[(i64, &Vec<FlowFile>)],
    recorded: &HashMap<String, KpiFileState>,
) -> Vec<String> {
    let present: BTreeSet<&str> = intervals
        .iter()
        .flat_map(|(_, files)| files.iter().map(|f| f.name.as_str()))
        .collect();
    let mut gone: Vec<String> = recorded
        .iter()
        .filter(|(name, state)| {
            ends.contains(&state.interval_end.timestamp_millis())
                && !present.contains(name.as_str())
        })
        .map(|(name, _)| name.clone())
        .collect();
    gone.sort();
    gone
}

fn ceil_hour(ms: i64) -> i64 {
    ms + (HOUR_MS - ms.rem_euclid(HOUR_MS)) % HOUR_MS
}

fn as_i64(pairs: Vec<(u64, u64)>) -> Vec<(i64, i64)> {
    // Ids and values were bounded to 63 bits when read.
    pairs
        .into_iter()
        .map(|(k, v)| (k as i64, v.min(i64::MAX as u64) as i64))
        .collect()
}

fn to_records(issues: &[Issue], end: i64, now: DateTime<Utc>) -> Vec<KpiIssueRecord> {
    issues
        .iter()
        .map(|i| KpiIssueRecord {
            interval_end: at(end),
            file: i.file.clone(),
            line: i.line.map(|l| l as i64),
            reason: i.reason.as_str().into(),
            message: i.message.clone(),
            recorded_at: now,
        })
        .collect()
}

pub fn log_report(report: &KpiRunReport) {
    if !report.intervals.is_empty() || !report.hours.is_empty() {
        tracing::info!(
            intervals = report.intervals.len(),
            hours = report.hours.len(),
            files = report.files_read,
            rows = report.rows,
            skipped_rows = report.skipped_rows,
            "KPIs computed"
        );
    }
    for file in &report.unreadable {
        tracing::warn!(%file, "KPI flow file unreadable; its interval waits for the next run");
    }
    for interval in &report.incomplete_intervals {
        tracing::warn!(%interval, "KPI interval not recomputed: files it was counted from are gone");
    }
    for hour in &report.incomplete_hours {
        tracing::warn!(%hour, "KPI hour not recomputed: files it was computed from are gone");
    }
    if let Some(old) = &report.too_old {
        tracing::warn!(
            files = old.files,
            from = %old.from,
            to = %old.to,
            "KPI flow files older than the look-back ({} h) were not computed; to compute them run: {}",
            old.lookback_hours,
            old.command()
        );
    }
}

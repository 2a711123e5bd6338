//! The scrape job: for each Cacti source, fetch the graphs' exports, read the titles, join the
//! reference workbook, store the utilisation samples and the maxouts they show, and record
//! what the run did. Runs every `interval` under a job lease (one collector scrapes, however
//! many share the database), or once from `netwarden-collector cacti scrape --once`.

use super::alerts::{self, GraphCheck};
use super::client::{CactiClient, CactiError, GraphExport};
use super::config::{ScrapeSettings, SourceSettings};
use crate::alert::engine::Engine;
use crate::detect::poi::{maxouts, Direction, MaxoutRule, Sample};
use crate::metrics::Metrics;
use crate::poi::title::ParsedTitle;
use crate::poi::{PoiReference, ReferenceFile, TitleParser};
use crate::storage::poi::{
    GraphRecord, MaxoutRecord, NewMaxout, PoiRecord, SampleRecord, ScrapeRunRecord,
};
use crate::storage::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const JOB_NAME: &str = "cacti-scrape";

#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error(transparent)]
    Cacti(#[from] CactiError),
    #[error(transparent)]
    Titles(#[from] crate::poi::TitleError),
    #[error(transparent)]
    Reference(#[from] crate::poi::ReferenceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one run did for one source.
#[derive(Debug, Clone)]
pub struct SourceRun {
    pub record: ScrapeRunRecord,
    /// Maxout events that did not exist before this run: each goes to the alert engine.
    pub new_maxouts: Vec<MaxoutRecord>,
    /// Stored maxouts this run extended (still going on).
    pub extended_maxouts: u32,
    /// (graph, title) of the fetched graphs whose titles name no POI.
    pub no_poi: Vec<(i64, String)>,
}

impl SourceRun {
    /// Graphs were fetched and not one title named a POI: the titles are not understood (or
    /// the source lists the wrong graphs), and nothing of it will ever raise a maxout.
    pub fn understood_nothing(&self) -> bool {
        self.record.fetched > 0 && self.no_poi.len() == self.record.fetched as usize
    }
}

pub struct Scraper {
    sources: Vec<(CactiClient, SourceSettings)>,
    titles: TitleParser,
    rule: MaxoutRule,
    reference: Option<Arc<Mutex<ReferenceFile>>>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    interval: Duration,
    /// Who holds the job lease when this collector does.
    holder: String,
    /// Where maxouts go as `poi_maxout` anomalies, when alerting runs.
    engine: Option<Arc<Engine>>,
}

/// How far before the export window stored samples are read back for maxout detection, so a
/// maxout that began before the window is seen whole.
const LOOKBACK_FACTOR: i32 = 2;

impl Scraper {
    /// Builds the clients and loads the reference workbook (a bad workbook is an error here,
    /// at start; later reload failures keep the last good copy).
    pub async fn new(
        settings: &ScrapeSettings,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ScrapeError> {
        let sources = settings
            .sources
            .iter()
            .map(|s| Ok((CactiClient::new(s.client.clone())?, s.clone())))
            .collect::<Result<Vec<_>, CactiError>>()?;
        let reference = match &settings.reference {
            Some((path, layout)) => {
                let (path, layout) = (path.clone(), layout.clone());
                let file = tokio::task::spawn_blocking(move || ReferenceFile::open(path, layout))
                    .await
                    .map_err(|e| StoreError::Worker(e.to_string()))??;
                tracing::info!(pois = file.len(), "POI reference loaded");
                Some(Arc::new(Mutex::new(file)))
            }
            None => None,
        };
        Ok(Scraper {
            sources,
            titles: TitleParser::new(&settings.titles)?,
            rule: settings.rule,
            reference,
            store,
            metrics,
            interval: settings.interval,
            holder: crate::storage::poi::lease_holder(),
            engine: None,
        })
    }

    /// Sends maxouts to the alert engine too.
    pub fn with_engine(mut self, engine: Arc<Engine>) -> Self {
        self.engine = Some(engine);
        self
    }

    /// Scrapes on every tick of the interval while this collector holds the job lease, until
    /// cancelled. A run in progress finishes first (its writes are each idempotent anyway).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The lease outlives one interval, so the holder renews it before anyone else may take it.
        let lease = self.interval + Duration::from_secs(60);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let now = Utc::now();
            match self
                .store
                .claim_job(JOB_NAME, &self.holder, lease, now)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!("another collector holds the Cacti scrape lease");
                    continue;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot claim the Cacti scrape lease; skipping this run");
                    continue;
                }
            }
            for run in self.run_once(now).await {
                log_run(&run);
            }
        }
    }

    /// Takes or renews the scrape lease for one interval (plus a minute); false while another
    /// collector holds it.
    pub async fn claim(&self) -> Result<bool, StoreError> {
        let lease = self.interval + Duration::from_secs(60);
        self.store
            .claim_job(JOB_NAME, &self.holder, lease, Utc::now())
            .await
    }

    /// Gives the scrape lease back.
    pub async fn release(&self) -> Result<(), StoreError> {
        self.store.release_job(JOB_NAME, &self.holder).await
    }

    /// One scrape of every source, in turn.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Vec<SourceRun> {
        self.refresh_reference().await;
        let mut runs = Vec::with_capacity(self.sources.len());
        for (client, settings) in &self.sources {
            runs.push(self.scrape_source(client, settings, now).await);
        }
        runs
    }

    async fn refresh_reference(&self) {
        let Some(reference) = self.reference.clone() else {
            return;
        };
        let outcome = tokio::task::spawn_blocking(move || {
            reference.lock().map(|mut file| file.refresh()).ok()
        })
        .await;
        match outcome {
            Ok(Some(Ok(true))) => tracing::info!("POI reference changed; reloaded"),
            Ok(Some(Ok(false))) => {}
            Ok(Some(Err(err))) => {
                tracing::error!(error = %err, "POI reference reload failed; keeping the last good copy")
            }
            _ => tracing::error!("POI reference reload stopped unexpectedly"),
        }
    }

    fn reference_for(&self, code: &str) -> Option<PoiReference> {
        let reference = self.reference.as_ref()?;
        reference.lock().ok()?.get(code).cloned()
    }

    async fn scrape_source(
        &self,
        client: &CactiClient,
        settings: &SourceSettings,
        now: DateTime<Utc>,
    ) -> SourceRun {
        let name = settings.client.name.clone();
        let started = Utc::now();
        let mut graphs: BTreeSet<u64> = settings.client.graphs.iter().copied().collect();
        let mut failed = Vec::new();
        if let Some(pattern) = &settings.discover {
            match client.discover(pattern).await {
                Ok(found) => graphs.extend(found.into_iter().map(|(id, _)| id)),
                // Graph 0 stands for the list itself: the configured ids are still fetched.
                Err(err) => failed.push((0, format!("graph discovery: {err}"))),
            }
        }
        let graphs: Vec<u64> = graphs.into_iter().collect();
        let report = client.scrape_graphs(&graphs, now.timestamp()).await;
        failed.extend(report.failed.into_iter().map(|(g, e)| (g as i64, e)));

        let mut run = SourceRun {
            record: ScrapeRunRecord {
                source: name.clone(),
                started,
                finished: started,
                fetched: report.fetched.len() as i32,
                samples: 0,
                skipped: Vec::new(),
                failed,
            },
            new_maxouts: Vec::new(),
            extended_maxouts: 0,
            no_poi: Vec::new(),
        };
        let mut pois: BTreeMap<String, PoiRecord> = BTreeMap::new();
        let mut checked = Vec::new();
        for export in &report.fetched {
            let graph = export.graph as i64;
            match self.store_export(settings, export, now, &mut pois).await {
                Ok(stored) => {
                    run.record.samples += stored.samples as i64;
                    run.extended_maxouts += stored.extended;
                    run.new_maxouts.extend(stored.created);
                    checked.extend(stored.check);
                    if stored.no_poi {
                        run.no_poi
                            .push((graph, export.header.title.trim().to_string()));
                    }
                    if let Some(why) = stored.skipped {
                        run.record.skipped.push((graph, why));
                    }
                }
                Err(err) => run.record.failed.push((graph, err.to_string())),
            }
        }
        let pois: Vec<PoiRecord> = pois.into_values().collect();
        if let Err(err) = self.store.save_pois(&pois, now).await {
            run.record.failed.push((0, format!("saving POIs: {err}")));
        }
        if let Some(engine) = &self.engine {
            let store = self.store.as_ref();
            if let Err(err) =
                alerts::alert(engine, store, &name, &checked, &run.new_maxouts, now).await
            {
                // The events stay unalerted in the store; the next run takes them.
                tracing::warn!(source = %name, error = %err, "cannot raise POI maxout anomalies");
            }
            if run.record.fetched > 0 {
                let signal = alerts::titles_signal(&name, run.record.fetched, &run.no_poi);
                if let Err(err) = engine.apply(vec![signal], now).await {
                    tracing::warn!(source = %name, error = %err, "cannot record the unparsed-titles anomaly");
                }
            }
        }
        run.record.finished = Utc::now();
        if let Err(err) = self.store.save_scrape_run(&run.record).await {
            tracing::error!(source = %name, error = %err, "cannot record the scrape run");
        }
        self.count(&run);
        run
    }

    fn count(&self, run: &SourceRun) {
        let source = run.record.source.as_str();
        if run.record.fetched > 0 {
            self.metrics
                .cacti_unparsed_graphs
                .get_or_create(&Metrics::label("source", source))
                .set(run.no_poi.len() as i64);
        }
        let skipped = run.record.skipped.len() as u64;
        let failed = run.record.failed.len() as u64;
        let fetched = (run.record.fetched as u64).saturating_sub(skipped);
        for (outcome, n) in [
            ("fetched", fetched),
            ("skipped", skipped),
            ("failed", failed),
        ] {
            self.metrics
                .cacti_graphs
                .get_or_create(&Metrics::labels(&[
                    ("source", source),
                    ("outcome", outcome),
                ]))
                .inc_by(n);
        }
        if failed == 0 {
            self.metrics
                .cacti_last_success
                .get_or_create(&Metrics::label("source", source))
                .set(run.record.finished.timestamp());
        }
        for m in &run.new_maxouts {
            self.metrics
                .poi_maxouts
                .get_or_create(&Metrics::labels(&[
                    ("source", source),
                    ("direction", m.direction.as_str()),
                ]))
                .inc();
        }
    }

    /// Stores one graph's export: its title facts, its samples, and its maxouts. The checks
    /// come in the order a NOC fixes them: a title that names no POI (its samples would sit
    /// where no endpoint serves them, so they are not stored), no in/out column, then no
    /// capacity (samples stored, no maxout check).
    async fn store_export(
        &self,
        settings: &SourceSettings,
        export: &GraphExport,
        now: DateTime<Utc>,
        pois: &mut BTreeMap<String, PoiRecord>,
    ) -> Result<StoredExport, StoreError> {
        let source = settings.client.name.as_str();
        let graph_id = export.graph as i64;
        let title = export.header.title.trim().to_string();
        let parsed = self.titles.parse(&title);
        let poi_code = parsed.as_ref().and_then(|p| p.poi_code.clone());
        let reference = poi_code
            .as_deref()
            .and_then(|code| self.reference_for(code));
        let (capacity_bps, capacity_from) = effective_capacity(parsed.as_ref(), reference.as_ref());
        if let Some(code) = &poi_code {
            pois.insert(
                code.clone(),
                poi_record(code, parsed.as_ref(), reference.as_ref()),
            );
        }
        let step = export.header.step_secs;
        self.store
            .save_graph(&graph_record(
                source,
                graph_id,
                &title,
                parsed.as_ref(),
                (capacity_bps, capacity_from),
                settings.client.timezone.name(),
                step,
                now,
            ))
            .await?;

        let Some(poi_code) = poi_code else {
            let also = match parsed.as_ref().and_then(|p| p.circuit_id.as_deref()) {
                Some(id) => format!(" (it names {id}, but no POI code)"),
                None => String::new(),
            };
            return Ok(StoredExport {
                no_poi: true,
                ..StoredExport::skipped(format!(
                    "not a POI title: {title:?} names no POI{also}; samples not stored (add a [[cacti.titles]] pattern if it is one)"
                ))
            });
        };
        let columns = (
            find_column(export, &settings.in_columns),
            find_column(export, &settings.out_columns),
        );
        if columns == (None, None) {
            return Ok(StoredExport::skipped(format!(
                "no column named {} or {} (the export has {})",
                settings.in_columns.join("/"),
                settings.out_columns.join("/"),
                export.header.columns.join(", ")
            )));
        }
        let samples = sample_records(export, columns, capacity_bps);
        let written = self.store.save_samples(source, graph_id, &samples).await?;
        // The newest sample with a share of capacity, for /metrics/network.
        if let Some(newest) = samples
            .iter()
            .filter(|s| s.in_pct.is_some() || s.out_pct.is_some())
            .max_by_key(|s| s.ts)
        {
            self.metrics.network.observe_poi(
                source,
                graph_id,
                &poi_code,
                newest.ts,
                newest.in_pct,
                newest.out_pct,
            );
        }
        let mut stored = StoredExport {
            samples: written,
            ..StoredExport::default()
        };
        let (Some(capacity), Some(step)) = (capacity_bps, step) else {
            stored.skipped = Some(if capacity_bps.is_none() {
                "no capacity: neither the title nor the reference gives one; samples stored, no maxout check".into()
            } else {
                "the export has no Step; samples stored, no maxout check".into()
            });
            return Ok(stored);
        };
        // Detect on what is stored, from before the window, so a maxout that began earlier is
        // seen whole and one that goes on is extended rather than opened again. Samples are
        // stamped at their intervals' ends, none after `now`: every complete interval this
        // export carried is checked in this run.
        let window = chrono::Duration::from_std(settings.client.window)
            .unwrap_or_else(|_| chrono::Duration::hours(12));
        let from = now - window * LOOKBACK_FACTOR;
        let series: Vec<Sample> = self
            .store
            .samples(source, graph_id, from, now + chrono::Duration::seconds(1))
            .await?
            .iter()
            .map(|s| Sample {
                at: s.ts.timestamp(),
                in_bps: s.in_bps,
                out_bps: s.out_bps,
            })
            .collect();
        let circuit_id = parsed.as_ref().and_then(|p| p.circuit_id.clone());
        let detected: Vec<NewMaxout> = maxouts(&series, capacity, step, self.rule)
            .into_iter()
            .map(|m| NewMaxout {
                poi_code: Some(poi_code.clone()),
                circuit_id: circuit_id.clone(),
                direction: match m.direction {
                    Direction::In => "in",
                    Direction::Out => "out",
                },
                start: at(m.start),
                end: at(m.end),
                samples: m.samples as i32,
                peak_bps: m.peak_bps,
                peak_pct: m.peak_pct,
                capacity_bps: capacity as i64,
            })
            .collect();
        // Ongoing: the maxout runs to the end of the last stored interval.
        let last_end = series.last().map(|s| s.at);
        let ongoing = |direction: &str| {
            detected
                .iter()
                .any(|m| m.direction == direction && Some(m.end.timestamp()) >= last_end)
        };
        stored.check = Some(GraphCheck {
            graph_id,
            ongoing_in: ongoing("in"),
            ongoing_out: ongoing("out"),
        });
        if !detected.is_empty() {
            let merge = self
                .store
                .merge_maxouts(source, graph_id, &detected, now)
                .await?;
            stored.created = merge.created;
            stored.extended = merge.extended;
        }
        Ok(stored)
    }
}

#[derive(Debug, Default)]
struct StoredExport {
    samples: u64,
    created: Vec<MaxoutRecord>,
    extended: u32,
    skipped: Option<String>,
    /// The title names no POI.
    no_poi: bool,
    /// Set when the maxout check ran (the graph has a capacity and a step).
    check: Option<GraphCheck>,
}

impl StoredExport {
    fn skipped(why: String) -> Self {
        StoredExport {
            skipped: Some(why),
            ..StoredExport::default()
        }
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// The reference workbook's capacity override wins over what the title says.
fn effective_capacity(
    parsed: Option<&ParsedTitle>,
    reference: Option<&PoiReference>,
) -> (Option<u64>, Option<&'static str>) {
    if let Some(cap) = reference.and_then(|r| r.capacity_bps).filter(|c| *c > 0) {
        return (Some(cap), Some("reference"));
    }
    match parsed.and_then(|p| p.capacity_bps).filter(|c| *c > 0) {
        Some(cap) => (Some(cap), Some("title")),
        None => (None, None),
    }
}

fn poi_record(
    code: &str,
    parsed: Option<&ParsedTitle>,
    reference: Option<&PoiReference>,
) -> PoiRecord {
    match reference {
        Some(r) => PoiRecord {
            code: code.to_string(),
            name: r
                .name
                .clone()
                .or_else(|| parsed.and_then(|p| p.poi_name.clone())),
            state: r.state.clone().or_else(|| {
                crate::poi::State::from_code(code).map(|s| s.abbreviation().to_string())
            }),
            latitude: r.latitude,
            longitude: r.longitude,
            provider: r.provider.clone(),
            capacity_bps: r.capacity_bps.map(|c| c as i64),
            notes: r.notes.clone(),
            in_reference: true,
        },
        None => PoiRecord {
            code: code.to_string(),
            name: parsed.and_then(|p| p.poi_name.clone()),
            state: crate::poi::State::from_code(code).map(|s| s.abbreviation().to_string()),
            in_reference: false,
            ..PoiRecord::default()
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn graph_record(
    source: &str,
    graph_id: i64,
    title: &str,
    parsed: Option<&ParsedTitle>,
    (capacity_bps, capacity_from): (Option<u64>, Option<&str>),
    timezone: &str,
    step_secs: Option<u32>,
    now: DateTime<Utc>,
) -> GraphRecord {
    GraphRecord {
        source: source.to_string(),
        graph_id,
        title: title.to_string(),
        pattern: parsed.map(|p| p.pattern.clone()),
        poi_code: parsed.and_then(|p| p.poi_code.clone()),
        poi_name: parsed.and_then(|p| p.poi_name.clone()),
        circuit_id: parsed.and_then(|p| p.circuit_id.clone()),
        capacity_bps: capacity_bps.map(|c| c as i64),
        capacity_from: capacity_from.map(str::to_string),
        traffic_class: parsed.and_then(|p| p.traffic_class.clone()),
        direction: parsed.and_then(|p| p.direction.map(str::to_string)),
        timezone: timezone.to_string(),
        step_secs: step_secs.map(i64::from),
        first_seen: now,
        last_seen: now,
    }
}

/// The first legend of `names` the export has.
fn find_column(export: &GraphExport, names: &[String]) -> Option<usize> {
    names.iter().find_map(|n| export.header.column(n))
}

/// Samples in time order, one per timestamp (a repeated row keeps the later one).
fn sample_records(
    export: &GraphExport,
    (in_col, out_col): (Option<usize>, Option<usize>),
    capacity_bps: Option<u64>,
) -> Vec<SampleRecord> {
    let pct = |v: Option<f64>| match (v, capacity_bps) {
        (Some(v), Some(c)) if c > 0 => Some(100.0 * v / c as f64),
        _ => None,
    };
    let mut by_time: BTreeMap<i64, SampleRecord> = BTreeMap::new();
    for (ts, values) in &export.rows {
        let value = |col: Option<usize>| col.and_then(|i| values.get(i).copied().flatten());
        let (in_bps, out_bps) = (value(in_col), value(out_col));
        by_time.insert(
            *ts,
            SampleRecord {
                ts: at(*ts),
                in_bps,
                out_bps,
                in_pct: pct(in_bps),
                out_pct: pct(out_bps),
            },
        );
    }
    by_time.into_values().collect()
}

/// One log line per run, and one per new maxout (the alert engine takes them from the store).
pub fn log_run(run: &SourceRun) {
    let r = &run.record;
    let line = format!(
        "fetched {} graphs, {} samples written, {} skipped, {} failed, {} new maxouts, {} titles naming no POI",
        r.fetched,
        r.samples,
        r.skipped.len(),
        r.failed.len(),
        run.new_maxouts.len(),
        run.no_poi.len()
    );
    if run.understood_nothing() {
        tracing::error!(source = %r.source, titles = ?run.no_poi, "Cacti scrape: {line}: no title names a POI, so no maxout can be seen; add [[cacti.titles]] patterns or check the graph list");
    } else if !r.failed.is_empty() {
        tracing::warn!(source = %r.source, failed = ?r.failed, "Cacti scrape: {line}");
    } else if !run.no_poi.is_empty() {
        tracing::warn!(source = %r.source, titles = ?run.no_poi, "Cacti scrape: {line}");
    } else {
        tracing::info!(source = %r.source, "Cacti scrape: {line}");
    }
    for m in &run.new_maxouts {
        tracing::warn!(
            source = %m.source,
            graph = m.graph_id,
            poi = m.poi_code.as_deref().unwrap_or("?"),
            direction = %m.direction,
            start = %m.start,
            peak_pct = format!("{:.1}", m.peak_pct),
            "POI maxout"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cacti::ExportHeader;

    fn export(columns: &[&str], rows: Vec<(i64, Vec<Option<f64>>)>) -> GraphExport {
        GraphExport {
            graph: 7,
            header: ExportHeader {
                title: "2ABT Albury CVC000000123456 1Gbps".into(),
                step_secs: Some(300),
                columns: columns.iter().map(|c| c.to_string()).collect(),
                ..ExportHeader::default()
            },
            rows,
            incomplete: 0,
        }
    }

    #[test]
    fn columns_are_found_by_legend_whatever_their_order() {
        let e = export(&["Outbound", "Inbound"], vec![]);
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(find_column(&e, &names(&["Inbound", "In"])), Some(1));
        assert_eq!(
            find_column(&e, &names(&["Traffic Out", "outbound"])),
            Some(0)
        );
        assert_eq!(find_column(&e, &names(&["Total"])), None);
    }

    #[test]
    fn samples_keep_gaps_and_the_last_of_a_repeated_time() {
        let e = export(
            &["Inbound", "Outbound"],
            vec![
                (600, vec![Some(5e8), None]),
                (300, vec![Some(1e8), Some(2e8)]),
                (600, vec![Some(6e8), Some(1e9)]),
            ],
        );
        let s = sample_records(&e, (Some(0), Some(1)), Some(1_000_000_000));
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].ts.timestamp(), 300);
        assert_eq!(s[1].in_bps, Some(6e8));
        assert_eq!(s[1].out_pct, Some(100.0));
        let gaps = sample_records(&e, (Some(0), None), None);
        assert_eq!(gaps[0].out_bps, None);
        assert_eq!(gaps[0].in_pct, None, "no capacity, no percentage");
    }

    #[test]
    fn the_reference_capacity_overrides_the_title() {
        let parsed = ParsedTitle {
            capacity_bps: Some(1_000_000_000),
            ..ParsedTitle::default()
        };
        let reference = PoiReference {
            capacity_bps: Some(2_000_000_000),
            ..PoiReference::default()
        };
        assert_eq!(
            effective_capacity(Some(&parsed), Some(&reference)),
            (Some(2_000_000_000), Some("reference"))
        );
        assert_eq!(
            effective_capacity(Some(&parsed), None),
            (Some(1_000_000_000), Some("title"))
        );
        assert_eq!(effective_capacity(None, None), (None, None));
    }
}

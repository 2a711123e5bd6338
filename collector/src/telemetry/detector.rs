//! Runs maxout detection on committed samples, one task for all circuits: each circuit's
//! [`Timeline`] lives here (samples in time order, late ones within the reorder horizon put in
//! their place), and each change to an event is written as it happens (`circuit_maxouts`,
//! where the alert engine and the CX/AM views find it). Samples that come later than the
//! horizon are stored, counted and listed (`late_telemetry`), not evaluated.

use super::sample::TelemetrySample;
use super::timeline::{Change, Timeline};
use crate::alert::customer::CustomerEmail;
use crate::alert::engine::Engine;
use crate::detect::circuit::{Capacity, CircuitEvent, MaxoutClass, MaxoutRule};
use crate::detect::Signal;
use crate::domain::alerting::AnomalyKind;
use crate::metrics::Metrics;
use crate::storage::telemetry::{CircuitMaxoutQuery, CircuitRecord, LateSample};
use crate::storage::Store;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// An event resumed after a restart goes on only with a sample this close to its end (three
/// five-minute polls); later, it is closed where it ended.
const RESUME_GAP_MS: i64 = 15 * 60 * 1000;
/// Samples a circuit's window holds at most (a circuit reporting every second keeps about an
/// hour of them): beyond it the horizon is shorter rather than the memory unbounded.
pub const MAX_WINDOW_SAMPLES: usize = 4096;
/// Late samples listed per commit at most (the metric counts them all).
const MAX_LATE_LISTED: usize = 1000;

/// How detection follows time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectionSettings {
    pub rule: MaxoutRule,
    /// How far behind a circuit's newest sample a late one is still evaluated in order.
    pub horizon: Duration,
}

impl Default for DetectionSettings {
    fn default() -> Self {
        DetectionSettings {
            rule: MaxoutRule::CIRCUIT,
            horizon: Duration::from_secs(15 * 60),
        }
    }
}

/// Handle the committer sends committed samples to.
#[derive(Clone)]
pub struct Detector {
    queue: mpsc::UnboundedSender<Vec<TelemetrySample>>,
    /// Set when this collector changed a circuit: the next batch reads the circuits again.
    changed: Arc<AtomicBool>,
}

impl Detector {
    /// The handle and the detection task, which ends once every handle is dropped; opened
    /// events are queued for the customer email when there is one. With `engine`, each event is also a
    /// `circuit_maxout` anomaly for the NOC.
    pub fn new(
        store: Arc<dyn Store>,
        settings: DetectionSettings,
        customer_email: Option<Arc<CustomerEmail>>,
        engine: Option<Arc<Engine>>,
        metrics: Arc<Metrics>,
    ) -> (Self, impl std::future::Future<Output = ()>) {
        let (queue, receiver) = mpsc::unbounded_channel();
        let outlets = Outlets {
            store,
            customer_email,
            engine,
            metrics,
            historical: false,
        };
        let changed = Arc::new(AtomicBool::new(false));
        let task = detect_loop(outlets, settings, receiver, changed.clone());
        (Detector { queue, changed }, task)
    }

    pub fn committed(&self, samples: Vec<TelemetrySample>) {
        // The task stops after the committers; nothing to do if it is gone.
        let _ = self.queue.send(samples);
    }

    /// A circuit was registered or changed by this collector.
    pub fn circuits_changed(&self) {
        self.changed.store(true, Ordering::SeqCst);
    }
}

/// Where detection's results go.
pub(crate) struct Outlets {
    pub store: Arc<dyn Store>,
    pub customer_email: Option<Arc<CustomerEmail>>,
    pub engine: Option<Arc<Engine>>,
    pub metrics: Arc<Metrics>,
    /// Events found by a backfill of old samples: recorded as historical, no NOC anomaly.
    pub historical: bool,
}

/// A circuit being followed: its timeline and the stored id of each event it reported.
pub(crate) struct Tracked {
    pub timeline: Timeline,
    ids: HashMap<u64, i64>,
}

impl Tracked {
    pub fn new(settings: &DetectionSettings) -> Self {
        Tracked {
            timeline: Timeline::new(horizon_ms(settings), MAX_WINDOW_SAMPLES),
            ids: HashMap::new(),
        }
    }
}

fn horizon_ms(settings: &DetectionSettings) -> i64 {
    i64::try_from(settings.horizon.as_millis()).unwrap_or(i64::MAX)
}

/// How often the circuits' version is read when nothing says it moved: a change by another
/// collector or the import command to a circuit already known applies within this.
const VERSION_CHECK: Duration = Duration::from_secs(1);

/// Circuits as detection last read them, valid while the circuits' version stays put.
#[derive(Default)]
pub(crate) struct CircuitCache {
    version: Option<i64>,
    checked: Option<std::time::Instant>,
    known: HashMap<String, Option<CircuitRecord>>,
}

impl CircuitCache {
    /// Makes sure `ids` are read. The circuits' version (bumped by a trigger on every change)
    /// is read when this collector changed a circuit (`forced`), when a batch names a circuit
    /// not known (to be) registered, or once a second; when it moved the cache is dropped. So
    /// a circuit registered by anyone is evaluated from its next sample, and a change is seen
    /// at once here and within a second from elsewhere, without a query per commit. False when
    /// the store cannot be read.
    pub async fn refresh(&mut self, store: &dyn Store, ids: &[&str], forced: bool) -> bool {
        let unknown = ids
            .iter()
            .any(|id| self.known.get(*id).is_none_or(Option::is_none));
        let due = self.checked.is_none_or(|at| at.elapsed() >= VERSION_CHECK);
        if !(forced || unknown || due) {
            return true;
        }
        self.checked = Some(std::time::Instant::now());
        match store.circuits_version().await {
            Ok(version) if self.version != Some(version) => {
                self.known.clear();
                self.version = Some(version);
            }
            Ok(_) => {}
            Err(err) => {
                tracing::error!(error = %err, "maxout detection cannot read the circuits' version");
                return false;
            }
        }
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !self.known.contains_key(**id))
            .map(|id| id.to_string())
            .collect();
        if missing.is_empty() {
            return true;
        }
        match store.circuits_by_ids(&missing).await {
            Ok(found) => {
                for id in missing {
                    self.known.insert(id, None);
                }
                for c in found {
                    self.known.insert(c.circuit_id.clone(), Some(c));
                }
                true
            }
            Err(err) => {
                tracing::error!(error = %err, "maxout detection cannot read circuits; samples skipped for detection");
                false
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<&CircuitRecord> {
        self.known.get(id).and_then(Option::as_ref)
    }
}

async fn detect_loop(
    outlets: Outlets,
    settings: DetectionSettings,
    mut receiver: mpsc::UnboundedReceiver<Vec<TelemetrySample>>,
    changed: Arc<AtomicBool>,
) {
    let mut circuits = resume_open_events(outlets.store.as_ref(), &settings).await;
    let mut cache = CircuitCache::default();
    while let Some(samples) = receiver.recv().await {
        let mut by_circuit: BTreeMap<&str, Vec<(i64, f64)>> = BTreeMap::new();
        for s in &samples {
            by_circuit
                .entry(&s.circuit_id)
                .or_default()
                .push((s.at.timestamp_millis(), s.utilization_mbps));
        }
        let ids: Vec<&str> = by_circuit.keys().copied().collect();
        let forced = changed.swap(false, Ordering::SeqCst);
        if !cache.refresh(outlets.store.as_ref(), &ids, forced).await {
            continue;
        }
        let mut late = Vec::new();
        for (id, mut points) in by_circuit {
            let Some(circuit) = cache.get(id) else {
                continue; // unknown circuit: no capacity to measure against
            };
            if let Some(&(at, mbps)) = points.iter().max_by_key(|(at, _)| *at) {
                outlets
                    .metrics
                    .network
                    .observe_circuit(circuit, at_ms(at), mbps);
            }
            let tracked = circuits
                .entry(id.to_string())
                .or_insert_with(|| Tracked::new(&settings));
            late.extend(evaluate(&outlets, &settings, circuit, tracked, &mut points).await);
        }
        if !late.is_empty() {
            late.truncate(MAX_LATE_LISTED);
            if let Err(err) = outlets.store.save_late_telemetry(&late).await {
                tracing::error!(error = %err, "cannot list late telemetry");
            }
        }
    }
}

/// Feeds one circuit's samples to its timeline and records every change. Returns the
/// samples that came beyond the horizon.
pub(crate) async fn evaluate(
    outlets: &Outlets,
    settings: &DetectionSettings,
    circuit: &CircuitRecord,
    tracked: &mut Tracked,
    points: &mut [(i64, f64)],
) -> Vec<LateSample> {
    let capacity = Capacity {
        provisioned_mbps: circuit.provisioned_mbps,
        burst_mbps: circuit.burst_mbps,
    };
    let newest_before = tracked.timeline.newest();
    let fed = tracked
        .timeline
        .feed(points, capacity, settings.rule, RESUME_GAP_MS);
    let (reordered, beyond) = (u64::from(fed.reordered), fed.beyond.len() as u64);
    let late: Vec<LateSample> = if fed.beyond.is_empty() {
        Vec::new()
    } else {
        let now = Utc::now();
        let newest = newest_before.or(tracked.timeline.newest());
        fed.beyond
            .iter()
            .map(|&(at, mbps)| LateSample {
                circuit_id: circuit.circuit_id.clone(),
                timestamp: at_ms(at),
                utilization_mbps: mbps,
                newest: at_ms(newest.unwrap_or(at)),
                received_at: now,
            })
            .collect()
    };
    if reordered + beyond > 0 {
        for (outcome, n) in [("reordered", reordered), ("beyond_horizon", beyond)] {
            outlets
                .metrics
                .telemetry_late
                .get_or_create(&Metrics::label("outcome", outcome))
                .inc_by(n);
        }
    }
    if beyond > 0 {
        tracing::warn!(
            circuit = %circuit.circuit_id,
            samples = beyond,
            horizon_secs = settings.horizon.as_secs(),
            "telemetry later than the reorder horizon: stored, not evaluated (listed at /api/telemetry/late; `import telemetry` evaluates it)"
        );
    }
    for change in &fed.changes {
        record(outlets, circuit, tracked, change).await;
    }
    if !tracked.ids.is_empty() {
        let Tracked { timeline, ids } = tracked;
        ids.retain(|key, _| timeline.is_live(*key));
    }
    late
}

fn at_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Stores a change of a circuit's events, queues the customer email of an opened one and
/// the alert engine of every one.
async fn record(
    outlets: &Outlets,
    circuit: &CircuitRecord,
    tracked: &mut Tracked,
    change: &Change,
) {
    let id = circuit.circuit_id.as_str();
    let store = outlets.store.as_ref();
    let now = Utc::now();
    let written = match change {
        Change::Opened { key, event, open } => {
            match store
                .open_circuit_maxout(circuit, event, *open, outlets.historical, now)
                .await
            {
                Ok(event_id) => {
                    if !outlets.historical {
                        tracing::warn!(circuit = id, peak_mbps = event.peak_mbps, "circuit maxout");
                    }
                    tracked.ids.insert(*key, event_id);
                    if let Some(customer_email) = &outlets.customer_email {
                        customer_email.maxout_opened(circuit, event_id, event).await;
                    }
                    Ok(())
                }
                Err(err) => Err(err),
            }
        }
        Change::Updated { key, event, open } => match tracked.ids.get(key) {
            Some(&event_id) => store.update_circuit_maxout(event_id, event, *open).await,
            None => Ok(()),
        },
        Change::Withdrawn { key, .. } => match tracked.ids.remove(key) {
            Some(event_id) => {
                tracing::info!(
                    circuit = id,
                    event = event_id,
                    "a late sample withdrew a circuit maxout"
                );
                store.withdraw_circuit_maxout(event_id, now).await
            }
            None => Ok(()),
        },
    };
    if let Err(err) = written {
        tracing::error!(circuit = id, error = %err, "cannot record a circuit maxout change");
    }
    if outlets.historical {
        return;
    }
    if let Some(engine) = &outlets.engine {
        for signal in anomaly_signals(circuit, change, tracked.timeline.open_event().is_some()) {
            if let Err(err) = engine.apply(vec![signal], now).await {
                tracing::error!(circuit = id, error = %err, "cannot store a circuit maxout anomaly");
            }
        }
    }
}

/// The events the last run left open, so that they go on or close with the next samples
/// instead of a second event opening beside each.
async fn resume_open_events(
    store: &dyn Store,
    settings: &DetectionSettings,
) -> HashMap<String, Tracked> {
    let query = CircuitMaxoutQuery {
        open_only: true,
        limit: u32::MAX,
        ..CircuitMaxoutQuery::default()
    };
    let events = match store.circuit_maxouts(&query).await {
        Ok(events) => events,
        Err(err) => {
            tracing::error!(error = %err, "cannot read the open circuit maxouts; any still open stay so and new ones open beside them");
            return HashMap::new();
        }
    };
    // Oldest first: should a circuit have two (left by a version that did not resume), the
    // later one is resumed and the earlier closed where it ended.
    let mut resumed: HashMap<String, (Tracked, i64, CircuitEvent)> = HashMap::new();
    for e in events {
        let event = CircuitEvent {
            start: e.start.timestamp_millis(),
            end: e.end.timestamp_millis(),
            samples: u32::try_from(e.samples).unwrap_or(0),
            peak_mbps: e.peak_mbps,
            peak_at: e
                .peak_at
                .map_or(e.end.timestamp_millis(), |t| t.timestamp_millis()),
            severity: if MaxoutClass::parse(&e.severity) == Some(MaxoutClass::Burst) {
                MaxoutClass::Burst
            } else {
                MaxoutClass::Maxout
            },
        };
        let (timeline, key) =
            Timeline::resumed(horizon_ms(settings), MAX_WINDOW_SAMPLES, event.clone());
        let tracked = Tracked {
            timeline,
            ids: HashMap::from([(key, e.id)]),
        };
        if let Some((_, earlier_id, earlier)) =
            resumed.insert(e.circuit_id.clone(), (tracked, e.id, event))
        {
            if let Err(err) = store
                .update_circuit_maxout(earlier_id, &earlier, false)
                .await
            {
                tracing::error!(circuit = %e.circuit_id, error = %err, "cannot close a duplicate open circuit maxout");
            }
        }
    }
    resumed
        .into_iter()
        .map(|(id, (tracked, _, _))| (id, tracked))
        .collect()
}

/// The NOC's view of a circuit maxout: opened with the event, cleared when no event of the
/// circuit is open any more.
fn anomaly_signals(circuit: &CircuitRecord, change: &Change, still_open: bool) -> Vec<Signal> {
    use crate::domain::alerting::{NewAnomaly, Severity};
    let clear = || Signal::Clear {
        kind: AnomalyKind::CircuitMaxout,
        subject: circuit.circuit_id.clone(),
    };
    match change {
        Change::Opened { event, open, .. } => {
            let pct = 100.0 * event.peak_mbps / circuit.provisioned_mbps.max(f64::EPSILON);
            let firing = Signal::Firing(NewAnomaly {
                kind: AnomalyKind::CircuitMaxout,
                subject: circuit.circuit_id.clone(),
                group_key: circuit.account.clone(),
                severity: match event.severity {
                    MaxoutClass::Maxout => Severity::High,
                    MaxoutClass::Burst => Severity::Medium,
                },
                summary: format!(
                    "circuit {} at {:.0} Mbps, {pct:.0}% of its {} Mbps",
                    circuit.circuit_id, event.peak_mbps, circuit.provisioned_mbps
                ),
                details: serde_json::json!({
                    "peak_mbps": event.peak_mbps, "provisioned_mbps": circuit.provisioned_mbps,
                    "burst_mbps": circuit.burst_mbps, "severity": event.severity.as_str(),
                }),
            });
            // One a late sample found whole (already over) is heard of, then cleared.
            if *open || still_open {
                vec![firing]
            } else {
                vec![firing, clear()]
            }
        }
        Change::Updated { open: false, .. } | Change::Withdrawn { .. } if !still_open => {
            vec![clear()]
        }
        _ => Vec::new(),
    }
}

//! Runs maxout detection on committed samples, in commit order, one task for all circuits:
//! each circuit's state lives here, and each event is written as it opens, goes on and closes
//! (`circuit_maxouts`, where the alert engine and the CX/AM views find it).

use super::detect::{Capacity, CircuitEvent, CircuitState, MaxoutRule, Severity, Transition};
use super::sample::TelemetrySample;
use crate::alert::customer::CustomerNotifier;
use crate::alert::engine::Engine;
use crate::detect::{kinds, Signal};
use crate::storage::telemetry::{CircuitMaxoutQuery, CircuitRecord};
use crate::storage::Store;
use chrono::Utc;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long detection trusts what it read about a circuit (capacity, account).
const CIRCUIT_TTL: Duration = Duration::from_secs(30);
/// An event resumed after a restart goes on only with a sample this close to its end (three
/// five-minute polls); later, it is closed where it ended.
const RESUME_GAP_MS: i64 = 15 * 60 * 1000;

/// Handle the committer sends committed samples to.
#[derive(Clone)]
pub struct Detector {
    queue: mpsc::UnboundedSender<Vec<TelemetrySample>>,
}

impl Detector {
    /// Starts the detection task; opened events go to `notifier` when there is one.
    /// With `engine`, each event is also a `circuit_maxout` anomaly for the NOC.
    pub fn start(
        store: Arc<dyn Store>,
        rule: MaxoutRule,
        notifier: Option<Arc<CustomerNotifier>>,
        engine: Option<Arc<Engine>>,
    ) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        tokio::spawn(detect_loop(store, rule, notifier, engine, receiver));
        Detector { queue }
    }

    pub fn committed(&self, samples: Vec<TelemetrySample>) {
        // The task only stops with the process; nothing to do if it is gone.
        let _ = self.queue.send(samples);
    }
}

#[derive(Default)]
struct Tracked {
    state: CircuitState,
    /// The stored event's id while one is open.
    event_id: Option<i64>,
}

async fn detect_loop(
    store: Arc<dyn Store>,
    rule: MaxoutRule,
    notifier: Option<Arc<CustomerNotifier>>,
    engine: Option<Arc<Engine>>,
    mut receiver: mpsc::UnboundedReceiver<Vec<TelemetrySample>>,
) {
    let mut circuits = resume_open_events(store.as_ref()).await;
    // Circuit facts (or their absence) as last read, for CIRCUIT_TTL: detection reads the
    // database for a circuit at most that often, not on every commit.
    let mut known: HashMap<String, (Option<CircuitRecord>, Instant)> = HashMap::new();
    while let Some(samples) = receiver.recv().await {
        let mut by_circuit: BTreeMap<&str, Vec<&TelemetrySample>> = BTreeMap::new();
        for s in &samples {
            by_circuit.entry(&s.circuit_id).or_default().push(s);
        }
        let stale: Vec<String> = by_circuit
            .keys()
            .filter(|id| {
                known
                    .get(**id)
                    .is_none_or(|(_, at)| at.elapsed() > CIRCUIT_TTL)
            })
            .map(|id| id.to_string())
            .collect();
        if !stale.is_empty() {
            match store.circuits_by_ids(&stale).await {
                Ok(found) => {
                    let now = Instant::now();
                    for id in &stale {
                        known.insert(id.clone(), (None, now));
                    }
                    for c in found {
                        known.insert(c.circuit_id.clone(), (Some(c), now));
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, "maxout detection cannot read circuits; samples skipped for detection");
                    continue;
                }
            }
        }
        for (id, mut list) in by_circuit {
            let Some((Some(circuit), _)) = known.get(id) else {
                continue; // unknown circuit: no capacity to measure against
            };
            let capacity = Capacity {
                provisioned_mbps: circuit.provisioned_mbps,
                burst_mbps: circuit.burst_mbps,
            };
            list.sort_by_key(|s| s.at);
            let tracked = circuits.entry(id.to_string()).or_default();
            for s in list {
                let at = s.at.timestamp_millis();
                // Before the sample is fed: it decides whether a resumed event is stale.
                let expired = tracked
                    .state
                    .expire_resumed(at, RESUME_GAP_MS)
                    .map(Transition::Closed);
                let fed = tracked.state.feed(at, s.utilization_mbps, capacity, rule);
                for change in expired.into_iter().chain(fed) {
                    record_change(
                        store.as_ref(),
                        notifier.as_ref(),
                        engine.as_ref(),
                        circuit,
                        tracked,
                        &change,
                    )
                    .await;
                }
            }
        }
    }
}

/// Stores a change of a circuit's event, tells the customer notifier of an opened one and
/// the alert engine of every one.
async fn record_change(
    store: &dyn Store,
    notifier: Option<&Arc<CustomerNotifier>>,
    engine: Option<&Arc<Engine>>,
    circuit: &CircuitRecord,
    tracked: &mut Tracked,
    change: &Transition,
) {
    let id = circuit.circuit_id.as_str();
    let written = match (change, tracked.event_id) {
        (Transition::Opened(event), _) => {
            match store.open_circuit_maxout(circuit, event, Utc::now()).await {
                Ok(event_id) => {
                    tracing::warn!(circuit = id, peak_mbps = event.peak_mbps, "circuit maxout");
                    tracked.event_id = Some(event_id);
                    if let Some(notifier) = notifier {
                        notifier.maxout_opened(circuit, event_id, event).await;
                    }
                    Ok(())
                }
                Err(err) => Err(err),
            }
        }
        (Transition::Extended(event), Some(event_id)) => {
            store.update_circuit_maxout(event_id, event, true).await
        }
        (Transition::Closed(event), Some(event_id)) => {
            tracked.event_id = None;
            store.update_circuit_maxout(event_id, event, false).await
        }
        _ => Ok(()),
    };
    if let Err(err) = written {
        tracing::error!(circuit = id, error = %err, "cannot record a circuit maxout change");
    }
    if let Some(engine) = engine {
        if let Some(signal) = anomaly_signal(circuit, change) {
            if let Err(err) = engine.apply(vec![signal], Utc::now()).await {
                tracing::error!(circuit = id, error = %err, "cannot store a circuit maxout anomaly");
            }
        }
    }
}

/// The events the last run left open, so that they go on or close with the next samples
/// instead of a second event opening beside each.
async fn resume_open_events(store: &dyn Store) -> HashMap<String, Tracked> {
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
    let mut resumed: HashMap<String, Tracked> = HashMap::new();
    for e in events {
        let event = CircuitEvent {
            start: e.start.timestamp_millis(),
            end: e.end.timestamp_millis(),
            samples: u32::try_from(e.samples).unwrap_or(0),
            peak_mbps: e.peak_mbps,
            severity: if e.severity == Severity::Burst.as_str() {
                Severity::Burst
            } else {
                Severity::Maxout
            },
        };
        let tracked = Tracked {
            state: CircuitState::resumed(event),
            event_id: Some(e.id),
        };
        if let Some(earlier) = resumed.insert(e.circuit_id.clone(), tracked) {
            if let (Some(id), Some(event)) = (earlier.event_id, earlier.state.open_event()) {
                if let Err(err) = store.update_circuit_maxout(id, event, false).await {
                    tracing::error!(circuit = %e.circuit_id, error = %err, "cannot close a duplicate open circuit maxout");
                }
            }
        }
    }
    resumed
}

/// The NOC's view of a circuit maxout: opened with the event, cleared when it closes.
fn anomaly_signal(circuit: &CircuitRecord, change: &Transition) -> Option<Signal> {
    use crate::storage::alerting::{NewAnomaly, Severity as AnomalySeverity};
    match change {
        Transition::Opened(event) => {
            let pct = 100.0 * event.peak_mbps / circuit.provisioned_mbps.max(f64::EPSILON);
            Some(Signal::Firing(NewAnomaly {
                kind: kinds::CIRCUIT_MAXOUT.to_string(),
                subject: circuit.circuit_id.clone(),
                group_key: circuit.account.clone(),
                severity: match event.severity {
                    Severity::Maxout => AnomalySeverity::High,
                    Severity::Burst => AnomalySeverity::Medium,
                },
                summary: format!(
                    "circuit {} at {:.0} Mbps, {pct:.0}% of its {} Mbps",
                    circuit.circuit_id, event.peak_mbps, circuit.provisioned_mbps
                ),
                details: serde_json::json!({
                    "peak_mbps": event.peak_mbps, "provisioned_mbps": circuit.provisioned_mbps,
                    "burst_mbps": circuit.burst_mbps, "severity": event.severity.as_str(),
                }),
            }))
        }
        Transition::Closed(_) => Some(Signal::Clear {
            kind: kinds::CIRCUIT_MAXOUT,
            subject: circuit.circuit_id.clone(),
        }),
        _ => None,
    }
}

//! Runs the detectors on what agents send, after it is committed, and checks for agents that
//! went silent. Detector state lives here, in memory: after a restart a device's debounce
//! starts again and its latency baseline is learned anew.

use super::engine::Engine;
use crate::detect::device::{self, DeviceRef, DeviceRules, DeviceState};
use crate::detect::identity::{self, Known};
use crate::detect::speed::{self, SpeedFloors};
use crate::detect::{firing, kinds, Signal};
use crate::events::Event;
use crate::storage::alerting::Severity;
use crate::storage::{DeviceQuery, Store};
use netwarden_shared::{AgentId, DeviceStatus, Record, RecordKind};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const AGENT_CHECK: Duration = Duration::from_secs(5);

/// Handle the ingest path gives committed records to.
#[derive(Clone)]
pub struct Watch {
    queue: mpsc::Sender<(AgentId, Vec<Record>)>,
    /// Tells the rollup job how far back committed rounds go.
    pub rollup: crate::rollup::job::Committed,
}

impl Watch {
    pub async fn committed(&self, agent: AgentId, records: Vec<Record>) {
        if let Some(oldest) = records
            .iter()
            .filter(|r| matches!(r.kind, RecordKind::Probe(_)))
            .map(|r| r.observed_at)
            .min()
        {
            self.rollup.saw(oldest);
        }
        // Bounded: a detection backlog slows acknowledgements rather than growing memory.
        let _ = self.queue.send((agent, records)).await;
    }
}

pub struct Detectors {
    rules: DeviceRules,
    floors: SpeedFloors,
    devices: HashMap<(String, String), DeviceState>,
    identities: HashMap<(String, String), Option<Known>>,
    speed_low: HashMap<(String, &'static str), bool>,
    /// Each device's last reported status, for live status-change events.
    statuses: HashMap<(String, String), DeviceStatus>,
}

impl Detectors {
    pub fn new(rules: DeviceRules, floors: SpeedFloors) -> Self {
        Detectors {
            rules,
            floors,
            devices: HashMap::new(),
            identities: HashMap::new(),
            speed_low: HashMap::new(),
            statuses: HashMap::new(),
        }
    }

    /// Devices the inventory already holds are not new.
    pub fn know_device(&mut self, agent: &str, address: &str, mac: Option<String>) {
        self.identities.insert(
            (agent.to_string(), address.to_string()),
            Some(Known { mac, ports: None }),
        );
    }

    /// Devices whose reported status differs from the last one seen (or was first seen).
    pub fn status_changes(&mut self, agent: &str, records: &[Record]) -> Vec<Event> {
        let mut out = Vec::new();
        for record in records {
            let RecordKind::Probe(round) = &record.kind else {
                continue;
            };
            let key = (agent.to_string(), round.target.to_string());
            let previous = self.statuses.insert(key.clone(), round.status);
            if previous != Some(round.status) {
                out.push(Event::DeviceStatus {
                    agent: key.0,
                    address: key.1,
                    status: round.status.as_str(),
                    previous: previous.map(DeviceStatus::as_str),
                    at: record.observed_at,
                });
            }
        }
        out
    }

    pub fn observe(&mut self, agent: &str, records: &[Record]) -> Vec<Signal> {
        let mut out = Vec::new();
        for record in records {
            match &record.kind {
                RecordKind::Probe(round) => {
                    let address = round.target.to_string();
                    let state = self
                        .devices
                        .entry((agent.to_string(), address.clone()))
                        .or_default();
                    let device = DeviceRef {
                        agent,
                        address: &address,
                    };
                    out.extend(device::observe(
                        &self.rules,
                        state,
                        &device,
                        round,
                        record.observed_at,
                    ));
                }
                RecordKind::Discovery(host) => {
                    let known = self
                        .identities
                        .entry((agent.to_string(), host.address.to_string()))
                        .or_insert(None);
                    out.extend(identity::observe(agent, known, host));
                }
                RecordKind::SpeedTest(test) => {
                    let direction = crate::storage::direction_name(test.direction);
                    let low = self
                        .speed_low
                        .entry((agent.to_string(), direction))
                        .or_default();
                    out.extend(speed::observe(&self.floors, agent, test, low));
                }
            }
        }
        out
    }
}

/// Starts the detection task; returns the handle for the ingest path.
pub fn start(
    store: Arc<dyn Store>,
    engine: Arc<Engine>,
    detectors: Detectors,
    stop: CancellationToken,
) -> (Watch, tokio::task::JoinHandle<()>) {
    let (queue, receiver) = mpsc::channel(256);
    let watcher = Watcher::new(store, engine, detectors);
    let task = tokio::spawn(run(watcher, receiver, stop));
    let watch = Watch {
        queue,
        rollup: crate::rollup::job::Committed::default(),
    };
    (watch, task)
}

/// The detectors and the agent-silence check, over the engine; the task drives it, and the
/// scenario tests drive it step by step in scripted time.
pub struct Watcher {
    store: Arc<dyn Store>,
    engine: Arc<Engine>,
    detectors: Detectors,
    /// Agents reported silent (by this or another collector); cleared when heard.
    silent: HashSet<String>,
}

impl Watcher {
    pub fn new(store: Arc<dyn Store>, engine: Arc<Engine>, detectors: Detectors) -> Self {
        Watcher {
            store,
            engine,
            detectors,
            silent: HashSet::new(),
        }
    }

    /// Reads what the store already knows: the inventory (so known devices are not new) and
    /// the agents already reported silent.
    pub async fn load(&mut self) {
        seed_inventory(self.store.as_ref(), &mut self.detectors).await;
        let open = crate::storage::alerting::AnomalyQuery {
            kind: Some(kinds::AGENT_SILENT.to_string()),
            limit: 10_000,
            ..Default::default()
        };
        match self.store.anomalies(&open).await {
            Ok(list) => self.silent.extend(
                list.into_iter()
                    .filter(|a| a.state != crate::storage::alerting::AnomalyState::Resolved)
                    .map(|a| a.subject),
            ),
            Err(err) => tracing::warn!(error = %err, "cannot read silent agents"),
        }
    }

    /// Runs the detectors over committed records.
    pub async fn committed(&mut self, agent: &str, records: &[Record]) {
        for event in self.detectors.status_changes(agent, records) {
            self.engine.events.publish(event);
        }
        let signals = self.detectors.observe(agent, records);
        if let Err(err) = self.engine.apply(signals, self.engine.now()).await {
            tracing::error!(error = %err, "cannot store anomalies");
        }
    }

    /// Resolves what has stayed clear long enough.
    pub async fn tick(&self) {
        if let Err(err) = self.engine.tick(self.engine.now()).await {
            tracing::error!(error = %err, "cannot resolve cleared anomalies");
        }
    }

    /// Opens `agent_silent` for agents quiet longer than `agent_silent_secs`, and clears it
    /// for those heard again (nothing when `agent_silent_secs` is 0: the check is off).
    pub async fn check_agents(&mut self) {
        if self.engine.config().agent_silent_secs == 0 {
            return;
        }
        if let Err(err) = self.try_check_agents().await {
            tracing::warn!(error = %err, "cannot check for silent agents");
        }
    }

    async fn try_check_agents(&mut self) -> Result<(), crate::storage::StoreError> {
        let now = self.engine.now();
        let limit = chrono::Duration::seconds(self.engine.config().agent_silent_secs as i64);
        let mut signals = Vec::new();
        for agent in self.store.agents().await? {
            let quiet = now - agent.last_seen;
            if quiet > limit {
                if self.silent.insert(agent.id.clone()) {
                    signals.push(firing(
                        kinds::AGENT_SILENT,
                        &agent.id,
                        &agent.id,
                        Severity::Critical,
                        format!(
                            "agent {} has sent nothing for {} s",
                            agent.id,
                            quiet.num_seconds()
                        ),
                        serde_json::json!({ "last_seen": agent.last_seen }),
                    ));
                }
            } else if self.silent.remove(&agent.id) {
                signals.push(Signal::Clear {
                    kind: kinds::AGENT_SILENT,
                    subject: agent.id.clone(),
                });
            }
        }
        self.engine.apply(signals, now).await
    }
}

async fn seed_inventory(store: &dyn Store, detectors: &mut Detectors) {
    let mut offset = 0;
    loop {
        let query = DeviceQuery {
            limit: 1000,
            offset,
            ..DeviceQuery::default()
        };
        match store.devices(&query).await {
            Ok(page) => {
                for d in &page {
                    detectors.know_device(&d.agent_id, &d.address, d.mac.clone());
                }
                if page.len() < 1000 {
                    return;
                }
                offset += 1000;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the inventory; devices may be reported as new");
                return;
            }
        }
    }
}

async fn run(
    mut watcher: Watcher,
    mut receiver: mpsc::Receiver<(AgentId, Vec<Record>)>,
    stop: CancellationToken,
) {
    watcher.load().await;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut agent_check = tokio::time::interval(AGENT_CHECK);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            received = receiver.recv() => {
                let Some((agent, records)) = received else { break };
                watcher.committed(agent.as_str(), &records).await;
            }
            _ = tick.tick() => watcher.tick().await,
            _ = agent_check.tick() => watcher.check_agents().await,
        }
    }
}

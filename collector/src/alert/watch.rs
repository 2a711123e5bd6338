//! The detection task: runs the detectors (`crate::detect::agents`) on what agents send, after
//! it is committed, and checks for agents that went silent. Detector state is in memory; after
//! a restart the anomalies left open are taken up again (`Detectors::resume`).

use super::engine::Engine;
pub use crate::detect::agents::Detectors;
use crate::detect::{firing, Signal};
use crate::domain::alerting::AnomalyKind;
use crate::domain::alerting::{AnomalyQuery, AnomalyState, Severity};
use crate::storage::{DeviceQuery, Store};
use netwarden_shared::{AgentId, Record, RecordKind};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const AGENT_CHECK: Duration = Duration::from_secs(5);
/// How often old one-off events are looked for.
const ONE_OFF_CHECK: Duration = Duration::from_secs(60);

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

/// The handle for the ingest path and the detection task, which runs until `stop` and, before
/// that, until what the ingest path handed over is looked at.
pub fn new(store: Arc<dyn Store>, engine: Arc<Engine>, detectors: Detectors) -> (Watch, WatchTask) {
    let (queue, receiver) = mpsc::channel(256);
    let watch = Watch {
        queue,
        rollup: crate::rollup::job::Committed::default(),
    };
    let task = WatchTask {
        watcher: Watcher::new(store, engine, detectors),
        receiver,
    };
    (watch, task)
}

/// The detection task, not started yet.
pub struct WatchTask {
    watcher: Watcher,
    receiver: mpsc::Receiver<(AgentId, Vec<Record>)>,
}

impl WatchTask {
    pub async fn run(self, stop: CancellationToken) {
        run(self.watcher, self.receiver, stop).await
    }
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

    /// Reads what the store already knows: the inventory (so known devices are not new), the
    /// anomalies left open (so they clear when their condition ends) and the agents already
    /// reported silent.
    pub async fn load(&mut self) {
        seed_inventory(self.store.as_ref(), &mut self.detectors).await;
        let now = self.engine.now();
        for state in [AnomalyState::Open, AnomalyState::Acknowledged] {
            let mut offset = 0;
            loop {
                let query = AnomalyQuery {
                    state: Some(state),
                    limit: 1000,
                    offset,
                    ..AnomalyQuery::default()
                };
                match self.store.anomalies(&query).await {
                    Ok(page) => {
                        for anomaly in &page {
                            self.detectors.resume(anomaly, now);
                        }
                        if page.len() < 1000 {
                            break;
                        }
                        offset += 1000;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot read open anomalies; those open may not clear by themselves");
                        break;
                    }
                }
            }
        }
        let open = AnomalyQuery {
            kind: Some(AnomalyKind::AgentSilent),
            limit: 10_000,
            ..Default::default()
        };
        match self.store.anomalies(&open).await {
            Ok(list) => self.silent.extend(
                list.into_iter()
                    .filter(|a| a.state != AnomalyState::Resolved)
                    .map(|a| a.subject),
            ),
            Err(err) => tracing::warn!(error = %err, "cannot read silent agents"),
        }
    }

    /// Runs the detectors over committed records.
    pub async fn committed(&mut self, agent: &str, records: &[Record]) {
        let records = self.detectors.live_only(agent, records);
        let records = records.as_ref();
        for event in self.detectors.status_changes(agent, records) {
            self.engine.events.publish(event);
        }
        // A site seen for the first time: its sweep is the baseline (by whichever collector
        // recorded it first; kept across restarts).
        for (site, sweep_at) in self.detectors.unknown_sites(agent, records) {
            match self.store.site_baseline(agent, &site, sweep_at).await {
                Ok(first) => self.detectors.know_baseline(agent, &site, first),
                Err(err) => {
                    tracing::warn!(error = %err, agent, site, "cannot read the site's first sweep; its hosts count as seen before");
                    self.detectors.know_baseline(agent, &site, sweep_at);
                }
            }
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

    /// Resolves one-off events open longer than `one_off_resolve_secs`.
    pub async fn expire_one_offs(&self) {
        if let Err(err) = self.engine.expire_one_offs(self.engine.now()).await {
            tracing::error!(error = %err, "cannot resolve old one-off events");
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
                        AnomalyKind::AgentSilent,
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
                    kind: AnomalyKind::AgentSilent,
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
    let mut one_offs = tokio::time::interval(ONE_OFF_CHECK);
    loop {
        tokio::select! {
            received = receiver.recv() => {
                let Some((agent, records)) = received else { break };
                watcher.committed(agent.as_str(), &records).await;
            }
            _ = stop.cancelled() => {
                // What the ingest path handed over is looked at before stopping.
                while let Ok((agent, records)) = receiver.try_recv() {
                    watcher.committed(agent.as_str(), &records).await;
                }
                break;
            }
            _ = tick.tick() => watcher.tick().await,
            _ = agent_check.tick() => watcher.check_agents().await,
            _ = one_offs.tick() => watcher.expire_one_offs().await,
        }
    }
}

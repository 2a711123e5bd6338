//! Runs the detectors on what agents send, after it is committed, and checks for agents that
//! went silent. Detector state lives here, in memory: after a restart a device's debounce
//! starts again and its latency baseline is learned anew.

use super::engine::Engine;
use crate::detect::device::{self, DeviceRef, DeviceRules, DeviceState};
use crate::detect::identity::{self, Known};
use crate::detect::speed::{self, SpeedFloors};
use crate::detect::{firing, kinds, Signal};
use crate::events::Event;
use crate::storage::alerting::{Anomaly, AnomalyQuery, AnomalyState, Severity};
use crate::storage::{DeviceQuery, Store};
use chrono::{DateTime, Utc};
use netwarden_shared::{AgentId, DeviceStatus, Record, RecordKind};
use std::collections::{HashMap, HashSet};
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

pub struct Detectors {
    rules: DeviceRules,
    floors: SpeedFloors,
    devices: HashMap<(String, String), DeviceState>,
    identities: HashMap<(String, String), Option<Known>>,
    speed_low: HashMap<(String, &'static str), bool>,
    /// Each device's last reported status, for live status-change events.
    statuses: HashMap<(String, String), DeviceStatus>,
    /// Each discovery site's first sweep (agent, site): its hosts are the baseline.
    baselines: HashMap<(String, String), DateTime<Utc>>,
    /// Per agent: its targets' latest rounds, and whether `site_unreachable` is open.
    sites: HashMap<String, SiteHealth>,
    /// Per agent, the time of the newest record judged for each subject.
    newest: HashMap<String, HashMap<Subject, DateTime<Utc>>>,
}

/// What a record is about, for ordering: a target's rounds, a host's sightings, a speed test
/// direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Subject {
    Round(std::net::IpAddr),
    Host(std::net::IpAddr),
    Speed(u8),
}

impl Subject {
    fn of(record: &Record) -> Subject {
        match &record.kind {
            RecordKind::Probe(round) => Subject::Round(round.target),
            RecordKind::Discovery(host) => Subject::Host(host.address),
            RecordKind::SpeedTest(test) => Subject::Speed(test.direction as u8),
        }
    }
}

/// An agent's targets as their last rounds left them, for the site check.
#[derive(Debug, Default)]
struct SiteHealth {
    /// Target -> (its last round's time, that round unanswered, its offline anomaly open).
    targets: HashMap<String, (DateTime<Utc>, bool, bool)>,
    reported: bool,
}

/// A site is unreachable when at least this share of its targets is offline at once...
const SITE_DOWN_SHARE: f64 = 0.8;
/// ...and reachable again under this share (hysteresis).
const SITE_UP_SHARE: f64 = 0.5;
/// With fewer targets than this, no site verdict (two hosts down is two hosts down).
const SITE_MIN_TARGETS: usize = 3;
/// Targets whose last round is older than this, behind the agent's newest, no longer count
/// (removed from the probe plan).
const SITE_STALE_SECS: i64 = 900;

impl Detectors {
    pub fn new(rules: DeviceRules, floors: SpeedFloors) -> Self {
        Detectors {
            rules,
            floors,
            devices: HashMap::new(),
            identities: HashMap::new(),
            speed_low: HashMap::new(),
            statuses: HashMap::new(),
            baselines: HashMap::new(),
            sites: HashMap::new(),
            newest: HashMap::new(),
        }
    }

    /// The records newer than anything judged before for their subject. An agent sends its
    /// newest results first after an outage and its backlog behind them: the backlog is
    /// stored (history, rollups) but not judged, since detection follows each device's
    /// present and a round from hours ago must not reopen what the present has cleared.
    pub fn live_only<'a>(
        &mut self,
        agent: &str,
        records: &'a [Record],
    ) -> std::borrow::Cow<'a, [Record]> {
        let newest = match self.newest.get_mut(agent) {
            Some(newest) => newest,
            None => self.newest.entry(agent.to_string()).or_default(),
        };
        let mut stale: Vec<usize> = Vec::new();
        for (i, record) in records.iter().enumerate() {
            match newest.entry(Subject::of(record)) {
                std::collections::hash_map::Entry::Occupied(mut seen) => {
                    // Strictly older: two records of one time (a test's, a clock's
                    // resolution) are both judged.
                    if *seen.get() > record.observed_at {
                        stale.push(i);
                    } else {
                        seen.insert(record.observed_at);
                    }
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(record.observed_at);
                }
            }
        }
        if stale.is_empty() {
            return std::borrow::Cow::Borrowed(records);
        }
        let mut stale = stale.into_iter().peekable();
        std::borrow::Cow::Owned(
            records
                .iter()
                .enumerate()
                .filter(|(i, _)| stale.next_if_eq(i).is_none())
                .map(|(_, r)| r.clone())
                .collect(),
        )
    }

    /// The discovery sites (and their sweeps' times) in records whose baseline is not known
    /// here yet.
    pub fn unknown_sites(&self, agent: &str, records: &[Record]) -> Vec<(String, DateTime<Utc>)> {
        let mut out: Vec<(String, DateTime<Utc>)> = Vec::new();
        for record in records {
            if let RecordKind::Discovery(host) = &record.kind {
                let site = host.site.clone().unwrap_or_default();
                let key = (agent.to_string(), site.clone());
                if !self.baselines.contains_key(&key) && !out.iter().any(|(s, _)| *s == site) {
                    out.push((site, record.observed_at));
                }
            }
        }
        out
    }

    /// Takes up an anomaly an earlier run left open, so its detector clears it when the
    /// condition ends (see [`DeviceState::resume`]).
    pub fn resume(&mut self, anomaly: &Anomaly, now: DateTime<Utc>) {
        match anomaly.kind.as_str() {
            kinds::SITE_UNREACHABLE => {
                self.sites
                    .entry(anomaly.subject.clone())
                    .or_default()
                    .reported = true;
            }
            kinds::SPEED_LOW => {
                let direction = match anomaly.subject.rsplit_once('/') {
                    Some((agent, "download")) => Some((agent, "download")),
                    Some((agent, "upload")) => Some((agent, "upload")),
                    _ => None,
                };
                if let Some((agent, direction)) = direction {
                    self.speed_low.insert((agent.to_string(), direction), true);
                }
            }
            kind => {
                // Device anomalies: "agent/address" (an agent id has no '/').
                if let Some((agent, address)) = anomaly.subject.split_once('/') {
                    self.devices
                        .entry((agent.to_string(), address.to_string()))
                        .or_default()
                        .resume(kind, anomaly.severity, &anomaly.details, &self.rules, now);
                }
            }
        }
    }

    /// Records a site's first sweep (read from, or just written to, the store).
    pub fn know_baseline(&mut self, agent: &str, site: &str, at: DateTime<Utc>) {
        self.baselines
            .insert((agent.to_string(), site.to_string()), at);
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
        let mut probed = false;
        for record in records {
            match &record.kind {
                RecordKind::Probe(round) => {
                    probed = true;
                    let address = round.target.to_string();
                    // A device being probed is known: its first sighting by discovery is
                    // not a new device, whenever the collector last started.
                    self.identities
                        .entry((agent.to_string(), address.clone()))
                        .or_insert_with(|| Some(Known::default()));
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
                    let reported = state.offline_reported();
                    let site = self.sites.entry(agent.to_string()).or_default();
                    site.targets.insert(
                        address,
                        (
                            record.observed_at,
                            round.status == DeviceStatus::Offline,
                            reported,
                        ),
                    );
                }
                RecordKind::Discovery(host) => {
                    let site = host.site.clone().unwrap_or_default();
                    let baseline = self
                        .baselines
                        .get(&(agent.to_string(), site))
                        .is_some_and(|first| *first == record.observed_at);
                    let known = self
                        .identities
                        .entry((agent.to_string(), host.address.to_string()))
                        .or_insert(None);
                    out.extend(identity::observe(agent, known, host, baseline));
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
        if probed {
            // Ahead of the devices' own signals: stored first, it mutes them.
            if let Some(signal) = self.site_check(agent) {
                out.insert(0, signal);
            }
        }
        out
    }

    /// Whether most of an agent's targets are down at once: the site (its LAN, its uplink)
    /// is unreachable, and one `site_unreachable` anomaly speaks for them all and mutes
    /// theirs, whether a gateway is configured or not. It fires in the batch where the first
    /// of their offline anomalies does (hosts that went down a moment apart, a round apart,
    /// count as down by their last round), so none of them pages first; a site-wide blip too
    /// short for any device to be offline raises nothing.
    fn site_check(&mut self, agent: &str) -> Option<Signal> {
        let site = self.sites.get_mut(agent)?;
        let newest = site.targets.values().map(|t| t.0).max()?;
        site.targets
            .retain(|_, (at, ..)| (newest - *at).num_seconds() <= SITE_STALE_SECS);
        let total = site.targets.len();
        let down = site.targets.values().filter(|t| t.1).count();
        let confirmed = site.targets.values().any(|t| t.1 && t.2);
        if total < SITE_MIN_TARGETS {
            return None;
        }
        let share = down as f64 / total as f64;
        if !site.reported && share >= SITE_DOWN_SHARE && confirmed {
            site.reported = true;
            return Some(firing(
                kinds::SITE_UNREACHABLE,
                agent,
                agent,
                Severity::Critical,
                format!(
                    "site of agent {agent} unreachable: {down} of its {total} targets offline at once"
                ),
                serde_json::json!({ "offline": down, "targets": total }),
            ));
        }
        if site.reported && share < SITE_UP_SHARE {
            site.reported = false;
            return Some(Signal::Clear {
                kind: kinds::SITE_UNREACHABLE,
                subject: agent.to_string(),
            });
        }
        None
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
    let mut one_offs = tokio::time::interval(ONE_OFF_CHECK);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            received = receiver.recv() => {
                let Some((agent, records)) = received else { break };
                watcher.committed(agent.as_str(), &records).await;
            }
            _ = tick.tick() => watcher.tick().await,
            _ = agent_check.tick() => watcher.check_agents().await,
            _ = one_offs.tick() => watcher.expire_one_offs().await,
        }
    }
}

#[cfg(test)]
mod tests;

//! Everything an agent's records are judged by, as one stateful set: each device's probe
//! rounds, discovered hosts' identities, speed tests and the site as a whole. Pure: records
//! in, signals and live status events out; the detection task (`crate::alert::watch`) feeds it
//! and applies what it concludes.

use super::device::{self, DeviceRef, DeviceRules, DeviceState};
use super::identity::{self, Known};
use super::speed::{self, SpeedFloors};
use super::{firing, Signal};
use crate::domain::alerting::{Anomaly, AnomalyKind, Severity};
use crate::events::Event;
use chrono::{DateTime, Utc};
use netwarden_shared::{DeviceStatus, Record, RecordKind};
use std::collections::HashMap;

pub struct Detectors {
    rules: DeviceRules,
    floors: SpeedFloors,
    devices: HashMap<(String, String), DeviceState>,
    identities: HashMap<(String, String), Option<Known>>,
    speed_low: HashMap<(String, &'static str), bool>,
    /// Each checked port's run: (agent, address, port).
    ports: HashMap<(String, std::net::IpAddr, u16), super::Streak>,
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
    Port(std::net::IpAddr, u16),
}

impl Subject {
    fn of(record: &Record) -> Subject {
        match &record.kind {
            RecordKind::Probe(round) => Subject::Round(round.target),
            RecordKind::Discovery(host) => Subject::Host(host.address),
            RecordKind::SpeedTest(test) => Subject::Speed(test.direction as u8),
            RecordKind::Port(check) => Subject::Port(check.target, check.port),
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
            ports: HashMap::new(),
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
        match anomaly.kind {
            AnomalyKind::SiteUnreachable => {
                self.sites
                    .entry(anomaly.subject.clone())
                    .or_default()
                    .reported = true;
            }
            AnomalyKind::SpeedLow => {
                let direction = match anomaly.subject.rsplit_once('/') {
                    Some((agent, "download")) => Some((agent, "download")),
                    Some((agent, "upload")) => Some((agent, "upload")),
                    _ => None,
                };
                if let Some((agent, direction)) = direction {
                    self.speed_low.insert((agent.to_string(), direction), true);
                }
            }
            AnomalyKind::PortDown => {
                if let Some((agent, address, port)) = super::port::parse_subject(&anomaly.subject) {
                    if let Ok(address) = address.parse() {
                        self.ports
                            .entry((agent.to_string(), address, port))
                            .or_default()
                            .resume_active();
                    }
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
                    let direction = test.direction.as_str();
                    let low = self
                        .speed_low
                        .entry((agent.to_string(), direction))
                        .or_default();
                    out.extend(speed::observe(&self.floors, agent, test, low));
                }
                RecordKind::Port(check) => {
                    // A checked host is known, as a probed one is: found by a sweep later, it
                    // is not a new device.
                    self.identities
                        .entry((agent.to_string(), check.target.to_string()))
                        .or_insert_with(|| Some(Known::default()));
                    let run = self
                        .ports
                        .entry((agent.to_string(), check.target, check.port))
                        .or_default();
                    out.extend(super::port::observe(&self.rules, run, agent, check));
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
                AnomalyKind::SiteUnreachable,
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
                kind: AnomalyKind::SiteUnreachable,
                subject: agent.to_string(),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests;

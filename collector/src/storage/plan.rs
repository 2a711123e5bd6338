//! Turns a batch into the rows both backends write, so the two stay in step: the newest round
//! per device (for the device's current status) and the records split by kind.

use super::merge;
use chrono::{DateTime, Utc};
use netwarden_shared::{Batch, DiscoveredHost, PortCheck, ProbeRound, RecordKind, SpeedTest};
use std::collections::HashMap;
use std::net::IpAddr;

/// The latest known facts about one device in a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceLatest {
    pub address: IpAddr,
    /// Earliest and latest observation of the device in the batch.
    pub first_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
    /// From the newest probe round, if the batch has one for the device.
    pub probe: Option<LatestProbe>,
    /// From the newest discovery record, if any: when, mac, vendor, hostname.
    pub identity: Option<Identity>,
}

/// What a device's newest probe round in a batch says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatestProbe {
    pub at: DateTime<Utc>,
    /// [`netwarden_shared::DeviceStatus::code`].
    pub status: i16,
    pub loss_pct: f32,
    /// Median RTT; none when nothing came back.
    pub rtt_ms: Option<f32>,
    /// What showed it up (`icmp`, `arp`, `tcp`); none when offline.
    pub alive_by: Option<&'static str>,
}

/// A device's identity as one discovery record saw it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Identity {
    pub at: DateTime<Utc>,
    pub mac: Option<String>,
    pub vendor: Option<String>,
    pub hostname: Option<String>,
}

#[derive(Debug, Default)]
pub struct BatchPlan<'a> {
    /// Devices in address order (a fixed lock order keeps concurrent upserts deadlock-free).
    pub devices: Vec<DeviceLatest>,
    pub probes: Vec<(&'a ProbeRound, DateTime<Utc>, u64)>,
    pub discoveries: Vec<(&'a DiscoveredHost, DateTime<Utc>, u64)>,
    pub speed_tests: Vec<(&'a SpeedTest, DateTime<Utc>, u64)>,
    pub port_checks: Vec<(&'a PortCheck, DateTime<Utc>, u64)>,
    /// Each checked port's newest state in the batch, for `port_status`.
    pub ports: Vec<PortLatest>,
}

/// What a batch says of one port now, and since when.
#[derive(Debug, Clone, PartialEq)]
pub struct PortLatest {
    pub address: IpAddr,
    pub port: u16,
    pub state: netwarden_shared::PortState,
    pub at: DateTime<Utc>,
    pub connect_ms: Option<f32>,
    /// The first check of the batch's last run of open (or of not open) checks...
    pub run_since: DateTime<Utc>,
    /// ...and whether that run is all the batch holds of the port, so a stored run of the same
    /// kind goes on rather than starting again.
    pub whole_batch: bool,
}

fn port_latest(checks: &[(&PortCheck, DateTime<Utc>, u64)]) -> Vec<PortLatest> {
    /// A port's checks in the batch: when, the record id, the check.
    type Seen<'c> = Vec<(DateTime<Utc>, u64, &'c PortCheck)>;
    let mut by_port: HashMap<(IpAddr, u16), Seen> = HashMap::new();
    for (check, at, id) in checks {
        by_port
            .entry((check.target, check.port))
            .or_default()
            .push((*at, *id, check));
    }
    let mut out: Vec<PortLatest> = by_port
        .into_iter()
        .filter_map(|((address, port), mut seen)| {
            seen.sort_by_key(|(at, id, _)| (*at, *id));
            let open = |c: &PortCheck| c.state == netwarden_shared::PortState::Open;
            let &(at, _, newest) = seen.last()?;
            let run = seen
                .iter()
                .rposition(|(_, _, c)| open(c) != open(newest))
                .map_or(0, |i| i + 1);
            Some(PortLatest {
                address,
                port,
                state: newest.state,
                at,
                connect_ms: newest.connect_ms,
                run_since: seen[run].0,
                whole_batch: run == 0,
            })
        })
        .collect();
    out.sort_by_key(|p| (p.address, p.port));
    out
}

impl<'a> BatchPlan<'a> {
    /// Plans one or more batches of the same agent as one write.
    pub fn new(batches: impl IntoIterator<Item = &'a Batch>) -> Self {
        let mut plan = BatchPlan::default();
        let mut latest: HashMap<IpAddr, DeviceLatest> = HashMap::new();
        for record in batches.into_iter().flat_map(|b| &b.records) {
            let at = record.observed_at;
            match &record.kind {
                RecordKind::Probe(round) => {
                    plan.probes.push((round, at, record.record_id));
                    let entry = device(&mut latest, round.target, at);
                    if entry.probe.is_none_or(|p| at >= p.at) {
                        entry.probe = Some(LatestProbe {
                            at,
                            status: round.status.code(),
                            loss_pct: round.loss_pct() as f32,
                            rtt_ms: round.rtt.map(|r| r.median),
                            alive_by: round.alive_by.map(|e| e.as_str()),
                        });
                    }
                }
                RecordKind::Discovery(host) => {
                    plan.discoveries.push((host, at, record.record_id));
                    let entry = device(&mut latest, host.address, at);
                    let sighting = Identity {
                        at,
                        mac: host.mac.clone(),
                        vendor: host.vendor.clone(),
                        hostname: host.hostname.clone(),
                    };
                    // The rule the store's upsert applies across batches (`merge::DEVICE`),
                    // so one group of batches stores what the same batches one by one would.
                    entry.identity = Some(match entry.identity.take() {
                        Some(held) => merge::identities(held, sighting),
                        None => sighting,
                    });
                }
                RecordKind::SpeedTest(test) => plan.speed_tests.push((test, at, record.record_id)),
                RecordKind::Port(check) => {
                    // A checked port's device is in the inventory (its rows hang off it), as a
                    // probed target's is; the device's status stays its ICMP rounds' verdict.
                    device(&mut latest, check.target, at);
                    plan.port_checks.push((check, at, record.record_id));
                }
            }
        }
        plan.ports = port_latest(&plan.port_checks);
        let mut devices: Vec<_> = latest.into_values().collect();
        devices.sort_by_key(|d| d.address);
        plan.devices = devices;
        plan
    }
}

fn device(
    latest: &mut HashMap<IpAddr, DeviceLatest>,
    address: IpAddr,
    at: DateTime<Utc>,
) -> &mut DeviceLatest {
    let entry = latest.entry(address).or_insert_with(|| DeviceLatest {
        address,
        first_at: at,
        seen_at: at,
        probe: None,
        identity: None,
    });
    entry.first_at = entry.first_at.min(at);
    entry.seen_at = entry.seen_at.max(at);
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use netwarden_shared::{AgentStatus, DeviceStatus, Record};

    fn round(target: &str, received: u32, status: DeviceStatus) -> RecordKind {
        RecordKind::Probe(ProbeRound {
            target: target.parse().unwrap(),
            sent: 4,
            received,
            rtt: None,
            rtts_ms: vec![1.0; received as usize],
            status,
            alive_by: (received > 0).then_some(netwarden_shared::Evidence::Icmp),
        })
    }

    #[test]
    fn newest_round_decides_the_device_status() {
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        let batch = Batch {
            sequence: 1,
            claimed_agent_id: None,
            status: AgentStatus::default(),
            records: vec![
                Record {
                    record_id: 1,
                    observed_at: t(20),
                    kind: round("10.0.0.2", 4, DeviceStatus::Online),
                },
                Record {
                    record_id: 2,
                    observed_at: t(10),
                    kind: round("10.0.0.2", 0, DeviceStatus::Offline),
                },
                Record {
                    record_id: 3,
                    observed_at: t(15),
                    kind: round("10.0.0.1", 2, DeviceStatus::Degraded),
                },
            ],
        };
        let plan = BatchPlan::new([&batch]);
        assert_eq!(plan.probes.len(), 3);
        let addresses: Vec<_> = plan.devices.iter().map(|d| d.address.to_string()).collect();
        assert_eq!(addresses, ["10.0.0.1", "10.0.0.2"]);
        let newest = plan.devices[1].probe.unwrap();
        assert_eq!(
            (newest.at, newest.status, newest.loss_pct),
            (t(20), DeviceStatus::Online.code(), 0.0)
        );
        assert_eq!(plan.devices[0].probe.unwrap().loss_pct, 50.0);
    }

    #[test]
    fn sightings_in_one_batch_merge_as_across_batches() {
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        let host = |mac: &str, hostname: Option<&str>| {
            RecordKind::Discovery(DiscoveredHost {
                address: "10.0.0.9".parse().unwrap(),
                mac: Some(mac.into()),
                vendor: None,
                hostname: hostname.map(Into::into),
                open_ports: vec![],
                rtt_ms: None,
                method: netwarden_shared::DiscoveryMethod::IcmpAndArp,
                site: None,
                local: false,
            })
        };
        // Newer first, without a name; older second, with one.
        let batch = Batch {
            records: vec![
                (t(20), host("b8:27:eb:00:00:02", None)),
                (t(10), host("00:00:0c:00:00:01", Some("core-sw1.lab"))),
            ]
            .into_iter()
            .zip(1..)
            .map(|((observed_at, kind), record_id)| Record {
                record_id,
                observed_at,
                kind,
            })
            .collect(),
            sequence: 1,
            claimed_agent_id: None,
            status: AgentStatus::default(),
        };
        let identity = BatchPlan::new([&batch]).devices[0]
            .identity
            .clone()
            .unwrap();
        assert_eq!(identity.at, t(20));
        assert_eq!(
            identity.mac.as_deref(),
            Some("b8:27:eb:00:00:02"),
            "the newer MAC"
        );
        assert_eq!(
            identity.hostname.as_deref(),
            Some("core-sw1.lab"),
            "the gap filled"
        );
    }
}

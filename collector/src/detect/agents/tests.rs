use super::*;
use crate::domain::alerting::AnomalyState;
use netwarden_shared::{DiscoveredHost, DiscoveryMethod, Evidence, ProbeRound};

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

fn round(target: &str, received: u32, secs: i64) -> Record {
    Record {
        record_id: 0,
        observed_at: at(secs),
        kind: RecordKind::Probe(ProbeRound {
            target: target.parse().unwrap(),
            sent: 10,
            received,
            rtt: None,
            rtts_ms: vec![1.0; received as usize],
            status: if received == 0 {
                DeviceStatus::Offline
            } else {
                DeviceStatus::Online
            },
            alive_by: (received > 0).then_some(Evidence::Icmp),
        }),
    }
}

fn sighting(address: &str, secs: i64) -> Record {
    Record {
        record_id: 0,
        observed_at: at(secs),
        kind: RecordKind::Discovery(DiscoveredHost {
            address: address.parse().unwrap(),
            mac: Some("02:00:00:00:00:01".into()),
            vendor: None,
            hostname: None,
            open_ports: vec![],
            rtt_ms: Some(0.2),
            method: DiscoveryMethod::IcmpAndArp,
            site: Some("lan".into()),
            local: false,
        }),
    }
}

fn summary(signals: &[Signal]) -> Vec<(AnomalyKind, bool)> {
    signals
        .iter()
        .map(|s| (s.kind(), matches!(s, Signal::Firing(_))))
        .collect()
}

const TARGETS: [&str; 5] = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"];

fn sweep(detectors: &mut Detectors, received: u32, secs: i64) -> Vec<Signal> {
    let records: Vec<Record> = TARGETS.iter().map(|t| round(t, received, secs)).collect();
    detectors.observe("branch", &records)
}

/// Finding 6 of issue 27: a site's LAN down with no gateway configured was one critical page
/// per target; one `site_unreachable` now comes first (and mutes the rest in the engine).
#[test]
fn targets_of_one_agent_failing_together_are_one_site_unreachable() {
    let mut detectors = Detectors::new(DeviceRules::default(), SpeedFloors::default());
    for n in 0..3 {
        assert!(sweep(&mut detectors, 10, n * 10).is_empty());
    }
    assert!(
        sweep(&mut detectors, 0, 30).is_empty(),
        "one round is not yet an outage"
    );
    let fired = summary(&sweep(&mut detectors, 0, 40));
    assert_eq!(fired[0], (AnomalyKind::SiteUnreachable, true), "{fired:?}");
    assert_eq!(
        fired[1..]
            .iter()
            .filter(|(kind, firing)| *kind == AnomalyKind::DeviceOffline && *firing)
            .count(),
        5
    );
    assert!(sweep(&mut detectors, 0, 50).is_empty(), "fires once");
    // Back: offline clears after clear_rounds, and the site with the first good sweep.
    let back = summary(&sweep(&mut detectors, 10, 60));
    assert_eq!(back, vec![(AnomalyKind::SiteUnreachable, false)]);
}

#[test]
fn a_few_targets_down_are_not_a_site() {
    let mut detectors = Detectors::new(DeviceRules::default(), SpeedFloors::default());
    for n in 0..3 {
        sweep(&mut detectors, 10, n * 10);
    }
    let mut signals = Vec::new();
    for n in 3..6 {
        let records: Vec<Record> = TARGETS
            .iter()
            .enumerate()
            .map(|(i, t)| round(t, if i < 3 { 0 } else { 10 }, n * 10))
            .collect();
        signals.extend(detectors.observe("branch", &records));
    }
    let kinds: Vec<(AnomalyKind, bool)> = summary(&signals);
    assert!(
        !kinds
            .iter()
            .any(|(k, _)| *k == AnomalyKind::SiteUnreachable),
        "3 of 5 down is 60 %: {kinds:?}"
    );
    assert_eq!(kinds.len(), 3, "{kinds:?}");
}

/// Finding 4 of issue 27: on first deployment every host of a sweep, and hosts already being
/// probed, were "new"; after the baseline, a host that appears is new, once.
#[test]
fn the_first_sweep_is_the_baseline_and_probed_hosts_are_known() {
    let mut detectors = Detectors::new(DeviceRules::default(), SpeedFloors::default());
    // A host probed before any sweep.
    detectors.observe("branch", &[round("10.0.0.9", 10, 0)]);
    let first = vec![
        sighting("10.0.0.1", 10),
        sighting("10.0.0.2", 10),
        sighting("10.0.0.9", 10),
    ];
    for (site, sweep_at) in detectors.unknown_sites("branch", &first) {
        detectors.know_baseline("branch", &site, sweep_at);
    }
    assert!(detectors.observe("branch", &first).is_empty(), "baseline");
    // The next sweep: hosts seen before are not new; one never seen is.
    let second = vec![
        sighting("10.0.0.1", 70),
        sighting("10.0.0.7", 70),
        sighting("10.0.0.9", 70),
    ];
    assert!(detectors.unknown_sites("branch", &second).is_empty());
    let signals = detectors.observe("branch", &second);
    assert_eq!(summary(&signals), vec![(AnomalyKind::NewDevice, true)]);
    let Signal::Firing(a) = &signals[0] else {
        unreachable!()
    };
    assert_eq!(a.subject, "branch/10.0.0.7");
    assert_eq!(
        a.severity,
        Severity::Medium,
        "the default routes deliver medium"
    );
    assert!(detectors
        .observe("branch", &[sighting("10.0.0.7", 130)])
        .is_empty());
}

#[test]
fn a_host_probed_before_its_first_sighting_is_not_new_after_the_baseline_either() {
    let mut detectors = Detectors::new(DeviceRules::default(), SpeedFloors::default());
    detectors.know_baseline("branch", "lan", at(0));
    detectors.observe("branch", &[round("10.0.0.4", 10, 30)]);
    assert!(detectors
        .observe("branch", &[sighting("10.0.0.4", 60)])
        .is_empty());
}

fn left_open(kind: AnomalyKind, subject: &str, details: serde_json::Value) -> Anomaly {
    Anomaly {
        id: 1,
        kind,
        subject: subject.into(),
        group_key: None,
        severity: Severity::Medium,
        state: AnomalyState::Open,
        summary: String::new(),
        details,
        suppressed: None,
        opened_at: at(0),
        updated_at: at(0),
        acknowledged_at: None,
        acknowledged_by: None,
        acknowledge_note: None,
        resolved_at: None,
        resolved_by: None,
        resolve_note: None,
    }
}

fn timed_round(target: &str, received: u32, median: f32, secs: i64) -> Record {
    let mut record = round(target, received, secs);
    if let RecordKind::Probe(p) = &mut record.kind {
        p.rtt = (received > 0).then_some(netwarden_shared::RttStats {
            min: median,
            median,
            mean: median,
            max: median,
            p95: median,
            stddev: 0.0,
            jitter: 0.1,
        });
        p.rtts_ms = vec![median; received as usize];
    }
    record
}

/// A collector restarted while anomalies were open: they clear when their condition ends,
/// not never (a latency anomaly judged against a baseline relearnt from its slow rounds
/// stayed open for good).
#[test]
fn anomalies_left_open_by_a_restart_clear_when_their_condition_ends() {
    let mut detectors = Detectors::new(DeviceRules::default(), SpeedFloors::default());
    let latency = left_open(
        AnomalyKind::Latency,
        "branch/10.0.0.4",
        serde_json::json!({ "rtt_ms": 80.5, "baseline_ms": 0.5, "spread_ms": 0.05 }),
    );
    detectors.resume(&latency, at(0));
    detectors.resume(
        &left_open(
            AnomalyKind::DeviceOffline,
            "branch/10.0.0.2",
            serde_json::json!({}),
        ),
        at(0),
    );
    detectors.resume(
        &left_open(AnomalyKind::SiteUnreachable, "other", serde_json::json!({})),
        at(0),
    );
    // Still slow, still down: nothing fires again, nothing clears.
    let mut signals = Vec::new();
    for n in 1..=3 {
        signals.extend(detectors.observe(
            "branch",
            &[
                timed_round("10.0.0.4", 10, 80.5, n * 10),
                timed_round("10.0.0.2", 0, 0.0, n * 10),
            ],
        ));
    }
    assert!(signals.is_empty(), "{:?}", summary(&signals));
    // Both back to normal: cleared after the clear rounds.
    let mut signals = Vec::new();
    for n in 4..=6 {
        signals.extend(detectors.observe(
            "branch",
            &[
                timed_round("10.0.0.4", 10, 0.5, n * 10),
                timed_round("10.0.0.2", 10, 0.5, n * 10),
            ],
        ));
    }
    let mut cleared = summary(&signals);
    cleared.sort();
    assert_eq!(
        cleared,
        vec![
            (AnomalyKind::DeviceOffline, false),
            (AnomalyKind::Latency, false)
        ]
    );
    // The site of agent "other" clears once its targets answer.
    let back: Vec<Record> = TARGETS.iter().map(|t| round(t, 10, 70)).collect();
    assert_eq!(
        summary(&detectors.observe("other", &back)),
        vec![(AnomalyKind::SiteUnreachable, false)]
    );
}

/// Issue 28: after an outage an agent sends its newest rounds first and the backlog behind
/// them. The backlog (here: the device offline an hour ago) is stored but not judged: it
/// must not open an offline anomaly the present has long cleared.
#[test]
fn a_backlog_arriving_after_live_rounds_is_not_judged() {
    let mut detectors = Detectors::new(DeviceRules::default(), SpeedFloors::default());
    let live: Vec<Record> = (0..3)
        .map(|i| round("10.0.0.9", 10, 3600 + i * 10))
        .collect();
    let live = detectors.live_only("branch", &live).into_owned();
    assert_eq!(live.len(), 3);
    assert!(detectors.observe("branch", &live).is_empty());
    let backlog: Vec<Record> = (0..20).map(|i| round("10.0.0.9", 0, i * 10)).collect();
    let judged = detectors.live_only("branch", &backlog);
    assert!(judged.is_empty(), "older than the newest round judged");
    assert!(summary(&detectors.observe("branch", &judged)).is_empty());
    // Another target's rounds of the same time are its own.
    let other = [round("10.0.0.10", 0, 0)];
    assert_eq!(detectors.live_only("branch", &other).len(), 1);
    // A round newer than the live ones is judged.
    let next = [round("10.0.0.9", 0, 3700), round("10.0.0.9", 0, 3690)];
    let judged = detectors.live_only("branch", &next);
    assert_eq!(judged.len(), 1);
    assert_eq!(judged[0].observed_at, at(3700));
}

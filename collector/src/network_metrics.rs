//! The network as Prometheus sees it, at `/metrics/network`: each target's newest round (RTT
//! quantiles, loss, jitter, up, when), each checked TCP port and each agent's newest speed
//! tests, labelled with the agent, the address and, from the fleet plan, the target's name, site
//! and labels; and each POI graph's and customer circuit's newest utilisation (from the Cacti
//! scrape and circuit telemetry). Kept in memory from what this collector's agents send (so each collector of a
//! shared database shows its own agents); a scrape renders it whole, within a cap on series so
//! a very large fleet cannot overwhelm Prometheus.

use chrono::{DateTime, Utc};
use netwarden_plan::{Resolver, TargetAddress};
use netwarden_shared::{PortState, Record, RecordKind, SpeedDirection};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Series a scrape carries at most unless configured (`[http] network_metrics_series`).
pub const DEFAULT_SERIES_LIMIT: usize = 100_000;
/// A target, port or speed test not heard of for this long is forgotten (removed from the
/// plan, or its agent gone).
const FORGET_AFTER_SECS: i64 = 86_400;

#[derive(Debug, Clone, Copy)]
struct Round {
    at: DateTime<Utc>,
    sent: u32,
    received: u32,
    /// min, median, p95, max (ms); none when nothing came back.
    rtt: Option<[f32; 4]>,
    jitter_ms: Option<f32>,
    up: bool,
}

#[derive(Debug, Clone, Copy)]
struct Port {
    at: DateTime<Utc>,
    open: bool,
    connect_ms: Option<f32>,
}

#[derive(Debug, Clone)]
struct Speed {
    at: DateTime<Utc>,
    bits_per_second: f64,
    ok: bool,
}

/// A POI graph's newest sample, as shares of its capacity.
#[derive(Debug, Clone)]
struct PoiUse {
    at: DateTime<Utc>,
    poi: String,
    inbound: Option<f64>,
    outbound: Option<f64>,
}

/// A customer circuit's newest sample, as a share of its provisioned rate.
#[derive(Debug, Clone)]
struct CircuitUse {
    at: DateTime<Utc>,
    account: Option<String>,
    pop: Option<String>,
    ratio: f64,
}

#[derive(Default)]
struct State {
    rounds: BTreeMap<(String, IpAddr), Round>,
    ports: BTreeMap<(String, IpAddr, u16), Port>,
    speeds: BTreeMap<(String, &'static str, String), Speed>,
    /// By Cacti source and graph id.
    pois: BTreeMap<(String, i64), PoiUse>,
    circuits: BTreeMap<String, CircuitUse>,
    /// When old entries were last forgotten.
    swept: Option<DateTime<Utc>>,
}

/// What the plan says of an address: the target's name, its site and labels.
#[derive(Debug, Clone, Default)]
struct Known {
    name: String,
    site: Option<String>,
    labels: Vec<(String, String)>,
}

/// The plan's targets by address (exact ones, then prefixes).
#[derive(Default)]
struct PlanIndex {
    exact: HashMap<IpAddr, Known>,
    prefixes: Vec<(ipnet::IpNet, Known)>,
}

impl PlanIndex {
    fn of(resolver: &Resolver) -> PlanIndex {
        let plan = resolver.plan();
        let site_labels: HashMap<&str, &netwarden_plan::Labels> = plan
            .sites
            .iter()
            .map(|s| (s.name.as_str(), &s.labels))
            .collect();
        let mut index = PlanIndex::default();
        for target in &plan.targets {
            let mut labels: BTreeMap<String, String> = target
                .site
                .as_deref()
                .and_then(|s| site_labels.get(s))
                .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            labels.extend(target.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            let mut labels: Vec<(String, String)> = labels
                .into_iter()
                .map(|(k, v)| (label_name(&k), v))
                .collect();
            labels.sort();
            labels.dedup_by(|a, b| a.0 == b.0);
            let known = Known {
                name: target.name.clone(),
                site: target.site.clone(),
                labels,
            };
            match netwarden_plan::parse_address(&target.address, true) {
                // The first target naming an address names it.
                Ok(TargetAddress::Ip(ip)) => {
                    index.exact.entry(ip).or_insert(known);
                }
                Ok(TargetAddress::Prefix(net)) => index.prefixes.push((net, known)),
                _ => {}
            }
        }
        index
    }

    fn get(&self, ip: &IpAddr) -> Option<&Known> {
        self.exact.get(ip).or_else(|| {
            self.prefixes
                .iter()
                .find(|(net, _)| net.contains(ip))
                .map(|(_, k)| k)
        })
    }
}

/// Labels the exporter sets itself; a plan label of the same name is given as `plan_<name>`.
const OWN_LABELS: [&str; 8] = [
    "agent",
    "address",
    "target",
    "site",
    "port",
    "quantile",
    "direction",
    "url",
];

/// A plan label's key as a Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not one of ours
/// and not reserved (`__`).
fn label_name(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    if OWN_LABELS.contains(&name.as_str()) || name.starts_with("__") {
        name = format!("plan_{}", name.trim_start_matches('_'));
    }
    name
}

/// A label value in the text format: backslash, double quote and newline escaped.
fn escape(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

pub struct NetworkMetrics {
    state: Mutex<State>,
    plan: Mutex<Arc<PlanIndex>>,
    limit: AtomicUsize,
    /// Series the cap left out, over every scrape.
    dropped_total: AtomicU64,
}

impl Default for NetworkMetrics {
    fn default() -> Self {
        NetworkMetrics {
            state: Mutex::default(),
            plan: Mutex::default(),
            limit: AtomicUsize::new(DEFAULT_SERIES_LIMIT),
            dropped_total: AtomicU64::new(0),
        }
    }
}

impl NetworkMetrics {
    pub fn set_limit(&self, series: usize) {
        self.limit.store(series, Ordering::Relaxed);
    }

    /// The plan in force, for the targets' names and labels.
    pub fn set_plan(&self, resolver: &Resolver) {
        let index = Arc::new(PlanIndex::of(resolver));
        *self.plan.lock().unwrap_or_else(|e| e.into_inner()) = index;
    }

    /// Takes an agent's records; each series keeps the newest, whatever order they come in.
    pub fn observe(&self, agent: &str, records: &[Record]) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Forgetting needs no scrape: an unscraped collector does not grow for ever.
        let now = Utc::now();
        if state
            .swept
            .is_none_or(|at| (now - at).num_seconds() >= 3600)
        {
            state.forget_before(now);
        }
        for record in records {
            let at = record.observed_at;
            match &record.kind {
                RecordKind::Probe(round) => {
                    let entry = Round {
                        at,
                        sent: round.sent,
                        received: round.received,
                        rtt: round.rtt.map(|r| [r.min, r.median, r.p95, r.max]),
                        jitter_ms: round.rtt.map(|r| r.jitter),
                        up: round.status != netwarden_shared::DeviceStatus::Offline,
                    };
                    newest(
                        &mut state.rounds,
                        (agent.to_string(), round.target),
                        entry,
                        |r| r.at,
                    );
                }
                RecordKind::Port(check) => {
                    let entry = Port {
                        at,
                        open: check.state == PortState::Open,
                        connect_ms: check.connect_ms,
                    };
                    newest(
                        &mut state.ports,
                        (agent.to_string(), check.target, check.port),
                        entry,
                        |p| p.at,
                    );
                }
                RecordKind::SpeedTest(test) => {
                    let direction = match test.direction {
                        SpeedDirection::Download => "download",
                        SpeedDirection::Upload => "upload",
                    };
                    let entry = Speed {
                        at,
                        bits_per_second: test.mbps * 1e6,
                        ok: test.error.is_none(),
                    };
                    newest(
                        &mut state.speeds,
                        (agent.to_string(), direction, test.url.clone()),
                        entry,
                        |s| s.at,
                    );
                }
                RecordKind::Discovery(_) => {}
            }
        }
    }

    /// A POI graph's newest sample (`in_pct`/`out_pct` are percent of its capacity).
    pub fn observe_poi(
        &self,
        source: &str,
        graph: i64,
        poi: &str,
        at: DateTime<Utc>,
        in_pct: Option<f64>,
        out_pct: Option<f64>,
    ) {
        let entry = PoiUse {
            at,
            poi: poi.to_string(),
            inbound: in_pct.map(|p| p / 100.0),
            outbound: out_pct.map(|p| p / 100.0),
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        newest(&mut state.pois, (source.to_string(), graph), entry, |p| {
            p.at
        });
    }

    /// A circuit's newest telemetry sample against its provisioned rate.
    pub fn observe_circuit(
        &self,
        circuit: &crate::domain::telemetry::CircuitRecord,
        at: DateTime<Utc>,
        mbps: f64,
    ) {
        if circuit.provisioned_mbps <= 0.0 {
            return;
        }
        let entry = CircuitUse {
            at,
            account: circuit.account.clone(),
            pop: circuit.pop.clone(),
            ratio: mbps / circuit.provisioned_mbps,
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        newest(
            &mut state.circuits,
            circuit.circuit_id.clone(),
            entry,
            |c| c.at,
        );
    }

    /// The text exposition format (OpenMetrics), at most the configured number of series. The
    /// state is copied under the lock and rendered outside it, so ingest never waits on a
    /// scrape; the cap takes whole targets (all of one's series or none), in order.
    pub fn render(&self, now: DateTime<Utc>) -> String {
        let plan = self.plan.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (rounds, ports, speeds, pois, circuits) = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.forget_before(now);
            (
                state.rounds.clone(),
                state.ports.clone(),
                state.speeds.clone(),
                state.pois.clone(),
                state.circuits.clone(),
            )
        };
        let mut left = self.limit.load(Ordering::Relaxed);
        let mut left_out: u64 = 0;
        let mut fits = |series: usize| {
            if series <= left {
                left -= series;
                true
            } else {
                left_out += series as u64;
                false
            }
        };
        let target_labels = |agent: &str, ip: &IpAddr| {
            let mut labels = vec![("agent", agent.to_string()), ("address", ip.to_string())];
            let mut extra = Vec::new();
            if let Some(known) = plan.get(ip) {
                labels.push(("target", known.name.clone()));
                if let Some(site) = &known.site {
                    labels.push(("site", site.clone()));
                }
                extra = known.labels.clone();
            }
            (labels, extra)
        };
        // Each kept target's labels, worked out once.
        let rounds: Vec<(Labels, Extra, Round)> = rounds
            .into_iter()
            .filter(|(_, r)| fits(round_series(r)))
            .map(|((agent, ip), r)| {
                let (labels, extra) = target_labels(&agent, &ip);
                (labels, extra, r)
            })
            .collect();
        let ports: Vec<(Labels, Extra, Port)> = ports
            .into_iter()
            .filter(|(_, p)| fits(1 + usize::from(p.connect_ms.is_some())))
            .map(|((agent, ip, port), p)| {
                let (mut labels, extra) = target_labels(&agent, &ip);
                labels.push(("port", port.to_string()));
                (labels, extra, p)
            })
            .collect();
        let speeds: Vec<(Labels, Speed)> = speeds
            .into_iter()
            .filter(|_| fits(2))
            .map(|((agent, direction, url), s)| {
                let labels = vec![
                    ("agent", agent),
                    ("direction", direction.to_string()),
                    ("url", url),
                ];
                (labels, s)
            })
            .collect();

        let pois: Vec<(Labels, PoiUse)> = pois
            .into_iter()
            .filter(|(_, p)| {
                fits(usize::from(p.inbound.is_some()) + usize::from(p.outbound.is_some()))
            })
            .map(|((source, graph), p)| {
                let labels = vec![
                    ("poi", p.poi.clone()),
                    ("source", source),
                    ("graph", graph.to_string()),
                ];
                (labels, p)
            })
            .collect();
        let circuits: Vec<(Labels, CircuitUse)> = circuits
            .into_iter()
            .filter(|_| fits(1))
            .map(|(circuit, c)| {
                let mut labels = vec![("circuit", circuit)];
                if let Some(account) = &c.account {
                    labels.push(("account", account.clone()));
                }
                if let Some(pop) = &c.pop {
                    labels.push(("pop", pop.clone()));
                }
                (labels, c)
            })
            .collect();

        let mut out = Writer {
            text: String::new(),
        };
        for (name, kind, help, samples) in ROUND_FAMILIES {
            out.family(name, kind, help);
            for (labels, extra, round) in &rounds {
                for (value, quantile) in samples(round) {
                    match quantile {
                        Some(q) => {
                            let mut labels = labels.clone();
                            labels.push(("quantile", q.to_string()));
                            out.sample(name, &labels, extra, value);
                        }
                        None => out.sample(name, labels, extra, value),
                    }
                }
            }
        }
        out.family(
            "netwarden_tcp_port_up",
            "gauge",
            "1 when the newest TCP check of the port connected, else 0",
        );
        for (labels, extra, check) in &ports {
            let up = if check.open { 1.0 } else { 0.0 };
            out.sample("netwarden_tcp_port_up", labels, extra, up);
        }
        out.family(
            "netwarden_tcp_connect_seconds",
            "gauge",
            "How long the newest accepted connection to the port took",
        );
        for (labels, extra, check) in &ports {
            if let Some(ms) = check.connect_ms {
                let seconds = f64::from(ms) / 1000.0;
                out.sample("netwarden_tcp_connect_seconds", labels, extra, seconds);
            }
        }
        out.family(
            "netwarden_speedtest_bits_per_second",
            "gauge",
            "Throughput of the agent's newest speed test against the server, by direction (0 when it failed)",
        );
        for (labels, test) in &speeds {
            let value = if test.ok { test.bits_per_second } else { 0.0 };
            out.sample("netwarden_speedtest_bits_per_second", labels, &[], value);
        }
        out.family(
            "netwarden_speedtest_last_timestamp_seconds",
            "gauge",
            "When the agent's newest speed test against the server ended (Unix time)",
        );
        for (labels, test) in &speeds {
            let at = test.at.timestamp_millis() as f64 / 1000.0;
            out.sample(
                "netwarden_speedtest_last_timestamp_seconds",
                labels,
                &[],
                at,
            );
        }

        out.family(
            "netwarden_poi_utilisation_ratio",
            "gauge",
            "A POI graph's newest Cacti sample as a share of its capacity, by direction (in, out)",
        );
        for (labels, p) in &pois {
            for (direction, ratio) in [("in", p.inbound), ("out", p.outbound)] {
                if let Some(ratio) = ratio {
                    let mut labels = labels.clone();
                    labels.push(("direction", direction.to_string()));
                    out.sample("netwarden_poi_utilisation_ratio", &labels, &[], ratio);
                }
            }
        }
        out.family(
            "netwarden_circuit_utilisation_ratio",
            "gauge",
            "A customer circuit's newest telemetry sample as a share of its provisioned rate",
        );
        for (labels, c) in &circuits {
            out.sample("netwarden_circuit_utilisation_ratio", labels, &[], c.ratio);
        }

        let dropped_total = self.dropped_total.fetch_add(left_out, Ordering::Relaxed) + left_out;
        let mut text = out.text;
        let _ = write!(
            text,
            "# HELP netwarden_network_series_left_out Series this scrape left out: more than the cap ([http] network_metrics_series)\n\
             # TYPE netwarden_network_series_left_out gauge\n\
             netwarden_network_series_left_out {left_out}\n\
             # HELP netwarden_network_series_dropped Series scrapes left out for the cap, since the collector started\n\
             # TYPE netwarden_network_series_dropped counter\n\
             netwarden_network_series_dropped_total {dropped_total}\n\
             # EOF\n",
        );
        text
    }
}

type Labels = Vec<(&'static str, String)>;
type Extra = Vec<(String, String)>;

/// The series one round gives: 5, and 4 RTT quantiles and jitter when anything came back.
fn round_series(round: &Round) -> usize {
    5 + if round.rtt.is_some() { 4 } else { 0 } + usize::from(round.jitter_ms.is_some())
}

impl State {
    /// Forgets what was not heard of for a day (removed from the plan, or its agent gone).
    fn forget_before(&mut self, now: DateTime<Utc>) {
        let cutoff = now - chrono::Duration::seconds(FORGET_AFTER_SECS);
        self.rounds.retain(|_, r| r.at >= cutoff);
        self.ports.retain(|_, p| p.at >= cutoff);
        self.speeds.retain(|_, s| s.at >= cutoff);
        self.pois.retain(|_, p| p.at >= cutoff);
        self.circuits.retain(|_, c| c.at >= cutoff);
        self.swept = Some(now);
    }
}

/// The metrics over rounds, in the order they are written.
const ROUND_FAMILIES: [RoundFamily; 7] = [
    (
        "netwarden_probe_rtt_seconds",
        "gauge",
        "RTT of the target's newest round: quantile 0 (min), 0.5 (median), 0.95 and 1 (max)",
        |r| {
            r.rtt.map_or_else(Vec::new, |q| {
                [("0", q[0]), ("0.5", q[1]), ("0.95", q[2]), ("1", q[3])]
                    .into_iter()
                    .map(|(quantile, ms)| (f64::from(ms) / 1000.0, Some(quantile)))
                    .collect()
            })
        },
    ),
    (
        "netwarden_probe_loss_ratio",
        "gauge",
        "Share of the newest round's pings that got no reply (0 to 1)",
        |r| {
            vec![(
                if r.sent == 0 {
                    0.0
                } else {
                    f64::from(r.sent - r.received) / f64::from(r.sent)
                },
                None,
            )]
        },
    ),
    (
        "netwarden_probe_jitter_seconds",
        "gauge",
        "Mean difference between consecutive RTTs of the newest round",
        |r| {
            r.jitter_ms
                .map(|j| vec![(f64::from(j) / 1000.0, None)])
                .unwrap_or_default()
        },
    ),
    (
        "netwarden_probe_up",
        "gauge",
        "1 when the newest round found the target up (ping, ARP or an open port), else 0",
        |r| vec![(if r.up { 1.0 } else { 0.0 }, None)],
    ),
    (
        "netwarden_probe_sent",
        "gauge",
        "Pings sent in the newest round",
        |r| vec![(f64::from(r.sent), None)],
    ),
    (
        "netwarden_probe_received",
        "gauge",
        "Replies received in the newest round",
        |r| vec![(f64::from(r.received), None)],
    ),
    (
        "netwarden_probe_last_round_timestamp_seconds",
        "gauge",
        "When the newest round ended (Unix time)",
        |r| vec![(r.at.timestamp_millis() as f64 / 1000.0, None)],
    ),
];

/// A value and, for RTT, its quantile.
type Sample = (f64, Option<&'static str>);
/// A metric over rounds: name, type, help, and the samples of one round.
type RoundFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Round) -> Vec<Sample>,
);

/// Keeps the newer of two observations of a series.
fn newest<K: Ord, V>(map: &mut BTreeMap<K, V>, key: K, value: V, at: fn(&V) -> DateTime<Utc>) {
    match map.get_mut(&key) {
        Some(held) if at(held) > at(&value) => {}
        Some(held) => *held = value,
        None => {
            map.insert(key, value);
        }
    }
}

struct Writer {
    text: String,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, String)],
        extra: &[(String, String)],
        value: f64,
    ) {
        self.text.push_str(name);
        self.text.push('{');
        let pairs = labels
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .chain(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        for (i, (key, value)) in pairs.enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            self.text.push_str(key);
            self.text.push_str("=\"");
            escape(value, &mut self.text);
            self.text.push('"');
        }
        let _ = writeln!(self.text, "}} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netwarden_shared::{DeviceStatus, Evidence, PortCheck, ProbeRound, RttStats};

    fn round(target: &str, at: i64, received: u32) -> Record {
        Record {
            record_id: 0,
            observed_at: DateTime::from_timestamp(at, 0).unwrap(),
            kind: RecordKind::Probe(ProbeRound {
                target: target.parse().unwrap(),
                sent: 10,
                received,
                rtt: (received > 0).then_some(RttStats {
                    min: 1.0,
                    median: 2.0,
                    mean: 2.0,
                    max: 4.0,
                    p95: 3.5,
                    stddev: 0.5,
                    jitter: 0.25,
                }),
                rtts_ms: vec![2.0; received as usize],
                status: if received == 0 {
                    DeviceStatus::Offline
                } else {
                    DeviceStatus::Online
                },
                alive_by: (received > 0).then_some(Evidence::Icmp),
            }),
        }
    }

    fn plan(yaml: &str) -> Resolver {
        let plan = netwarden_plan::from_yaml(yaml).unwrap();
        netwarden_plan::validate(&plan).unwrap();
        Resolver::new(Arc::new(plan), 1)
    }

    #[test]
    fn each_target_is_labelled_from_the_plan_and_keeps_its_newest_round() {
        let metrics = NetworkMetrics::default();
        metrics.set_plan(&plan(
            "sites: [{name: syd, labels: {pop: SYD}}]\n\
             targets:\n  - {name: cpe-1, address: 10.0.0.2, site: syd, labels: {customer: \"Acme \\\"Pty\\\"\", circuit_id: AVC1, agent: x}}\n  - {name: lan, address: 10.1.0.0/29, site: syd}\n",
        ));
        metrics.observe(
            "branch-1",
            &[
                round("10.0.0.2", 200, 7),
                round("10.0.0.2", 100, 10),
                round("10.1.0.3", 150, 0),
            ],
        );
        let text = metrics.render(DateTime::from_timestamp(300, 0).unwrap());
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
                .to_string()
        };
        // The newest round (200 s, 3 of 10 lost), not the late one.
        assert_eq!(
            line("netwarden_probe_loss_ratio{agent=\"branch-1\",address=\"10.0.0.2\""),
            "netwarden_probe_loss_ratio{agent=\"branch-1\",address=\"10.0.0.2\",target=\"cpe-1\",site=\"syd\",circuit_id=\"AVC1\",customer=\"Acme \\\"Pty\\\"\",plan_agent=\"x\",pop=\"SYD\"} 0.3"
        );
        assert!(
            line("netwarden_probe_rtt_seconds{agent=\"branch-1\",address=\"10.0.0.2\",target=\"cpe-1\",site=\"syd\",quantile=\"0\",")
                .ends_with("} 0.001")
        );
        assert!(
            line("netwarden_probe_rtt_seconds{agent=\"branch-1\",address=\"10.0.0.2\",target=\"cpe-1\",site=\"syd\",quantile=\"0.95\",")
                .ends_with("} 0.0035")
        );
        assert!(line(
            "netwarden_probe_last_round_timestamp_seconds{agent=\"branch-1\",address=\"10.0.0.2\""
        )
        .ends_with("} 200"));
        // An address inside a planned prefix takes that target's name; down is 0, no RTT.
        assert!(
            line("netwarden_probe_up{agent=\"branch-1\",address=\"10.1.0.3\",target=\"lan\"")
                .ends_with("} 0")
        );
        assert!(
            !text.contains("netwarden_probe_rtt_seconds{agent=\"branch-1\",address=\"10.1.0.3\"")
        );
        assert!(text.ends_with("# EOF\n"));
        assert!(text.contains("netwarden_network_series_left_out 0\n"));
    }

    #[test]
    fn the_cap_bounds_a_scrape_and_counts_what_it_left_out() {
        let metrics = NetworkMetrics::default();
        metrics.set_limit(10);
        let records: Vec<Record> = (0..20)
            .map(|i| round(&format!("10.0.0.{i}"), 100, 10))
            .chain([Record {
                record_id: 0,
                observed_at: DateTime::from_timestamp(100, 0).unwrap(),
                kind: RecordKind::Port(PortCheck {
                    target: "10.0.0.1".parse().unwrap(),
                    port: 443,
                    state: PortState::Refused,
                    connect_ms: None,
                }),
            }])
            .collect();
        metrics.observe("a", &records);
        let text = metrics.render(DateTime::from_timestamp(200, 0).unwrap());
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("netwarden_network_series"))
            .count();
        assert_eq!(samples, 10);
        // 20 targets x 10 series (4 RTT quantiles and 6 more) + 1 port = 201; the first
        // target kept whole (10), the rest left out whole.
        assert!(
            text.contains("netwarden_network_series_left_out 191\n"),
            "{text}"
        );
        metrics.render(DateTime::from_timestamp(200, 0).unwrap());
        let again = metrics.render(DateTime::from_timestamp(200, 0).unwrap());
        assert!(
            again.contains("netwarden_network_series_dropped_total 573\n"),
            "{again}"
        );
        // A day later with nothing new, everything is forgotten.
        metrics.set_limit(1000);
        let later = metrics.render(DateTime::from_timestamp(200 + 86_401, 0).unwrap());
        assert!(!later.contains("address="), "{later}");
    }

    #[test]
    fn plan_label_keys_become_prometheus_label_names() {
        assert_eq!(label_name("circuit-id"), "circuit_id");
        assert_eq!(label_name("9lives"), "_9lives");
        assert_eq!(label_name("site"), "plan_site");
        assert_eq!(label_name("__name__"), "plan_name__");
        assert_eq!(label_name("POI code"), "POI_code");
    }
}

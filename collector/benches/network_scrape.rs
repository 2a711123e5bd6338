//! The cost of a `/metrics/network` scrape as the fleet grows: 10,000 targets (100,000 series,
//! each labelled from a plan with three labels per target), rendered by our writer against the
//! `prometheus_client` crate (which serves `/metrics`) encoding the same series in the same run.
//!
//!   cargo bench -p netwarden-collector --bench network_scrape -- [--targets 10000] [--runs 9]

use chrono::{DateTime, Utc};
use netwarden_collector::network_metrics::NetworkMetrics;
use netwarden_shared::{DeviceStatus, Evidence, ProbeRound, Record, RecordKind, RttStats};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn address(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000u32 + i as u32))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let targets = arg("--targets", 10_000);
    let runs = arg("--runs", 9);
    let mut yaml = String::from("sites: [{name: syd, labels: {pop: SYD}}]\ntargets:\n");
    for i in 0..targets {
        yaml.push_str(&format!(
            "  - {{name: cpe-{i}, address: {}, site: syd, labels: {{customer: c{}, circuit: AVC{i:012}}}}}\n",
            address(i),
            i % 300
        ));
    }
    let plan = netwarden_plan::from_yaml(&yaml).expect("the plan parses");
    let resolver = netwarden_plan::Resolver::new(Arc::new(plan), 1);
    let metrics = NetworkMetrics::default();
    metrics.set_limit(usize::MAX);
    metrics.set_plan(&resolver);
    let now: DateTime<Utc> = Utc::now();
    let records: Vec<Record> = (0..targets)
        .map(|i| Record {
            record_id: i as u64,
            observed_at: now,
            kind: RecordKind::Probe(ProbeRound {
                target: address(i),
                sent: 20,
                received: 19,
                rtt: Some(RttStats {
                    min: 1.25,
                    median: 2.5,
                    mean: 2.6,
                    max: 9.75,
                    p95: 7.5,
                    stddev: 1.1,
                    jitter: 0.4,
                }),
                rtts_ms: Vec::new(),
                status: DeviceStatus::Online,
                alive_by: Some(Evidence::Icmp),
            }),
        })
        .collect();
    let started = Instant::now();
    metrics.observe("branch-1", &records);
    let observe_ms = started.elapsed().as_secs_f64() * 1000.0;

    let mut ours = Vec::new();
    let mut bytes = 0;
    let mut series = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let text = metrics.render(now);
        ours.push(started.elapsed().as_secs_f64() * 1000.0);
        bytes = text.len();
        series = text.lines().filter(|l| !l.starts_with('#')).count();
    }

    // The same series through prometheus_client: 10 gauges per target with the same labels.
    type Labels = Vec<(String, String)>;
    let mut registry = Registry::with_prefix("netwarden");
    let names = [
        "netwarden_probe_rtt_seconds",
        "netwarden_probe_loss_ratio",
        "netwarden_probe_jitter_seconds",
        "netwarden_probe_up",
        "netwarden_probe_sent",
        "netwarden_probe_received",
        "netwarden_probe_last_round_timestamp_seconds",
    ];
    let families: Vec<Family<Labels, Gauge<f64, AtomicU64>>> = names
        .iter()
        .map(|name| {
            let family = Family::<Labels, Gauge<f64, AtomicU64>>::default();
            registry.register(
                name.trim_start_matches("netwarden_"),
                "help",
                family.clone(),
            );
            family
        })
        .collect();
    for i in 0..targets {
        let labels = |extra: Option<&str>| {
            let mut l: Labels = vec![
                ("agent".into(), "branch-1".into()),
                ("address".into(), address(i).to_string()),
                ("target".into(), format!("cpe-{i}")),
                ("site".into(), "syd".into()),
                ("circuit".into(), format!("AVC{i:012}")),
                ("customer".into(), format!("c{}", i % 300)),
                ("pop".into(), "SYD".into()),
            ];
            if let Some(q) = extra {
                l.push(("quantile".into(), q.into()));
            }
            l
        };
        for q in ["0", "0.5", "0.95", "1"] {
            families[0].get_or_create(&labels(Some(q))).set(0.0025);
        }
        for family in &families[1..] {
            family.get_or_create(&labels(None)).set(0.05);
        }
    }
    let mut crate_ms = Vec::new();
    let mut crate_bytes = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let mut out = String::new();
        encode(&mut out, &registry).expect("encodes");
        crate_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        crate_bytes = out.len();
    }
    let (ours_ms, theirs_ms) = (median(ours), median(crate_ms));
    println!("| | targets | series | body | median render ms ({runs} runs) |");
    println!("|---|---|---|---|---|");
    println!(
        "| /metrics/network (ours) | {targets} | {series} | {:.1} MB | {ours_ms:.1} |",
        bytes as f64 / 1e6
    );
    println!(
        "| prometheus_client, same series | {targets} | {} | {:.1} MB | {theirs_ms:.1} |",
        targets * 10,
        crate_bytes as f64 / 1e6
    );
    println!(
        "\nratio ours / prometheus_client: {:.2}; taking {targets} rounds in: {observe_ms:.1} ms",
        ours_ms / theirs_ms
    );
}

//! The fleet plan at scale (issue 30, item 6): a plan of `--targets` targets over `--agents`
//! agents (each in its own site, plus fleet-wide targets every agent runs by label), followed
//! by that many agents, each on its own mutual-TLS connection, against the real
//! `netwarden-collector` binary. Reports how long the first distribution and each change take
//! to reach every agent, and what the collector process holds per connected agent (resident
//! memory and file descriptors, from /proc).
//!
//!   cargo bench -p netwarden-collector --bench plan_fanout -- [--backend sqlite|postgres]
//!       [--agents 1000] [--targets 10000] [--changes 5]

// Shared with the ingest benches; this one uses the PKI and database parts.
#[allow(dead_code)]
mod common;

use netwarden_proto::v1::plan_service_client::PlanServiceClient;
use netwarden_proto::v1::WatchPlanRequest;
use netwarden_shared::tls::{client_config, connect_channel};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

struct Options {
    backend: String,
    agents: usize,
    targets: usize,
    changes: usize,
}

fn options() -> Options {
    let mut o = Options {
        backend: "sqlite".into(),
        agents: 1000,
        targets: 10_000,
        changes: 5,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        let number = || value.parse::<usize>().expect("a number");
        match args[i].as_str() {
            "--backend" => {
                o.backend = value.clone();
                i += 1;
            }
            "--agents" => {
                o.agents = number();
                i += 1;
            }
            "--targets" => {
                o.targets = number();
                i += 1;
            }
            "--changes" => {
                o.changes = number();
                i += 1;
            }
            _ => {} // cargo passes --bench
        }
        i += 1;
    }
    o
}

/// The plan: agent `a-N` in site `s-N`; the targets spread over the sites, plus ten upstream
/// targets every agent runs through its `role` label. `count` varies the default check, so
/// a change touches every agent.
fn plan(o: &Options, count: u32) -> Value {
    let sites: Vec<Value> = (0..o.agents)
        .map(|a| json!({"name": format!("s-{a}"), "labels": {"pop": format!("P{}", a % 40)}}))
        .collect();
    let agents: Vec<Value> = (0..o.agents)
        .map(|a| json!({"name": format!("a-{a}"), "site": format!("s-{a}"), "labels": {"role": "branch"}}))
        .collect();
    let mut targets: Vec<Value> = (0..o.targets)
        .map(|t| {
            json!({
                "name": format!("t-{t}"),
                "address": format!("10.{}.{}.{}", t / 64_000, (t / 250) % 256, t % 250 + 1),
                "site": format!("s-{}", t % o.agents),
                "labels": {"customer": format!("c{}", t % 97), "circuit": format!("AVC{t:012}")},
            })
        })
        .collect();
    targets.extend((0..10).map(|u| {
        json!({"name": format!("upstream-{u}"), "address": format!("198.51.100.{}", u + 1),
               "run_on": {"agent_labels": {"role": "branch"}}, "checks": ["fast"]})
    }));
    json!({
        "sites": sites,
        "agents": agents,
        "checks": [
            {"name": "default", "count": count, "interval_secs": 300},
            {"name": "fast", "count": 5, "interval_secs": 30},
        ],
        "targets": targets,
    })
}

struct Collector {
    child: Child,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory (KiB) and open file descriptors of a process.
fn usage(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (rss, fds)
}

async fn put_plan(http: &str, base: i64, plan: &Value) -> Duration {
    let started = Instant::now();
    let response = reqwest::Client::new()
        .put(format!("{http}/api/plan"))
        .json(&json!({"base_version": base, "comment": "bench", "plan": plan}))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let o = options();
    let _ = netwarden_shared::limits::raise_open_files();
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    netwarden_collector::pki::init(&pki, &[], 30, false).unwrap();
    let (url, scratch) = common::database_url(&o.backend, dir.path(), "nwplan").await;
    let (grpc, http) = (free_port(), free_port());
    std::fs::write(
        dir.path().join("collector.toml"),
        format!(
            "[grpc]\nlisten = \"127.0.0.1:{grpc}\"\nquery_listen = \"127.0.0.1:0\"\n\
             [http]\nlisten = \"127.0.0.1:{http}\"\n\
             [tls]\nca = \"pki/ca.pem\"\ncert = \"pki/server.pem\"\nkey = \"pki/server.key\"\n\
             [database]\nurl = \"{url}\"\n[auth]\nanonymous_role = \"admin\"\n[log]\nlevel = \"warn\"\n"
        ),
    )
    .unwrap();
    let collector = Collector {
        child: Command::new(env!("CARGO_BIN_EXE_netwarden-collector"))
            .args(["serve", "--config"])
            .arg(dir.path().join("collector.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    };
    let pid = collector.child.id();
    let http = format!("http://127.0.0.1:{http}");
    let started = Instant::now();
    while reqwest::get(format!("{http}/health")).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "collector did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let first = plan(&o, 20);
    let body_bytes = serde_json::to_vec(&first).unwrap().len();
    let save = put_plan(&http, 0, &first).await;
    println!(
        "plan: {} targets over {} agents ({:.1} MB as JSON); saved (validated, diffed, stored) in {:.0} ms",
        o.targets + 10,
        o.agents,
        body_bytes as f64 / 1e6,
        save.as_secs_f64() * 1000.0
    );
    // Let the collector load it before the agents come.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_before, fds_before) = usage(pid);

    let files: Vec<_> = (0..o.agents)
        .map(|a| common::client_files(&pki, &format!("a-{a}")))
        .collect();
    // Every plan an agent receives: (agent, version, when).
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, u64, Instant, usize)>();
    let connect_started = Instant::now();
    let server = format!("https://127.0.0.1:{grpc}");
    let mut streams = Vec::new();
    for (a, files) in files.into_iter().enumerate() {
        let (tx, server) = (tx.clone(), server.clone());
        streams.push(tokio::spawn(async move {
            let config = Arc::new(client_config(&files).unwrap());
            let channel =
                connect_channel(&server, Some("localhost"), config, Duration::from_secs(60))
                    .await
                    .unwrap();
            let mut stream = PlanServiceClient::new(channel)
                .max_decoding_message_size(64 * 1024 * 1024)
                .watch(WatchPlanRequest { known_version: 0 })
                .await
                .unwrap()
                .into_inner();
            while let Ok(Some(plan)) = stream.message().await {
                let targets = plan.probes.iter().map(|g| g.targets.len()).sum();
                if tx.send((a, plan.version, Instant::now(), targets)).is_err() {
                    break;
                }
            }
        }));
    }
    let mut got = 0;
    let mut targets_seen = 0;
    while got < o.agents {
        let (_, version, _, targets) = rx.recv().await.unwrap();
        assert_eq!(version, 1);
        targets_seen += targets;
        got += 1;
    }
    let initial = connect_started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_after, fds_after) = usage(pid);
    println!(
        "first distribution: {} agents connected (mTLS) and got their share ({} targets in all) in {:.2} s",
        o.agents,
        targets_seen,
        initial.as_secs_f64()
    );
    println!(
        "collector holds per connected agent: {:.1} KiB resident, {:.2} file descriptors (RSS {} -> {} KiB)",
        (rss_after.saturating_sub(rss_before)) as f64 / o.agents as f64,
        (fds_after.saturating_sub(fds_before)) as f64 / o.agents as f64,
        rss_before,
        rss_after
    );

    let mut worst = Vec::new();
    for change in 0..o.changes {
        let version = change as u64 + 2;
        let next = plan(&o, 21 + change as u32);
        let saved_at = Instant::now();
        put_plan(&http, version as i64 - 1, &next).await;
        let mut arrivals = Vec::with_capacity(o.agents);
        while arrivals.len() < o.agents {
            let (_, got_version, at, _) = rx.recv().await.unwrap();
            assert_eq!(got_version, version);
            arrivals.push(at.duration_since(saved_at));
        }
        arrivals.sort();
        let (p50, p95, max) = (
            percentile(&arrivals, 0.5),
            percentile(&arrivals, 0.95),
            *arrivals.last().unwrap(),
        );
        println!(
            "change {}: reached all {} agents in {:.0} ms (p50 {:.0} ms, p95 {:.0} ms)",
            change + 1,
            o.agents,
            max.as_secs_f64() * 1000.0,
            p50.as_secs_f64() * 1000.0,
            p95.as_secs_f64() * 1000.0
        );
        worst.push(max);
    }
    if !worst.is_empty() {
        worst.sort();
        println!(
            "changes: median of the all-agents time {:.0} ms, worst {:.0} ms (timed from the start of the save)",
            percentile(&worst, 0.5).as_secs_f64() * 1000.0,
            worst.last().unwrap().as_secs_f64() * 1000.0
        );
    }
    let (rss_end, _) = usage(pid);
    println!("collector resident at the end: {} KiB", rss_end);
    for stream in streams {
        stream.abort();
    }
    drop(collector);
    if let Some(scratch) = scratch {
        scratch.drop_database().await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

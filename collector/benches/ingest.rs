//! Ingest throughput: several concurrent agents, each on its own mutual-TLS connection, stream
//! synthetic probe-round batches into a collector started in this process; a result counts when
//! its batch is acknowledged (so after commit). Reports results/s per backend.
//!
//!   cargo bench -p netwarden-collector --bench ingest -- [--backend sqlite|postgres|both]
//!       [--agents 4] [--results 1000000] [--batch 1000] [--in-flight 8] [--targets 500]
//!
//! PostgreSQL comes from TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test); a
//! scratch database is created and dropped.

mod common;

use netwarden_collector::config::Settings;
use netwarden_proto::v1;
use netwarden_proto::v1::ingest_service_client::IngestServiceClient;
use netwarden_shared::tls::{client_config, connect_channel, TlsFiles};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

struct Options {
    backends: Vec<String>,
    agents: usize,
    results: usize,
    batch: usize,
    in_flight: usize,
    targets: usize,
    sqlite_sync: String,
    /// Call the store directly, without gRPC/TLS, one batch at a time per agent (no pipelining).
    direct: bool,
}

fn options() -> Options {
    let mut o = Options {
        backends: vec!["sqlite".into(), "postgres".into()],
        agents: 4,
        results: 1_000_000,
        batch: 1000,
        in_flight: 8,
        targets: 500,
        sqlite_sync: "full".into(),
        direct: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        let number = || value.parse::<usize>().expect("a number");
        match args[i].as_str() {
            "--backend" => {
                o.backends = match value.as_str() {
                    "both" => vec!["sqlite".into(), "postgres".into()],
                    other => vec![other.to_string()],
                };
                i += 1;
            }
            "--agents" => {
                o.agents = number();
                i += 1;
            }
            "--results" => {
                o.results = number();
                i += 1;
            }
            "--batch" => {
                o.batch = number();
                i += 1;
            }
            "--in-flight" => {
                o.in_flight = number();
                i += 1;
            }
            "--targets" => {
                o.targets = number();
                i += 1;
            }
            "--direct" => o.direct = true,
            "--sqlite-sync" => {
                o.sqlite_sync = value.clone();
                i += 1;
            }
            _ => {} // cargo passes --bench
        }
        i += 1;
    }
    o
}

fn round(record_id: u64, at_ms: i64, target: &str) -> v1::Record {
    let rtts: Vec<f32> = (0..20).map(|i| 20.0 + (i % 5) as f32 * 0.25).collect();
    v1::Record {
        record_id,
        observed_at_unix_ms: at_ms,
        kind: Some(v1::record::Kind::ProbeRound(v1::ProbeRound {
            target: target.into(),
            sent: 20,
            received: 20,
            rtt_min_ms: 20.0,
            rtt_median_ms: 20.5,
            rtt_mean_ms: 20.5,
            rtt_max_ms: 21.0,
            rtt_p95_ms: 21.0,
            rtt_stddev_ms: 0.35,
            jitter_ms: 0.4,
            rtts_ms: rtts,
            status: v1::DeviceStatus::Online as i32,
            alive_by: v1::Evidence::Icmp as i32,
        })),
    }
}

/// Builds an agent's batches up front so the measurement is the collector, not the generator.
fn batches(agent: usize, o: &Options, per_agent: usize) -> Vec<v1::Batch> {
    let now = chrono::Utc::now().timestamp_millis();
    let targets: Vec<String> = (0..o.targets)
        .map(|t| format!("10.{}.{}.{}", agent, t / 250, t % 250 + 1))
        .collect();
    let mut out = Vec::new();
    let mut id = 0u64;
    let mut seq = 0u64;
    while (id as usize) < per_agent {
        seq += 1;
        let n = o.batch.min(per_agent - id as usize);
        let records = (0..n)
            .map(|_| {
                id += 1;
                round(
                    id,
                    now - 1_000_000 + id as i64,
                    &targets[(id as usize) % targets.len()],
                )
            })
            .collect();
        out.push(v1::Batch {
            sequence: seq,
            agent_id: String::new(),
            status: Some(v1::AgentStatus {
                buffer_backlog: n as u64,
                dropped_total: 0,
                agent_version: "bench".into(),
            }),
            records,
        });
    }
    out
}

async fn run_agent(
    url: String,
    files: TlsFiles,
    batches: Vec<v1::Batch>,
    in_flight: usize,
) -> usize {
    let config = Arc::new(client_config(&files).unwrap());
    let channel = connect_channel(&url, Some("localhost"), config, Duration::from_secs(10))
        .await
        .unwrap();
    let mut client = IngestServiceClient::new(channel).max_encoding_message_size(64 * 1024 * 1024);
    let expected = batches.len();
    let (requests, window) = common::windowed(batches, in_flight);
    let mut acks = client.stream(requests).await.unwrap().into_inner();
    let mut stored = 0usize;
    for _ in 0..expected {
        let ack = acks.message().await.unwrap().expect("ack");
        stored += ack.stored as usize;
        window.add_permits(1);
    }
    stored
}

async fn bench(backend: &str, o: &Options) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    netwarden_collector::pki::init(&pki, &[], 30, false).unwrap();
    let mut raw = common::collector_config(&pki);
    raw.database.sqlite_synchronous = match o.sqlite_sync.as_str() {
        "normal" => netwarden_collector::storage::SqliteSync::Normal,
        _ => netwarden_collector::storage::SqliteSync::Full,
    };
    let (url, scratch) = common::database_url(backend, dir.path(), "nwbench").await;
    raw.database.url = url;
    let settings = Settings::from_config(&dir.path().join("collector.toml"), raw).unwrap();
    let stop = CancellationToken::new();
    let running = netwarden_collector::start(&settings, stop.clone())
        .await
        .unwrap();
    let url = format!("https://{}", running.grpc_addr);
    let store = running.store.clone();
    let metrics = running.metrics.clone();
    let server = tokio::spawn(running.wait());

    let per_agent = o.results / o.agents;
    let mut plans = Vec::new();
    for agent in 0..o.agents {
        let files = common::client_files(&pki, &format!("bench-{agent}"));
        plans.push((files, batches(agent, o, per_agent)));
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (agent, (files, batches)) in plans.into_iter().enumerate() {
        if o.direct {
            let store = netwarden_collector::storage::GroupCommitter::start(store.clone());
            tasks.spawn(async move {
                let id = netwarden_shared::AgentId::new(format!("bench-{agent}")).unwrap();
                let mut stored = 0;
                for wire in batches {
                    let batch = netwarden_proto::batch_from_wire(wire).unwrap();
                    if let netwarden_collector::storage::IngestOutcome::Stored { records } =
                        store.ingest(id.clone(), batch).await.unwrap()
                    {
                        stored += records as usize;
                    }
                }
                stored
            });
        } else {
            tasks.spawn(run_agent(url.clone(), files, batches, o.in_flight));
        }
    }
    let mut stored = 0;
    while let Some(n) = tasks.join_next().await {
        stored += n.unwrap();
    }
    let elapsed = started.elapsed();
    let rate = stored as f64 / elapsed.as_secs_f64();
    // Check it really is all there.
    let mut in_db = 0;
    for agent in 0..o.agents {
        let id = netwarden_shared::AgentId::new(format!("bench-{agent}")).unwrap();
        in_db += store.ingest_audit(&id).await.unwrap().probe_results;
    }
    assert_eq!(
        in_db as usize, stored,
        "every acknowledged result is in the database"
    );
    println!(
        "ingest backend={backend} mode={} sqlite_sync={} agents={} results={stored} batch={} in_flight={} targets_per_agent={} \
         elapsed_s={:.2} results_per_s={:.0}",
        if o.direct { "direct" } else { "grpc+mtls" },
        o.sqlite_sync,
        o.agents, o.batch, o.in_flight, o.targets, elapsed.as_secs_f64(), rate
    );
    // Mean time from a batch reaching the database queue to its commit (the ack follows).
    let text = metrics.render();
    let read = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let (sum, count) = (
        read("netwarden_ingest_commit_seconds_sum "),
        read("netwarden_ingest_commit_seconds_count "),
    );
    if count > 0.0 {
        println!(
            "  mean queue+commit latency per batch: {:.1} ms over {count} batches",
            1000.0 * sum / count
        );
    }
    stop.cancel();
    let _ = server.await;
    drop(store);
    if let Some(scratch) = scratch {
        scratch.drop_database().await;
    }
    rate
}

#[tokio::main]
async fn main() {
    let o = options();
    for backend in o.backends.clone() {
        bench(&backend, &o).await;
    }
}

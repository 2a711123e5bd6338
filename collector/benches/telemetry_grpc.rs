//! Telemetry ingest over gRPC (`TelemetryService.Stream`, mutual TLS): several clients stream
//! batches of samples into a collector started in this process, with maxout detection on; a
//! sample counts when its batch is acknowledged (after commit). 1,000 circuits are registered
//! first. Reports samples/s per backend; then checks every acknowledged sample is stored.
//!
//!   cargo bench -p netwarden-collector --bench telemetry_grpc -- [--backend sqlite|postgres|both]
//!       [--clients 4] [--samples 2000000] [--batch 1000] [--in-flight 4]
//!
//! PostgreSQL comes from TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test); a
//! scratch database is created and dropped.

mod common;

use netwarden_collector::config::Settings;
use netwarden_collector::storage::telemetry::CircuitRecord;
use netwarden_proto::v1;
use netwarden_proto::v1::telemetry_service_client::TelemetryServiceClient;
use netwarden_shared::tls::{client_config, connect_channel, TlsFiles};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const CIRCUITS: usize = 1000;

struct Options {
    backends: Vec<String>,
    clients: usize,
    samples: usize,
    batch: usize,
    in_flight: usize,
}

fn options() -> Options {
    let mut o = Options {
        backends: vec!["sqlite".into(), "postgres".into()],
        clients: 4,
        samples: 2_000_000,
        batch: 1000,
        in_flight: 4,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < args.len() {
        let value = args[i + 1].clone();
        let number = || value.parse::<usize>().expect("a number");
        match args[i].as_str() {
            "--backend" => {
                o.backends = match value.as_str() {
                    "both" => vec!["sqlite".into(), "postgres".into()],
                    other => vec![other.to_string()],
                }
            }
            "--clients" => o.clients = number(),
            "--samples" => o.samples = number(),
            "--batch" => o.batch = number(),
            "--in-flight" => o.in_flight = number(),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

/// A client's batches, built up front so the measurement is the collector, not the generator:
/// a diurnal-ish spread of utilisation under the 1 Gb/s provisioned, one sample per circuit
/// and second, in the past so nothing collides.
fn batches(client: usize, o: &Options, per_client: usize) -> Vec<v1::TelemetryBatch> {
    let start = chrono::Utc::now().timestamp_millis() - 86_400_000;
    let mut out = Vec::new();
    let mut n = 0usize;
    while n < per_client {
        let size = o.batch.min(per_client - n);
        let samples = (0..size)
            .map(|_| {
                let k = client * per_client + n;
                n += 1;
                v1::TelemetrySample {
                    circuit_id: format!("CIR-{}", k % CIRCUITS),
                    utilization_mbps: ((k * 37) % 900) as f64 + 0.5,
                    timestamp_ms: start + (k / CIRCUITS) as i64 * 1000,
                }
            })
            .collect();
        out.push(v1::TelemetryBatch { samples });
    }
    out
}

async fn run_client(
    url: String,
    files: TlsFiles,
    batches: Vec<v1::TelemetryBatch>,
    in_flight: usize,
) -> usize {
    let config = Arc::new(client_config(&files).unwrap());
    let channel = connect_channel(&url, Some("localhost"), config, Duration::from_secs(10))
        .await
        .unwrap();
    let mut client =
        TelemetryServiceClient::new(channel).max_encoding_message_size(64 * 1024 * 1024);
    let expected = batches.len();
    let (requests, window) = common::windowed(batches, in_flight);
    let mut acks = client.stream(requests).await.unwrap().into_inner();
    let mut recorded = 0usize;
    for _ in 0..expected {
        let ack = acks.message().await.unwrap().expect("ack");
        recorded += ack.recorded as usize;
        window.add_permits(1);
    }
    recorded
}

async fn bench(backend: &str, o: &Options) {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    netwarden_collector::pki::init(&pki, &[], 30, false).unwrap();
    let mut raw = common::collector_config(&pki);
    let (url, scratch) = common::database_url(backend, dir.path(), "nwbench_tgrpc").await;
    raw.database.url = url;
    // The feeds' certificates are the agents allowed to post telemetry without a token.
    raw.telemetry.grpc_agents = (0..o.clients).map(|c| format!("telemetry-{c}")).collect();
    let settings = Settings::from_config(&dir.path().join("collector.toml"), raw).unwrap();
    let stop = CancellationToken::new();
    let running = netwarden_collector::start(&settings, stop.clone())
        .await
        .unwrap();
    let url = format!("https://{}", running.grpc_addr);
    let store = running.store.clone();
    let server = tokio::spawn(running.wait());
    let circuits: Vec<CircuitRecord> = (0..CIRCUITS)
        .map(|i| CircuitRecord {
            circuit_id: format!("CIR-{i}"),
            account: None,
            provisioned_mbps: 1000.0,
            burst_mbps: None,
            pop: None,
            provisioned_at: None,
            upgraded_at: None,
            decommissioned_at: None,
        })
        .collect();
    store
        .save_circuits(&circuits, chrono::Utc::now())
        .await
        .unwrap();

    let per_client = o.samples / o.clients;
    let mut plans = Vec::new();
    for client in 0..o.clients {
        let files = common::client_files(&pki, &format!("telemetry-{client}"));
        plans.push((files, batches(client, o, per_client)));
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (files, batches) in plans {
        tasks.spawn(run_client(url.clone(), files, batches, o.in_flight));
    }
    let mut recorded = 0;
    while let Some(n) = tasks.join_next().await {
        recorded += n.unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "telemetry grpc+mtls backend={backend} clients={} samples={recorded} batch={} in_flight={} \
         elapsed_s={:.2} samples_per_s={:.0}",
        o.clients,
        o.batch,
        o.in_flight,
        elapsed.as_secs_f64(),
        recorded as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(
        recorded,
        per_client * o.clients,
        "every sample acknowledged"
    );
    stop.cancel();
    let _ = server.await;
    drop(store);
    if let Some(scratch) = scratch {
        scratch.drop_database().await;
    }
}

#[tokio::main]
async fn main() {
    let o = options();
    for backend in o.backends.clone() {
        bench(&backend, &o).await;
    }
}

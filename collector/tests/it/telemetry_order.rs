//! Telemetry as real feeds deliver it: late, out of order, in batches of any size, over REST
//! and gRPC; circuits registered while samples flow; history loaded long after
//! (`import telemetry`, both backends); the customer's own circuit file (`import circuits`).

use super::support::{binary, Backend, Pki, TestCollector};
use chrono::Utc;
use netwarden_collector::detect::circuit::{Capacity, MaxoutRule};
use netwarden_collector::storage::telemetry::{CircuitMaxoutQuery, CircuitRecord};
use netwarden_collector::storage::Store;
use netwarden_collector::telemetry::backfill::{events, Backfill};
use netwarden_collector::telemetry::import::circuits::{self, BurstMeans, CircuitImportOptions};
use netwarden_collector::telemetry::import::samples::read_samples;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const MIN: i64 = 60;

async fn call(method: reqwest::Method, url: String, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .request(method, url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn put_circuit(c: &TestCollector, id: &str, provisioned: f64, burst: Option<f64>) {
    let (status, body) = call(
        reqwest::Method::PUT,
        c.api(&format!("/api/circuits/{id}")),
        json!({"provisioned_mbps": provisioned, "burst_mbps": burst}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// (start, end, samples, peak, severity) of a circuit's events as the API serves them.
type Shape = (i64, i64, i64, f64, String);

async fn shapes(c: &TestCollector, circuit: &str) -> Vec<Shape> {
    let (_, events) = call(
        reqwest::Method::GET,
        c.api(&format!("/api/maxouts?circuit={circuit}")),
        Value::Null,
    )
    .await;
    let secs = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .timestamp()
    };
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                secs(&e["start"]),
                secs(&e["end"]),
                e["samples"].as_i64().unwrap(),
                e["peak_mbps"].as_f64().unwrap(),
                e["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Waits (up to 15 s) until `circuit`'s events are `want`; returns what was there last.
async fn shapes_when(c: &TestCollector, circuit: &str, want: &[Shape]) -> Vec<Shape> {
    let mut got = Vec::new();
    for _ in 0..300 {
        got = shapes(c, circuit).await;
        if got == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    got
}

/// xorshift64*: the same arrival orders on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Three hours of minutes with runs over 1000 Mbps (some within a 1200 burst, some above),
/// a minute missing now and then.
fn day(t0: i64, rng: &mut Rng) -> Vec<(i64, f64)> {
    let mut over = false;
    (0..180)
        .filter_map(|m| {
            if rng.below(8) == 0 {
                over = !over;
            }
            let mbps = if over {
                [1000.0, 1150.0, 1200.0, 1300.0][rng.below(4) as usize]
            } else {
                [300.0, 700.0, 999.0][rng.below(3) as usize]
            };
            (rng.below(30) != 0).then_some((t0 + m * MIN, mbps))
        })
        .collect()
}

/// The same samples, four ways: single POSTs in order, batches of random sizes in an arrival
/// order shuffled within the horizon, single POSTs in such an order, and gRPC batches. Every
/// way gives the events of the samples in time order, as the pure detector finds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_samples_give_the_same_events_however_they_arrive() {
    use netwarden_proto::v1::telemetry_service_client::TelemetryServiceClient;
    use netwarden_proto::v1::{TelemetryBatch, TelemetrySample};
    let c = TestCollector::start(Backend::Sqlite).await;
    let mut rng = Rng(0x005e_ed0f_ca11);
    let t0 = Utc::now().timestamp() - 4 * 3600;
    let samples = day(t0, &mut rng);
    let ways = ["IN-ORDER", "BATCHES", "SHUFFLED", "GRPC"];
    for id in ways {
        put_circuit(&c, id, 1000.0, Some(1200.0)).await;
    }
    let found = events(
        &samples
            .iter()
            .map(|(t, v)| (t * 1000, *v))
            .collect::<Vec<_>>(),
        Capacity {
            provisioned_mbps: 1000.0,
            burst_mbps: Some(1200.0),
        },
        MaxoutRule::CIRCUIT,
    );
    assert!(found.len() >= 5, "the series holds events: {found:?}");
    let want: Vec<Shape> = found
        .iter()
        .map(|e| {
            (
                e.start / 1000,
                e.end / 1000,
                i64::from(e.samples),
                e.peak_mbps,
                e.severity.as_str().to_string(),
            )
        })
        .collect();
    let body = |id: &str, s: &[(i64, f64)]| -> Vec<Value> {
        s.iter()
            .map(|(t, v)| json!({"circuit_id": id, "utilization_mbps": v, "timestamp": t}))
            .collect()
    };
    // Arrival: each sample delayed by under 14 minutes (the horizon is 15).
    let mut shuffled: Vec<(i64, (i64, f64))> = samples
        .iter()
        .map(|&s| (s.0 + rng.below(14 * 60) as i64, s))
        .collect();
    shuffled.sort_by_key(|a| a.0);
    let shuffled: Vec<(i64, f64)> = shuffled.into_iter().map(|a| a.1).collect();

    for s in &samples {
        let (status, _) = call(
            reqwest::Method::POST,
            c.api("/api/v1/telemetry"),
            body("IN-ORDER", std::slice::from_ref(s))[0].clone(),
        )
        .await;
        assert_eq!(status, 201);
    }
    let mut rest = &shuffled[..];
    while !rest.is_empty() {
        let take = (1 + rng.below(20) as usize).min(rest.len());
        let (status, _) = call(
            reqwest::Method::POST,
            c.api("/api/v1/telemetry/batch"),
            Value::Array(body("BATCHES", &rest[..take])),
        )
        .await;
        assert_eq!(status, 201);
        rest = &rest[take..];
    }
    for s in &shuffled {
        let (status, _) = call(
            reqwest::Method::POST,
            c.api("/api/v1/telemetry"),
            body("SHUFFLED", std::slice::from_ref(s))[0].clone(),
        )
        .await;
        assert_eq!(status, 201);
    }
    let files = c.pki.agent("feed-1");
    let mut grpc = TelemetryServiceClient::new(c.channel(&files).await);
    for chunk in shuffled.chunks(7) {
        grpc.record(TelemetryBatch {
            samples: chunk
                .iter()
                .map(|(t, v)| TelemetrySample {
                    circuit_id: "GRPC".into(),
                    utilization_mbps: *v,
                    timestamp_ms: t * 1000,
                })
                .collect(),
        })
        .await
        .unwrap();
    }
    for id in ways {
        assert_eq!(shapes_when(&c, id, &want).await, want, "{id}");
    }
    let metrics = c.metrics().await;
    assert!(
        metrics.contains("netwarden_telemetry_late_samples_total{outcome=\"reordered\"}"),
        "{metrics}"
    );
}

/// A circuit registered while its samples flow is evaluated from its next sample (the cache
/// of unknown circuits no longer hides it for 30 s), and a changed capacity applies at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_is_evaluated_from_its_first_sample_after_it_is_registered() {
    let c = TestCollector::start(Backend::Sqlite).await;
    let t0 = Utc::now().timestamp() - 600;
    let post = |id: &'static str, at: i64, mbps: f64| {
        call(
            reqwest::Method::POST,
            c.api("/api/v1/telemetry"),
            json!({"circuit_id": id, "utilization_mbps": mbps, "timestamp": at}),
        )
    };
    assert_eq!(post("NEW-1", t0, 1500.0).await.0, 201);
    // Give detection time to learn that NEW-1 is unknown.
    tokio::time::sleep(Duration::from_millis(300)).await;
    put_circuit(&c, "NEW-1", 1000.0, None).await;
    for m in 1..=3 {
        assert_eq!(post("NEW-1", t0 + m * MIN, 1500.0).await.0, 201);
    }
    let want = vec![(t0 + MIN, t0 + 3 * MIN, 3, 1500.0, "maxout".to_string())];
    assert_eq!(shapes_when(&c, "NEW-1", &want).await, want);
    // Its capacity doubles: the next samples at 1500 are under it, so the event closes.
    put_circuit(&c, "NEW-1", 2000.0, None).await;
    assert_eq!(post("NEW-1", t0 + 4 * MIN, 1500.0).await.0, 201);
    let mut open = true;
    for _ in 0..200 {
        let (_, events) = call(
            reqwest::Method::GET,
            c.api("/api/maxouts?circuit=NEW-1"),
            Value::Null,
        )
        .await;
        open = events[0]["open"].as_bool().unwrap();
        if !open {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!open, "the new capacity applied to the next sample");
}

/// A sample later than the horizon behind its circuit's newest is stored, counted and
/// listed, and changes no event; lists take a limit; maxouts show when their peak was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_beyond_the_horizon_are_stored_counted_and_listed() {
    let c = TestCollector::start_with(Backend::Sqlite, |raw| {
        raw.telemetry.reorder_horizon_secs = 120;
    })
    .await;
    put_circuit(&c, "HZ-1", 100.0, None).await;
    let t0 = Utc::now().timestamp() - 3600;
    let post = |at: i64, mbps: f64| {
        call(
            reqwest::Method::POST,
            c.api("/api/v1/telemetry"),
            json!({"circuit_id": "HZ-1", "utilization_mbps": mbps, "timestamp": at}),
        )
    };
    for (m, v) in [(0, 150.0), (1, 180.0), (2, 150.0), (10, 50.0)] {
        assert_eq!(post(t0 + m * MIN, v).await.0, 201);
    }
    // Minute 3, seven minutes behind the newest: beyond a two-minute horizon.
    assert_eq!(post(t0 + 3 * MIN, 500.0).await.0, 201);
    let mut late = Value::Null;
    for _ in 0..200 {
        let (_, body) = call(
            reqwest::Method::GET,
            c.api("/api/telemetry/late"),
            Value::Null,
        )
        .await;
        if body.as_array().is_some_and(|a| !a.is_empty()) {
            late = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(late[0]["circuit_id"], "HZ-1", "{late}");
    assert_eq!(late[0]["utilization_mbps"], 500.0);
    let (_, points) = call(
        reqwest::Method::GET,
        c.api("/api/circuits/HZ-1/telemetry"),
        Value::Null,
    )
    .await;
    assert_eq!(points.as_array().map(Vec::len), Some(5), "stored: {points}");
    let want = vec![(t0, t0 + 2 * MIN, 3, 180.0, "maxout".to_string())];
    assert_eq!(shapes_when(&c, "HZ-1", &want).await, want);
    let (_, events) = call(
        reqwest::Method::GET,
        c.api("/api/maxouts?circuit=HZ-1"),
        Value::Null,
    )
    .await;
    let peak_at = chrono::DateTime::parse_from_rfc3339(events[0]["peak_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert_eq!(peak_at, t0 + MIN);
    assert!(c
        .metrics()
        .await
        .contains("netwarden_telemetry_late_samples_total{outcome=\"beyond_horizon\"} 1"));
    for (path, status) in [
        ("/api/notifications?limit=1", 200),
        ("/api/notifications?limit=0", 400),
        ("/api/telemetry/late?limit=10001", 400),
    ] {
        let (got, body) = call(reqwest::Method::GET, c.api(path), Value::Null).await;
        assert_eq!(got, status, "{path}: {body}");
    }
}

fn customer_file() -> &'static str {
    // A carrier's export: its own headers, account names with spaces and punctuation,
    // burst as headroom above the provisioned rate (0 is none), a blank row, a rate in Gbps.
    "Service ID,Customer Name,Speed (Mbps),Burst Headroom (Mbps),Site\n\
     SVC-100,Acme Pty. Ltd,1000,200,Sydney\n\
     SVC-101,Acme Pty. Ltd,500,0,Sydney\n\
     \n\
     SVC-102,\"Brown & Sons, Hobart\",1 Gbps,,Hobart\n\
     SVC-103,Acme Pty. Ltd,lots,,Perth\n"
}

fn customer_options(create: bool) -> CircuitImportOptions {
    let mut options = CircuitImportOptions {
        burst_means: BurstMeans::Headroom,
        create_accounts: create,
        ..CircuitImportOptions::default()
    };
    for (ours, theirs) in [
        ("circuit_id", "Service ID"),
        ("account", "Customer Name"),
        ("provisioned_mbps", "Speed (Mbps)"),
        ("burst_mbps", "Burst Headroom (Mbps)"),
        ("pop", "Site"),
    ] {
        options.columns.insert(ours.into(), theirs.into());
    }
    options
}

/// The customer's circuit file as it is: mapped columns, headroom burst, accounts by display
/// name (created with ids from their names when asked), a blank row, a refused row naming its
/// row and column; importing it again changes nothing.
async fn a_customer_file_imports_as_it_is(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("carrier.csv");
    std::fs::write(&path, customer_file()).unwrap();
    let now = Utc::now();
    // Without --create-accounts, the unknown accounts' rows are refused and say how.
    let report = circuits::import(store.as_ref(), &path, &customer_options(false), now)
        .await
        .unwrap();
    assert_eq!(report.new, 0);
    let refused: Vec<String> = report.refused.iter().map(|e| e.to_string()).collect();
    assert_eq!(refused.len(), 4, "{refused:?}");
    assert!(
        refused[0].starts_with("row 2, column account")
            && refused[0].contains("--create-accounts")
            && refused[0].contains("\"acme-pty-ltd\""),
        "{refused:?}"
    );
    assert!(
        refused[3].starts_with("row 6, column provisioned_mbps (Speed (Mbps))"),
        "{refused:?}"
    );

    let report = circuits::import(store.as_ref(), &path, &customer_options(true), now)
        .await
        .unwrap();
    assert_eq!((report.new, report.changed, report.unchanged), (3, 0, 0));
    assert_eq!(report.refused.len(), 1, "{:?}", report.refused);
    let created: Vec<(String, String)> = report
        .accounts_created
        .iter()
        .map(|a| (a.id.clone(), a.name.clone()))
        .collect();
    assert_eq!(
        created,
        vec![
            ("acme-pty-ltd".into(), "Acme Pty. Ltd".into()),
            ("brown-sons-hobart".into(), "Brown & Sons, Hobart".into())
        ]
    );
    let got: Vec<CircuitRecord> = store
        .circuits_by_ids(&["SVC-100".into(), "SVC-101".into(), "SVC-102".into()])
        .await
        .unwrap();
    let by_id = |id: &str| got.iter().find(|c| c.circuit_id == id).unwrap();
    assert_eq!(by_id("SVC-100").burst_mbps, Some(1200.0), "headroom adds");
    assert_eq!(by_id("SVC-101").burst_mbps, None, "zero headroom is none");
    assert_eq!(by_id("SVC-102").provisioned_mbps, 1000.0, "1 Gbps");
    assert_eq!(
        by_id("SVC-102").account.as_deref(),
        Some("brown-sons-hobart")
    );
    assert_eq!(by_id("SVC-100").pop.as_deref(), Some("Sydney"));

    // Again: matched by name this time, nothing new, nothing changed.
    let report = circuits::import(store.as_ref(), &path, &customer_options(false), now)
        .await
        .unwrap();
    assert_eq!((report.new, report.changed, report.unchanged), (0, 0, 3));
    assert!(report.accounts_created.is_empty());
    // Read as a ceiling, the same file's burst is below provisioned: refused, naming the
    // other reading.
    let mut ceiling = customer_options(false);
    ceiling.burst_means = BurstMeans::Ceiling;
    let report = circuits::import(store.as_ref(), &path, &ceiling, now)
        .await
        .unwrap();
    assert!(report.refused.iter().any(|e| e.row == 2
        && e.column.starts_with("burst_mbps")
        && e.message.contains("--burst-means headroom")));
}

/// Two years of history for two circuits, one with three maxouts, one not registered:
/// stored, evaluated in time order, the events historical; importing it again stores nothing
/// and finds the same events.
async fn history_two_years_old_is_stored_and_evaluated(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let start = Utc::now().timestamp() - 2 * 365 * 86_400;
    let mut lines = String::new();
    for m in 0..600 {
        let over = (100..110).contains(&m) || (300..304).contains(&m) || (500..520).contains(&m);
        let mbps = if over { 120.0 } else { 40.0 };
        lines.push_str(&format!(
            "{{\"circuit_id\":\"OLD-1\",\"utilization_mbps\":{mbps},\"timestamp\":{}}}\n",
            start + m * MIN
        ));
        lines.push_str(&format!(
            "{{\"circuit_id\":\"STRANGER\",\"utilization_mbps\":1,\"timestamp\":{}}}\n",
            start + m * MIN
        ));
    }
    let path = dir.path().join("history.ndjson");
    std::fs::write(&path, lines).unwrap();
    store
        .save_circuit(
            &CircuitRecord {
                circuit_id: "OLD-1".into(),
                account: None,
                provisioned_mbps: 100.0,
                burst_mbps: None,
                pop: None,
                provisioned_at: None,
                upgraded_at: None,
                decommissioned_at: None,
            },
            Utc::now(),
        )
        .await
        .unwrap();
    let backfill = Backfill {
        store: store.clone(),
        rule: MaxoutRule::CIRCUIT,
        customer_email: None,
        retention_days: 90,
    };
    let progress = |_: u64, _: u64| {};
    let report = backfill
        .run(read_samples(&path, Utc::now()).unwrap(), &progress)
        .await
        .unwrap();
    assert_eq!(
        (report.read, report.stored, report.already_stored),
        (1200, 1200, 0)
    );
    assert_eq!(report.unknown_circuits, vec!["STRANGER"]);
    assert_eq!(report.events_new, 3);
    assert_eq!(report.older_than_retention, 1200);
    let listed = store
        .circuit_maxouts(&CircuitMaxoutQuery {
            circuit_id: Some("OLD-1".into()),
            limit: 100,
            ..CircuitMaxoutQuery::default()
        })
        .await
        .unwrap();
    let got: Vec<(i64, i64, i32, bool, bool)> = listed
        .iter()
        .map(|e| {
            (
                (e.start.timestamp() - start) / MIN,
                (e.end.timestamp() - start) / MIN,
                e.samples,
                e.historical,
                e.open,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (100, 109, 10, true, false),
            (300, 303, 4, true, false),
            (500, 519, 20, true, false)
        ]
    );
    let again = backfill
        .run(read_samples(&path, Utc::now()).unwrap(), &progress)
        .await
        .unwrap();
    assert_eq!((again.stored, again.already_stored), (0, 1200));
    assert_eq!((again.events_new, again.events_updated), (0, 3));
}

crate::store::store_suite!(
    a_customer_file_imports_as_it_is,
    history_two_years_old_is_stored_and_evaluated
);

/// The CLI: `import telemetry` prints its summary (and refuses --notify without [email]);
/// `import circuits` takes the mapping and burst flags and exits 1 when a row is refused.
#[test]
fn the_import_commands_from_the_cli() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\nca = \"{0}/ca.pem\"\ncert = \"{0}/server.pem\"\nkey = \"{0}/server.key\"\n\
             [database]\nurl = \"sqlite://c.db\"\n",
            pki.path().display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(binary("netwarden-collector"))
            .args(args)
            .args(["--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let carrier = dir.path().join("carrier.csv");
    std::fs::write(&carrier, customer_file()).unwrap();
    let carrier = carrier.to_str().unwrap();
    let (code, stdout, stderr) = run(&[
        "import",
        "circuits",
        carrier,
        "--map",
        "circuit_id=Service ID",
        "--map",
        "account=Customer Name",
        "--map",
        "provisioned_mbps=Speed (Mbps)",
        "--map",
        "burst_mbps=Burst Headroom (Mbps)",
        "--burst-means",
        "headroom",
        "--create-accounts",
    ]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("3 circuits imported (3 new, 0 changed, 0 unchanged), 1 rows refused")
            && stdout.contains("refused row 6, column provisioned_mbps")
            && stdout.contains("created account \"acme-pty-ltd\" (Acme Pty. Ltd)"),
        "{stdout}"
    );
    assert!(stderr.contains("the other rows were imported"), "{stderr}");

    let history = dir.path().join("history.csv");
    let old = Utc::now().timestamp() - 800 * 86_400;
    let mut text = "circuit_id,utilization_mbps,timestamp\n".to_string();
    for m in 0..5 {
        text.push_str(&format!("SVC-101,600,{}\n", old + m * MIN));
    }
    std::fs::write(&history, text).unwrap();
    let history = history.to_str().unwrap();
    let (code, stdout, stderr) = run(&["import", "telemetry", history]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("5 samples of 1 circuits")
            && stdout.contains("5 stored, 0 already stored")
            && stdout.contains("1 new (historical; no customer email without --notify)"),
        "{stdout}"
    );
    let (code, _, stderr) = run(&["import", "telemetry", history, "--notify"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("--notify needs [email]"), "{stderr}");
    let bad = dir.path().join("bad.ndjson");
    std::fs::write(&bad, "{\"circuit_id\":\"X\"}\n").unwrap();
    let (code, _, stderr) = run(&["import", "telemetry", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("row 1, column utilization_mbps: is required"),
        "{stderr}"
    );
}

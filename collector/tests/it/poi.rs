//! The POI side of the Cacti scraper: the store suite on both backends, the scrape job against
//! the fake Cacti process (overlapping windows, maxouts that start and go on, the reference
//! workbook's override, unparsed titles, a failing graph), the API over it, and
//! `netwarden-collector cacti scrape --once`.

use super::cacti::FakeCacti;
use super::support::{binary, postgres_store, sqlite_store, Backend, Pki, TestCollector};
use chrono::{DateTime, TimeZone, Utc};
use netwarden_collector::alert::engine::Engine;
use netwarden_collector::alert::routing::AlertingConfig;
use netwarden_collector::cacti::{CactiConfig, PoiConfig, ScrapeSettings, Scraper};
use netwarden_collector::metrics::Metrics;
use netwarden_collector::storage::alerting::{Anomaly, AnomalyQuery, AnomalyState};
use netwarden_collector::storage::poi::{
    GraphRecord, MaxoutQuery, NewMaxout, PoiRecord, SampleRecord,
};
use netwarden_collector::storage::Store;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_760_000_000 + secs, 0).unwrap()
}

fn graph(id: i64, title: &str, poi: Option<&str>) -> GraphRecord {
    GraphRecord {
        source: "nbn".into(),
        graph_id: id,
        title: title.into(),
        pattern: poi.map(|_| "poi-name".into()),
        poi_code: poi.map(str::to_string),
        poi_name: None,
        circuit_id: None,
        capacity_bps: Some(1_000_000_000),
        capacity_from: Some("title".into()),
        traffic_class: None,
        direction: None,
        timezone: "Australia/Sydney".into(),
        first_seen: t(0),
        last_seen: t(0),
    }
}

fn sample(secs: i64, in_bps: Option<f64>) -> SampleRecord {
    SampleRecord {
        ts: t(secs),
        in_bps,
        out_bps: Some(1e8),
        in_pct: in_bps.map(|v| v / 1e7),
        out_pct: Some(10.0),
    }
}

fn maxout(start: i64, end: i64, peak: f64) -> NewMaxout {
    NewMaxout {
        poi_code: Some("2ABT".into()),
        circuit_id: None,
        direction: "in",
        start: t(start),
        end: t(end),
        samples: ((end - start) / 300) as i32,
        peak_bps: peak,
        peak_pct: peak / 1e7,
        capacity_bps: 1_000_000_000,
    }
}

async fn store_suite(store: Arc<dyn Store>) {
    // Graphs: an upsert keeps first_seen; an unparsed title is listed, never dropped.
    store
        .save_graph(&graph(1, "2ABT Albert Park", Some("2ABT")))
        .await
        .unwrap();
    let mut again = graph(1, "2ABT Albert Park 1G", Some("2ABT"));
    again.first_seen = t(600);
    again.last_seen = t(600);
    store.save_graph(&again).await.unwrap();
    store
        .save_graph(&graph(2, "core uplink 7", None))
        .await
        .unwrap();
    store
        .save_pois(
            &[PoiRecord {
                code: "2ABT".into(),
                name: Some("Albert Park".into()),
                in_reference: true,
                ..PoiRecord::default()
            }],
            t(0),
        )
        .await
        .unwrap();
    let graphs = store.poi_graphs("2ABT").await.unwrap();
    assert_eq!(graphs.len(), 1);
    assert_eq!(graphs[0].title, "2ABT Albert Park 1G");
    assert_eq!((graphs[0].first_seen, graphs[0].last_seen), (t(0), t(600)));
    let unparsed = store.unparsed_graphs().await.unwrap();
    assert_eq!(unparsed.len(), 1);
    assert_eq!(unparsed[0].title, "core uplink 7");
    let pois = store.pois().await.unwrap();
    assert_eq!(pois.len(), 1);
    assert_eq!(pois[0].name.as_deref(), Some("Albert Park"));

    // Samples: an overlapping export never duplicates, and its gap never erases a value.
    let first: Vec<_> = (0..3).map(|i| sample(i * 300, Some(5e8))).collect();
    assert_eq!(store.save_samples("nbn", 1, &first).await.unwrap(), 3);
    let second = vec![
        sample(300, None),
        sample(600, Some(7e8)),
        sample(900, Some(6e8)),
    ];
    store.save_samples("nbn", 1, &second).await.unwrap();
    let stored = store.samples("nbn", 1, t(0), t(3600)).await.unwrap();
    assert_eq!(stored.len(), 4, "{stored:?}");
    assert_eq!(stored[1].in_bps, Some(5e8), "a later gap kept the value");
    assert_eq!(
        stored[2].in_bps,
        Some(7e8),
        "a later value replaced the old one"
    );
    assert!(store
        .samples("nbn", 2, t(0), t(3600))
        .await
        .unwrap()
        .is_empty());

    // Maxouts: created once, extended while they go on, a later run is a new event.
    let merge = store
        .merge_maxouts("nbn", 1, &[maxout(0, 1800, 1.1e9)], t(1800))
        .await
        .unwrap();
    assert_eq!((merge.created.len(), merge.extended), (1, 0));
    let id = merge.created[0].id;
    let merge = store
        .merge_maxouts("nbn", 1, &[maxout(0, 1800, 1.1e9)], t(2100))
        .await
        .unwrap();
    assert_eq!((merge.created.len(), merge.extended), (0, 0), "seen again");
    let merge = store
        .merge_maxouts(
            "nbn",
            1,
            &[maxout(600, 3000, 1.3e9), maxout(6000, 6600, 1.05e9)],
            t(6600),
        )
        .await
        .unwrap();
    assert_eq!((merge.created.len(), merge.extended), (1, 1));
    let all = store
        .maxouts(&MaxoutQuery {
            poi_code: Some("2ABT".into()),
            from: t(-3600),
            to: t(86_400),
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id, id);
    assert_eq!((all[0].start, all[0].end), (t(0), t(3000)));
    assert_eq!(all[0].duration_secs, 3000);
    assert_eq!(all[0].samples, 10);
    assert_eq!(all[0].peak_bps, 1.3e9);
    assert_eq!(all[0].alerted_at, None, "waits for the alert engine");
    let windowed = store
        .maxouts(&MaxoutQuery {
            poi_code: None,
            from: t(5000),
            to: t(86_400),
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(windowed.len(), 1);
    let other_poi = store
        .maxouts(&MaxoutQuery {
            poi_code: Some("3MEL".into()),
            from: t(-3600),
            to: t(86_400),
            limit: 100,
        })
        .await
        .unwrap();
    assert!(other_poi.is_empty());

    // A run that bridges two stored events (a later export filled the gap) makes them one.
    store
        .merge_maxouts("nbn", 3, &[maxout(0, 600, 1.1e9)], t(600))
        .await
        .unwrap();
    store
        .merge_maxouts("nbn", 3, &[maxout(1200, 1800, 1.2e9)], t(1800))
        .await
        .unwrap();
    let bridged = store
        .merge_maxouts("nbn", 3, &[maxout(0, 1800, 1.15e9)], t(1900))
        .await
        .unwrap();
    assert_eq!((bridged.created.len(), bridged.extended), (0, 1));
    let events = store
        .maxouts(&MaxoutQuery {
            poi_code: Some("2ABT".into()),
            from: t(-10),
            to: t(2000),
            limit: 100,
        })
        .await
        .unwrap();
    let graph3: Vec<_> = events.iter().filter(|m| m.graph_id == 3).collect();
    assert_eq!(graph3.len(), 1, "{graph3:?}");
    assert_eq!((graph3[0].start, graph3[0].end), (t(0), t(1800)));
    assert_eq!(graph3[0].peak_bps, 1.2e9);

    // The job lease: one holder at a time, renewable, taken over once it runs out.
    let ttl = std::time::Duration::from_secs(60);
    assert!(store.claim_job("scrape", "a", ttl, t(0)).await.unwrap());
    assert!(!store.claim_job("scrape", "b", ttl, t(30)).await.unwrap());
    assert!(store.claim_job("scrape", "a", ttl, t(30)).await.unwrap());
    assert!(!store.claim_job("scrape", "b", ttl, t(80)).await.unwrap());
    assert!(store.claim_job("scrape", "b", ttl, t(91)).await.unwrap());
    assert!(!store.claim_job("scrape", "a", ttl, t(100)).await.unwrap());
    store.release_job("scrape", "b").await.unwrap();
    assert!(
        store.claim_job("scrape", "a", ttl, t(101)).await.unwrap(),
        "released"
    );
}

#[tokio::test]
async fn poi_store_suite_on_sqlite() {
    let (store, _guard) = sqlite_store().await;
    store_suite(store).await;
}

#[tokio::test]
async fn poi_store_suite_on_postgres() {
    let (store, _guard) = postgres_store().await;
    store_suite(store).await;
}

fn reference_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/resources/poi-reference.xlsx")
}

/// A Cacti with: 21 a 1G CVC at 2ABT that maxes out inbound for 30 minutes three hours ago
/// and outbound from 20 minutes ago on; 22 a 3MEL NNI whose title says 1G but the reference
/// says 10G (so 2 Gb/s is 20 %, not a maxout); 23 a title no pattern parses; 24 a graph that
/// answers 500; 25 found only by discovery.
fn fake_cacti(now: i64) -> FakeCacti {
    let window =
        |title: &str, levels: Value| json!({"title": title, "window": true, "levels": levels});
    FakeCacti::start(json!({
        "username": "noc", "password": "s3cret-pw", "timezone": "Australia/Sydney",
        "list_page_size": 2,
        "graphs": {
            "21": window("2ABT Albert Park CVC000000123456 1Gbps", json!([
                [now - 3 * 3600, now - 3 * 3600 + 1800, 1.2e9, 2e8],
                [now - 1200, now + 7200, 3e8, 1.1e9]
            ])),
            "22": window("3MEL Melbourne NNI000000654321 1G", json!([[0, now + 7200, 2e9, 1e9]])),
            "23": window("core-router-7 uplink (do not use)", json!([])),
            "24": {"title": "4BRI Brisbane CVC000000111111 500M", "fault": "500"},
            "25": window("2ABT Albert Park CVC000000999999 2.5G TC-4", json!([]))
        }
    }))
}

fn cacti_config(fake: &FakeCacti, dir: &Path) -> (CactiConfig, PoiConfig) {
    std::fs::write(dir.join("cacti.pw"), "s3cret-pw\n").unwrap();
    let cacti: CactiConfig = from_json(json!({
        "interval_secs": 60,
        "sources": [{
            "name": "nbn",
            "url": format!("http://127.0.0.1:{}", fake.port),
            "username": "noc",
            "password_file": "cacti.pw",
            "timezone": "Australia/Sydney",
            "graphs": [21, 22, 23, 24],
            "discover": "CVC000000999999",
            "retries": 1,
            "backoff_ms": 20,
            "timeout_secs": 5
        }],
        "maxout": {"threshold_pct": 100.0, "consecutive": 2}
    }));
    let poi = PoiConfig {
        reference: Some(reference_fixture()),
        ..PoiConfig::default()
    };
    (cacti, poi)
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

/// Five-minute aligned "now", so the window's sample count is exact.
fn aligned_now() -> i64 {
    let now = Utc::now().timestamp();
    now - now % 300
}

async fn poi_anomalies(store: &Arc<dyn Store>) -> Vec<Anomaly> {
    store
        .anomalies(&AnomalyQuery {
            kind: Some("poi_maxout".into()),
            limit: 10,
            ..AnomalyQuery::default()
        })
        .await
        .unwrap()
}

async fn scrape_twice(store: Arc<dyn Store>) {
    let now = aligned_now();
    let fake = fake_cacti(now);
    let dir = tempfile::tempdir().unwrap();
    let (cacti, poi) = cacti_config(&fake, dir.path());
    let settings = ScrapeSettings::from_config(&dir.path().join("collector.toml"), &cacti, &poi)
        .unwrap()
        .unwrap();
    let metrics = Arc::new(Metrics::new());
    let engine = Arc::new(Engine::new(
        store.clone(),
        AlertingConfig::default(),
        metrics.clone(),
    ));
    let scraper = Scraper::new(&settings, store.clone(), metrics)
        .await
        .unwrap()
        .with_engine(engine);

    let runs = scraper.run_once(Utc.timestamp_opt(now, 0).unwrap()).await;
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.record.fetched, 4, "{:?}", run.record);
    assert_eq!(run.record.failed.len(), 1, "{:?}", run.record.failed);
    assert_eq!(run.record.failed[0].0, 24);
    assert!(
        run.record.failed[0].1.contains("500"),
        "{:?}",
        run.record.failed
    );
    assert!(!format!("{:?}", run.record).contains("s3cret"));
    let skipped: Vec<i64> = run.record.skipped.iter().map(|s| s.0).collect();
    assert_eq!(skipped, vec![23], "{:?}", run.record.skipped);
    // 12 hours on 5-minute boundaries: 144 samples per graph.
    assert_eq!(run.record.samples, 4 * 144);

    let mut created = run.new_maxouts.clone();
    created.sort_by_key(|m| m.direction.clone());
    assert_eq!(created.len(), 2, "{created:?}");
    let inbound = &created[0];
    assert_eq!(inbound.direction, "in");
    assert_eq!(inbound.graph_id, 21);
    assert_eq!(inbound.poi_code.as_deref(), Some("2ABT"));
    assert_eq!(inbound.circuit_id.as_deref(), Some("CVC000000123456"));
    assert_eq!(inbound.start.timestamp(), now - 3 * 3600);
    assert_eq!(inbound.duration_secs, 1800);
    assert_eq!(inbound.samples, 6);
    assert!((inbound.peak_pct - 120.0).abs() < 1e-6, "{inbound:?}");
    let outbound = &created[1];
    assert_eq!(outbound.start.timestamp(), now - 1200);
    assert_eq!(outbound.end.timestamp(), now, "goes on to the last sample");
    // Both are anomalies for the NOC, grouped by POI; the finished one stays open until the
    // next scrape, so a maxout between two scrapes is still heard of.
    let open = poi_anomalies(&store).await;
    assert_eq!(open.len(), 2, "{open:?}");
    assert!(open
        .iter()
        .all(|a| a.state == AnomalyState::Open && a.group_key.as_deref() == Some("2ABT")));
    assert!(open
        .iter()
        .any(|a| a.subject == "nbn/21 in" && a.summary.contains("120%")));
    assert_eq!(store.unalerted_maxouts(10).await.unwrap(), vec![]);

    // The next run's window overlaps this one by all but ten minutes: no sample twice, the
    // ongoing maxout is extended rather than opened again, the finished one left alone.
    let later = now + 600;
    let runs = scraper.run_once(Utc.timestamp_opt(later, 0).unwrap()).await;
    let run = &runs[0];
    assert!(run.new_maxouts.is_empty(), "{:?}", run.new_maxouts);
    assert_eq!(run.extended_maxouts, 1);
    // The inbound maxout is over: resolved. The outbound goes on: the same anomaly, still open.
    let after = poi_anomalies(&store).await;
    assert_eq!(
        after.len(),
        2,
        "no second anomaly for the ongoing maxout: {after:?}"
    );
    let state = |subject: &str| after.iter().find(|a| a.subject == subject).unwrap().state;
    assert_eq!(state("nbn/21 in"), AnomalyState::Resolved);
    assert_eq!(state("nbn/21 out"), AnomalyState::Open);
    let samples = store
        .samples(
            "nbn",
            21,
            Utc.timestamp_opt(now - 86_400, 0).unwrap(),
            Utc.timestamp_opt(later + 1, 0).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        samples.len(),
        146,
        "12 h + 10 min of 5-minute samples, each once"
    );
    let all = store
        .maxouts(&MaxoutQuery {
            poi_code: Some("2ABT".into()),
            from: Utc.timestamp_opt(now - 86_400, 0).unwrap(),
            to: Utc.timestamp_opt(later + 1, 0).unwrap(),
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let ongoing = all.iter().find(|m| m.direction == "out").unwrap();
    assert_eq!(ongoing.end.timestamp(), later);
    assert_eq!(ongoing.samples, 6);

    // The reference's 10G override for 3MEL: 2 Gb/s is 20 %, no maxout.
    let mel = store.poi_graphs("3MEL").await.unwrap();
    assert_eq!(mel[0].capacity_bps, Some(10_000_000_000));
    assert_eq!(mel[0].capacity_from.as_deref(), Some("reference"));
    let mel_samples = store
        .samples(
            "nbn",
            22,
            Utc.timestamp_opt(now - 3600, 0).unwrap(),
            Utc.timestamp_opt(now, 0).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(mel_samples[0].in_pct, Some(20.0));
    let abt = store.poi_graphs("2ABT").await.unwrap();
    assert_eq!(abt.len(), 2, "graph 25 came from discovery: {abt:?}");
    assert_eq!(abt[1].traffic_class.as_deref(), Some("TC-4"));
    let poi = store.poi("2ABT").await.unwrap().unwrap();
    assert_eq!(poi.name.as_deref(), Some("Albert Park"));
    assert!(poi.in_reference);
    assert_eq!(store.scrape_runs(10).await.unwrap().len(), 2);
    let stats = fake.stats().await;
    assert_eq!(stats["failed_logins"], 0);
}

#[tokio::test]
async fn scraping_twice_upserts_samples_and_extends_maxouts_on_sqlite() {
    let (store, _guard) = sqlite_store().await;
    scrape_twice(store).await;
}

#[tokio::test]
async fn scraping_twice_upserts_samples_and_extends_maxouts_on_postgres() {
    let (store, _guard) = postgres_store().await;
    scrape_twice(store).await;
}

async fn get(url: String) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_api_serves_pois_utilisation_unparsed_titles_and_maxouts() {
    let now = aligned_now();
    let fake = fake_cacti(now);
    let dir = tempfile::tempdir().unwrap();
    let (cacti, poi) = cacti_config(&fake, dir.path());
    // The password file is resolved next to the collector's config (in its own temp dir).
    let password_file = dir.path().join("cacti.pw");
    let collector = TestCollector::start_with(Backend::Sqlite, move |raw| {
        raw.cacti = cacti;
        raw.cacti.sources[0].password_file = Some(password_file);
        raw.poi = poi;
    })
    .await;

    // serve scrapes once at start, then every interval.
    let mut runs = Value::Null;
    for _ in 0..100 {
        let (_, body) = get(collector.api("/api/cacti/runs")).await;
        if body.as_array().is_some_and(|r| !r.is_empty()) {
            runs = body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(runs[0]["source"], "nbn", "{runs}");
    assert_eq!(runs[0]["failed"][0][0], 24);

    let (status, pois) = get(collector.api("/api/pois")).await;
    assert_eq!(status, 200);
    let codes: Vec<&str> = pois
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec!["2ABT", "3MEL"]);
    assert_eq!(pois[1]["notes"], "busy at night");

    let (status, abt) = get(collector.api("/api/pois/2abt")).await;
    assert_eq!(status, 200, "{abt}");
    assert_eq!(abt["name"], "Albert Park");
    assert_eq!(abt["latitude"], -37.8423);
    assert_eq!(abt["graphs"].as_array().unwrap().len(), 2);
    let daily = &abt["graphs"][0]["daily"];
    assert!(!daily.as_array().unwrap().is_empty(), "{abt}");
    assert!(daily
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["peak_pct"].as_f64() >= Some(110.0)));
    assert_eq!(abt["recent_maxouts"].as_array().unwrap().len(), 2);

    let from = Utc.timestamp_opt(now - 3 * 3600, 0).unwrap().to_rfc3339();
    let to = Utc.timestamp_opt(now - 2 * 3600, 0).unwrap().to_rfc3339();
    let (status, series) = get(collector.api(&format!(
        "/api/pois/2ABT/utilisation?from={}&to={}",
        urlencode(&from),
        urlencode(&to)
    )))
    .await;
    assert_eq!(status, 200, "{series}");
    let cvc = &series[0];
    assert_eq!(cvc["circuit_id"], "CVC000000123456");
    assert_eq!(cvc["capacity_bps"], 1_000_000_000i64);
    let samples = cvc["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 12);
    assert_eq!(samples[0]["in_pct"], 120.0);

    let (_, unparsed) = get(collector.api("/api/pois/unparsed")).await;
    assert_eq!(unparsed[0]["title"], "core-router-7 uplink (do not use)");
    assert_eq!(unparsed[0]["graph_id"], 23);

    let (status, maxouts) = get(collector.api("/api/maxouts?poi=2ABT")).await;
    assert_eq!(status, 200);
    assert_eq!(maxouts.as_array().unwrap().len(), 2);
    assert_eq!(maxouts[0]["duration_secs"], 1800);
    let (_, none) = get(collector.api("/api/maxouts?poi=3MEL")).await;
    assert_eq!(none, json!([]));

    for (path, status, field) in [
        ("/api/pois/9ZZZ", 400, "code"),
        ("/api/pois/1SYD", 404, "1SYD"),
        ("/api/maxouts?poi=nope", 400, "poi"),
        ("/api/maxouts?limit=0", 400, "limit"),
        (
            "/api/pois/2ABT/utilisation?from=2025-01-01T00:00:00Z&to=2025-06-01T00:00:00Z",
            400,
            "31 days",
        ),
        ("/api/pois/2ABT/utilisation?from=yesterday", 400, "from"),
    ] {
        let (got, body) = get(collector.api(path)).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(field),
            "{path}: {body}"
        );
    }
    let metrics = collector.metrics().await;
    assert!(
        metrics.contains("netwarden_poi_maxouts_total{source=\"nbn\",direction=\"in\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("netwarden_cacti_graphs_total{source=\"nbn\",outcome=\"failed\"} 1"),
        "{metrics}"
    );
}

fn urlencode(text: &str) -> String {
    text.replace(':', "%3A").replace('+', "%2B")
}

#[test]
fn scrape_once_from_the_cli_reports_each_graph_and_fails_on_a_failed_graph() {
    let now = aligned_now();
    let fake = fake_cacti(now);
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cacti.pw"), "s3cret-pw\n").unwrap();
    let config = |graphs: &str| {
        format!(
            "[tls]\nca = \"{0}/ca.pem\"\ncert = \"{0}/server.pem\"\nkey = \"{0}/server.key\"\n\
             [database]\nurl = \"sqlite://c.db\"\n\
             [poi]\nreference = \"{1}\"\n\
             [[cacti.sources]]\nname = \"nbn\"\nurl = \"http://127.0.0.1:{2}\"\nusername = \"noc\"\n\
             password_file = \"cacti.pw\"\ntimezone = \"Australia/Sydney\"\ngraphs = {graphs}\n\
             retries = 0\n",
            pki.path().display(),
            reference_fixture().display(),
            fake.port
        )
    };
    let path = dir.path().join("collector.toml");
    let run = || {
        let out = std::process::Command::new(binary("netwarden-collector"))
            .args([
                "cacti",
                "scrape",
                "--once",
                "--config",
                path.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    std::fs::write(&path, config("[21, 22, 24]")).unwrap();
    let (code, stdout, stderr) = run();
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("nbn: fetched 2 graphs, 288 samples written"),
        "{stdout}"
    );
    assert!(stdout.contains("failed graph 24"), "{stdout}");
    assert!(stdout.contains("maxout 2ABT graph 21 in"), "{stdout}");
    assert!(!format!("{stdout}{stderr}").contains("s3cret"));

    std::fs::write(&path, config("[21, 22]")).unwrap();
    let (code, stdout, stderr) = run();
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("0 new maxouts"), "{stdout}");

    std::fs::write(&path, config("[]")).unwrap();
    let (code, _, stderr) = run();
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cacti.sources[0].graphs"), "{stderr}");
}

//! The Cacti client, the scraper, the API and the CLI against a real Cacti 1.2.24 (Debian's
//! package, stood up by `../shared/cacti-lab/setup.sh`) serving twelve graphs whose every
//! value is known (`lib/poi_model.php`; `lib/truth.php` gives titles, maxout windows and gaps).
//! Nothing here was written to fit the client: titles, export format, row labels, login page
//! and session handling are the real server's.
//!
//! The lab's feeder writes each 5-minute interval within 30 s of its end, so "now" in these
//! tests is two minutes ago: every interval up to it is complete. The tests share one server
//! (and delete its sessions), so they take turns. CI sets `NETWARDEN_REQUIRE_LAB=1`, which
//! turns a missing lab into a failure instead of a skip.

use crate::support::{binary, sqlite_store, Backend, Pki, TestCollector};
use chrono::{TimeZone, Timelike, Utc};
use netwarden_collector::alert::engine::Engine;
use netwarden_collector::alert::routing::AlertingConfig;
use netwarden_collector::cacti::{
    CactiClient, CactiConfig, CactiSource, PoiConfig, RowLabels, ScrapeSettings, Scraper,
};
use netwarden_collector::domain::alerting::AnomalyKind;
use netwarden_collector::metrics::Metrics;
use netwarden_collector::poi::TitleParser;
use netwarden_collector::storage::alerting::{AnomalyQuery, AnomalyState};
use netwarden_collector::storage::poi::MaxoutQuery;
use netwarden_collector::storage::Store;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};

const STEP: i64 = 300;
const USER: &str = "admin";

/// The lab Cacti, held by one test at a time.
pub struct Lab {
    base_url: String,
    password: String,
    timezone: String,
    state_dir: PathBuf,
    /// local_graph_id -> the model's key (`l01_2par`, ...).
    keys: BTreeMap<u64, String>,
    _turn: MutexGuard<'static, ()>,
}

/// One row of the model: the interval's end, in and out bits/s, and whether Cacti shows NaN.
#[derive(Debug, Clone, Copy)]
pub struct ModelRow {
    pub end: i64,
    pub in_bps: f64,
    pub out_bps: f64,
    pub nan: bool,
}

fn required() -> bool {
    std::env::var_os("NETWARDEN_REQUIRE_LAB").is_some()
}

impl Lab {
    /// The lab, or `None` (a skip, said on stderr) where it is not set up.
    pub async fn get() -> Option<Lab> {
        // Tests run on runtimes of their own: tokio's mutex works across them (and a test that
        // fails does not poison it).
        static TURN: Mutex<()> = Mutex::const_new(());
        let turn = TURN.lock().await;
        match Self::find().await {
            Ok((base_url, timezone, state_dir, keys)) => Some(Lab {
                base_url,
                password: std::env::var("CACTI_ADMIN_PASS")
                    .unwrap_or_else(|_| "CactiLab2024".into()),
                timezone,
                state_dir,
                keys,
                _turn: turn,
            }),
            Err(why) => {
                assert!(
                    !required(),
                    "NETWARDEN_REQUIRE_LAB is set but the Cacti lab is not usable: {why} (run ../shared/cacti-lab/setup.sh)"
                );
                eprintln!("skipping: the Cacti lab is not usable: {why}; CI sets it up (../shared/cacti-lab/setup.sh)");
                None
            }
        }
    }

    async fn find() -> Result<(String, String, PathBuf, BTreeMap<u64, String>), String> {
        let state_dir = PathBuf::from(
            std::env::var("CACTI_LAB_STATE").unwrap_or_else(|_| "/var/lib/cacti-lab".into()),
        );
        let env = std::fs::read_to_string(state_dir.join("env"))
            .map_err(|e| format!("{}/env: {e}", state_dir.display()))?;
        let setting = |key: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(str::to_string)
        };
        let port = setting("CACTI_PORT").unwrap_or_else(|| "8880".into());
        let timezone = setting("CACTI_TZ").unwrap_or_else(|| "Australia/Adelaide".into());
        let map: Value = serde_json::from_str(
            &std::fs::read_to_string(state_dir.join("graphs_map.json"))
                .map_err(|e| format!("graphs_map.json: {e}"))?,
        )
        .map_err(|e| format!("graphs_map.json: {e}"))?;
        let keys = map
            .as_object()
            .ok_or("graphs_map.json is not an object")?
            .iter()
            .map(|(key, g)| (g["local_graph_id"].as_u64().unwrap_or(0), key.clone()))
            .collect::<BTreeMap<_, _>>();
        if keys.len() != 12 {
            return Err(format!(
                "graphs_map.json names {} graphs, not 12",
                keys.len()
            ));
        }
        let base_url = format!("http://127.0.0.1:{port}/cacti");
        let page = reqwest::get(format!("{base_url}/index.php"))
            .await
            .map_err(|e| format!("{base_url}: {e}"))?;
        if !page.status().is_success() {
            return Err(format!("{base_url}/index.php answered {}", page.status()));
        }
        Command::new("php")
            .arg("--version")
            .output()
            .map_err(|e| format!("php (for lib/truth.php): {e}"))?;
        Ok((base_url, timezone, state_dir, keys))
    }

    pub fn ids(&self) -> Vec<u64> {
        self.keys.keys().copied().collect()
    }

    pub fn source(&self, name: &str, graphs: &[u64], window_hours: u64) -> CactiSource {
        CactiSource {
            name: name.into(),
            base_url: self.base_url.clone(),
            username: USER.into(),
            password: self.password.clone(),
            timezone: self.timezone.parse().unwrap(),
            graphs: graphs.to_vec(),
            concurrency: 4,
            timeout: Duration::from_secs(30),
            retries: 1,
            backoff: Duration::from_millis(100),
            window: Duration::from_secs(window_hours * 3600),
            row_labels: RowLabels::Cacti,
        }
    }

    /// `[cacti]` for a scraper of these graphs.
    pub fn config(&self, graphs: &[u64], window_hours: u64) -> CactiConfig {
        serde_json::from_value(json!({
            "interval_secs": 300,
            "sources": [{
                "name": "lab",
                "url": self.base_url,
                "username": USER,
                "password": self.password,
                "timezone": self.timezone,
                "graphs": graphs,
                "window_hours": window_hours,
                "retries": 1,
                "backoff_ms": 100,
            }],
            "maxout": {"threshold_pct": 100.0, "consecutive": 1}
        }))
        .unwrap()
    }

    fn php(&self, args: &[&str]) -> String {
        let out = Command::new("php")
            .args(args)
            .env("CACTI_TZ", &self.timezone)
            .output()
            .expect("php runs");
        assert!(
            out.status.success(),
            "php {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `lib/truth.php` for the intervals ending in `[first_end, last_end]`, by graph id.
    pub fn truth(&self, first_end: i64, last_end: i64) -> BTreeMap<u64, Value> {
        let map = self.state_dir.join("graphs_map.json");
        let truth: Value = serde_json::from_str(&self.php(&[
            self.state_dir.join("lib/truth.php").to_str().unwrap(),
            map.to_str().unwrap(),
            // truth.php takes CSV labels, one step after each interval's end.
            &format!("--from={}", first_end + STEP),
            &format!("--to={}", last_end),
        ]))
        .unwrap();
        truth["graphs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| (g["local_graph_id"].as_u64().unwrap(), g.clone()))
            .collect()
    }

    /// The model's rows for the intervals ending in `[first_end, last_end]`, by graph id:
    /// what Cacti computes from the counters the lab writes (octets * 8 / step), and NaN
    /// where a poll was missed or follows one.
    pub fn model(&self, first_end: i64, last_end: i64) -> BTreeMap<u64, Vec<ModelRow>> {
        let script = format!(
            r#"include '{lib}/poi_model.php';
            $out = array();
            foreach (lab_graphs() as $g) {{
                $rows = array();
                for ($t = {first_end}; $t <= {last_end}; $t += LAB_STEP) {{
                    list($oin, $oout) = lab_octets($g, $t);
                    list(, , $gap) = lab_rates($g, $t);
                    list(, , $before) = lab_rates($g, $t - LAB_STEP);
                    $rows[] = array($t, $oin * 8 / LAB_STEP, $oout * 8 / LAB_STEP, $gap || $before);
                }}
                $out[$g['key']] = $rows;
            }}
            echo json_encode($out);"#,
            lib = self.state_dir.join("lib").display()
        );
        let by_key: BTreeMap<String, Vec<(i64, f64, f64, bool)>> =
            serde_json::from_str(&self.php(&["-r", &script])).unwrap();
        self.keys
            .iter()
            .map(|(id, key)| {
                let rows = by_key[key]
                    .iter()
                    .map(|&(end, in_bps, out_bps, nan)| ModelRow {
                        end,
                        in_bps,
                        out_bps,
                        nan,
                    })
                    .collect();
                (*id, rows)
            })
            .collect()
    }

    /// Deletes every PHP session on the server: whoever was logged in is not any more.
    pub fn end_sessions(&self) {
        let dir =
            std::env::var("CACTI_LAB_SESSIONS").unwrap_or_else(|_| "/var/lib/php/sessions".into());
        let mut ended = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("sess_"))
            {
                std::fs::remove_file(&path).unwrap();
                ended += 1;
            }
        }
        assert!(ended > 0, "no PHP session to end in {dir}");
    }
}

/// Two minutes ago: the lab's feeder has written every interval that ended by then.
fn settled_now() -> i64 {
    Utc::now().timestamp() - 120
}

/// Interval ends an export of `[now - hours, now]` carries once its incomplete last row is
/// dropped: from the first at or after the start to the last at or before `now`.
fn interval_ends(now: i64, hours: i64) -> (i64, i64) {
    let start = now - hours * 3600;
    let first = start + (STEP - start.rem_euclid(STEP)) % STEP;
    (first, now - now.rem_euclid(STEP))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn utc(text: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text.as_str().unwrap())
        .unwrap()
        .timestamp()
}

/// The direction Cacti's download column is in: the truth names the legend.
fn download_direction(truth: &Value) -> &'static str {
    match truth["download_column"].as_str() {
        Some("Inbound") => "in",
        _ => "out",
    }
}

#[tokio::test]
async fn every_lab_title_is_read_as_the_truth_gives_it() {
    let Some(lab) = Lab::get().await else { return };
    let now = settled_now();
    let (first, last) = interval_ends(now, 1);
    let truth = lab.truth(first, last);
    let parser = TitleParser::new(&[]).unwrap();
    for (id, t) in &truth {
        let title = t["title"].as_str().unwrap();
        let parsed = parser.parse(title);
        if !t["is_poi_graph"].as_bool().unwrap() {
            assert_eq!(parsed, None, "graph {id} {title:?} is not a POI graph");
            continue;
        }
        let p = parsed.unwrap_or_else(|| panic!("graph {id}: {title:?} not read"));
        assert_eq!(p.poi_code.as_deref(), t["poi_code"].as_str(), "{title:?}");
        assert_eq!(
            p.poi_name.as_deref().map(str::to_lowercase),
            t["poi_name_in_title"].as_str().map(str::to_lowercase),
            "{title:?}"
        );
        assert_eq!(p.circuit_id.as_deref(), t["cvc_id"].as_str(), "{title:?}");
        assert_eq!(p.capacity_bps, t["capacity_bps"].as_u64(), "{title:?}");
        let direction = match t["title_direction"].as_str() {
            Some("download") => Some("down"),
            Some("upload") => Some("up"),
            other => other,
        };
        assert_eq!(p.direction, direction, "{title:?}");
    }
}

#[tokio::test]
async fn exports_carry_every_interval_at_its_true_end_with_the_exact_values() {
    let Some(lab) = Lab::get().await else { return };
    let now = settled_now();
    let hours = 36;
    let (first, last) = interval_ends(now, hours);
    let client = CactiClient::new(lab.source("lab", &lab.ids(), hours as u64)).unwrap();
    let report = client.scrape(now).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.fetched.len(), 12);
    let model = lab.model(first, last);
    let truth = lab.truth(first, last);
    for export in &report.fetched {
        let id = export.graph;
        assert_eq!(
            export.header.title,
            truth[&id]["title"].as_str().unwrap(),
            "graph {id}"
        );
        // Rows are stamped at their intervals' ends; the one Cacti has not finished (its end
        // is after `now`) is left out, so nothing is in the future.
        assert!(
            export.incomplete >= 1,
            "graph {id}: the last row is incomplete"
        );
        let ends: Vec<i64> = export.rows.iter().map(|r| r.0).collect();
        let want: Vec<i64> = model[&id].iter().map(|r| r.end).collect();
        assert_eq!(ends, want, "graph {id}: interval ends");
        assert!(ends.iter().all(|e| *e <= now));
        let (inbound, outbound) = (
            export.header.column("Inbound").unwrap(),
            export.header.column("Outbound").unwrap(),
        );
        let mut gaps = 0;
        for ((_, values), row) in export.rows.iter().zip(&model[&id]) {
            if row.nan {
                gaps += 1;
                assert_eq!(
                    (values[inbound], values[outbound]),
                    (None, None),
                    "graph {id} at {}: a gap",
                    row.end
                );
                continue;
            }
            let (got_in, got_out) = (values[inbound].unwrap(), values[outbound].unwrap());
            assert!(
                close(got_in, row.in_bps) && close(got_out, row.out_bps),
                "graph {id} at {}: ({got_in}, {got_out}), the model says ({}, {})",
                row.end,
                row.in_bps,
                row.out_bps
            );
        }
        let truth_gaps: i64 = truth[&id]["nan_periods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["rows"].as_i64().unwrap())
            .sum();
        assert_eq!(gaps, truth_gaps, "graph {id}: NaN rows kept as gaps");
    }
    // 36 hours hold at least one daily gap of each gapped graph.
    assert!(!truth[&5]["nan_periods"].as_array().unwrap().is_empty());
}

/// One full scrape: samples, maxouts to the second, skip reasons, the titles anomaly, and a
/// second scrape that writes nothing.
async fn scrape_matches_the_truth(store: Arc<dyn Store>) {
    let Some(lab) = Lab::get().await else { return };
    let now = settled_now();
    let hours = 30;
    let (first, last) = interval_ends(now, hours);
    let dir = tempfile::tempdir().unwrap();
    let settings = ScrapeSettings::from_config(
        &dir.path().join("collector.toml"),
        &lab.config(&lab.ids(), hours as u64),
        &PoiConfig::default(),
    )
    .unwrap()
    .unwrap();
    let metrics = Arc::new(Metrics::new());
    let engine = Arc::new(Engine::new(
        store.clone(),
        AlertingConfig::default(),
        metrics.clone(),
    ));
    let scraper = Scraper::new(&settings, store.clone(), metrics.clone())
        .await
        .unwrap()
        .with_engine(engine);
    let at = Utc.timestamp_opt(now, 0).unwrap();
    let run = scraper.run_once(at).await.remove(0);
    let record = &run.record;
    assert_eq!(record.fetched, 12, "{record:?}");
    assert!(record.failed.is_empty(), "{:?}", record.failed);
    let truth = lab.truth(first, last);
    let model = lab.model(first, last);

    // Skip reasons, in the order a NOC fixes them: graph 12 is not a POI graph, 10 has no
    // capacity. Nothing else is skipped.
    let skipped: BTreeMap<i64, &str> = record
        .skipped
        .iter()
        .map(|(g, why)| (*g, why.as_str()))
        .collect();
    assert_eq!(skipped.keys().copied().collect::<Vec<_>>(), vec![10, 12]);
    assert!(
        skipped[&12].starts_with("not a POI title"),
        "{}",
        skipped[&12]
    );
    assert!(skipped[&10].starts_with("no capacity"), "{}", skipped[&10]);
    assert_eq!(
        run.no_poi,
        vec![(12, truth[&12]["title"].as_str().unwrap().to_string())]
    );
    assert!(!run.understood_nothing());

    let rows_per_graph = model[&1].len() as i64;
    assert_eq!(
        record.samples,
        11 * rows_per_graph,
        "11 POI graphs' samples, none of 12's"
    );
    let from = Utc.timestamp_opt(first - 3600, 0).unwrap();
    let to = Utc.timestamp_opt(now + 3600, 0).unwrap();
    for id in 1..=12u64 {
        let samples = store.samples("lab", id as i64, from, to).await.unwrap();
        if id == 12 {
            assert!(
                samples.is_empty(),
                "a non-POI graph's samples are not stored"
            );
            continue;
        }
        assert_eq!(samples.len(), model[&id].len(), "graph {id}");
        for (s, row) in samples.iter().zip(&model[&id]) {
            assert_eq!(s.ts.timestamp(), row.end, "graph {id}");
            if row.nan {
                assert_eq!(
                    (s.in_bps, s.out_bps),
                    (None, None),
                    "graph {id} at {}",
                    row.end
                );
            } else {
                assert!(
                    close(s.in_bps.unwrap(), row.in_bps) && close(s.out_bps.unwrap(), row.out_bps),
                    "graph {id} at {}: {s:?} vs {row:?}",
                    row.end
                );
            }
        }
    }

    // /metrics/network: each graph with a capacity, at its newest sample's share of it, both
    // ways; none for graph 10 (no capacity) or 12 (not a POI).
    let text = metrics.network.render(Utc::now());
    for id in 1..=12u64 {
        let series: Vec<(&str, f64)> = text
            .lines()
            .filter(|l| {
                l.starts_with("netwarden_poi_utilisation_ratio{")
                    && l.contains(&format!("graph=\"{id}\""))
            })
            .map(|l| {
                let direction = if l.contains("direction=\"in\"") {
                    "in"
                } else {
                    "out"
                };
                (direction, l.rsplit(' ').next().unwrap().parse().unwrap())
            })
            .collect();
        if id == 10 || id == 12 {
            assert!(series.is_empty(), "graph {id}: {series:?}");
            continue;
        }
        let samples = store.samples("lab", id as i64, from, to).await.unwrap();
        let newest = samples
            .iter()
            .filter(|s| s.in_pct.is_some())
            .max_by_key(|s| s.ts)
            .unwrap();
        assert_eq!(series.len(), 2, "graph {id}: {series:?}");
        for (direction, ratio) in series {
            let pct = if direction == "in" {
                newest.in_pct
            } else {
                newest.out_pct
            };
            assert!(
                (ratio - pct.unwrap() / 100.0).abs() < 1e-9,
                "graph {id} {direction}: {ratio} vs {pct:?}"
            );
        }
    }

    // Every maxout the truth has, to the second, on the download direction; none elsewhere
    // (graph 4 is a near miss at 99.5 %, 10 has no capacity, 12 is not a POI).
    let stored = store
        .maxouts(&MaxoutQuery {
            poi_code: None,
            from,
            to,
            limit: 1000,
        })
        .await
        .unwrap();
    let mut expected = 0;
    for id in 1..=12u64 {
        let t = &truth[&id];
        let mut want: Vec<(i64, i64)> = t["maxout_periods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (utc(&p["interval_start_utc"]), utc(&p["interval_end_utc"])))
            .collect();
        want.sort();
        expected += want.len();
        let mut got: Vec<(i64, i64)> = stored
            .iter()
            .filter(|m| m.graph_id == id as i64)
            .map(|m| {
                assert_eq!(m.direction, download_direction(t), "graph {id}: {m:?}");
                (m.start.timestamp(), m.end.timestamp())
            })
            .collect();
        got.sort();
        assert_eq!(got, want, "graph {id} ({}) maxouts", t["title"]);
        for m in stored.iter().filter(|m| m.graph_id == id as i64) {
            let period = t["maxout_periods"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| utc(&p["interval_start_utc"]) == m.start.timestamp())
                .unwrap();
            let peak = period["peak_bps"].as_f64().unwrap();
            assert!(
                (m.peak_bps - peak).abs() <= 1.0,
                "graph {id}: {m:?} vs {period}"
            );
            assert_eq!(m.samples as i64, period["rows"].as_i64().unwrap());
        }
    }
    assert!(
        expected >= 8,
        "30 hours hold the lab's daily maxouts: {expected}"
    );
    assert_eq!(run.new_maxouts.len(), expected);

    // The NOC hears that a title is not understood, at low severity, naming it.
    let titles = store
        .anomalies(&AnomalyQuery {
            kind: Some(AnomalyKind::CactiTitlesUnparsed),
            limit: 10,
            ..AnomalyQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(titles.len(), 1, "{titles:?}");
    assert_eq!(titles[0].state, AnomalyState::Open);
    assert_eq!(titles[0].severity.as_str(), "low");
    assert_eq!(titles[0].subject, "lab");
    assert!(
        titles[0].summary.contains("1 of 12") && titles[0].summary.contains("CORE-UPLINK-B"),
        "{}",
        titles[0].summary
    );

    // POIs carry the state their code's digit names.
    let states: BTreeMap<String, Option<String>> = store
        .pois()
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.code, p.state))
        .collect();
    assert_eq!(states.len(), 11);
    assert_eq!(states["0DAR"].as_deref(), Some("NT"));
    assert_eq!(states["6FRE"].as_deref(), Some("WA"));
    assert_eq!(states["7LAU"].as_deref(), Some("TAS"));

    // The same scrape again: every sample is already there unchanged, nothing is new.
    let again = scraper.run_once(at).await.remove(0);
    assert_eq!(again.record.samples, 0, "{:?}", again.record);
    assert!(again.new_maxouts.is_empty(), "{:?}", again.new_maxouts);
    let after = store
        .maxouts(&MaxoutQuery {
            poi_code: None,
            from,
            to,
            limit: 1000,
        })
        .await
        .unwrap();
    assert_eq!(after.len(), stored.len());
    assert_eq!(
        store.samples("lab", 1, from, to).await.unwrap().len(),
        model[&1].len()
    );
}

/// A maxout opens in the first scrape after its first over-capacity interval ends (5.5
/// minutes after it started, at a 30-second-late scrape), grows as it goes on, and clears in
/// the first scrape after it ends. Scrapes are run "at" past times, which Cacti answers
/// exactly as it did then: an export ends at `graph_end`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maxout_opens_in_the_first_scrape_after_its_first_interval() {
    let Some(lab) = Lab::get().await else { return };
    let (store, _guard) = sqlite_store().await;
    let now = settled_now();
    let (first, last) = interval_ends(now, 30);
    let truth = lab.truth(first, last);
    // The latest maxout of at least three intervals that lies wholly inside the history,
    // with six hours before it.
    let (graph, period) = truth
        .iter()
        .flat_map(|(id, t)| {
            t["maxout_periods"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |p| (*id, p.clone()))
        })
        .filter(|(_, p)| {
            p["rows"].as_i64().unwrap() >= 3
                && p.get("open_ended").is_none()
                && utc(&p["interval_start_utc"]) >= first + 6 * 3600
        })
        .max_by_key(|(_, p)| utc(&p["interval_start_utc"]))
        .expect("a whole maxout in 30 hours");
    let (start, end) = (
        utc(&period["interval_start_utc"]),
        utc(&period["interval_end_utc"]),
    );
    let direction = download_direction(&truth[&graph]);
    let dir = tempfile::tempdir().unwrap();
    let settings = ScrapeSettings::from_config(
        &dir.path().join("collector.toml"),
        // Two hours: no earlier maxout of the graph is in view (its windows are 8 h apart or
        // more), and an export still overlaps the one before it whatever the maxout's length.
        &lab.config(&[graph], 2),
        &PoiConfig::default(),
    )
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
    let scrape = |secs: i64| scraper.run_once(Utc.timestamp_opt(secs, 0).unwrap());
    let anomaly_state = || async {
        store
            .anomalies(&AnomalyQuery {
                kind: Some(AnomalyKind::PoiMaxout),
                limit: 10,
                ..AnomalyQuery::default()
            })
            .await
            .unwrap()
            .first()
            .map(|a| a.state)
    };

    // A minute before the first interval over capacity ends: nothing to see yet.
    let run = scrape(start + STEP - 60).await.remove(0);
    assert!(run.record.failed.is_empty(), "{:?}", run.record.failed);
    assert!(run.new_maxouts.is_empty(), "{:?}", run.new_maxouts);
    assert_eq!(anomaly_state().await, None);

    // Thirty seconds after it ends: opened, from its true start to that interval's end.
    let run = scrape(start + STEP + 30).await.remove(0);
    assert_eq!(run.new_maxouts.len(), 1, "{:?}", run);
    let m = &run.new_maxouts[0];
    assert_eq!(
        (m.start.timestamp(), m.end.timestamp(), m.direction.as_str()),
        (start, start + STEP, direction),
        "graph {graph}"
    );
    assert_eq!(anomaly_state().await, Some(AnomalyState::Open));

    // Thirty seconds after its last interval: the same event, grown to its true end.
    let run = scrape(end + 30).await.remove(0);
    assert!(run.new_maxouts.is_empty(), "{:?}", run.new_maxouts);
    assert_eq!(run.extended_maxouts, 1);
    let stored = store
        .maxouts(&MaxoutQuery {
            poi_code: None,
            from: Utc.timestamp_opt(start - 86_400, 0).unwrap(),
            to: Utc.timestamp_opt(end + 86_400, 0).unwrap(),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        (stored[0].start.timestamp(), stored[0].end.timestamp()),
        (start, end)
    );
    assert_eq!(anomaly_state().await, Some(AnomalyState::Open));

    // The first scrape after an interval under capacity: resolved.
    scrape(end + STEP + 30).await;
    assert_eq!(anomaly_state().await, Some(AnomalyState::Resolved));
}

#[tokio::test]
async fn a_session_ended_under_requests_in_flight_costs_one_login_and_nothing_else() {
    let Some(lab) = Lab::get().await else { return };
    let now = settled_now();
    let (first, last) = interval_ends(now, 2);
    let client = CactiClient::new(lab.source("lab", &lab.ids(), 2)).unwrap();
    client.login().await.unwrap();
    assert_eq!(client.logins(), 1);
    // The server forgets every session; twelve exports then start at once, and each finds
    // Cacti's login page (a 14 kB page, its form past the first 4 kB) instead of an export.
    lab.end_sessions();
    let exports = futures::future::join_all(
        lab.ids()
            .into_iter()
            .map(|id| client.export(id, now - 2 * 3600, now)),
    )
    .await;
    let rows = ((last - first) / STEP + 1) as usize;
    for (id, export) in lab.ids().into_iter().zip(exports) {
        let export = export.unwrap_or_else(|e| panic!("graph {id}: {e}"));
        assert_eq!(export.rows.len(), rows, "graph {id}: every row");
    }
    assert_eq!(client.logins(), 2, "one login again for all twelve");
}

#[tokio::test]
async fn graphs_are_discovered_by_title_from_the_real_graph_list() {
    let Some(lab) = Lab::get().await else { return };
    let now = settled_now();
    let truth = lab.truth(now - 3600, now);
    let client = CactiClient::new(lab.source("lab", &[], 1)).unwrap();
    let all = client
        .discover(&regex::Regex::new(".").unwrap())
        .await
        .unwrap();
    let want: Vec<(u64, String)> = truth
        .iter()
        .map(|(id, t)| (*id, t["title"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(all, want, "every graph, titles unescaped");
    let pattern = regex::Regex::new(r"(?i)cvc|poi").unwrap();
    let found: Vec<u64> = client
        .discover(&pattern)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let want: Vec<u64> = truth
        .iter()
        .filter(|(_, t)| pattern.is_match(t["title"].as_str().unwrap()))
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(found, want);
    assert!(found.len() >= 10 && !found.contains(&12), "{found:?}");
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_never_shown() {
    let Some(lab) = Lab::get().await else { return };
    let mut source = lab.source("lab", &[1, 2], 1);
    source.password = "not-the-password".into();
    let report = CactiClient::new(source)
        .unwrap()
        .scrape(settled_now())
        .await;
    assert!(report.fetched.is_empty());
    assert_eq!(report.failed.len(), 2);
    for (_, error) in &report.failed {
        assert!(
            error.contains("refused the login of user \"admin\""),
            "{error}"
        );
        assert!(!error.contains("not-the-password"), "{error}");
    }
}

/// `cacti scrape --once`: 0 when every graph is fetched, 1 when one fails (Cacti answers an
/// unknown graph with a 500), 3 when graphs were fetched but no title names a POI (3 wins).
#[test]
fn scrape_once_exits_with_a_status_that_says_what_went_wrong() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(lab) = runtime.block_on(Lab::get()) else {
        return;
    };
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collector.toml");
    std::fs::write(dir.path().join("cacti.pw"), format!("{}\n", lab.password)).unwrap();
    let run = |graphs: &str| {
        std::fs::write(
            &path,
            format!(
                "[tls]\nca = \"{0}/ca.pem\"\ncert = \"{0}/server.pem\"\nkey = \"{0}/server.key\"\n\
                 [database]\nurl = \"sqlite://c.db\"\n\
                 [[cacti.sources]]\nname = \"lab\"\nurl = \"{1}\"\nusername = \"{USER}\"\n\
                 password_file = \"cacti.pw\"\ntimezone = \"{2}\"\ngraphs = {graphs}\nretries = 0\n",
                pki.path().display(),
                lab.base_url,
                lab.timezone
            ),
        )
        .unwrap();
        let out = Command::new(binary("netwarden-collector"))
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
    let (code, stdout, stderr) = run("[1, 5, 12]");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("lab: fetched 3 graphs"), "{stdout}");
    assert!(
        stdout.contains("1 titles naming no POI")
            && stdout.contains(
                "no POI in the title of graph 12: \"mel-nni-core01 - Traffic - CORE-UPLINK-B\""
            ),
        "{stdout}"
    );
    assert!(!format!("{stdout}{stderr}").contains(&lab.password));

    let (code, stdout, stderr) = run("[2, 9999]");
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("failed graph 9999") && stdout.contains("HTTP 500"),
        "{stdout}"
    );

    let (code, stdout, stderr) = run("[12]");
    assert_eq!(code, Some(3), "{stdout}{stderr}");
    assert!(stderr.contains("no title names a POI"), "{stderr}");

    let (code, _, stderr) = run("[12, 9999]");
    assert_eq!(
        code,
        Some(3),
        "a source that understood nothing wins: {stderr}"
    );
}

/// The API over a collector that scraped the lab at start: POIs with their states, daily
/// figures on the POI's own clock (Darwin for 0DAR, not the Cacti server's Adelaide), the
/// title no pattern reads, the run's skip reasons, and the metric counting unparsed graphs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_the_lab_on_each_pois_own_clock() {
    let Some(lab) = Lab::get().await else { return };
    // 30 hours hold one whole 7-10 pm of every zone, wherever "now" falls in the day.
    let config = lab.config(&lab.ids(), 30);
    let collector = TestCollector::start_with(Backend::Sqlite, move |raw| {
        raw.cacti = config;
    })
    .await;
    let get = |path: &str| {
        let url = collector.api(path);
        async move {
            let response = reqwest::get(url).await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let mut runs = Value::Null;
    for _ in 0..300 {
        let (_, body) = get("/api/cacti/runs").await;
        if body.as_array().is_some_and(|r| !r.is_empty()) {
            runs = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(runs[0]["source"], "lab", "{runs}");
    assert_eq!(runs[0]["fetched"], 12, "{runs}");
    let skipped: Vec<(i64, String)> = serde_json::from_value(runs[0]["skipped"].clone()).unwrap();
    assert_eq!(
        skipped.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![10, 12]
    );

    let (status, pois) = get("/api/pois").await;
    assert_eq!(status, 200);
    assert_eq!(pois.as_array().unwrap().len(), 11, "{pois}");
    let (_, unparsed) = get("/api/pois/unparsed").await;
    assert_eq!(unparsed[0]["graph_id"], 12, "{unparsed}");

    let (status, dar) = get("/api/pois/0dar").await;
    assert_eq!(status, 200, "{dar}");
    assert_eq!(dar["state"], "NT");
    let graph = &dar["graphs"][0];
    assert_eq!(graph["capacity_bps"], 250_000_000i64);
    // The busy hour, recomputed here from the samples the API serves, on Darwin's clock.
    let from = (Utc::now() - chrono::Duration::days(3)).to_rfc3339();
    let (status, series) = get(&format!(
        "/api/pois/0DAR/utilisation?from={}",
        from.replace(':', "%3A").replace('+', "%2B")
    ))
    .await;
    assert_eq!(status, 200, "{series}");
    let busy_hour = |zone: chrono_tz::Tz, date: &str| -> Option<f64> {
        let values: Vec<f64> = series[0]["samples"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| {
                let end = utc(&s["ts"]);
                let local = Utc
                    .timestamp_opt(end - STEP, 0)
                    .unwrap()
                    .with_timezone(&zone);
                let pct = s["in_pct"].as_f64()?.max(s["out_pct"].as_f64()?);
                (local.date_naive().to_string() == date && (19..22).contains(&local.hour()))
                    .then_some(pct)
            })
            .collect();
        (values.len() == 36).then(|| values.iter().sum::<f64>() / 36.0)
    };
    let mut compared = 0;
    for day in dar["graphs"][0]["daily"].as_array().unwrap() {
        let date = day["date"].as_str().unwrap();
        let Some(darwin) = busy_hour(chrono_tz::Australia::Darwin, date) else {
            continue; // a day whose busy hour the window holds only in part
        };
        let served = day["busy_hour_pct"].as_f64().unwrap();
        assert!(
            (served - darwin).abs() < 1e-6,
            "{date}: {served} vs {darwin}"
        );
        if let Some(adelaide) = busy_hour(chrono_tz::Australia::Adelaide, date) {
            assert!(
                (served - adelaide).abs() > 1e-3,
                "{date}: the clocks must differ"
            );
        }
        compared += 1;
    }
    assert!(compared >= 1, "a whole busy hour in the window: {dar}");

    let metrics = collector.metrics().await;
    assert!(
        metrics.contains("netwarden_cacti_unparsed_graphs{source=\"lab\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("netwarden_cacti_graphs_total{source=\"lab\",outcome=\"skipped\"} 2"),
        "{metrics}"
    );
    let (status, maxouts) = get("/api/maxouts?poi=0DAR").await;
    assert_eq!(status, 200);
    assert!(
        !maxouts.as_array().unwrap().is_empty(),
        "0DAR maxes out daily: {maxouts}"
    );
    for (path, status, field) in [
        ("/api/pois/1SYD", 400, "0 or 2-7"),
        ("/api/pois/9ZZZ", 400, "code"),
        ("/api/pois/2XYZ", 404, "2XYZ"),
        ("/api/maxouts?poi=nope", 400, "poi"),
        ("/api/maxouts?limit=0", 400, "limit"),
        (
            "/api/pois/2PAR/utilisation?from=2025-01-01T00:00:00Z&to=2025-06-01T00:00:00Z",
            400,
            "31 days",
        ),
        ("/api/pois/2PAR/utilisation?from=yesterday", 400, "from"),
    ] {
        let (got, body) = get(path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(field),
            "{path}: {body}"
        );
    }
}

/// The reference workbook fills in what titles lack and overrides what they say: 4TWB's
/// title says "capacity TBC" (the workbook: 300 Mbps), 3CBG's says 1Gbps (the workbook: 2G);
/// the workbook's State wins over the code's digit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_workbook_gives_capacities_and_states() {
    let Some(lab) = Lab::get().await else { return };
    let (store, _guard) = sqlite_store().await;
    let now = settled_now();
    let dir = tempfile::tempdir().unwrap();
    let poi = PoiConfig {
        reference: Some(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/resources/poi-reference-lab.xlsx"),
        ),
        ..PoiConfig::default()
    };
    let settings = ScrapeSettings::from_config(
        &dir.path().join("collector.toml"),
        &lab.config(&[1, 2, 10], 2),
        &poi,
    )
    .unwrap()
    .unwrap();
    let scraper = Scraper::new(&settings, store.clone(), Arc::new(Metrics::new()))
        .await
        .unwrap();
    let run = scraper
        .run_once(Utc.timestamp_opt(now, 0).unwrap())
        .await
        .remove(0);
    assert!(run.record.skipped.is_empty(), "{:?}", run.record.skipped);
    let (first, last) = interval_ends(now, 2);
    let model = lab.model(first, last);
    for (code, graph, capacity) in [("4TWB", 10, 300e6), ("3CBG", 2, 2e9), ("2PAR", 1, 3e9)] {
        let graphs = store.poi_graphs(code).await.unwrap();
        assert_eq!(graphs[0].capacity_bps, Some(capacity as i64), "{code}");
        let from_reference = code != "2PAR";
        assert_eq!(
            graphs[0].capacity_from.as_deref(),
            Some(if from_reference { "reference" } else { "title" }),
            "{code}"
        );
        let samples = store
            .samples(
                "lab",
                graph,
                Utc.timestamp_opt(first, 0).unwrap(),
                Utc.timestamp_opt(last + 1, 0).unwrap(),
            )
            .await
            .unwrap();
        let row = model[&(graph as u64)].iter().find(|r| !r.nan).unwrap();
        let sample = samples
            .iter()
            .find(|s| s.ts.timestamp() == row.end)
            .unwrap();
        assert!(
            close(sample.out_pct.unwrap(), 100.0 * row.out_bps / capacity),
            "{code}: {sample:?}"
        );
    }
    let state = |code: &str| {
        let store = store.clone();
        let code = code.to_string();
        async move { store.poi(&code).await.unwrap().unwrap().state }
    };
    assert_eq!(state("2PAR").await.as_deref(), Some("ACT"));
    assert_eq!(state("3CBG").await.as_deref(), Some("Victoria"));
    assert_eq!(state("4TWB").await.as_deref(), Some("QLD"));
}

crate::store::store_suite!(scrape_matches_the_truth,);

//! The Cacti client against faults a real Cacti cannot be made to produce, served by a fake
//! running as a separate process (tests/resources/fake-cacti.py, which otherwise speaks
//! Cacti 1.2.24's wire format: its 14 kB login page, one-step-late row labels, a 500 for an
//! unknown graph). Everything a real Cacti can do is tested against one in `cacti_lab.rs`.

use netwarden_collector::cacti::{CactiClient, CactiSource, RowLabels};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct FakeCacti {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl FakeCacti {
    pub fn start(config: Value) -> FakeCacti {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cacti.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/resources/fake-cacti.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the fake Cacti");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("fake Cacti said {line:?}"));
        FakeCacti {
            child,
            port,
            _dir: dir,
        }
    }

    fn source(&self, graphs: &[u64]) -> CactiSource {
        CactiSource {
            name: "nbn-portal".into(),
            base_url: format!("http://127.0.0.1:{}", self.port),
            username: "noc".into(),
            password: "s3cret-pw".into(),
            timezone: chrono_tz::Australia::Sydney,
            graphs: graphs.to_vec(),
            concurrency: 3,
            timeout: Duration::from_secs(2),
            retries: 2,
            backoff: Duration::from_millis(50),
            window: Duration::from_secs(12 * 3600),
            row_labels: RowLabels::Cacti,
        }
    }

    pub async fn stats(&self) -> Value {
        reqwest::get(format!("http://127.0.0.1:{}/_stats", self.port))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for FakeCacti {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn graphs(list: Value) -> Value {
    json!({"username": "noc", "password": "s3cret-pw", "session_exports": 0, "graphs": list})
}

const NOW: i64 = 1_736_935_200;

/// The Cacti 0.8 dialect (no BOM, `"Title:"` keys) and NaN gaps, which the lab's Cacti 1.2
/// does not write.
#[tokio::test]
async fn the_cacti_0_8_dialect_and_gaps_are_read() {
    let fake = FakeCacti::start(graphs(json!({
        "12": {"title": "3MEL Melbourne NNI000000654321 10G", "rows": 100, "bom": false, "colon_keys": true},
        "13": {"title": "4BRI Brisbane CVC000000111111 500M", "rows": 30, "fault": "nan"}
    })));
    let client = CactiClient::new(fake.source(&[12, 13])).unwrap();
    let report = client.scrape(NOW).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.fetched.len(), 2);
    let mel = &report.fetched[0];
    assert_eq!(mel.header.title, "3MEL Melbourne NNI000000654321 10G");
    assert_eq!(mel.rows.len(), 100);
    assert_eq!(mel.header.column("Inbound"), Some(0));
    assert_eq!(mel.rows[1].1[0], Some(1.01e8));
    // Labelled 2025-01-15 10:00 in Sydney (UTC+11, 23:00 UTC the day before): the interval
    // it averages ends one step earlier.
    assert_eq!(mel.rows[0].0, NOW - 11 * 3600 - 300);
    let gaps = report.fetched[1]
        .rows
        .iter()
        .filter(|r| r.1[0].is_none())
        .count();
    assert_eq!(gaps, 10, "every third row is NaN and kept as a gap");
    assert_eq!(fake.stats().await["logins"], 1);
}

#[tokio::test]
async fn a_stale_csrf_token_is_refreshed_once_and_twice_is_an_error() {
    let mut config =
        graphs(json!({"11": {"title": "2ABT Albert Park CVC000000123456 1G", "rows": 12}}));
    config["stale_tokens"] = json!(1);
    let fake = FakeCacti::start(config);
    let client = CactiClient::new(fake.source(&[11])).unwrap();
    let report = client.scrape(NOW).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.fetched.len(), 1);
    let stats = fake.stats().await;
    assert_eq!(
        (stats["stale_tokens"].as_u64(), stats["logins"].as_u64()),
        (Some(1), Some(1))
    );

    let mut config =
        graphs(json!({"11": {"title": "2ABT Albert Park CVC000000123456 1G", "rows": 12}}));
    config["stale_tokens"] = json!(2);
    let fake = FakeCacti::start(config);
    let error = CactiClient::new(fake.source(&[11]))
        .unwrap()
        .login()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("login: HTTP 403"), "{error}");
    assert_eq!(fake.stats().await["logins"], 0);
}

#[tokio::test]
async fn an_expired_session_logs_in_again_once_and_loses_nothing() {
    let list: serde_json::Map<String, Value> = (1..=8)
        .map(|id| {
            (
                id.to_string(),
                json!({"title": format!("{id}ABC Site CVC00000000000{id} 1G"), "rows": 12}),
            )
        })
        .collect();
    let mut config = graphs(Value::Object(list));
    config["session_exports"] = json!(3);
    let fake = FakeCacti::start(config);
    let client = CactiClient::new(fake.source(&(1..=8).collect::<Vec<_>>())).unwrap();
    let report = client.scrape(NOW).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.fetched.len(), 8);
    let stats = fake.stats().await;
    assert!(stats["expired"].as_u64().unwrap() >= 2, "{stats}");
    assert!(stats["logins"].as_u64().unwrap() >= 3, "{stats}");
}

#[tokio::test]
async fn a_failing_slow_or_malformed_graph_never_stops_the_others() {
    let fake = FakeCacti::start(graphs(json!({
        "21": {"title": "2ABT Albert Park CVC000000123456 1G", "rows": 12},
        "22": {"title": "broken", "rows": 12, "fault": "500"},
        "23": {"title": "slow", "rows": 12, "fault": "slow", "delay": 5},
        "24": {"title": "bad numbers", "rows": 12, "fault": "malformed"},
        "25": {"title": "3MEL Melbourne NNI000000654321 10G", "rows": 12},
        "26": {"title": "cut short", "rows": 12, "fault": "truncated"},
        "27": {"title": "a proxy's page", "rows": 12, "fault": "html"}
    })));
    let client = CactiClient::new(fake.source(&[21, 22, 23, 24, 25, 26, 27, 99])).unwrap();
    let report = client.scrape(NOW).await;
    let fetched: Vec<u64> = report.fetched.iter().map(|e| e.graph).collect();
    assert_eq!(fetched, vec![21, 25]);
    let failed: std::collections::HashMap<u64, String> = report.failed.into_iter().collect();
    assert!(failed[&22].contains("HTTP 500"), "{}", failed[&22]);
    assert!(
        failed[&23].contains("graph 23") && failed[&23].to_lowercase().contains("time"),
        "{}",
        failed[&23]
    );
    assert!(
        failed[&24].contains("line 13: column 2 (\"Inbound\"): \"lots\" is not a number"),
        "{}",
        failed[&24]
    );
    assert!(failed[&26].contains("graph 26: line"), "{}", failed[&26]);
    assert!(
        failed[&27].contains("not an export") && failed[&27].contains("Proxy Error"),
        "{}",
        failed[&27]
    );
    assert!(failed[&99].contains("HTTP 500"), "{}", failed[&99]);
    let stats = fake.stats().await;
    assert_eq!(stats["exports"]["22"], 3, "one try and two retries");
    assert_eq!(
        stats["exports"]["24"], 1,
        "a malformed export is not retried"
    );
}

//! deploy/ checked against the real thing: promtool passes the Prometheus config and rules; a
//! real Prometheus scrapes a running collector and answers a Netwarden metric through its HTTP
//! API, with the rules loaded; every metric the rules and Grafana dashboards name is one the
//! collector exports; every Grafana SQL query runs on a migrated PostgreSQL; the compose
//! collector config validates.
//!
//! Needs Debian's `prometheus` (promtool and prometheus); `.ci/run` installs it.

use super::support::{
    exchange, free_port, probe_record, wire_batch, Backend, PgDatabase, Pki, TestCollector,
};
use netwarden_collector::storage::{PostgresStore, Store};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{name} is needed for the deploy tests: apt-get install prometheus"
    );
    Command::new(name)
}

fn run_ok(mut command: Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn promtool_passes_the_config_and_the_rules() {
    let mut check = tool("promtool");
    check
        .args(["check", "config"])
        .arg(deploy("prometheus/prometheus.yml"));
    assert!(run_ok(check).contains("SUCCESS"));
    let mut rules = tool("promtool");
    rules
        .args(["check", "rules"])
        .arg(deploy("prometheus/netwarden-rules.yml"));
    assert!(run_ok(rules).contains("12 rules found"));
}

/// Metric names the collector exports, from the `# TYPE` lines of its /metrics, with the
/// sample suffixes each type adds.
fn exported(metrics_text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics_text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        for suffix in suffixes {
            names.insert(format!("{name}{suffix}"));
        }
    }
    names
}

/// `netwarden_*` names in a text (rule expressions, dashboard queries).
fn referenced(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(found) = text[i..].find("netwarden_") {
        let start = i + found;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let before_ok = start == 0
            || !(bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || bytes[start - 1] == b'-');
        if before_ok {
            names.insert(text[start..end].to_string());
        }
        i = end;
    }
    names
}

fn dashboards() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(deploy("grafana/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let json: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push((
            path.file_name().unwrap().to_string_lossy().into_owned(),
            json,
        ));
    }
    assert_eq!(
        out.len(),
        5,
        "sites/devices, POI, KPI, health and network dashboards"
    );
    out
}

/// Every panel target, with the data source type it uses.
fn targets(dashboard: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let kind = target["datasource"]["type"].as_str().unwrap().to_string();
            out.push((kind, target.clone()));
        }
    }
    out
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_collector_and_dashboards_name_only_what_exists() {
    let collector = TestCollector::start(Backend::Sqlite).await;
    // Something to count: 5 records over the real mTLS stream.
    let files = collector.pki.agent("branch-7");
    let mut client = collector.client(&files).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let batch = wire_batch(
        1,
        (1..=5)
            .map(|i| probe_record(i, now, &format!("10.0.0.{i}"), 4))
            .collect(),
    );
    let (acks, error) = exchange(&mut client, vec![batch]).await;
    assert!(error.is_none() && acks.len() == 1, "{error:?}");

    let metrics_text = reqwest::get(collector.api("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut names = exported(&metrics_text);
    assert!(
        names.contains("netwarden_ingest_records_total"),
        "{names:?}"
    );
    // The network's own path: the 5 rounds just sent, by target.
    let network_text = reqwest::get(collector.api("/metrics/network"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        network_text
            .lines()
            .filter(|l| l.starts_with("netwarden_probe_up{"))
            .count(),
        5,
        "{network_text}"
    );
    names.extend(exported(&network_text));

    // What the rules and dashboards name must exist.
    let rules = std::fs::read_to_string(deploy("prometheus/netwarden-rules.yml")).unwrap();
    let mut wanted = referenced(&rules);
    for (file, dashboard) in dashboards() {
        for (kind, target) in targets(&dashboard) {
            if kind == "prometheus" {
                let expr = target["expr"].as_str().unwrap();
                let found = referenced(expr);
                assert!(!found.is_empty(), "{file}: {expr}");
                wanted.extend(found);
            }
        }
    }
    let missing: Vec<&String> = wanted.iter().filter(|n| !names.contains(*n)).collect();
    assert!(missing.is_empty(), "named but not exported: {missing:?}");

    // A real Prometheus, with the real rules, scraping this collector every second.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: netwarden-collector\n    static_configs:\n      - targets: [\"{}\"]\n",
            deploy("prometheus/netwarden-rules.yml").display(),
            collector.http
        ),
    )
    .unwrap();
    let mut prometheus = tool("prometheus");
    prometheus
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap());
    let _prometheus = Killed(prometheus.spawn().unwrap());
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let start = Instant::now();
    let value = loop {
        let answer = reqwest::get(format!("{api}/query?query=netwarden_ingest_records_total"))
            .await
            .ok();
        let body: Option<Value> = match answer {
            Some(r) => r.json().await.ok(),
            None => None,
        };
        let value = body.as_ref().and_then(|b| {
            b["data"]["result"][0]["value"][1]
                .as_str()
                .map(|v| v.to_string())
        });
        if let Some(v) = value {
            break v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "Prometheus never had the metric: {body:?}\n{}",
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        value, "5",
        "the 5 records ingested, read back through Prometheus"
    );
    let rules: Value = reqwest::get(format!("{api}/rules"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let loaded = rules["data"]["groups"][0]["rules"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(loaded, 8, "{rules:#}");
}

/// Grafana's SQL macros as plain PostgreSQL, over the last day.
fn expand_macros(sql: &str) -> String {
    let mut out = sql.to_string();
    while let Some(start) = out.find("$__timeGroupAlias(") {
        let end = start + out[start..].find(')').unwrap();
        let args = &out[start + "$__timeGroupAlias(".len()..end];
        let column = args.split(',').next().unwrap().trim().to_string();
        out.replace_range(
            start..=end,
            &format!("date_bin('5 minutes', {column}, timestamptz 'epoch') AS time"),
        );
    }
    // Grafana's interval for a day's range on a wide panel.
    out = out.replace("$__interval_ms", "60000");
    while let Some(start) = out.find("$__timeFilter(") {
        let end = start + out[start..].find(')').unwrap();
        let column = out[start + "$__timeFilter(".len()..end].trim().to_string();
        out.replace_range(
            start..=end,
            &format!("{column} BETWEEN now() - interval '1 day' AND now()"),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grafana_sql_query_runs_on_the_collectors_postgres_schema() {
    let db = PgDatabase::create().await;
    PostgresStore::connect(&db.url, 2)
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();
    let mut pool = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let mut queries = 0;
    for (file, dashboard) in dashboards() {
        for (kind, target) in targets(&dashboard) {
            if kind != "postgres" {
                continue;
            }
            let sql = expand_macros(target["rawSql"].as_str().unwrap());
            assert!(!sql.contains("$__"), "{file}: a macro left: {sql}");
            if let Err(err) = sqlx::query(&sql).fetch_all(&mut pool).await {
                panic!("{file}: {err}\n{sql}");
            }
            queries += 1;
        }
    }
    assert!(queries >= 10, "{queries}");
}

#[test]
fn the_compose_collector_config_validates() {
    let pki = Pki::new();
    let mut validate = Command::new(super::support::binary("netwarden-collector"));
    validate
        .args(["validate", "--config"])
        .arg(deploy("compose/collector.toml"))
        .env("NETWARDEN_COLLECTOR_TLS__CA", pki.ca())
        .env(
            "NETWARDEN_COLLECTOR_TLS__CERT",
            pki.path().join("server.pem"),
        )
        .env(
            "NETWARDEN_COLLECTOR_TLS__KEY",
            pki.path().join("server.key"),
        );
    assert!(run_ok(validate).contains("OK"));
}

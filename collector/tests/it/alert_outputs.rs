//! Outputs every pager understands, against real peers: a webhook receiver process (Python's
//! `http.server`, answering the first delivery 503) and a real Alertmanager (Debian's
//! `prometheus-alertmanager`). An anomaly opened by probe rounds over the real ingest stream
//! reaches the receiver, retried after the 503, in the shape Alertmanager's webhook sends and
//! with a valid HMAC signature; Alertmanager shows it as an active alert through its own API.
//! When the host comes back, the receiver gets the resolve and Alertmanager drops the alert.
//! Then `netwarden routes test` sends the route's test notification to both, and says so.

use super::alert_e2e::send_rounds;
use super::operator_cli::{netwarden, Run};
use super::support::{free_port, Backend, TestCollector};
use hmac::{Hmac, Mac};
use netwarden_collector::alert::routing::{AlertingConfig, RouteConfig};
use netwarden_collector::alert::webhook::EndpointConfig;
use netwarden_collector::storage::alerting::Severity;
use serde_json::Value;
use sha2::Sha256;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "a-webhook-secret-of-32-characters";

/// Records every POST (its signature headers and body) as a JSON line; answers the first 503.
const RECEIVER: &str = "\
import http.server, json, sys
log = open(sys.argv[2], 'a')
seen = [0]
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length'])).decode()
        seen[0] += 1
        status = 503 if seen[0] == 1 else 200
        log.write(json.dumps({'status': status, 'path': self.path,
            'signature': self.headers.get('X-Netwarden-Signature'),
            'timestamp': self.headers.get('X-Netwarden-Timestamp'),
            'content_type': self.headers.get('Content-Type'), 'body': body}) + '\\n')
        log.flush()
        self.send_response(status)
        self.send_header('Content-Length', '0')
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), Receiver).serve_forever()
";

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn requests(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

async fn wait_until<F: FnMut() -> bool>(what: &str, limit: Duration, mut ready: F) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn alertmanager_alerts(port: u16) -> Vec<Value> {
    reqwest::get(format!("http://127.0.0.1:{port}/api/v2/alerts"))
        .await
        .ok()
        .and_then(|r| r.error_for_status().ok())
        .map(|r| r.json::<Vec<Value>>())
        .expect("Alertmanager answers")
        .await
        .unwrap()
}

/// What Alertmanager lists, once `done` says so (or after 10 s, for the caller to assert on).
async fn alertmanager_alerts_until(port: u16, done: fn(&Vec<Value>) -> bool) -> Vec<Value> {
    let mut alerts = Vec::new();
    for _ in 0..200 {
        alerts = alertmanager_alerts(port).await;
        if done(&alerts) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    alerts
}

/// A real Alertmanager on `port` with one receiver that sends nowhere.
fn start_alertmanager(dir: &Path, port: u16) -> Option<Killed> {
    if !Path::new(ALERTMANAGER).exists() {
        assert!(
            std::env::var_os("NETWARDEN_REQUIRE_LAB").is_none(),
            "NETWARDEN_REQUIRE_LAB is set but {ALERTMANAGER} is missing (apt install prometheus-alertmanager)"
        );
        eprintln!("skipping: {ALERTMANAGER} is missing");
        return None;
    }
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: nowhere\nreceivers:\n  - name: nowhere\n",
    )
    .unwrap();
    let storage: PathBuf = dir.join("am-data");
    std::fs::create_dir_all(&storage).unwrap();
    Some(Killed(
        Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("alertmanager.log")).unwrap())
            .spawn()
            .expect("start Alertmanager"),
    ))
}

/// The operator CLI, off the runtime's threads (the collector under test shares them).
async fn cli(home: &Path, args: &[&str]) -> Run {
    let home = home.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        netwarden(&home, &[], &args)
    })
    .await
    .unwrap()
}

fn verify(request: &Value) {
    let body = request["body"].as_str().unwrap();
    let timestamp = request["timestamp"].as_str().expect("a timestamp header");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        request["signature"].as_str(),
        Some(format!("sha256={expected}").as_str()),
        "the signature verifies with the shared secret"
    );
    let age = chrono::Utc::now().timestamp() - timestamp.parse::<i64>().unwrap();
    assert!((0..300).contains(&age), "signed {age} s ago");
}

async fn webhook_and_alertmanager_outputs(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let am_port = free_port();
    let Some(_alertmanager) = start_alertmanager(dir.path(), am_port) else {
        return;
    };
    let hook_port = free_port();
    let log = dir.path().join("hook.jsonl");
    let _receiver = Killed(
        Command::new("python3")
            .args(["-c", RECEIVER, &hook_port.to_string()])
            .arg(&log)
            .spawn()
            .expect("start the receiver"),
    );
    let secret = dir.path().join("hook.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    // Both peers answer before the collector starts.
    let ready = format!("http://127.0.0.1:{am_port}/-/ready");
    let start = Instant::now();
    while !reqwest::get(&ready)
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "Alertmanager did not start: {}",
            std::fs::read_to_string(dir.path().join("alertmanager.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until("the receiver", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", hook_port)).is_ok()
    })
    .await;

    let collector = TestCollector::start_with(backend, move |raw| {
        raw.alerting = AlertingConfig {
            routes: vec![RouteConfig {
                name: "pager".into(),
                kinds: vec![],
                min_severity: Severity::Medium,
                email: vec![],
                telegram: vec![],
                webhook: vec!["bridge".into()],
                alertmanager: vec!["am".into()],
                escalation: vec![],
            }],
            webhooks: vec![EndpointConfig {
                name: "bridge".into(),
                url: format!("http://127.0.0.1:{hook_port}/hook"),
                secret_file: Some(secret),
                secret_env: None,
                timeout_secs: 5,
            }],
            alertmanagers: vec![EndpointConfig {
                name: "am".into(),
                url: format!("http://127.0.0.1:{am_port}"),
                secret_file: None,
                secret_env: None,
                timeout_secs: 5,
            }],
            external_url: Some("https://noc.example.net/".into()),
            backoff_ms: 200,
            ..AlertingConfig::default()
        };
    })
    .await;

    let mut seq = 0;
    send_rounds(&collector, &mut seq, "10.9.0.1", &[4, 0, 0]).await;

    // The receiver: refused once, then the same notification again, signed.
    wait_until("two webhook deliveries", Duration::from_secs(20), || {
        requests(&log).len() >= 2
    })
    .await;
    let got = requests(&log);
    assert_eq!(got[0]["status"], 503);
    assert_eq!(got[1]["status"], 200);
    assert_eq!(
        got[0]["body"], got[1]["body"],
        "the retry is the same message"
    );
    assert_eq!(got[1]["path"], "/hook");
    assert_eq!(got[1]["content_type"], "application/json");
    verify(&got[1]);
    let body: Value = serde_json::from_str(got[1]["body"].as_str().unwrap()).unwrap();
    // Alertmanager's webhook body, version 4.
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["receiver"], "bridge");
    assert_eq!(body["externalURL"], "https://noc.example.net");
    assert_eq!(body["truncatedAlerts"], 0);
    assert!(body["groupKey"].is_string());
    assert_eq!(body["groupLabels"]["alertname"], "device_offline");
    let alert = &body["alerts"][0];
    assert_eq!(body["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"]["alertname"], "device_offline");
    assert_eq!(alert["labels"]["subject"], "branch-7/10.9.0.1");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert!(alert["annotations"]["summary"]
        .as_str()
        .unwrap()
        .contains("10.9.0.1"));
    let anomaly_id = alert["labels"]["anomaly_id"].as_str().unwrap().to_string();
    assert_eq!(
        alert["generatorURL"],
        format!("https://noc.example.net/#anomaly/{anomaly_id}")
    );
    assert_eq!(body["commonLabels"], alert["labels"]);
    chrono::DateTime::parse_from_rfc3339(alert["startsAt"].as_str().unwrap())
        .expect("startsAt is RFC 3339");
    assert_eq!(alert["fingerprint"].as_str().unwrap().len(), 16);

    // Alertmanager: the same alert, active, with our labels.
    let active = alertmanager_alerts_until(am_port, |a| !a.is_empty()).await;
    assert_eq!(active.len(), 1, "{active:#?}");
    assert_eq!(active[0]["status"]["state"], "active");
    assert_eq!(active[0]["labels"]["alertname"], "device_offline");
    assert_eq!(active[0]["labels"]["subject"], "branch-7/10.9.0.1");
    assert_eq!(active[0]["labels"]["anomaly_id"], anomaly_id.as_str());
    assert_eq!(
        active[0]["generatorURL"],
        format!("https://noc.example.net/#anomaly/{anomaly_id}")
    );
    let ends = chrono::DateTime::parse_from_rfc3339(active[0]["endsAt"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert!(
        ends > chrono::Utc::now() + chrono::Duration::hours(23),
        "fires past the next repeat, not Alertmanager's 5-minute resolve_timeout: {ends}"
    );

    // Back: the receiver hears it resolved, and Alertmanager no longer lists it.
    send_rounds(&collector, &mut seq, "10.9.0.1", &[4, 4]).await;
    wait_until("the resolve", Duration::from_secs(20), || {
        requests(&log).len() >= 3
    })
    .await;
    let resolve = &requests(&log)[2];
    verify(resolve);
    let body: Value = serde_json::from_str(resolve["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["alerts"][0]["status"], "resolved");
    assert_eq!(body["alerts"][0]["annotations"]["event"], "resolve");
    assert_ne!(body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    let listed = alertmanager_alerts_until(am_port, Vec::is_empty).await;
    assert!(listed.is_empty(), "resolved in Alertmanager: {listed:#?}");

    // The outbox recorded each as sent, the refused attempt included.
    let sent: Value = reqwest::get(collector.api(&format!("/api/alerts?anomaly={anomaly_id}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut channels: Vec<(String, String, String)> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["channel"].as_str().unwrap().to_string(),
                a["event"].as_str().unwrap().to_string(),
                a["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    channels.sort();
    // The repeat each open queued is cancelled by the resolve.
    assert_eq!(
        channels,
        [
            ("alertmanager".into(), "open".into(), "sent".into()),
            ("alertmanager".into(), "repeat".into(), "cancelled".into()),
            ("alertmanager".into(), "resolve".into(), "sent".into()),
            ("webhook".into(), "open".into(), "sent".into()),
            ("webhook".into(), "repeat".into(), "cancelled".into()),
            ("webhook".into(), "resolve".into(), "sent".into()),
        ],
        "{sent:#}"
    );
    let webhook_open = sent
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["channel"] == "webhook" && a["event"] == "open")
        .unwrap();
    assert_eq!(
        webhook_open["attempts"], 2,
        "one refused, one sent: {webhook_open}"
    );

    // A route's test notification, from the CLI: both recipients, each sent.
    let url = collector.api("");
    let home = dir.path();
    let listed = cli(home, &["--url", &url, "-o", "json", "routes", "list"])
        .await
        .ok();
    assert_eq!(listed.json()[0]["name"], "pager");
    assert_eq!(
        listed.json()[0]["recipients"],
        serde_json::json!([
            {"channel": "webhook", "recipient": "bridge"},
            {"channel": "alertmanager", "recipient": "am"},
        ])
    );
    let run = cli(
        home,
        &["--url", &url, "-o", "json", "routes", "test", "pager"],
    )
    .await
    .ok();
    let outcomes = run.json();
    assert_eq!(
        outcomes,
        serde_json::json!([
            {"channel": "webhook", "recipient": "bridge", "outcome": "sent", "error": null},
            {"channel": "alertmanager", "recipient": "am", "outcome": "sent", "error": null},
        ])
    );
    // The webhook's test is followed by its resolve, so a bridge closes what it opened.
    let got = requests(&log);
    assert_eq!(got.len(), 5, "{got:#?}");
    let (test, test_resolve) = (&got[3], &got[4]);
    verify(test);
    verify(test_resolve);
    let body: Value = serde_json::from_str(test["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["status"], "firing");
    assert_eq!(
        body["alerts"][0]["labels"]["alertname"],
        "test_notification"
    );
    assert_eq!(body["alerts"][0]["labels"]["subject"], "route/pager");
    assert_eq!(
        body["alerts"][0]["labels"]["severity"], "medium",
        "at the route's least severity, so it passes the same filters"
    );
    let resolved: Value = serde_json::from_str(test_resolve["body"].as_str().unwrap()).unwrap();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["groupKey"], body["groupKey"]);
    // Again at once: refused, so a loop cannot page people over and over.
    let again = cli(home, &["--url", &url, "routes", "test", "pager"]).await;
    assert_eq!(again.code, Some(1), "{}", again.stderr);
    assert!(again.stderr.contains("moments ago"), "{}", again.stderr);
    assert_eq!(requests(&log).len(), 5, "nothing sent");
    let active = alertmanager_alerts_until(am_port, |a| !a.is_empty()).await;
    assert_eq!(active.len(), 1, "{active:#?}");
    assert_eq!(active[0]["labels"]["alertname"], "test_notification");
    let ends = chrono::DateTime::parse_from_rfc3339(active[0]["endsAt"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert!(
        ends < chrono::Utc::now() + chrono::Duration::minutes(6),
        "a test leaves Alertmanager within minutes: {ends}"
    );
    // Nothing was stored: no anomaly, nothing queued.
    let anomalies: Value = reqwest::get(collector.api("/api/anomalies?kind=test_notification"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(anomalies, serde_json::json!([]));
    // A route that does not exist: the CLI's exit code 4, naming it.
    let missing = cli(home, &["--url", &url, "routes", "test", "nobody"]).await;
    assert_eq!(missing.code, Some(4), "{}", missing.stderr);
    assert!(missing.stderr.contains("\"nobody\""), "{}", missing.stderr);
}

crate::store::store_suite!(backend:
    webhook_and_alertmanager_outputs,
);

//! The real binaries, end to end: an agent probing loopback addresses streams to a collector;
//! the collector is killed (SIGKILL: no chance to finish anything) and stays down for 30 s while
//! the agent keeps buffering; after the restart every result the agent produced is stored
//! exactly once. Run on SQLite and on PostgreSQL.

use super::support::{binary, free_port, PgDatabase};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed when the test ends, with its stderr kept in a file for assertions.
pub(crate) struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    pub(crate) fn spawn(program: &Path, args: &[&str], log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Proc { child, log }
    }

    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `limit`.
    pub(crate) fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn log_text(&self) -> String {
        let mut text = String::new();
        let _ = std::fs::File::open(&self.log).and_then(|mut f| f.read_to_string(&mut text));
        text
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn run_ok(program: &Path, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) async fn get_json(url: &str) -> Option<Value> {
    let response = reqwest::get(url).await.ok()?;
    response.json().await.ok()
}

/// `url`'s JSON, asked with `token`.
pub(crate) async fn get_json_as(url: &str, token: &str) -> Option<Value> {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}

/// A new API token of `role` for the site's collector, made with its CLI.
pub(crate) fn create_token(site: &Site, role: &str, name: &str) -> String {
    let out = Command::new(binary("netwarden-collector"))
        .args([
            "token",
            "create",
            "--config",
            &path_arg(site, "collector.toml"),
            "--role",
            role,
            "--name",
            name,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub(crate) async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) struct Site {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) http: u16,
    /// The agent's Prometheus endpoint.
    agent_metrics: u16,
}

pub(crate) fn write_configs(database_url: &str) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let collector = binary("netwarden-collector");
    let pki = dir.path().join("pki");
    run_ok(&collector, &["pki", "init", "--dir", pki.to_str().unwrap()]);
    run_ok(
        &collector,
        &[
            "pki",
            "issue-agent",
            "--dir",
            pki.to_str().unwrap(),
            "--name",
            "e2e-agent",
        ],
    );
    let (grpc, http, agent_metrics) = (free_port(), free_port(), free_port());
    std::fs::write(
        dir.path().join("collector.toml"),
        format!(
            "[grpc]\nlisten = \"127.0.0.1:{grpc}\"\nquery_listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n\
             [tls]\nca = \"pki/ca.pem\"\ncert = \"pki/server.pem\"\nkey = \"pki/server.key\"\n\
             [database]\nurl = \"{database_url}\"\n\
             [auth]\nanonymous_role = \"viewer\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("agent.toml"),
        format!(
            "[collector]\nurl = \"https://127.0.0.1:{grpc}\"\n\
             [tls]\nca = \"pki/ca.pem\"\ncert = \"pki/agents/e2e-agent.pem\"\nkey = \"pki/agents/e2e-agent.key\"\n\
             [buffer]\npath = \"agent-buffer.db\"\n\
             [uplink]\nbatch_max_records = 4\nmax_in_flight = 4\nbackoff_initial_ms = 200\nbackoff_max_secs = 2\ndrain_timeout_secs = 20\n\
             [probe]\ntargets = [\"127.0.0.1\", \"127.0.0.2\", \"127.0.0.3\", \"::1\"]\n\
             count = 2\ninterval_secs = 1\nping_interval_ms = 50\ntimeout_ms = 500\n\
             [metrics]\nlisten = \"127.0.0.1:{agent_metrics}\"\n"
        ),
    )
    .unwrap();
    Site {
        dir,
        http,
        agent_metrics,
    }
}

/// Starts the site's collector and waits until its HTTP API answers.
pub(crate) async fn start_collector(site: &Site) -> Proc {
    let collector = Proc::spawn(
        &binary("netwarden-collector"),
        &["serve", "--config", &path_arg(site, "collector.toml")],
        site.dir.path().join("collector.log"),
    );
    let health = format!("http://127.0.0.1:{}/health", site.http);
    wait_for("the collector", Duration::from_secs(30), || async {
        get_json(&health).await.is_some()
    })
    .await;
    collector
}

pub(crate) fn path_arg(site: &Site, name: &str) -> String {
    site.dir.path().join(name).to_str().unwrap().to_string()
}

/// Reads the agent's own counters from its buffer file after it stopped.
pub(crate) fn agent_buffer_counts(site: &Site) -> (u64, u64, u64) {
    let conn = rusqlite::Connection::open(site.dir.path().join("agent-buffer.db")).unwrap();
    let meta = |key: &str| -> u64 {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap_or(0) as u64
    };
    let backlog: i64 = conn
        .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
        .unwrap();
    (
        meta("produced_total"),
        meta("dropped_total"),
        backlog as u64,
    )
}

async fn outage_loses_and_duplicates_nothing(database_url: &str) {
    let site = write_configs(database_url);
    let collector_bin = binary("netwarden-collector");
    let agent_bin = binary("netwarden-agent");
    let collector_args = ["serve", "--config", &path_arg(&site, "collector.toml")];
    let api = |path: &str| format!("http://127.0.0.1:{}{path}", site.http);

    let mut collector = Proc::spawn(
        &collector_bin,
        &collector_args,
        site.dir.path().join("collector-1.log"),
    );
    wait_for("the collector", Duration::from_secs(30), || async {
        get_json(&api("/health")).await.is_some()
    })
    .await;
    let mut agent = Proc::spawn(
        &agent_bin,
        &["run", "--config", &path_arg(&site, "agent.toml")],
        site.dir.path().join("agent.log"),
    );
    let received = || async {
        get_json(&api("/api/agents"))
            .await
            .and_then(|a| a[0]["results_received"].as_i64())
            .unwrap_or(0)
    };
    wait_for("first results", Duration::from_secs(30), || async {
        received().await >= 8
    })
    .await;

    // Down hard, for 30 s, with the agent producing all the while.
    collector.signal("-KILL");
    collector.wait(Duration::from_secs(10));
    let before_outage = received_from_buffer(&site);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let during_outage = received_from_buffer(&site);
    assert!(
        during_outage.0 > before_outage.0 + 40,
        "the agent kept probing and buffering during the outage: {before_outage:?} -> {during_outage:?}"
    );
    // The agent's own Prometheus endpoint shows the backlog the collector cannot see.
    let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", site.agent_metrics))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let backlog: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("netwarden_agent_buffer_backlog{agent=\"e2e-agent\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no backlog in the agent's metrics:\n{text}"));
    assert!(
        backlog >= 40,
        "backlog {backlog} during the outage:\n{text}"
    );

    let mut collector = Proc::spawn(
        &collector_bin,
        &collector_args,
        site.dir.path().join("collector-2.log"),
    );
    wait_for(
        "the restarted collector",
        Duration::from_secs(30),
        || async { get_json(&api("/health")).await.is_some() },
    )
    .await;
    // Let the backlog flow and a few more rounds happen, then stop the agent cleanly (it drains).
    tokio::time::sleep(Duration::from_secs(6)).await;
    agent.signal("-TERM");
    assert!(
        agent.wait(Duration::from_secs(30)).success(),
        "agent log:\n{}",
        agent.log_text()
    );

    let (produced, dropped, backlog) = agent_buffer_counts(&site);
    assert_eq!(
        (dropped, backlog),
        (0, 0),
        "agent drained everything; log:\n{}",
        agent.log_text()
    );
    let audit = get_json(&api("/api/agents/e2e-agent/audit")).await.unwrap();
    let n = |k: &str| audit[k].as_i64().unwrap() as u64;
    assert_eq!(n("probe_results"), produced, "every result stored: {audit}");
    assert_eq!(
        n("distinct_probe_record_ids"),
        produced,
        "each exactly once: {audit}"
    );
    assert_eq!(
        (n("min_record_id"), n("max_record_id")),
        (1, produced),
        "no gaps: {audit}"
    );
    assert_eq!(n("records_in_batches"), produced);
    assert_eq!(
        n("batches"),
        n("max_sequence") - n("min_sequence") + 1,
        "every sequence once: {audit}"
    );
    assert!(
        agent.log_text().contains("uplink:"),
        "the agent logged the outage"
    );
    assert!(
        agent
            .log_text()
            .contains("resending unacknowledged batches")
            || produced > 0
    );

    collector.signal("-TERM");
    assert!(
        collector.wait(Duration::from_secs(20)).success(),
        "collector log:\n{}",
        collector.log_text()
    );
}

/// (produced, backlog) as the agent's buffer file says, while the agent runs (WAL allows it).
fn received_from_buffer(site: &Site) -> (u64, u64) {
    let (produced, _, backlog) = agent_buffer_counts(site);
    (produced, backlog)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_on_sqlite() {
    outage_loses_and_duplicates_nothing("sqlite://collector.db").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_on_postgres() {
    let db = PgDatabase::create().await;
    outage_loses_and_duplicates_nothing(&db.url).await;
}

/// An expired agent certificate is refused, and both processes say so in their logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_logged_on_both_sides() {
    let site = write_configs("sqlite://collector.db");
    let pki = site.dir.path().join("pki");
    let now = time::OffsetDateTime::now_utc();
    netwarden_collector::pki::issue_agent_with_validity(
        &pki,
        "e2e-agent",
        &pki.join("agents"),
        now - time::Duration::days(10),
        now - time::Duration::days(1),
    )
    .unwrap();
    let api = |path: &str| format!("http://127.0.0.1:{}{path}", site.http);
    let collector = start_collector(&site).await;
    let mut agent = Proc::spawn(
        &binary("netwarden-agent"),
        &["run", "--config", &path_arg(&site, "agent.toml")],
        site.dir.path().join("agent.log"),
    );
    wait_for("the refusal", Duration::from_secs(20), || async {
        collector.log_text().contains("refused gRPC connection")
            && agent.log_text().contains("uplink:")
    })
    .await;
    let server_log = collector.log_text();
    assert!(
        server_log.contains("reason=\"expired\"") || server_log.contains("reason=expired"),
        "{server_log}"
    );
    assert!(
        server_log.contains("client certificate has expired"),
        "{server_log}"
    );
    let agent_log = agent.log_text();
    assert!(
        agent_log.contains("has expired"),
        "the agent warns about its own certificate: {agent_log}"
    );
    assert!(agent_log.to_lowercase().contains("expired"), "{agent_log}");
    assert!(get_json(&api("/api/agents"))
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .is_empty());
    agent.signal("-TERM");
    agent.wait(Duration::from_secs(30));
}

/// The agent's scheduled discovery and speed tests go through its buffer to the collector:
/// a sweep of loopback becomes an inventory entry, and a download and an upload against the
/// collector's own /speedtest endpoints, with the agent's token, are stored with their
/// throughput. Without a token those endpoints refuse; over its hourly bytes a token is
/// refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_speed_tests_reach_the_collector() {
    let site = write_configs("sqlite://collector.db");
    // No anonymous access here, and a budget of 20 MB an hour for each token.
    let collector_toml = site.dir.path().join("collector.toml");
    let text = std::fs::read_to_string(&collector_toml).unwrap();
    assert!(text.contains("anonymous_role = \"viewer\"\n") && text.contains("[tls]"));
    let text = text.replace("anonymous_role = \"viewer\"\n", "").replace(
        "[tls]",
        "speedtest_bytes_per_hour = 20000000\nspeedtest_concurrency = 1\n[tls]",
    );
    std::fs::write(&collector_toml, text).unwrap();
    let token = create_token(&site, "viewer", "e2e-agent-speedtest");
    std::fs::write(
        site.dir.path().join("speedtest.token"),
        format!("{token}\n"),
    )
    .unwrap();
    let config = site.dir.path().join("agent.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "[discovery]\nports = []\nreverse_dns = false\n\
         [[discovery.sites]]\nname = \"loopback\"\ncidrs = [\"127.0.0.1/32\"]\n\
         [speedtest]\nurl = \"http://127.0.0.1:{}\"\ndownload_bytes = 3000000\nupload_bytes = 2000000\n\
         token_file = \"speedtest.token\"\n",
        site.http
    ));
    std::fs::write(&config, text).unwrap();
    let api = |path: &str| format!("http://127.0.0.1:{}{path}", site.http);
    let _collector = start_collector(&site).await;
    let agent = Proc::spawn(
        &binary("netwarden-agent"),
        &["run", "--config", &path_arg(&site, "agent.toml")],
        site.dir.path().join("agent.log"),
    );
    let db = site.dir.path().join("collector.db");
    let count = |sql: &str| -> i64 {
        let conn =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        conn.query_row(sql, [], |row| row.get(0)).unwrap_or(0)
    };
    wait_for(
        "stored speed tests and a discovery",
        Duration::from_secs(60),
        || async {
            count("SELECT count(*) FROM speed_tests") >= 2
                && count("SELECT count(*) FROM discoveries") >= 1
        },
    )
    .await;
    assert_eq!(
        count(
            "SELECT count(*) FROM speed_tests WHERE error IS NULL AND mbps > 0
             AND ((direction = 'download' AND bytes = 3000000) OR (direction = 'upload' AND bytes = 2000000))"
        ),
        2,
        "agent log:\n{}",
        agent.log_text()
    );
    assert_eq!(
        count("SELECT count(*) FROM discoveries WHERE method = 'icmp'"),
        1,
        "loopback answers ICMP and has no ARP"
    );
    let devices = get_json_as(&api("/api/devices"), &token).await.unwrap();
    let device = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["address"] == "127.0.0.1")
        .expect("127.0.0.1 in the inventory");
    let id = device["id"].as_i64().unwrap();
    let changes = get_json_as(&api(&format!("/api/devices/{id}/changes")), &token)
        .await
        .unwrap();
    assert_eq!(changes, serde_json::json!([]));
    // The tests through the API: both directions, with their server and bytes.
    let tests = get_json_as(&api("/api/speedtests?limit=10"), &token)
        .await
        .unwrap();
    let mut seen: Vec<(String, i64)> = tests
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert!(
                t["url"].as_str().unwrap().starts_with("http://127.0.0.1:"),
                "{t}"
            );
            assert!(
                t["error"].is_null() && t["mbps"].as_f64().unwrap() > 0.0,
                "{t}"
            );
            (
                t["direction"].as_str().unwrap().to_string(),
                t["bytes"].as_i64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        [
            ("download".to_string(), 3_000_000),
            ("upload".to_string(), 2_000_000)
        ]
    );
    let http = reqwest::Client::new();
    let backwards = http
        .get(api(
            "/api/speedtests?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z",
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        backwards.status(),
        400,
        "a window that ends before it starts"
    );

    // Anonymous speed tests are refused, both ways.
    let anonymous_download = http
        .get(api("/speedtest/download?bytes=1000"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_download.status(), 401);
    let anonymous_upload = http
        .post(api("/speedtest/upload"))
        .body(vec![0u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_upload.status(), 401);
    // The agent's token has moved 5 MB of its 20 this hour: 10 MB more is served, 16 MB more
    // is refused with when to retry, before a byte is sent.
    let allowed = http
        .get(api("/speedtest/download?bytes=10000000"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.bytes().await.unwrap().len(), 10_000_000);
    let over = http
        .get(api("/speedtest/download?bytes=16000000"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(over.status(), 429);
    let wait: u64 = over.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&wait), "retry-after {wait}");
    let body: Value = over.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("e2e-agent-speedtest has moved 15000000 of its 20000000"),
        "{body}"
    );

    // An upload declared over 1 GiB is refused before a byte is read.
    let raw = |request: String| {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", site.http)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut head = [0u8; 64];
        let n = stream.read(&mut head).unwrap_or(0);
        (String::from_utf8_lossy(&head[..n]).into_owned(), stream)
    };
    let (answer, _) = raw(format!(
        "POST /speedtest/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 2147483648\r\n\r\n"
    ));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // A client that asks for a download and stops reading holds the one slot only until it
    // has read nothing for 10 s; meanwhile others are told to come back (503).
    let stalled_token = create_token(&site, "viewer", "e2e-stalled");
    let (answer, stalled) = raw(format!(
        "GET /speedtest/download?bytes=19000000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {stalled_token}\r\n\r\n"
    ));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let busy = http
        .get(api("/speedtest/download?bytes=1000"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(busy.status(), 503);
    assert!(busy.headers().contains_key("retry-after"));
    let freed = Instant::now();
    loop {
        let answer = http
            .get(api("/speedtest/download?bytes=1000"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        if answer.status() == 200 {
            break;
        }
        assert_eq!(answer.status(), 503);
        assert!(
            freed.elapsed() < Duration::from_secs(30),
            "the stalled download kept its slot"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        freed.elapsed() >= Duration::from_secs(5),
        "freed by the stall, not by the client: {:?}",
        freed.elapsed()
    );
    drop(stalled);
}

/// An agent coming back after hours away: its buffer holds three hours of rounds when the
/// collector first answers. The round measured now reaches the collector within a probe
/// interval of the agent connecting, the backlog drains behind it, and every record arrives
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_hours_drains_behind_live_rounds() {
    use prost::Message;
    let site = write_configs("sqlite://collector.db");
    let api = |path: &str| format!("http://127.0.0.1:{}{path}", site.http);
    // Three hours of rounds of the agent's four targets every 10 s, as its buffer keeps them
    // (the schema of agent/src/buffer), none yet in a batch.
    let hours = 3;
    let now = chrono::Utc::now();
    let backlog_records = {
        let conn = rusqlite::Connection::open(site.dir.path().join("agent-buffer.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE records (id INTEGER PRIMARY KEY AUTOINCREMENT, observed_ms INTEGER NOT NULL,
                                   body BLOB NOT NULL, seq INTEGER);
             CREATE TABLE batches (sequence INTEGER PRIMARY KEY, first_id INTEGER NOT NULL, last_id INTEGER NOT NULL);
             CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             BEGIN;",
        )
        .unwrap();
        let targets = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "::1"];
        let rounds = hours * 3600 / 10;
        for round in 0..rounds {
            for target in targets {
                let record = netwarden_shared::Record {
                    record_id: 0,
                    observed_at: now - chrono::Duration::seconds((rounds - round) * 10),
                    kind: netwarden_shared::RecordKind::Probe(netwarden_shared::ProbeRound {
                        target: target.parse().unwrap(),
                        sent: 2,
                        received: 2,
                        rtt: None,
                        rtts_ms: vec![0.05, 0.06],
                        status: netwarden_shared::DeviceStatus::Online,
                        alive_by: Some(netwarden_shared::Evidence::Icmp),
                    }),
                };
                conn.execute(
                    "INSERT INTO records (observed_ms, body) VALUES (?1, ?2)",
                    rusqlite::params![
                        record.observed_at.timestamp_millis(),
                        netwarden_proto::record_to_wire(&record).encode_to_vec()
                    ],
                )
                .unwrap();
            }
        }
        let n = rounds * targets.len() as i64;
        conn.execute_batch(&format!(
            "INSERT INTO meta VALUES ('next_sequence', {}), ('produced_total', {n}); COMMIT;",
            now.timestamp_millis()
        ))
        .unwrap();
        n as u64
    };
    let collector = start_collector(&site).await;
    let started = chrono::Utc::now();
    let mut agent = Proc::spawn(
        &binary("netwarden-agent"),
        &["run", "--config", &path_arg(&site, "agent.toml")],
        site.dir.path().join("agent.log"),
    );
    // The first round measured now (the agent probes every second).
    let live_after = std::time::Instant::now();
    wait_for("a live round", Duration::from_secs(30), || async {
        get_json(&api("/api/devices?limit=10"))
            .await
            .and_then(|d| {
                d.as_array().map(|list| {
                    list.iter().any(|dev| {
                        dev["last_probe_at"]
                            .as_str()
                            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                            .is_some_and(|t| t >= started)
                    })
                })
            })
            .unwrap_or(false)
    })
    .await;
    let live_secs = live_after.elapsed().as_secs_f64();
    let stored_when_live = get_json(&api("/api/agents/e2e-agent/audit"))
        .await
        .and_then(|a| a["probe_results"].as_u64())
        .unwrap_or(0);
    // The backlog drains behind.
    let drain_after = std::time::Instant::now();
    wait_for("the backlog", Duration::from_secs(120), || async {
        get_json(&api("/api/agents/e2e-agent/audit"))
            .await
            .and_then(|a| a["probe_results"].as_u64())
            .is_some_and(|n| n >= backlog_records)
    })
    .await;
    let drain_secs = drain_after.elapsed().as_secs_f64();
    agent.signal("-TERM");
    assert!(
        agent.wait(Duration::from_secs(30)).success(),
        "{}",
        agent.log_text()
    );
    let (produced, dropped, left) = agent_buffer_counts(&site);
    assert_eq!((dropped, left), (0, 0), "{}", agent.log_text());
    let audit = get_json(&api("/api/agents/e2e-agent/audit")).await.unwrap();
    let n = |k: &str| audit[k].as_i64().unwrap() as u64;
    assert_eq!(n("probe_results"), produced, "every result stored: {audit}");
    assert_eq!(
        n("distinct_probe_record_ids"),
        produced,
        "each exactly once: {audit}"
    );
    assert_eq!(
        (n("min_record_id"), n("max_record_id")),
        (1, produced),
        "no gaps: {audit}"
    );
    assert!(
        stored_when_live < backlog_records,
        "the live round came before the backlog had drained ({stored_when_live} of {backlog_records} stored)"
    );
    println!(
        "{hours} h backlog ({backlog_records} records): a live round stored {live_secs:.2} s after the agent started, \
         with {stored_when_live} records stored; the rest drained in {drain_secs:.2} s ({:.0} records/s); \
         {produced} produced, 0 lost, 0 duplicated",
        (backlog_records - stored_when_live.min(backlog_records)) as f64 / drain_secs.max(0.001)
    );
    drop(collector);
}

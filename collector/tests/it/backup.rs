//! scripts/backup.sh and scripts/restore.sh on a populated collector: the collector binary
//! serves a database with agents, devices, probe history and anomalies; it is backed up while
//! it runs, restored into a fresh database (which verifies every table's row count), and a
//! collector on the restored database gives the same API answers. SQLite and PostgreSQL.

use super::support::{batch, binary, free_port, probe_record, PgDatabase, Pki};
use netwarden_collector::domain::alerting::AnomalyKind;
use netwarden_collector::storage::alerting::{AlertEvent, NewAnomaly, PlannedAlert, Severity};
use netwarden_collector::storage::{PostgresStore, SqliteStore, SqliteSync, Store};
use netwarden_shared::AgentId;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ENDPOINTS: &[&str] = &[
    "/api/agents",
    "/api/devices",
    "/api/devices/1/history",
    "/api/anomalies?limit=100",
    "/api/alerts?limit=100",
];

async fn populate(store: &dyn Store) {
    store.migrate().await.unwrap();
    let now = chrono::Utc::now() - chrono::Duration::minutes(10);
    for (i, agent) in ["branch-7", "pop-2"].iter().enumerate() {
        let agent = AgentId::new(*agent).unwrap();
        for round in 0..20u64 {
            let at = now + chrono::Duration::seconds(round as i64 * 10);
            let records = (0..3)
                .map(|h| {
                    let target = format!("10.{i}.0.{h}");
                    probe_record(
                        round * 10 + h + 1,
                        at.timestamp_millis(),
                        &target,
                        4 - (h as u32 % 2),
                    )
                })
                .collect();
            store
                .ingest(&agent, batch(round + 1, records), at)
                .await
                .unwrap();
        }
    }
    let anomaly = NewAnomaly {
        kind: AnomalyKind::PacketLoss,
        subject: "branch-7/10.0.0.1".into(),
        group_key: Some("branch-7".into()),
        severity: Severity::Medium,
        summary: "10.0.0.1 is losing 25% of packets".into(),
        details: serde_json::json!({"loss_pct": 25.0}),
    };
    let plan = [PlannedAlert {
        channel: "email".into(),
        recipient: "noc@example.test".into(),
        event: AlertEvent::Open,
        step: 0,
        severity: Severity::Medium,
        delay: Duration::from_secs(3600),
        repeat: Duration::ZERO,
    }];
    store
        .open_anomaly(&anomaly, None, &plan, now)
        .await
        .unwrap();
}

fn write_config(dir: &Path, name: &str, pki: &Pki, url: &str) -> (PathBuf, u16) {
    let http = free_port();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[grpc]\nlisten = \"127.0.0.1:{}\"\nquery_listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n\
             [tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n\
             [database]\nurl = \"{url}\"\n[alerting]\nagent_silent_secs = 0\n\
             [auth]\nanonymous_role = \"viewer\"\n",
            free_port(),
            pki.ca().display(),
            pki.path().join("server.pem").display(),
            pki.path().join("server.key").display(),
        ),
    )
    .unwrap();
    (path, http)
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(config: &Path, log: &Path) -> Running {
    Running(
        Command::new(binary("netwarden-collector"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// Every endpoint's answer from a collector on `config`.
async fn answers(config: &Path, http: u16, log: &Path) -> Vec<Value> {
    let _collector = serve(config, log);
    let base = format!("http://127.0.0.1:{http}");
    let start = Instant::now();
    while reqwest::get(format!("{base}/health")).await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the collector did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut out = Vec::new();
    for endpoint in ENDPOINTS {
        let response = reqwest::get(format!("{base}{endpoint}")).await.unwrap();
        assert!(
            response.status().is_success(),
            "{endpoint}: {}",
            response.status()
        );
        out.push(response.json::<Value>().await.unwrap());
    }
    out
}

fn script(name: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../scripts/{name}"));
    let out = Command::new(&path).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{name} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn backup_then_restore(source_url: &str, target_url: &str, dir: &Path) {
    let pki = Pki::new();
    let (config, http) = write_config(dir, "collector", &pki, source_url);
    let before = answers(&config, http, &dir.join("before.log")).await;
    let devices = before[1].as_array().map_or(0, Vec::len);
    assert_eq!(devices, 6, "populated: {:#}", before[1]);

    // Online: the collector runs during the backup.
    let backups = dir.join("backups");
    let backups_arg = backups.to_str().unwrap();
    let backup_args = [
        "--config",
        config.to_str().unwrap(),
        "--dest",
        backups_arg,
        "--keep",
        "2",
    ];
    let running = serve(&config, &dir.join("during.log"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let made = script("backup.sh", &backup_args);
    drop(running);
    // Two more: retention keeps the newest two.
    for _ in 0..2 {
        script("backup.sh", &backup_args);
    }
    let mut kept: Vec<PathBuf> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    kept.sort();
    assert_eq!(kept.len(), 2, "retention keeps the newest 2: {made}");

    let archive = kept.last().unwrap().to_str().unwrap().to_string();
    let restored = script(
        "restore.sh",
        &[
            &archive,
            "--config",
            config.to_str().unwrap(),
            "--database-url",
            target_url,
        ],
    );
    assert!(restored.contains("every count verified"), "{restored}");

    let (restored_config, restored_http) = write_config(dir, "restored", &pki, target_url);
    let after = answers(&restored_config, restored_http, &dir.join("after.log")).await;
    for ((endpoint, a), b) in ENDPOINTS.iter().zip(&before).zip(&after) {
        assert_eq!(a, b, "{endpoint} differs after the restore");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("collector.db");
    populate(&SqliteStore::open(&db, 2, SqliteSync::Full).await.unwrap()).await;
    let source = format!("sqlite://{}", db.display());
    let target = format!("sqlite://{}", dir.path().join("restored.db").display());
    backup_then_restore(&source, &target, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let (source, target) = (PgDatabase::create().await, PgDatabase::create().await);
    populate(&PostgresStore::connect(&source.url, 2).await.unwrap()).await;
    backup_then_restore(&source.url, &target.url, dir.path()).await;
}

/// Samples still in the SQLite telemetry intake (a file of its own) are in the backup, each
/// once; the restore leaves no intake file of the replaced database behind, and a store on
/// the restored file reads them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backup_holds_the_unfolded_intake() {
    use netwarden_collector::storage::{sqlite_intake_path, TelemetryStore};
    use netwarden_collector::telemetry::TelemetrySample;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("collector.db");
    let now = chrono::Utc::now();
    let sample = |minutes_ago: i64| TelemetrySample {
        circuit_id: "B-1".into(),
        utilization_mbps: minutes_ago as f64,
        at: now - chrono::Duration::minutes(minutes_ago),
    };
    {
        let store = SqliteStore::open(&db, 2, SqliteSync::Full).await.unwrap();
        store.migrate().await.unwrap();
        store
            .save_telemetry(&[sample(1), sample(2), sample(3)], now)
            .await
            .unwrap();
        assert_eq!(store.fold_telemetry_intake().await.unwrap(), 3);
        store
            .save_telemetry(&[sample(4), sample(5)], now)
            .await
            .unwrap();
    }
    // (No store is open now, so no fold moves the last two.)
    let pki = Pki::new();
    let (config, _) = write_config(
        dir.path(),
        "collector",
        &pki,
        &format!("sqlite://{}", db.display()),
    );
    let backups = dir.path().join("backups");
    script(
        "backup.sh",
        &[
            "--config",
            config.to_str().unwrap(),
            "--dest",
            backups.to_str().unwrap(),
        ],
    );
    let archive = std::fs::read_dir(&backups)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();

    // The target's old intake file, with a row of its own, must not survive the restore.
    let target = dir.path().join("restored.db");
    std::fs::copy(sqlite_intake_path(&db), sqlite_intake_path(&target)).unwrap();
    let url = format!("sqlite://{}", target.display());
    let refused = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/restore.sh"))
        .args([
            archive.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--database-url",
            &url,
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("restored.intake.db exists"));
    let restored = script(
        "restore.sh",
        &[
            archive.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--database-url",
            &url,
            "--force",
        ],
    );
    assert!(restored.contains("every count verified"), "{restored}");
    assert!(!sqlite_intake_path(&target).exists());

    let store = SqliteStore::open(&target, 2, SqliteSync::Full)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let points = store
        .telemetry("B-1", now - chrono::Duration::hours(1), now, 100)
        .await
        .unwrap();
    let values: Vec<f64> = points.iter().map(|p| p.utilization_mbps).collect();
    assert_eq!(values, vec![5.0, 4.0, 3.0, 2.0, 1.0]);
}

//! Exactly once across a crash: 200 queued notifications, the collector binary killed with
//! SIGKILL in the middle of sending them to a Telegram Bot API fake process, started again.
//! Every notification arrives; the only possible repeat is a send that was in flight at the
//! kill, and the outbox marks exactly those (`recovered`).
//!
//! And across replicas: two collector binaries on one PostgreSQL share a storm of 200; each
//! notification arrives exactly once, and both collectors send.

use super::support::{binary, free_port, Peer, PgDatabase, Pki, BOT_TOKEN};
use netwarden_collector::domain::alerting::AnomalyKind;
use netwarden_collector::storage::alerting::{
    AlertEvent, AlertQuery, NewAnomaly, PlannedAlert, Severity,
};
use netwarden_collector::storage::{AlertStore, PostgresStore, SqliteStore, SqliteSync, Store};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const NOTIFICATIONS: usize = 200;
const CHATS: usize = 20;

async fn queue(store: &dyn Store) {
    store.migrate().await.unwrap();
    let now = chrono::Utc::now();
    for i in 0..NOTIFICATIONS {
        let anomaly = NewAnomaly {
            kind: AnomalyKind::DeviceOffline,
            subject: format!("storm/10.1.{}.{}", i / 200, i % 200),
            group_key: Some("storm".into()),
            severity: Severity::Critical,
            summary: format!("device {i} is offline"),
            details: serde_json::json!({}),
        };
        let plan = [PlannedAlert {
            channel: "telegram".into(),
            recipient: (1000 + i % CHATS).to_string(),
            event: AlertEvent::Open,
            step: 0,
            severity: Severity::Critical,
            delay: Duration::ZERO,
            repeat: Duration::ZERO,
        }];
        store
            .open_anomaly(&anomaly, None, &plan, now)
            .await
            .unwrap();
    }
}

async fn messages(peer: &Peer) -> Vec<Value> {
    reqwest::get(format!("{}/__messages", peer.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Deliveries per anomaly id, read from the "anomaly N" line of each message.
fn per_anomaly(list: &[Value]) -> BTreeMap<i64, usize> {
    let mut counts = BTreeMap::new();
    for m in list {
        let text = m["text"].as_str().unwrap_or_default();
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("anomaly "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no anomaly id in {text:?}"));
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

fn spawn(config: &Path, log: &Path) -> tokio::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    tokio::process::Command::new(binary("netwarden-collector"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_killed_mid_storm_delivers_every_notification_once() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let telegram = Peer::start("telegram-fake", &[]);
    let db = dir.path().join("collector.db");
    queue(&SqliteStore::open(&db, 2, SqliteSync::Full).await.unwrap()).await;
    std::fs::write(dir.path().join("bot.token"), BOT_TOKEN).unwrap();
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[grpc]\nlisten = \"127.0.0.1:{}\"\nquery_listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:{}\"\n\
             [tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n\
             [database]\nurl = \"sqlite://{}\"\n\
             [alerting]\nclaim_lease_secs = 3\nagent_silent_secs = 0\n\
             [alerting.telegram]\napi_url = \"{}\"\nbot_token_file = \"bot.token\"\n",
            free_port(),
            free_port(),
            pki.ca().display(),
            pki.path().join("server.pem").display(),
            pki.path().join("server.key").display(),
            db.display(),
            telegram.url,
        ),
    )
    .unwrap();
    let log = dir.path().join("collector.log");

    let mut first = spawn(&config, &log);
    let start = Instant::now();
    loop {
        let delivered = messages(&telegram).await.len();
        if delivered >= 40 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "only {delivered} delivered: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.start_kill().unwrap(); // SIGKILL: no drain, no goodbye
    first.wait().await.unwrap();
    let at_kill = messages(&telegram).await.len();
    assert!(
        at_kill < NOTIFICATIONS,
        "the kill came mid-storm ({at_kill})"
    );

    let mut second = spawn(&config, &log);
    let start = Instant::now();
    let delivered = loop {
        let list = messages(&telegram).await;
        if per_anomaly(&list).len() == NOTIFICATIONS {
            break list;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{} of {NOTIFICATIONS} delivered: {}",
            per_anomaly(&list).len(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Anything still to come would be a duplicate: wait past a lease.
    tokio::time::sleep(Duration::from_secs(4)).await;
    second.start_kill().unwrap();
    second.wait().await.unwrap();
    let delivered_after = messages(&telegram).await;
    assert_eq!(
        delivered_after.len(),
        delivered.len(),
        "nothing after the last one"
    );

    let store = SqliteStore::open(&db, 2, SqliteSync::Full).await.unwrap();
    let alerts = store
        .alerts(&AlertQuery {
            limit: 1000,
            ..AlertQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(alerts.len(), NOTIFICATIONS);
    assert!(
        alerts.iter().all(|a| a.state == "sent"),
        "every one recorded as sent"
    );
    let recovered: Vec<i64> = alerts
        .iter()
        .filter(|a| a.recovered)
        .filter_map(|a| a.anomaly_id)
        .collect();
    let counts = per_anomaly(&delivered_after);
    let repeated: Vec<i64> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    println!(
        "killed after {at_kill} of {NOTIFICATIONS}; {} claims recovered after the kill, {} delivered twice",
        recovered.len(),
        repeated.len()
    );
    assert!(counts.values().all(|n| *n <= 2));
    assert!(
        repeated.iter().all(|id| recovered.contains(id)),
        "only a send in flight at the kill may repeat: repeated {repeated:?}, recovered {recovered:?}"
    );
    // One send at a time per channel: at most one was in flight.
    assert!(repeated.len() <= 1, "{repeated:?}");
}

fn collector_config(
    dir: &Path,
    name: &str,
    pki: &Pki,
    database_url: &str,
    api_url: &str,
) -> std::path::PathBuf {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "[grpc]\nlisten = \"127.0.0.1:{}\"\nquery_listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:{}\"\n\
             [tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n\
             [database]\nurl = \"{database_url}\"\n\
             [alerting]\ninstance = \"{name}\"\nagent_silent_secs = 0\n\
             [alerting.telegram]\napi_url = \"{api_url}\"\nbot_token_file = \"bot.token\"\n",
            free_port(),
            free_port(),
            pki.ca().display(),
            pki.path().join("server.pem").display(),
            pki.path().join("server.key").display(),
        ),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_on_one_postgres_send_each_notification_once() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let telegram = Peer::start("telegram-fake", &[]);
    let db = PgDatabase::create().await;
    queue(&PostgresStore::connect(&db.url, 2).await.unwrap()).await;
    std::fs::write(dir.path().join("bot.token"), BOT_TOKEN).unwrap();
    let mut collectors = Vec::new();
    for name in ["replica-a", "replica-b"] {
        let config = collector_config(dir.path(), name, &pki, &db.url, &telegram.url);
        collectors.push(spawn(&config, &dir.path().join(format!("{name}.log"))));
    }
    let start = Instant::now();
    loop {
        let delivered = per_anomaly(&messages(&telegram).await).len();
        if delivered == NOTIFICATIONS {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{delivered} of {NOTIFICATIONS} delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A duplicate would come from the other replica's claim: give it time to show.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for mut c in collectors {
        c.start_kill().unwrap();
        c.wait().await.unwrap();
    }
    let delivered = messages(&telegram).await;
    let counts = per_anomaly(&delivered);
    assert_eq!(counts.len(), NOTIFICATIONS);
    assert!(
        counts.values().all(|n| *n == 1),
        "duplicates: {:?}",
        counts.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    assert_eq!(delivered.len(), NOTIFICATIONS);
    let sent_by = |name: &str| {
        std::fs::read_to_string(dir.path().join(format!("{name}.log")))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("notification sent"))
            .count()
    };
    let (a, b) = (sent_by("replica-a"), sent_by("replica-b"));
    println!("replica-a sent {a}, replica-b sent {b}");
    assert_eq!(a + b, NOTIFICATIONS);
    assert!(a > 0 && b > 0, "both replicas took part: {a} and {b}");
}

//! Alerting end to end: probe rounds arrive over the real mTLS ingest stream, the detectors
//! open an anomaly, and a real SMTP server process (smtp-sink) and a Telegram Bot API fake
//! process (telegram-fake, answering the first request 429 with `retry_after`) each receive
//! exactly one notification, then exactly one resolve notice when the host comes back. A
//! silenced device notifies nobody. Also: the time from detection to delivery.

use super::support::{exchange, probe_record, wire_batch, Backend, Peer, TestCollector, BOT_TOKEN};
use netwarden_collector::alert::email::{EmailConfig, TlsMode};
use netwarden_collector::alert::routing::{AlertingConfig, RouteConfig};
use netwarden_collector::alert::telegram::TelegramConfig;
use netwarden_collector::storage::alerting::Severity;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

struct Setup {
    collector: TestCollector,
    telegram: Peer,
    _smtp: Peer,
    maildir: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn setup(backend: Backend) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail");
    let smtp = Peer::start("smtp-sink", &["--maildir", maildir.to_str().unwrap()]);
    let telegram = Peer::start("telegram-fake", &["--fault", "429=1"]);
    let token = dir.path().join("bot.token");
    std::fs::write(&token, format!("{BOT_TOKEN}\n")).unwrap();
    let (smtp_port, api_url) = (smtp.port(), telegram.url.clone());
    let collector = TestCollector::start_with(backend, move |raw| {
        raw.email = EmailConfig {
            smtp_host: Some("127.0.0.1".into()),
            smtp_port,
            tls: TlsMode::None,
            from: "Netwarden <noc@netwarden.test>".into(),
            ..EmailConfig::default()
        };
        raw.alerting = AlertingConfig {
            routes: vec![RouteConfig {
                name: "noc".into(),
                kinds: vec![],
                min_severity: Severity::Medium,
                email: vec!["noc@example.test".into()],
                telegram: vec!["4242".into()],
                webhook: vec![],
                alertmanager: vec![],
                escalation: vec![],
            }],
            telegram: Some(TelegramConfig {
                api_url,
                bot_token_file: Some(token),
                ..TelegramConfig::default()
            }),
            ..AlertingConfig::default()
        };
    })
    .await;
    Setup {
        collector,
        telegram,
        _smtp: smtp,
        maildir,
        _dir: dir,
    }
}

fn index(maildir: &Path) -> Vec<Value> {
    super::support::json_lines(&maildir.join("index.jsonl"))
}

async fn telegram_messages(peer: &Peer, count: usize, wait: u64) -> Vec<Value> {
    reqwest::get(format!("{}/__messages?wait={wait}&count={count}", peer.url))
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap()
}

async fn wait_for_mail(maildir: &Path, count: usize, limit: Duration) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let list = index(maildir);
        if list.len() >= count || start.elapsed() > limit {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Rounds for `target` (4 sent, `received` back) on one stream, from `sequence` on.
async fn rounds(s: &Setup, sequence: &mut u64, target: &str, received: &[u32]) {
    send_rounds(&s.collector, sequence, target, received).await;
}

/// Rounds from agent `branch-7` for `target` (4 sent, `received` back), over the real mTLS
/// ingest stream, from `sequence` on.
pub(crate) async fn send_rounds(
    collector: &TestCollector,
    sequence: &mut u64,
    target: &str,
    received: &[u32],
) {
    let files = collector.pki.agent("branch-7");
    let mut client = collector.client(&files).await.unwrap();
    let mut batches = Vec::new();
    for r in received {
        *sequence += 1;
        let now = chrono::Utc::now().timestamp_millis();
        batches.push(wire_batch(
            *sequence,
            vec![probe_record(*sequence, now, target, *r)],
        ));
    }
    let (acks, error) = exchange(&mut client, batches).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(acks.len(), received.len());
}

async fn get(s: &Setup, path: &str) -> Value {
    reqwest::get(s.collector.api(path))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn alerting_end_to_end(backend: Backend) {
    let s = setup(backend).await;
    let mut seq = 0;
    rounds(&s, &mut seq, "10.9.0.1", &[4, 4, 4]).await;
    // One bad round is not an alert.
    rounds(&s, &mut seq, "10.9.0.1", &[0, 4]).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(index(&s.maildir).is_empty());
    assert!(telegram_messages(&s.telegram, 0, 0).await.is_empty());

    // Down for good: two rounds.
    rounds(&s, &mut seq, "10.9.0.1", &[0]).await;
    let unix_now = || chrono::Utc::now().timestamp_micros() as f64 / 1e6;
    let detected = unix_now();
    rounds(&s, &mut seq, "10.9.0.1", &[0]).await;
    let telegram = telegram_messages(&s.telegram, 1, 15).await;
    let mail = wait_for_mail(&s.maildir, 1, Duration::from_secs(15)).await;
    // Figures for docs/benchmarks.md (printed, never asserted: wall time is noisy here).
    println!(
        "detection to delivery (group_wait 2 s): Telegram {:.2} s (after one 429 with retry_after 1 s), email {:.2} s",
        telegram[0]["received_at"].as_f64().unwrap_or(0.0) - detected,
        mail.first().and_then(|m| m["received_at"].as_f64()).unwrap_or(0.0) - detected,
    );
    assert_eq!(telegram.len(), 1, "{telegram:?}");
    let text = telegram[0]["text"].as_str().unwrap();
    assert!(text.contains("[CRITICAL] OPEN"), "{text}");
    assert!(text.contains("branch-7/10.9.0.1"), "{text}");
    assert_eq!(telegram[0]["chat_id"], 4242);
    assert_eq!(telegram[0]["parse_mode"], "HTML");
    let requests: Vec<Value> = reqwest::get(format!("{}/__requests", s.telegram.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        requests[0]["status"], 429,
        "the fake refused the first send"
    );
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0]["rcpt_tos"], json!(["noc@example.test"]));
    let subject = mail[0]["subject"].as_str().unwrap();
    assert!(
        subject.starts_with("[CRITICAL] OPEN: 10.9.0.1 is offline"),
        "{subject}"
    );
    let eml = std::fs::read_to_string(s.maildir.join(mail[0]["file"].as_str().unwrap())).unwrap();
    assert!(eml.contains("text/plain") && eml.contains("text/html"));
    assert!(eml.contains("branch-7/10.9.0.1"));

    let open = get(&s, "/api/anomalies?state=open&kind=device_offline").await;
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
    let anomaly_id = open[0]["id"].as_i64().unwrap();
    assert_eq!(open[0]["severity"], "critical");
    // A peer holds the message a moment before the collector records the send: poll.
    let sent_path = format!("/api/alerts?anomaly={anomaly_id}&state=sent");
    let mut sent = get(&s, &sent_path).await;
    for _ in 0..100 {
        if sent.as_array().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        sent = get(&s, &sent_path).await;
    }
    assert_eq!(sent.as_array().unwrap().len(), 2, "{sent}");

    // Still down: no more messages (the repeat is hours away).
    rounds(&s, &mut seq, "10.9.0.1", &[0, 0, 0]).await;

    // Back: two good rounds resolve it, and each channel hears so once.
    rounds(&s, &mut seq, "10.9.0.1", &[4, 4]).await;
    let telegram = telegram_messages(&s.telegram, 2, 15).await;
    let mail = wait_for_mail(&s.maildir, 2, Duration::from_secs(15)).await;
    assert_eq!(telegram.len(), 2);
    assert!(telegram[1]["text"].as_str().unwrap().contains("RESOLVED"));
    assert_eq!(mail.len(), 2);
    assert!(mail[1]["subject"].as_str().unwrap().contains("RESOLVED"));
    let resolved = get(&s, &format!("/api/anomalies/{anomaly_id}")).await;
    assert_eq!(resolved["state"], "resolved");
    assert_eq!(resolved["resolved_by"], "netwarden");

    // A silenced device opens an anomaly that notifies nobody.
    let response = reqwest::Client::new()
        .post(s.collector.api("/api/silences"))
        .json(&json!({
            "subject": "branch-7/10.9.0.2",
            "ends_at": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
            "created_by": "alice",
            "comment": "planned maintenance",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    rounds(&s, &mut seq, "10.9.0.2", &[4, 0, 0, 0]).await;
    // Detection runs just after the acknowledgement: give it a moment.
    let mut silenced = Value::Null;
    for _ in 0..100 {
        silenced = get(&s, "/api/anomalies?subject=branch-7/10.9.0.2").await;
        if !silenced.as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(silenced.as_array().unwrap().len(), 1, "{silenced}");
    assert!(silenced[0]["suppressed"]
        .as_str()
        .unwrap()
        .contains("planned maintenance"));

    // Nothing else arrives.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let all = telegram_messages(&s.telegram, 0, 0).await;
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(index(&s.maildir).len(), 2);

    // The API's errors: unknown ids are 404, bad filters name the field.
    let missing = reqwest::Client::new()
        .post(s.collector.api("/api/anomalies/999999/acknowledge"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let bad = reqwest::get(s.collector.api("/api/anomalies?severity=urgent"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("severity:"));
}

crate::store::store_suite!(backend:
    alerting_end_to_end,
);

//! Customer maxout email end to end: telemetry drives a real collector, a real SMTP server
//! process (../shared/tools/smtp-sink: STARTTLS required, AUTH, the first message refused with
//! 451) receives the message; the test reads it back: envelope, To, Cc, Subject, both parts,
//! the figures. A spike under the debounce sends nothing, a second maxout within the cooldown
//! sends nothing, and an account without a contact is recorded as such.

use super::support::{Backend, Peer, Pki, TestCollector};
use netwarden_collector::alert::email::{EmailConfig, TlsMode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn start_sink(maildir: &Path, pki: &Pki) -> Peer {
    let cert = pki.path().join("server.pem");
    let key = pki.path().join("server.key");
    Peer::start(
        "smtp-sink",
        &[
            "--maildir",
            maildir.to_str().unwrap(),
            "--starttls",
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            "--require-starttls",
            "--auth",
            "noc:s3cret",
            "--fail-next",
            "1",
            "451",
        ],
    )
}

/// A collector whose `[email]` points at an smtp-sink (STARTTLS, AUTH) with its maildir.
struct Mail {
    sink: Peer,
    maildir: PathBuf,
    collector: TestCollector,
    _pki: Pki,
    _dir: tempfile::TempDir,
}

impl Mail {
    async fn start() -> Mail {
        let pki = Pki::new();
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("mail");
        let sink = start_sink(&maildir, &pki);
        std::fs::write(dir.path().join("smtp.pw"), "s3cret\n").unwrap();
        let email = EmailConfig {
            smtp_host: Some("localhost".into()),
            smtp_port: sink.port(),
            tls: TlsMode::Starttls,
            username: Some("noc".into()),
            password_file: Some(dir.path().join("smtp.pw")),
            ca_file: Some(pki.ca()),
            from: "Netwarden NOC <noc@netwarden.test>".into(),
            retries: 2,
            backoff_ms: 50,
            ..EmailConfig::default()
        };
        let collector =
            TestCollector::start_with(Backend::Sqlite, move |raw| raw.email = email).await;
        Mail {
            sink,
            maildir,
            collector,
            _pki: pki,
            _dir: dir,
        }
    }
}

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

fn index(maildir: &Path) -> Vec<Value> {
    super::support::json_lines(&maildir.join("index.jsonl"))
}

#[tokio::test]
async fn a_sustained_maxout_emails_the_customer_once_with_cx_and_am_copied() {
    // Every field bound (a `..` would drop the maildir's directory here).
    let Mail {
        sink,
        maildir,
        collector: c,
        _pki,
        _dir,
    } = Mail::start().await;
    let put = |path: &str, body: Value| call(reqwest::Method::PUT, c.api(path), body);
    assert_eq!(
        put(
            "/api/employees/am1",
            json!({"name": "Alice Account", "email": "alice@isp.test"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        put(
            "/api/employees/cx1",
            json!({"name": "Carl Care", "email": "carl@isp.test"})
        )
        .await
        .0,
        200
    );
    let (status, body) = put(
        "/api/accounts/ACME",
        json!({"name": "Acme Pty Ltd", "contact_name": "Dana Ops", "contact_email": "dana@acme.test",
               "account_manager": "am1", "cx_manager": "cx1"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = put(
        "/api/accounts/LOST",
        json!({"name": "No Contact Co", "account_manager": "nobody"}),
    )
    .await;
    assert_eq!(status, 400, "an unknown manager is refused: {body}");
    assert_eq!(
        put("/api/accounts/LOST", json!({"name": "No Contact Co"}))
            .await
            .0,
        200
    );
    assert_eq!(
        put(
            "/api/accounts/BAD",
            json!({"name": "x", "contact_email": "not an address"})
        )
        .await
        .0,
        400
    );
    for (circuit, account) in [("CIR-9", "ACME"), ("CIR-8", "LOST")] {
        let (status, _) = put(
            &format!("/api/circuits/{circuit}"),
            json!({"account": account, "provisioned_mbps": 1000, "burst_mbps": 1200}),
        )
        .await;
        assert_eq!(status, 200);
    }

    let base = chrono::Utc::now().timestamp() - 120;
    let samples = |circuit: &str, start: i64, values: &[f64]| -> Value {
        Value::Array(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| json!({"circuit_id": circuit, "utilization_mbps": v, "timestamp": start + i as i64}))
                .collect(),
        )
    };
    let post = |body: Value| {
        call(
            reqwest::Method::POST,
            c.api("/api/v1/telemetry/batch"),
            body,
        )
    };
    // A spike under the debounce: nothing.
    assert_eq!(post(samples("CIR-9", base, &[1300.0, 500.0])).await.0, 201);
    // A sustained maxout: one email. Then it clears, and maxes out again within the cooldown:
    // no second email. CIR-8's account has no contact.
    assert_eq!(
        post(samples(
            "CIR-9",
            base + 10,
            &[1300.0, 1310.0, 1290.0, 1300.0]
        ))
        .await
        .0,
        201
    );
    assert_eq!(
        post(samples(
            "CIR-9",
            base + 20,
            &[400.0, 1300.0, 1300.0, 1300.0]
        ))
        .await
        .0,
        201
    );
    assert_eq!(
        post(samples("CIR-8", base, &[1500.0, 1500.0, 1500.0]))
            .await
            .0,
        201
    );

    let mut notes = Vec::new();
    for _ in 0..200 {
        let (_, found) = call(
            reqwest::Method::GET,
            c.api("/api/notifications"),
            Value::Null,
        )
        .await;
        notes = found.as_array().cloned().unwrap_or_default();
        if notes.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut statuses: Vec<&str> = notes
        .iter()
        .map(|n| n["status"].as_str().unwrap())
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        vec!["no_contact", "sent", "suppressed"],
        "{notes:?}"
    );
    let sent = notes.iter().find(|n| n["status"] == "sent").unwrap();
    assert_eq!(sent["attempts"], 2, "the 451 was retried: {sent}");

    let messages = index(&maildir);
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    assert_eq!(m["starttls"], true);
    assert_eq!(m["auth_user"], "noc");
    assert_eq!(m["mail_from"], "noc@netwarden.test");
    let mut rcpt: Vec<&str> = m["rcpt_tos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    rcpt.sort();
    assert_eq!(
        rcpt,
        vec!["alice@isp.test", "carl@isp.test", "dana@acme.test"]
    );
    assert!(m["to"].as_str().unwrap().contains("dana@acme.test"), "{m}");
    let cc = m["cc"].as_str().unwrap();
    assert!(
        cc.contains("alice@isp.test") && cc.contains("carl@isp.test"),
        "{cc}"
    );
    assert_eq!(m["subject"], "Circuit CIR-9 reached 131% of its 1000 Mbps");

    let eml = std::fs::read_to_string(maildir.join(m["file"].as_str().unwrap())).unwrap();
    let unfolded = eml.replace("=\r\n", "").replace("=3D", "=");
    assert!(unfolded.contains("Content-Type: text/plain"), "{eml}");
    assert!(unfolded.contains("Content-Type: text/html"), "{eml}");
    for figure in [
        "1310.0 Mbps",
        "131% of provisioned",
        "1000 Mbps",
        "1200 Mbps",
        "Alice Account",
        "carl@isp.test",
        "Dana Ops",
    ] {
        assert!(
            unfolded.contains(figure),
            "{figure} missing from:\n{unfolded}"
        );
    }
    assert!(unfolded.contains("<table"), "the HTML part");
    drop(sink);
}

fn simulate(url: &str, args: &[&str]) -> String {
    let out = Command::new(super::support::binary("netwarden-collector"))
        .args([
            "simulate",
            "telemetry",
            "--url",
            url,
            "--register",
            "--seed",
            "7",
        ])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The simulator drives a running collector: spikes alone raise nothing; sustained maxouts
/// raise events, and each circuit's customer gets exactly one email per cooldown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_drives_detection_and_email() {
    // Every field bound (a `..` would drop the maildir's directory here).
    let Mail {
        sink,
        maildir,
        collector: c,
        _pki,
        _dir,
    } = Mail::start().await;
    let (status, _) = call(
        reqwest::Method::PUT,
        c.api("/api/accounts/SIMCO"),
        json!({"name": "Sim Co", "contact_email": "ops@sim.test"}),
    )
    .await;
    assert_eq!(status, 200);
    let url = format!("http://{}", c.http);

    let out = simulate(
        &url,
        &[
            "--prefix",
            "SPK-",
            "--circuits",
            "3",
            "--rate",
            "120",
            "--samples",
            "60",
            "--spike-every",
            "4",
            "--account",
            "SIMCO",
        ],
    );
    assert!(out.starts_with("posted 60 samples"), "{out}");
    let out = simulate(
        &url,
        &[
            "--prefix",
            "MAX-",
            "--circuits",
            "3",
            "--rate",
            "120",
            "--samples",
            "90",
            "--maxout-every",
            "10",
            "--maxout-samples",
            "5",
            "--account",
            "SIMCO",
        ],
    );
    assert!(out.starts_with("posted 90 samples"), "{out}");

    let mut notes = Vec::new();
    for _ in 0..200 {
        let (_, found) = call(
            reqwest::Method::GET,
            c.api("/api/notifications"),
            Value::Null,
        )
        .await;
        notes = found.as_array().cloned().unwrap_or_default();
        if notes.len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let count = |status: &str| notes.iter().filter(|n| n["status"] == status).count();
    assert_eq!((count("sent"), count("suppressed")), (3, 3), "{notes:?}");
    let (_, events) = call(
        reqwest::Method::GET,
        c.api("/api/maxouts?kind=circuit&limit=100"),
        Value::Null,
    )
    .await;
    let events = events.as_array().unwrap();
    assert_eq!(
        events.len(),
        6,
        "two sustained maxouts per circuit: {events:?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e["circuit_id"].as_str().unwrap().starts_with("MAX-")),
        "spikes raised nothing"
    );
    let mut subjects: Vec<String> = index(&maildir)
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_string())
        .collect();
    subjects.sort();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    for (i, subject) in subjects.iter().enumerate() {
        assert!(
            subject.starts_with(&format!("Circuit MAX-{i} reached")),
            "{subject}"
        );
    }
    drop(sink);
}

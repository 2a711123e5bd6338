//! Customer maxout email end to end: telemetry (posted directly, or by the simulator) drives a
//! real collector, and a real SMTP server process (../shared/tools/smtp-sink: STARTTLS or
//! implicit TLS required, AUTH, the first message refused with a 451 or a 550) receives the
//! messages; the tests read them back: envelope, To, Cc, Subject, both parts, the figures. A
//! spike under the debounce sends nothing, a maxout within the cooldown sends nothing and one
//! after it sends again, and a customer who cannot be told is recorded and raised to the NOC.

use super::support::{Backend, Peer, PgDatabase, Pki, TestCollector};
use netwarden_collector::alert::email::{EmailConfig, TlsMode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// An smtp-sink requiring TLS (STARTTLS, or implicit with `TlsMode::Tls`) and AUTH, refusing
/// the first `refuse.0` messages with reply `refuse.1`.
fn start_sink(maildir: &Path, pki: &Pki, tls: TlsMode, refuse: (u32, u16)) -> Peer {
    let cert = pki.path().join("server.pem");
    let key = pki.path().join("server.key");
    let (count, code) = (refuse.0.to_string(), refuse.1.to_string());
    let tls_args: &[&str] = match tls {
        TlsMode::Tls => &["--tls"],
        _ => &["--require-starttls", "--starttls"],
    };
    let args = [
        &["--maildir", maildir.to_str().unwrap()][..],
        tls_args,
        &[
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            "--auth",
            "noc:s3cret",
            "--fail-next",
            &count,
            &code,
        ],
    ]
    .concat();
    Peer::start("smtp-sink", &args)
}

/// A collector whose `[email]` points at an smtp-sink (STARTTLS, AUTH) with its maildir.
struct Mail {
    sink: Peer,
    maildir: PathBuf,
    collector: TestCollector,
    /// The collector's `[email]` and database, for [`Mail::another`].
    email: EmailConfig,
    database: Option<String>,
    _pki: Pki,
    _dir: tempfile::TempDir,
}

impl Mail {
    /// The first message is refused with a 451 (temporary: retried).
    async fn start() -> Mail {
        Mail::with(TlsMode::Starttls, (1, 451)).await
    }

    async fn with(tls: TlsMode, refuse: (u32, u16)) -> Mail {
        Mail::on(tls, refuse, None).await
    }

    /// With the collector on `database` (a URL) instead of a SQLite file of its own.
    async fn on(tls: TlsMode, refuse: (u32, u16), database: Option<String>) -> Mail {
        Mail::tuned(tls, refuse, database, |_| {}).await
    }

    /// As [`Mail::on`], with `[email]` changed by `tune` first.
    async fn tuned(
        tls: TlsMode,
        refuse: (u32, u16),
        database: Option<String>,
        tune: impl FnOnce(&mut EmailConfig),
    ) -> Mail {
        let pki = Pki::new();
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("mail");
        let sink = start_sink(&maildir, &pki, tls, refuse);
        std::fs::write(dir.path().join("smtp.pw"), "s3cret\n").unwrap();
        let mut email = EmailConfig {
            smtp_host: Some("localhost".into()),
            smtp_port: sink.port(),
            tls,
            username: Some("noc".into()),
            password_file: Some(dir.path().join("smtp.pw")),
            ca_file: Some(pki.ca()),
            from: "Netwarden NOC <noc@netwarden.test>".into(),
            retries: 2,
            backoff_ms: 50,
            ..EmailConfig::default()
        };
        tune(&mut email);
        let collector = Mail::collector(&email, &database).await;
        Mail {
            sink,
            maildir,
            collector,
            email,
            database,
            _pki: pki,
            _dir: dir,
        }
    }

    async fn collector(email: &EmailConfig, database: &Option<String>) -> TestCollector {
        let (email, database) = (email.clone(), database.clone());
        TestCollector::start_with(Backend::Sqlite, move |raw| {
            raw.email = email;
            if let Some(url) = database {
                raw.database.url = url;
            }
        })
        .await
    }

    /// A second collector beside the first: the same mail server and database.
    async fn another(&self) -> TestCollector {
        Mail::collector(&self.email, &self.database).await
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
        email: _,
        database: _,
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
    let (status, listed) = call(reqwest::Method::GET, c.api("/api/employees"), Value::Null).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["am1", "cx1"], "{listed}");
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

    let notes = notes_when(&c, |n| n.len() >= 3).await;
    let statuses = sorted_statuses(&notes);
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

    // The customer of CIR-8 was not told: the NOC has an anomaly saying why.
    let anomaly = not_notified(&c, "CIR-8").await;
    assert_eq!(anomaly["state"], "open", "{anomaly}");
    let summary = anomaly["summary"].as_str().unwrap();
    assert!(
        summary.contains("account LOST has no contact email"),
        "{summary}"
    );
    drop(sink);
}

/// The collector's customer notifications, once `done` holds for them (or after 30 s).
async fn notes_when(c: &TestCollector, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut notes = Vec::new();
    for _ in 0..600 {
        let (_, found) = call(
            reqwest::Method::GET,
            c.api("/api/notifications"),
            Value::Null,
        )
        .await;
        notes = found.as_array().cloned().unwrap_or_default();
        if done(&notes) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    notes
}

/// The notifications' statuses, sorted.
fn sorted_statuses(notes: &[Value]) -> Vec<&str> {
    let mut statuses: Vec<&str> = notes
        .iter()
        .map(|n| n["status"].as_str().unwrap())
        .collect();
    statuses.sort();
    statuses
}

/// Account ACME (contact dana@acme.test, no managers) and its 100 Mbps `circuit`.
async fn acme_circuit(c: &TestCollector, circuit: &str) {
    let put = |path: String, body: Value| call(reqwest::Method::PUT, c.api(&path), body);
    let account = json!({"name": "Acme", "contact_email": "dana@acme.test"});
    assert_eq!(put("/api/accounts/ACME".into(), account).await.0, 200);
    let line = json!({"account": "ACME", "provisioned_mbps": 100});
    assert_eq!(put(format!("/api/circuits/{circuit}"), line).await.0, 200);
}

/// The `customer_not_notified` anomaly of a circuit, once there is one.
async fn not_notified(c: &TestCollector, circuit: &str) -> Value {
    for _ in 0..600 {
        let (_, found) = call(
            reqwest::Method::GET,
            c.api(&format!(
                "/api/anomalies?kind=customer_not_notified&subject={circuit}"
            )),
            Value::Null,
        )
        .await;
        if let Some(first) = found.as_array().and_then(|a| a.first()) {
            return first.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no customer_not_notified anomaly for {circuit}");
}

/// An email the SMTP server refuses for good (550) is not retried, is recorded as failed
/// with the server's reply, and raises a `customer_not_notified` anomaly for the NOC; the
/// next maxout is emailed (the failed one did not start a cooldown) and resolves it. Over
/// implicit TLS (SMTPS), where the other tests use STARTTLS.
#[tokio::test]
async fn a_refused_email_is_recorded_and_the_noc_told_until_one_goes() {
    let Mail {
        sink,
        maildir,
        collector: c,
        email: _,
        database: _,
        _pki,
        _dir,
    } = Mail::with(TlsMode::Tls, (1, 550)).await;
    acme_circuit(&c, "CIR-5").await;
    let base = chrono::Utc::now().timestamp() - 600;
    let maxout = |start: i64| {
        let samples: Vec<Value> = (0..4)
            .map(|i| {
                let v = if i < 3 { 150.0 } else { 10.0 };
                json!({"circuit_id": "CIR-5", "utilization_mbps": v, "timestamp": start + i})
            })
            .collect();
        call(
            reqwest::Method::POST,
            c.api("/api/v1/telemetry/batch"),
            Value::Array(samples),
        )
    };
    assert_eq!(maxout(base).await.0, 201);
    let anomaly = not_notified(&c, "CIR-5").await;
    assert_eq!(anomaly["state"], "open", "{anomaly}");
    let notes = notes_when(&c, |n| !n.is_empty()).await;
    let failed = &notes[0];
    assert_eq!(failed["status"], "failed", "{notes:?}");
    assert_eq!(
        failed["attempts"], 1,
        "a permanent refusal is not retried: {failed}"
    );
    assert!(
        failed["error"].as_str().unwrap().contains("550"),
        "{failed}"
    );
    assert!(index(&maildir).is_empty());

    // A minute later, within what would be the cooldown: emailed, and the anomaly resolves.
    assert_eq!(maxout(base + 60).await.0, 201);
    let mut anomaly = Value::Null;
    for _ in 0..600 {
        anomaly = not_notified(&c, "CIR-5").await;
        if anomaly["state"] == "resolved" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(anomaly["state"], "resolved", "{anomaly}");
    let messages = index(&maildir);
    assert_eq!(messages.len(), 1);
    assert_eq!(
        (
            &messages[0]["tls"],
            &messages[0]["starttls"],
            &messages[0]["auth_user"]
        ),
        (&json!(true), &json!(false), &json!("noc")),
        "implicit TLS, authenticated: {}",
        messages[0]
    );
    drop(sink);
}

/// Two collectors on one PostgreSQL, as behind a load balancer: a circuit's samples reach both,
/// each detector opens the maxout, and the customer is emailed once; the other collector
/// records its notification as suppressed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_on_one_postgres_email_a_maxout_once() {
    let db = PgDatabase::create().await;
    let mail = Mail::on(TlsMode::Starttls, (0, 451), Some(db.url.clone())).await;
    let second = mail.another().await;
    let first = &mail.collector;
    acme_circuit(first, "CIR-7").await;
    let start = chrono::Utc::now().timestamp() - 300;
    let maxout: Vec<Value> = (0..5)
        .map(|i| json!({"circuit_id": "CIR-7", "utilization_mbps": 150.0, "timestamp": start + i}))
        .collect();
    let (a, b) = tokio::join!(
        call(
            reqwest::Method::POST,
            first.api("/api/v1/telemetry/batch"),
            Value::Array(maxout.clone())
        ),
        call(
            reqwest::Method::POST,
            second.api("/api/v1/telemetry/batch"),
            Value::Array(maxout)
        ),
    );
    assert_eq!((a.0, b.0), (201, 201));
    let notes = notes_when(first, |n| n.len() >= 2).await;
    let statuses = sorted_statuses(&notes);
    assert_eq!(statuses, ["sent", "suppressed"], "{notes:?}");
    let (_, events) = call(
        reqwest::Method::GET,
        first.api("/api/maxouts?kind=circuit&circuit=CIR-7"),
        Value::Null,
    )
    .await;
    assert_eq!(
        events.as_array().map(Vec::len),
        Some(2),
        "each collector saw the maxout: {events}"
    );
    // Both sends would have been over by now; give a late one time to show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        index(&mail.maildir).len(),
        1,
        "one email reached the customer"
    );
    drop(second);
    drop(mail);
}

/// A customer email waiting for its retry waits in the outbox, not in a task: the collector
/// that queued it stops, another starts on the database, and the email goes once, its retry
/// counted, with nothing for the NOC to chase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_email_awaiting_its_retry_goes_after_a_restart() {
    let db = PgDatabase::create().await;
    let mail = Mail::tuned(TlsMode::Starttls, (1, 451), Some(db.url.clone()), |email| {
        email.backoff_ms = 3_000
    })
    .await;
    let first = &mail.collector;
    acme_circuit(first, "CIR-6").await;
    let start = chrono::Utc::now().timestamp() - 300;
    let maxout: Vec<Value> = (0..5)
        .map(|i| json!({"circuit_id": "CIR-6", "utilization_mbps": 150.0, "timestamp": start + i}))
        .collect();
    let (status, _) = call(
        reqwest::Method::POST,
        first.api("/api/v1/telemetry/batch"),
        Value::Array(maxout),
    )
    .await;
    assert_eq!(status, 201);
    // The 451 came back: the email is pending its retry, three seconds on.
    let mut queued = Value::Null;
    for _ in 0..600 {
        let (_, found) = call(
            reqwest::Method::GET,
            first.api("/api/alerts?channel=customer_email"),
            Value::Null,
        )
        .await;
        queued = found[0].clone();
        if queued["state"] == "pending" && queued["attempts"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        (&queued["state"], &queued["attempts"]),
        (&json!("pending"), &json!(1)),
        "{queued}"
    );
    assert_eq!(queued["anomaly_id"], Value::Null, "{queued}");
    assert!(queued["circuit_event_id"].is_i64(), "{queued}");
    assert!(index(&mail.maildir).is_empty());

    let Mail {
        sink,
        maildir,
        collector,
        email,
        database,
        _pki,
        _dir,
    } = mail;
    drop(collector);
    let second = Mail::collector(&email, &database).await;
    let notes = notes_when(&second, |n| n.iter().any(|n| n["status"] == "sent")).await;
    assert_eq!(sorted_statuses(&notes), ["sent"], "{notes:?}");
    assert_eq!(notes[0]["attempts"], 2, "the retry was counted: {notes:?}");
    assert_eq!(index(&maildir).len(), 1, "one email reached the customer");
    let (_, anomalies) = call(
        reqwest::Method::GET,
        second.api("/api/anomalies?kind=customer_not_notified"),
        Value::Null,
    )
    .await;
    assert_eq!(anomalies, json!([]), "nothing for the NOC");
    drop(sink);
}

/// `import telemetry --notify` runs no dispatcher: it queues the historical event's email and
/// sends it before it returns, through the same channel and retry schedule (the first try is
/// refused with a 451 and retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_with_notify_emails_the_customer_before_it_returns() {
    use netwarden_collector::domain::customers::Account;
    use netwarden_collector::storage::telemetry::CircuitRecord;
    use netwarden_collector::storage::telemetry::TelemetryStore;
    use netwarden_collector::storage::{CustomerStore, SqliteStore, SqliteSync, Store};

    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail");
    let sink = start_sink(&maildir, &pki, TlsMode::Starttls, (1, 451));
    std::fs::write(dir.path().join("smtp.pw"), "s3cret\n").unwrap();
    let database = dir.path().join("c.db");
    {
        let store = SqliteStore::open(&database, 2, SqliteSync::Full)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let now = chrono::Utc::now();
        let account = Account {
            id: "ACME".into(),
            name: "Acme".into(),
            contact_name: Some("Dana Ops".into()),
            contact_email: Some("dana@acme.test".into()),
            account_manager: None,
            cx_manager: None,
        };
        store.save_account(&account, now).await.unwrap();
        let circuit = CircuitRecord {
            circuit_id: "OLD-1".into(),
            account: Some("ACME".into()),
            provisioned_mbps: 100.0,
            burst_mbps: None,
            pop: None,
            provisioned_at: None,
            upgraded_at: None,
            decommissioned_at: None,
        };
        store.save_circuit(&circuit, now).await.unwrap();
    }
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\nca = \"{0}/ca.pem\"\ncert = \"{0}/server.pem\"\nkey = \"{0}/server.key\"\n\
             [database]\nurl = \"sqlite://{1}\"\n\
             [email]\nsmtp_host = \"localhost\"\nsmtp_port = {2}\ntls = \"starttls\"\n\
             username = \"noc\"\npassword_file = \"{3}\"\nca_file = \"{0}/ca.pem\"\n\
             from = \"Netwarden NOC <noc@netwarden.test>\"\nretries = 2\nbackoff_ms = 50\n",
            pki.path().display(),
            database.display(),
            sink.port(),
            dir.path().join("smtp.pw").display(),
        ),
    )
    .unwrap();
    let history = dir.path().join("history.csv");
    let old = chrono::Utc::now().timestamp() - 400 * 86_400;
    let mut text = "circuit_id,utilization_mbps,timestamp\n".to_string();
    for m in 0..5 {
        text.push_str(&format!("OLD-1,150,{}\n", old + m * 60));
    }
    std::fs::write(&history, text).unwrap();
    let out = Command::new(super::support::binary("netwarden-collector"))
        .args(["import", "telemetry", history.to_str().unwrap(), "--notify"])
        .args(["--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("1 new (historical, customers emailed)"),
        "{stdout}"
    );

    // Sent before the command returned: read back with the command gone.
    let messages = index(&maildir);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["rcpt_tos"], json!(["dana@acme.test"]));
    assert_eq!(
        messages[0]["subject"],
        "Circuit OLD-1 reached 150% of its 100 Mbps"
    );
    let store = SqliteStore::open(&database, 2, SqliteSync::Full)
        .await
        .unwrap();
    let notes = store
        .notifications("circuit_maxout", None, 10)
        .await
        .unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(
        (notes[0].status.as_str(), notes[0].attempts),
        ("sent", 2),
        "the 451 was retried: {notes:?}"
    );
    drop(sink);
}

/// Runs the simulator (seed 7 unless `args` names one) against the collector at `url`.
fn simulate(url: &str, args: &[&str]) -> String {
    let seed: &[&str] = if args.contains(&"--seed") {
        &[]
    } else {
        &["--seed", "7"]
    };
    let out = Command::new(super::support::binary("netwarden-collector"))
        .args(["simulate", "telemetry", "--url", url, "--register"])
        .args(seed)
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

/// The two parts of a delivered message, decoded (quoted-printable, base64).
struct Delivered {
    text: String,
    html: String,
}

fn delivered(maildir: &Path, entry: &Value) -> Delivered {
    let raw = std::fs::read(maildir.join(entry["file"].as_str().unwrap())).unwrap();
    let mail = mailparse::parse_mail(&raw).unwrap();
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    let part = |mime: &str| {
        mail.subparts
            .iter()
            .find(|p| p.ctype.mimetype == mime)
            .unwrap_or_else(|| panic!("no {mime} part"))
            .get_body()
            .unwrap()
    };
    Delivered {
        text: part("text/plain"),
        html: part("text/html"),
    }
}

/// The simulator drives a running collector with a day's worth of circuit time (samples
/// stamped from `--start`, `--step` apart): spikes alone raise nothing; sustained maxouts
/// raise events; each circuit's customer gets exactly one email per cooldown (two here:
/// the cooldown runs out between the sixth and seventh maxout), To the contact, Cc the
/// account and CX managers, with the event's figures in both parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_drives_detection_and_email() {
    // Every field bound (a `..` would drop the maildir's directory here).
    let Mail {
        sink,
        maildir,
        collector: c,
        email: _,
        database: _,
        _pki,
        _dir,
    } = Mail::start().await;
    for (id, name, email) in [
        ("am7", "Alice Account", "alice@isp.test"),
        ("cx7", "Carl Care", "carl@isp.test"),
    ] {
        let (status, _) = call(
            reqwest::Method::PUT,
            c.api(&format!("/api/employees/{id}")),
            json!({"name": name, "email": email}),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, _) = call(
        reqwest::Method::PUT,
        c.api("/api/accounts/SIMCO"),
        json!({"name": "Sim Co", "contact_name": "Sam Ops", "contact_email": "ops@sim.test",
               "account_manager": "am7", "cx_manager": "cx7"}),
    )
    .await;
    assert_eq!(status, 200);
    let url = format!("http://{}", c.http);
    // Whole seconds, three hours back: the 90 samples of a circuit, 70 s apart, end in the past.
    let start = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() - 3 * 3600, 0)
        .unwrap()
        .to_rfc3339();
    let timed = ["--start", start.as_str(), "--step", "70", "--rate", "600"];

    let spikes = [
        &timed[..],
        &[
            "--prefix",
            "SPK-",
            "--circuits",
            "3",
            "--samples",
            "60",
            "--spike-every",
            "4",
            "--account",
            "SIMCO",
        ],
    ]
    .concat();
    let out = simulate(&url, &spikes);
    assert!(out.starts_with("posted 60 samples"), "{out}");
    // Maxouts of 5 samples every 10 (samples 10-14, 20-24, ... of each circuit): eight
    // events a circuit, the 90th sample's maxout cut off under the debounce.
    let maxouts = [
        &timed[..],
        &[
            "--prefix",
            "MAX-",
            "--circuits",
            "3",
            "--samples",
            "270",
            "--maxout-every",
            "10",
            "--maxout-samples",
            "5",
            "--account",
            "SIMCO",
        ],
    ]
    .concat();
    let out = simulate(&url, &maxouts);
    assert!(out.starts_with("posted 270 samples"), "{out}");

    let notes = notes_when(&c, |n| n.len() >= 24 && index(&maildir).len() >= 6).await;
    let count = |status: &str| notes.iter().filter(|n| n["status"] == status).count();
    assert_eq!((count("sent"), count("suppressed")), (6, 18), "{notes:?}");
    let (_, events) = call(
        reqwest::Method::GET,
        c.api("/api/maxouts?kind=circuit&limit=100"),
        Value::Null,
    )
    .await;
    let events = events.as_array().unwrap();
    assert_eq!(
        events.len(),
        24,
        "eight sustained maxouts per circuit: {events:?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e["circuit_id"].as_str().unwrap().starts_with("MAX-")),
        "spikes raised nothing"
    );
    // Per circuit, the emailed events are the first and the first an hour (of sample time)
    // after it: samples 10 and 70, 9 × 70 s and 69 × 70 s after the start.
    let sent_ids: Vec<i64> = notes
        .iter()
        .filter(|n| n["status"] == "sent")
        .map(|n| n["event_id"].as_i64().unwrap())
        .collect();
    let start_secs = chrono::DateTime::parse_from_rfc3339(&start)
        .unwrap()
        .timestamp();
    let mut emailed: Vec<(String, i64)> = events
        .iter()
        .filter(|e| sent_ids.contains(&e["id"].as_i64().unwrap()))
        .map(|e| {
            let at = chrono::DateTime::parse_from_rfc3339(e["start"].as_str().unwrap()).unwrap();
            (
                e["circuit_id"].as_str().unwrap().to_string(),
                at.timestamp() - start_secs,
            )
        })
        .collect();
    emailed.sort();
    let expected: Vec<(String, i64)> = (0..3)
        .flat_map(|i| [(format!("MAX-{i}"), 9 * 70), (format!("MAX-{i}"), 69 * 70)])
        .collect();
    assert_eq!(emailed, expected);

    // Every message: the envelope, To, Cc, Subject, and in both parts the event's figures.
    let messages = index(&maildir);
    assert_eq!(messages.len(), 6, "{messages:?}");
    for m in &messages {
        let mut rcpt: Vec<&str> = m["rcpt_tos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        rcpt.sort();
        assert_eq!(rcpt, ["alice@isp.test", "carl@isp.test", "ops@sim.test"]);
        assert!(
            m["to"].as_str().unwrap().contains("Sam Ops <ops@sim.test>"),
            "{m}"
        );
        let cc = m["cc"].as_str().unwrap();
        assert!(
            cc.contains("Alice Account <alice@isp.test>")
                && cc.contains("Carl Care <carl@isp.test>"),
            "{cc}"
        );
        let subject = m["subject"].as_str().unwrap();
        let circuit = subject
            .strip_prefix("Circuit ")
            .and_then(|s| s.split(' ').next())
            .unwrap_or_else(|| panic!("{subject}"));
        let Delivered { text, html } = delivered(&maildir, m);
        // The message went when the event opened: its figures are those of the event's first
        // three samples (the debounce), read back from the stored telemetry. Which of the
        // circuit's two emailed events it is about, its start says.
        let mut about = None;
        for e in events
            .iter()
            .filter(|e| e["circuit_id"] == circuit && sent_ids.contains(&e["id"].as_i64().unwrap()))
        {
            let start = chrono::DateTime::parse_from_rfc3339(e["start"].as_str().unwrap()).unwrap();
            if !text.contains(&format!("(since {} UTC)", start.format("%Y-%m-%d %H:%M"))) {
                continue;
            }
            let from = e["start"].as_str().unwrap().replace('+', "%2B");
            let (_, points) = call(
                reqwest::Method::GET,
                c.api(&format!(
                    "/api/circuits/{circuit}/telemetry?from={from}&limit=3"
                )),
                Value::Null,
            )
            .await;
            let points = points.as_array().unwrap().clone();
            assert_eq!(points.len(), 3, "{points:?}");
            let peak = points
                .iter()
                .map(|p| p["utilization_mbps"].as_f64().unwrap())
                .fold(0.0, f64::max);
            about = Some((e.clone(), peak));
        }
        let (event, peak) =
            about.unwrap_or_else(|| panic!("no emailed event of {circuit} in:\n{text}"));
        let provisioned = event["provisioned_mbps"].as_f64().unwrap();
        let burst = event["burst_mbps"].as_f64().unwrap();
        assert_eq!(
            subject,
            format!(
                "Circuit {circuit} reached {:.0}% of its {provisioned:.0} Mbps",
                100.0 * peak / provisioned
            )
        );
        for (part, body) in [("text", &text), ("html", &html)] {
            for figure in [
                format!("{peak:.1} Mbps"),
                format!("{:.0}% of provisioned", 100.0 * peak / provisioned),
                format!("{provisioned:.0} Mbps"),
                format!("{burst:.0} Mbps"),
                // Over the threshold for three samples, 70 s apart, when it was detected.
                "2 min 20 s".to_string(),
                "Alice Account".into(),
                "alice@isp.test".into(),
                "Carl Care".into(),
                "carl@isp.test".into(),
                "Sam Ops".into(),
            ] {
                assert!(
                    body.contains(&figure),
                    "{figure} missing from the {part} part:\n{body}"
                );
            }
        }
        assert!(html.contains("<table"), "{html}");
        assert!(!text.contains("<table"), "{text}");
    }
    drop(sink);
}

/// The same seed and start give exactly the same samples: the simulator run twice (two
/// circuit prefixes) stores the same timestamps and values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_and_start_give_the_same_samples() {
    let c = TestCollector::start(Backend::Sqlite).await;
    let url = format!("http://{}", c.http);
    let start = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() - 3600, 0)
        .unwrap()
        .to_rfc3339();
    // Only the prefix (and, last, the seed) differs between the runs.
    let run = |prefix: &str, seed: &str| {
        let args = [
            "--prefix",
            prefix,
            "--seed",
            seed,
            "--circuits",
            "4",
            "--samples",
            "80",
            "--rate",
            "400",
            "--start",
            &start,
            "--step",
            "30",
            "--spike-every",
            "7",
            "--maxout-every",
            "11",
        ];
        simulate(&url, &args)
    };
    for prefix in ["A-", "B-"] {
        let out = run(prefix, "7");
        assert!(out.starts_with("posted 80 samples"), "{out}");
    }
    let series = |circuit: String| {
        let url = c.api(&format!("/api/circuits/{circuit}/telemetry?limit=1000"));
        async move { call(reqwest::Method::GET, url, Value::Null).await }
    };
    for n in 0..4 {
        let (status, a) = series(format!("A-{n}")).await;
        assert_eq!(status, 200, "{a}");
        let (_, b) = series(format!("B-{n}")).await;
        assert_eq!(a.as_array().map(Vec::len), Some(20), "{a}");
        assert_eq!(a, b, "circuit {n}");
    }
    // And a different seed, all else the same, gives other values.
    run("C-", "8");
    let (_, a) = series("A-0".into()).await;
    let (_, other) = series("C-0".into()).await;
    assert_ne!(a, other);
}

/// A sample two minutes late completes the debounce it belongs to: the event opens and the
/// customer is emailed once, posted one sample a request (on the code before, the late sample
/// was dropped and neither happened).
#[tokio::test]
async fn a_sample_two_minutes_late_opens_the_event_and_emails_once() {
    let mail = Mail::with(TlsMode::Starttls, (0, 451)).await;
    let c = &mail.collector;
    acme_circuit(c, "LATE-1").await;
    let minute = 60;
    let t0 = chrono::Utc::now().timestamp() - 3600;
    // Over at minutes 1..=3 (the debounce is three in a row), minute 2 sent after minute 4.
    for (m, mbps) in [(0, 50.0), (1, 130.0), (3, 130.0), (4, 50.0), (2, 130.0)] {
        let (status, body) = call(
            reqwest::Method::POST,
            c.api("/api/v1/telemetry"),
            json!({"circuit_id": "LATE-1", "utilization_mbps": mbps, "timestamp": t0 + m * minute}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let notes = notes_when(c, |n| !n.is_empty()).await;
    assert_eq!(sorted_statuses(&notes), vec!["sent"], "{notes:?}");
    let (_, events) = call(
        reqwest::Method::GET,
        c.api("/api/maxouts?circuit=LATE-1"),
        Value::Null,
    )
    .await;
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    let start = chrono::DateTime::parse_from_rfc3339(events[0]["start"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert_eq!(
        (start, events[0]["samples"].as_i64()),
        (t0 + minute, Some(3))
    );
    // Nothing more arrives later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(index(&mail.maildir).len(), 1);
}

/// One severity rule for the stored event, the email and the API: a run at exactly the
/// provisioned rate is a breach, one at exactly the burst ceiling is still `burst`, one a
/// hundredth above it is `maxout`; a hundredth under provisioned is nothing.
#[tokio::test]
async fn severity_boundaries_agree_in_event_email_and_api() {
    let mail = Mail::with(TlsMode::Starttls, (0, 451)).await;
    let c = &mail.collector;
    let put = |path: String, body: Value| call(reqwest::Method::PUT, c.api(&path), body);
    assert_eq!(
        put(
            "/api/accounts/ACME".into(),
            json!({"name": "Acme", "contact_email": "dana@acme.test"})
        )
        .await
        .0,
        200
    );
    let cases = [
        ("B-UNDER", 999.99, None),
        ("B-PROV", 1000.0, Some("burst")),
        ("B-CEIL", 1200.0, Some("burst")),
        ("B-ABOVE", 1200.01, Some("maxout")),
    ];
    let t0 = chrono::Utc::now().timestamp() - 600;
    for (circuit, mbps, _) in cases {
        let line = json!({"account": "ACME", "provisioned_mbps": 1000, "burst_mbps": 1200});
        assert_eq!(put(format!("/api/circuits/{circuit}"), line).await.0, 200);
        let body: Vec<Value> = (0..3)
            .map(|i| json!({"circuit_id": circuit, "utilization_mbps": mbps, "timestamp": t0 + i * 60}))
            .collect();
        let (status, _) = call(
            reqwest::Method::POST,
            c.api("/api/v1/telemetry/batch"),
            Value::Array(body),
        )
        .await;
        assert_eq!(status, 201);
    }
    notes_when(c, |n| n.len() >= 3).await;
    for (circuit, _, severity) in cases {
        let (_, events) = call(
            reqwest::Method::GET,
            c.api(&format!("/api/maxouts?circuit={circuit}")),
            Value::Null,
        )
        .await;
        let got = events
            .as_array()
            .unwrap()
            .first()
            .map(|e| e["severity"].as_str().unwrap().to_string());
        assert_eq!(got.as_deref(), severity, "{circuit}: {events}");
    }
    let entries = index(&mail.maildir);
    assert_eq!(entries.len(), 3, "{entries:?}");
    for entry in &entries {
        let mail_text = delivered(&mail.maildir, entry).text;
        let circuit = ["B-PROV", "B-CEIL", "B-ABOVE"]
            .into_iter()
            .find(|c| mail_text.contains(c))
            .unwrap_or_else(|| panic!("which circuit? {mail_text}"));
        let within = mail_text.contains("within the burst ceiling");
        let above = mail_text.contains("above the burst ceiling");
        assert_eq!(
            (within, above),
            (circuit != "B-ABOVE", circuit == "B-ABOVE"),
            "{circuit}: {mail_text}"
        );
    }
}

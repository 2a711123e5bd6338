//! Circuit telemetry over HTTP on both backends: the MaxOut-Capacity response shapes, 422s
//! that name the field with nothing stored, batches as JSON arrays and NDJSON (all or
//! nothing), unknown circuits stored and listed, body limits.

use super::support::{Backend, TestCollector};
use serde_json::{json, Value};

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let response = client
        .request(method, url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn points(c: &TestCollector, circuit: &str) -> usize {
    reqwest::get(c.api(&format!("/api/circuits/{circuit}/telemetry")))
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap()
        .len()
}

async fn scenario(backend: Backend) {
    let c = TestCollector::start(backend).await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: String| send(&http, reqwest::Method::POST, c.api(path), body);

    let (status, circuit) = send(
        &http,
        reqwest::Method::PUT,
        c.api("/api/circuits/CIR-1"),
        json!({"account": "ACME", "provisioned_mbps": 1000}).to_string(),
    )
    .await;
    assert_eq!(status, 400, "an account that does not exist: {circuit}");
    assert!(circuit["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("account:"));
    let (status, _) = send(
        &http,
        reqwest::Method::PUT,
        c.api("/api/accounts/ACME"),
        json!({"name": "Acme"}).to_string(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, circuit) = send(
        &http,
        reqwest::Method::PUT,
        c.api("/api/circuits/CIR-1"),
        json!({"account": "ACME", "provisioned_mbps": 1000, "burst_mbps": 1200}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{circuit}");

    let (status, body) = post(
        "/api/v1/telemetry",
        json!({"circuit_id": "CIR-1", "utilization_mbps": 950.5}).to_string(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["recorded_utilization"], 950.5);
    assert!(body["message"].as_str().unwrap().contains("CIR-1"));
    assert_eq!(points(&c, "CIR-1").await, 1);
    // Its share of the provisioned rate, for Prometheus, once detection has seen it.
    let series = "netwarden_circuit_utilisation_ratio{circuit=\"CIR-1\",account=\"ACME\"} 0.9505";
    let mut text = String::new();
    for _ in 0..100 {
        text = reqwest::get(c.api("/metrics/network"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains(series) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(text.contains(series), "{text}");

    // Bad input: 422 naming the field, nothing stored.
    for (body, field) in [
        (
            json!({"circuit_id": "CIR-1", "utilization_mbps": -5}),
            "utilization_mbps",
        ),
        (json!({"circuit_id": "CIR-1"}), "utilization_mbps"),
        (json!({"utilization_mbps": 5}), "circuit_id"),
        (
            json!({"circuit_id": 7, "utilization_mbps": 5}),
            "circuit_id",
        ),
        (
            json!({"circuit_id": "CIR-1", "utilization_mbps": "5"}),
            "utilization_mbps",
        ),
        (
            json!({"circuit_id": "CIR-1", "utilization_mbps": 5, "timestamp": "yesterday"}),
            "timestamp",
        ),
        (
            json!({"circuit_id": "CIR-1", "utilization_mbps": 5,
                   "timestamp": chrono::Utc::now().timestamp() - 40 * 86_400}),
            "timestamp",
        ),
        (
            json!({"circuit_id": "CIR-1", "utilization_mbps": 5,
                   "timestamp": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()}),
            "timestamp",
        ),
    ] {
        let (status, reply) = post("/api/v1/telemetry", body.to_string()).await;
        assert_eq!(status, 422, "{body}: {reply}");
        assert_eq!(reply["detail"][0]["loc"][1], field, "{reply}");
        assert!(reply["error"]["message"].as_str().unwrap().contains(field));
    }
    let (status, reply) = post("/api/v1/telemetry", "{not json".into()).await;
    assert_eq!(
        (status, reply["detail"][0]["loc"][0].clone()),
        (422, json!("body"))
    );
    assert_eq!(
        points(&c, "CIR-1").await,
        1,
        "nothing stored from rejected requests"
    );

    // A huge body is refused before it is read.
    let huge = format!(
        "{{\"circuit_id\":\"CIR-1\",\"utilization_mbps\":1,\"pad\":\"{}\"}}",
        "x".repeat(100_000)
    );
    let (status, reply) = post("/api/v1/telemetry", huge).await;
    assert_eq!(status, 413, "{reply}");
    assert_eq!(reply["error"]["code"], "payload_too_large", "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("body: larger than 65536 bytes"),
        "{reply}"
    );

    // Unknown circuits: stored and listed, not lost.
    let (status, body) = post(
        "/api/v1/telemetry",
        json!({"circuit_id": "NEW-9", "utilization_mbps": 10}).to_string(),
    )
    .await;
    assert_eq!(status, 201);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("unknown circuit"));

    // Batches: a JSON array, NDJSON; one bad item rejects the whole request.
    let array: Vec<Value> = (0..1000)
        .map(|i| json!({"circuit_id": "CIR-1", "utilization_mbps": i as f64, "timestamp": chrono::Utc::now().timestamp() - 1000 + i}))
        .collect();
    let (status, body) = post("/api/v1/telemetry/batch", Value::Array(array).to_string()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["recorded"], 1000);
    assert_eq!(points(&c, "CIR-1").await, 1001);
    let ndjson = "{\"circuit_id\":\"NEW-9\",\"utilization_mbps\":1}\n{\"circuit_id\":\"CIR-1\",\"utilization_mbps\":2}\n";
    let (status, body) = post("/api/v1/telemetry/batch", ndjson.into()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["unknown_circuits"], json!(["NEW-9"]));
    let bad = json!([
        {"circuit_id": "CIR-1", "utilization_mbps": 1},
        {"circuit_id": "CIR-1", "utilization_mbps": -1}
    ]);
    let (status, body) = post("/api/v1/telemetry/batch", bad.to_string()).await;
    assert_eq!(status, 422);
    assert_eq!(
        body["detail"][0]["loc"],
        json!(["body", 1, "utilization_mbps"])
    );
    assert_eq!(
        points(&c, "CIR-1").await,
        1002,
        "nothing of the rejected batch"
    );

    let unknown: Vec<Value> = reqwest::get(c.api("/api/circuits/unknown"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0]["circuit_id"], "NEW-9");
    assert_eq!(unknown[0]["samples"], 2);
    // Registering the circuit takes it off the unknown list; its samples stay.
    let (status, _) = send(
        &http,
        reqwest::Method::PUT,
        c.api("/api/circuits/NEW-9"),
        json!({"provisioned_mbps": 100}).to_string(),
    )
    .await;
    assert_eq!(status, 200);
    let unknown: Vec<Value> = reqwest::get(c.api("/api/circuits/unknown"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(unknown.is_empty());
    assert_eq!(points(&c, "NEW-9").await, 2);

    // Circuit checks.
    let (status, body) = send(
        &http,
        reqwest::Method::PUT,
        c.api("/api/circuits/CIR-2"),
        json!({"provisioned_mbps": 100, "burst_mbps": 50}).to_string(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("burst_mbps"));
    for (circuit, field) in [
        (json!({"provisioned_mbps": 5e-324}), "provisioned_mbps: "),
        (
            json!({"provisioned_mbps": "fast"}),
            "provisioned_mbps: invalid type",
        ),
        (
            json!({"provisioned_mbps": 10, "burst_mbps": 2e7}),
            "burst_mbps: ",
        ),
    ] {
        let (status, body) = send(
            &http,
            reqwest::Method::PUT,
            c.api("/api/circuits/CIR-2"),
            circuit.to_string(),
        )
        .await;
        assert_eq!(status, 400, "{circuit}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{message}");
    }
    let (status, _) = send(&http, reqwest::Method::GET, c.api("/api/circuits/NOPE"), "").await;
    assert_eq!(status, 404);
    let (status, listed) = send(&http, reqwest::Method::GET, c.api("/api/circuits"), "").await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().unwrap().len(), 2);

    // Maxouts: a single spike under the debounce (3) is nothing; a sustained one is one event,
    // closed when utilisation drops. CIR-3 is 1000 Mbps with burst to 1200.
    let (status, _) = send(
        &http,
        reqwest::Method::PUT,
        c.api("/api/circuits/CIR-3"),
        json!({"account": "ACME", "provisioned_mbps": 1000, "burst_mbps": 1200}).to_string(),
    )
    .await;
    assert_eq!(status, 200);
    let base = chrono::Utc::now().timestamp() - 60;
    let series = [1300.0, 500.0, 1300.0, 1250.0, 1400.0, 1300.0, 900.0];
    let batch: Vec<Value> = series
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"circuit_id": "CIR-3", "utilization_mbps": v, "timestamp": base + i as i64}))
        .collect();
    let (status, body) = post("/api/v1/telemetry/batch", Value::Array(batch).to_string()).await;
    assert_eq!(status, 201, "{body}");
    let mut events = Value::Null;
    for _ in 0..100 {
        let (_, found) = send(
            &http,
            reqwest::Method::GET,
            c.api("/api/maxouts?circuit=CIR-3"),
            "",
        )
        .await;
        if found
            .as_array()
            .is_some_and(|e| e.len() == 1 && e[0]["open"] == false)
        {
            events = found;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let event = &events[0];
    assert_eq!(event["samples"], 4, "{events}");
    assert_eq!(event["peak_mbps"], 1400.0);
    assert_eq!(event["peak_pct"], 140.0);
    assert_eq!(event["severity"], "maxout");
    assert_eq!(event["duration_secs"], 3);
    assert_eq!(event["account"], "ACME");
    // The NOC sees it as an anomaly too, resolved when the event closed (just after).
    let mut anomalies = Value::Null;
    for _ in 0..100 {
        (_, anomalies) = send(
            &http,
            reqwest::Method::GET,
            c.api("/api/anomalies?kind=circuit_maxout&subject=CIR-3"),
            "",
        )
        .await;
        if anomalies[0]["state"] == "resolved" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(anomalies[0]["severity"], "high", "{anomalies}");
    assert_eq!(anomalies[0]["group_key"], "ACME");
    assert_eq!(anomalies[0]["state"], "resolved");
    let (_, by_account) = send(
        &http,
        reqwest::Method::GET,
        c.api("/api/maxouts?account=ACME"),
        "",
    )
    .await;
    assert_eq!(by_account, events);
    let (_, summary) = send(
        &http,
        reqwest::Method::GET,
        c.api("/api/maxouts/summary"),
        "",
    )
    .await;
    assert_eq!(summary[0]["account"], "ACME", "{summary}");
    assert_eq!(summary[0]["events"], 1);
    assert_eq!(summary[0]["circuits"], 1);
    assert_eq!(summary[0]["peak_mbps"], 1400.0);
    let hours = summary[0]["hours_at_max"].as_f64().unwrap();
    assert!((hours - 3.0 / 3600.0).abs() < 1e-12, "{summary}");
    assert_eq!(summary[0]["peak_pct"], 140.0, "{summary}");
    // A window after the event holds none of it.
    let later = chrono::Utc::now() + chrono::Duration::minutes(1);
    let window = format!(
        "from={}&to={}",
        later.format("%Y-%m-%dT%H:%M:%SZ"),
        (later + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ")
    );
    for path in ["/api/maxouts?account=ACME&", "/api/maxouts/summary?"] {
        let (status, found) = send(
            &http,
            reqwest::Method::GET,
            c.api(&format!("{path}{window}")),
            "",
        )
        .await;
        assert_eq!((status, found), (200, json!([])), "{path}");
    }
    let (status, _) = send(
        &http,
        reqwest::Method::GET,
        c.api("/api/maxouts?kind=both"),
        "",
    )
    .await;
    assert_eq!(status, 400);
}

/// A maxout open when the collector stops goes on after the restart: the next samples extend
/// and close the stored event instead of leaving it open for ever beside a new one.
async fn an_open_maxout_goes_on_across_a_restart(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // The database outlives the first collector: a file, or a database of the test's own.
    let pg = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(super::support::PgDatabase::create().await),
    };
    let url = match &pg {
        None => format!("sqlite://{}", dir.path().join("restart.db").display()),
        Some(db) => db.url.clone(),
    };
    let http = reqwest::Client::new();
    let base = chrono::Utc::now().timestamp() - 60;
    let post = |c: &TestCollector, values: &[(i64, f64)]| {
        let batch: Vec<Value> = values
            .iter()
            .map(|(t, v)| json!({"circuit_id": "CIR-R", "utilization_mbps": v, "timestamp": base + t}))
            .collect();
        send(
            &http,
            reqwest::Method::POST,
            c.api("/api/v1/telemetry/batch"),
            Value::Array(batch).to_string(),
        )
    };
    let events = |c: &TestCollector| {
        send(
            &http,
            reqwest::Method::GET,
            c.api("/api/maxouts?circuit=CIR-R"),
            "",
        )
    };
    let first = TestCollector::start_with(Backend::Sqlite, {
        let url = url.clone();
        move |raw| raw.database.url = url
    })
    .await;
    let (status, _) = send(
        &http,
        reqwest::Method::PUT,
        first.api("/api/circuits/CIR-R"),
        json!({"provisioned_mbps": 100}).to_string(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        post(&first, &[(0, 150.0), (1, 150.0), (2, 160.0), (3, 150.0)])
            .await
            .0,
        201
    );
    let mut found = Value::Null;
    for _ in 0..600 {
        (_, found) = events(&first).await;
        if found[0]["samples"] == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(found[0]["open"], true, "{found}");
    assert_eq!(found[0]["samples"], 4, "{found}");
    drop(first);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let second =
        TestCollector::start_with(Backend::Sqlite, move |raw| raw.database.url = url).await;
    assert_eq!(
        post(&second, &[(4, 170.0), (5, 150.0), (6, 50.0)]).await.0,
        201
    );
    for _ in 0..600 {
        (_, found) = events(&second).await;
        if found[0]["open"] == false {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        found.as_array().map(Vec::len),
        Some(1),
        "one event: {found}"
    );
    let event = &found[0];
    assert_eq!(event["open"], false, "{event}");
    assert_eq!(event["samples"], 6, "{event}");
    assert_eq!(event["peak_mbps"], 170.0, "{event}");
    assert_eq!(event["duration_secs"], 5, "{event}");
    drop(second);
    drop(pg);
}

/// `import circuits FILE`: CSV and XLSX, every problem named by row and column, nothing
/// imported from a file with any problem.
#[tokio::test]
async fn circuits_import_from_csv_and_xlsx_row_by_row() {
    use netwarden_collector::storage::{
        customers::Account, CustomerStore, SqliteStore, SqliteSync, Store, TelemetryStore,
    };
    let pki = super::support::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\nca = \"{0}/ca.pem\"\ncert = \"{0}/server.pem\"\nkey = \"{0}/server.key\"\n\
             [database]\nurl = \"sqlite://c.db\"\n",
            pki.path().display()
        ),
    )
    .unwrap();
    let import = |file: &std::path::Path| {
        let out = std::process::Command::new(super::support::binary("netwarden-collector"))
            .args(["import", "circuits", "--config", config.to_str().unwrap()])
            .arg(file)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let import_csv = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        import(&file)
    };
    let store = || async {
        let store = SqliteStore::open(&dir.path().join("c.db"), 1, SqliteSync::Full)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store
    };

    let (code, stdout, stderr) = import_csv(
        "bad.csv",
        "circuit_id,provisioned_mbps,burst_mbps\nCIR-1,1000,1200\nCIR-2,-5,\nCIR-3,100,50\n\
         CIR-4,5e-324,\nCIR-5,100,2e7\n",
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stdout.contains("row 3, column provisioned_mbps"),
        "{stdout}"
    );
    assert!(stdout.contains("row 4, column burst_mbps"), "{stdout}");
    // The same bounds as the REST API: no rate so small every percentage is infinite.
    assert!(
        stdout.contains("row 5, column provisioned_mbps"),
        "{stdout}"
    );
    assert!(stdout.contains("row 6, column burst_mbps"), "{stdout}");
    assert!(
        stdout.contains("1 circuits imported (1 new, 0 changed, 0 unchanged), 4 rows refused"),
        "{stdout}"
    );
    assert!(stderr.contains("the other rows were imported"), "{stderr}");
    let ids = |circuits: Vec<netwarden_collector::storage::telemetry::CircuitRecord>| {
        circuits
            .into_iter()
            .map(|c| c.circuit_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(store().await.circuits(100, 0).await.unwrap()),
        vec!["CIR-1"]
    );

    // An unknown account is refused too; once it exists, the XLSX imports.
    let xlsx =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/resources/circuits.xlsx");
    let (code, stdout, _) = import(&xlsx);
    assert_eq!(code, Some(1));
    // Row 4 of the sheet is empty, so XL-3 is on row 5. The error names a way that works.
    assert!(
        stdout.contains("row 2, column account: no account has the id or name \"ACME\"")
            && stdout.contains("row 5, column account: no account has the id or name \"ACME\"")
            && stdout.contains("--create-accounts"),
        "{stdout}"
    );
    // A sheet whose header sits under empty rows: errors name the sheet's own rows.
    let below = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/resources/circuits-below-empty-rows.xlsx");
    let (code, stdout, stderr) = import(&below);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stdout.contains("row 6, column account: no account has the id or name \"NOPE\""),
        "{stdout}"
    );
    store()
        .await
        .save_account(
            &Account {
                id: "ACME".into(),
                name: "Acme".into(),
                contact_name: None,
                contact_email: None,
                account_manager: None,
                cx_manager: None,
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let (code, stdout, stderr) = import(&xlsx);
    assert_eq!(code, Some(0), "{stderr}");
    // XL-2 names no account: it came in with the first try.
    assert!(
        stdout.contains("3 circuits imported (2 new, 0 changed, 1 unchanged)"),
        "{stdout}"
    );
    let circuits = store().await.circuits(100, 0).await.unwrap();
    let ids: Vec<&str> = circuits.iter().map(|c| c.circuit_id.as_str()).collect();
    assert_eq!(ids, vec!["CIR-1", "XL-1", "XL-2", "XL-3", "XL-4"]);
    assert_eq!(
        circuits[1].provisioned_at.unwrap().to_rfc3339(),
        "2024-03-01T00:00:00+00:00"
    );
    assert_eq!(circuits[3].burst_mbps, Some(12000.0));

    // A row's number is the file's, blank lines and all, also for an unknown account.
    let (code, stdout, stderr) = import_csv(
        "gaps.csv",
        "circuit_id,provisioned_mbps,account\nCIR-5,100,ACME\n,,\n\nCIR-6,100,NOPE\n",
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stdout.contains("row 5, column account") && stdout.contains("NOPE"),
        "{stdout}"
    );

    let (code, stdout, _) = import_csv(
        "good.csv",
        "circuit_id,provisioned_mbps\r\nCIR-7,100\r\nCIR-8,200",
    );
    assert_eq!(code, Some(0));
    assert!(stdout.contains("2 circuits imported (2 new"), "{stdout}");
}

/// The gRPC method: batches over mutual TLS, acknowledged once committed; a bad sample is
/// InvalidArgument naming the item and field, and nothing of its batch is stored.
#[tokio::test]
async fn telemetry_over_grpc() {
    use netwarden_proto::v1::telemetry_service_client::TelemetryServiceClient;
    use netwarden_proto::v1::{TelemetryBatch, TelemetrySample};
    let c = TestCollector::start(Backend::Sqlite).await;
    let files = c.pki.agent("probe-1");
    let mut client = TelemetryServiceClient::new(c.channel(&files).await);
    let now = chrono::Utc::now().timestamp_millis();
    let sample = |id: &str, mbps: f64, ms: i64| TelemetrySample {
        circuit_id: id.into(),
        utilization_mbps: mbps,
        timestamp_ms: ms,
    };
    let ack = client
        .record(TelemetryBatch {
            samples: vec![
                sample("G-1", 10.0, now - 2000),
                sample("G-1", 20.0, now - 1000),
                sample("G-2", 5.0, 0),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.recorded, 3);
    assert_eq!(ack.unknown_circuits, vec!["G-1", "G-2"]);
    let err = client
        .record(TelemetryBatch {
            samples: vec![sample("G-1", 1.0, 0), sample("G-1", -1.0, 0)],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("samples[1].utilization_mbps"),
        "{}",
        err.message()
    );
    let batches = (0..2).map(move |i| TelemetryBatch {
        samples: vec![sample("G-3", f64::from(i), now - 100 + i64::from(i))],
    });
    let mut acks = client
        .stream(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    let mut recorded = 0;
    while let Some(ack) = tokio_stream::StreamExt::next(&mut acks).await {
        recorded += ack.unwrap().recorded;
    }
    assert_eq!(recorded, 2);
    assert_eq!(points(&c, "G-1").await, 2, "nothing of the refused batch");
    assert_eq!(points(&c, "G-3").await, 2);
}

/// Retention deletes samples older than the cutoff, in slices, and nothing newer.
#[tokio::test]
async fn retention_deletes_old_samples_only() {
    use netwarden_collector::telemetry::{retention, TelemetrySample};
    for (store, _guard) in [
        super::support::sqlite_store().await,
        super::support::postgres_store().await,
    ] {
        let now = chrono::Utc::now();
        let samples: Vec<TelemetrySample> = (0..120)
            .map(|d| TelemetrySample {
                circuit_id: "R-1".into(),
                utilization_mbps: 1.0,
                at: now - chrono::Duration::hours(d * 12),
            })
            .collect();
        store.save_telemetry(&samples, now).await.unwrap();
        let deleted = retention::sweep(store.as_ref(), 30, now).await.unwrap();
        assert_eq!(
            deleted, 59,
            "older than 30 days: hours 732..1428 in steps of 12"
        );
        let left = store
            .telemetry(
                "R-1",
                now - chrono::Duration::days(100),
                now + chrono::Duration::seconds(1),
                1000,
            )
            .await
            .unwrap();
        assert_eq!(left.len(), 61);
        assert!(
            left[0].timestamp.timestamp_millis()
                >= (now - chrono::Duration::days(30)).timestamp_millis()
        );
    }
}

/// A connection to a SQLite store's file with its telemetry intake file attached as `intake`.
fn raw_with_intake(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    let intake = netwarden_collector::storage::sqlite_intake_path(path);
    conn.execute("ATTACH DATABASE ?1 AS intake", [intake.to_str().unwrap()])
        .unwrap();
    conn
}

/// SQLite keeps new samples in an unindexed intake and folds them into the indexed table:
/// reads see every sample once, in time order, before, during and after a fold, and the
/// store's own fold thread empties the intake.
#[tokio::test]
async fn sqlite_intake_folds_without_loss_or_duplicates() {
    use netwarden_collector::storage::{SqliteStore, SqliteSync, Store, TelemetryStore};
    use netwarden_collector::telemetry::TelemetrySample;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.db");
    let store = SqliteStore::open(&path, 2, SqliteSync::Full).await.unwrap();
    store.migrate().await.unwrap();
    let now = chrono::Utc::now();
    let sample = |circuit: &str, minutes_ago: i64| TelemetrySample {
        circuit_id: circuit.into(),
        utilization_mbps: minutes_ago as f64,
        at: now - chrono::Duration::minutes(minutes_ago),
    };
    let count = |table: &str| -> i64 {
        raw_with_intake(&path)
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    let read = |limit: u32| {
        store.telemetry(
            "F-1",
            now - chrono::Duration::hours(2),
            now + chrono::Duration::seconds(1),
            limit,
        )
    };
    let minutes = |points: &[netwarden_collector::storage::telemetry::TelemetryPoint]| {
        points
            .iter()
            .map(|p| (now - p.timestamp).num_minutes())
            .collect::<Vec<_>>()
    };

    // Out of order, two circuits, three commits.
    for group in [vec![30, 10], vec![50], vec![20, 40]] {
        let mut samples: Vec<_> = group.iter().map(|m| sample("F-1", *m)).collect();
        samples.push(sample("F-2", group[0]));
        store.save_telemetry(&samples, now).await.unwrap();
    }
    // (The store's own fold may run at any point here: what reads see must not change.)
    assert_eq!(count("intake.telemetry_intake") + count("telemetry"), 8);
    assert_eq!(minutes(&read(100).await.unwrap()), vec![50, 40, 30, 20, 10]);

    assert!(store.fold_telemetry_intake().await.unwrap() <= 8);
    assert_eq!(store.fold_telemetry_intake().await.unwrap(), 0);
    assert_eq!(
        (count("intake.telemetry_intake"), count("telemetry")),
        (0, 8)
    );
    assert_eq!(minutes(&read(100).await.unwrap()), vec![50, 40, 30, 20, 10]);

    // Half folded, half not: one ordered answer, and the limit counts both.
    store
        .save_telemetry(&[sample("F-1", 45), sample("F-1", 5)], now)
        .await
        .unwrap();
    assert_eq!(
        minutes(&read(100).await.unwrap()),
        vec![50, 45, 40, 30, 20, 10, 5]
    );
    assert_eq!(minutes(&read(3).await.unwrap()), vec![50, 45, 40]);

    // The store folds by itself, about once a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while count("intake.telemetry_intake") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the fold thread never emptied the intake"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(count("telemetry"), 10);
    assert_eq!(read(100).await.unwrap().len(), 7);
}

/// A fold cut off between two chunks (the process stopped) resumes where its last chunk
/// committed; meanwhile reads see each sample once, moved or not.
#[tokio::test]
async fn sqlite_fold_resumes_after_a_partial_cycle() {
    use netwarden_collector::storage::{SqliteStore, SqliteSync, Store, TelemetryStore};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resume.db");
    {
        let store = SqliteStore::open(&path, 2, SqliteSync::Full).await.unwrap();
        store.migrate().await.unwrap();
    }
    let now = chrono::Utc::now();
    // What a fold leaves after its first chunk (circuit A) committed: nine intake rows, A's
    // copied, the cycle covering all nine, the circuits before "B" done. Written while no
    // store is open, then reopened without `migrate`, so that no fold thread runs.
    let mut raw = raw_with_intake(&path);
    let tx = raw.transaction().unwrap();
    for circuit in ["A", "B", "C"] {
        for m in 1..=3i64 {
            tx.execute(
                "INSERT INTO intake.telemetry_intake (circuit_id, ts_ms, utilization_mbps, received_ms)
                 VALUES (?1, ?2, ?3, ?2)",
                rusqlite::params![
                    circuit,
                    (now - chrono::Duration::minutes(m)).timestamp_millis(),
                    m as f64
                ],
            )
            .unwrap();
        }
    }
    tx.execute_batch(
        "INSERT INTO telemetry (circuit_id, ts, utilization_mbps, received_at)
           SELECT circuit_id, ts_ms, utilization_mbps, received_ms FROM intake.telemetry_intake
            WHERE circuit_id = 'A';
         UPDATE telemetry_fold SET cycle_upto = (SELECT max(id) FROM intake.telemetry_intake),
                                   done_below = 'B';",
    )
    .unwrap();
    tx.commit().unwrap();
    let store = SqliteStore::open(&path, 2, SqliteSync::Full).await.unwrap();
    let seen = |circuit: &'static str| {
        let store = &store;
        async move {
            store
                .telemetry(circuit, now - chrono::Duration::hours(1), now, 100)
                .await
                .unwrap()
                .len()
        }
    };
    for circuit in ["A", "B", "C"] {
        assert_eq!(seen(circuit).await, 3, "{circuit} mid-cycle");
    }

    // B and C only.
    assert_eq!(store.fold_telemetry_intake().await.unwrap(), 6);
    let per_circuit = |table: &str| -> Vec<(String, i64)> {
        raw.prepare(&format!(
            "SELECT circuit_id, count(*) FROM {table} GROUP BY circuit_id ORDER BY circuit_id"
        ))
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    };
    assert_eq!(
        per_circuit("telemetry"),
        vec![("A".into(), 3), ("B".into(), 3), ("C".into(), 3)]
    );
    assert!(per_circuit("intake.telemetry_intake").is_empty());
    for circuit in ["A", "B", "C"] {
        assert_eq!(seen(circuit).await, 3, "{circuit} after the fold");
    }
    let state: (i64, i64, String) = raw
        .query_row(
            "SELECT folded_upto, cycle_upto, done_below FROM telemetry_fold",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(state, (9, 9, String::new()));
}

/// When the fold falls far behind, or a commit is large, samples go straight into the indexed
/// table, so reads, which scan the intake, stay fast; nothing is lost either way.
#[tokio::test]
async fn sqlite_full_intake_stores_straight_into_the_indexed_table() {
    use netwarden_collector::storage::{SqliteStore, SqliteSync, Store, TelemetryStore};
    use netwarden_collector::telemetry::TelemetrySample;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.db");
    let now = chrono::Utc::now();
    {
        let store = SqliteStore::open(&path, 2, SqliteSync::Full).await.unwrap();
        store.migrate().await.unwrap();
    }
    // A backlog of 100,000 unfolded samples of one circuit, an hour ago and older.
    let raw = raw_with_intake(&path);
    raw.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
         INSERT INTO intake.telemetry_intake (circuit_id, ts_ms, utilization_mbps, received_ms)
           SELECT 'BACKLOG', ?1 - i, 1.0, ?1 FROM n",
        [(now - chrono::Duration::hours(1)).timestamp_millis()],
    )
    .unwrap();
    // Reopened without `migrate`, so no fold thread runs and the backlog stays.
    let store = SqliteStore::open(&path, 2, SqliteSync::Full).await.unwrap();
    let sample = |circuit: &str| TelemetrySample {
        circuit_id: circuit.into(),
        utilization_mbps: 5.0,
        at: now,
    };
    store
        .save_telemetry(&[sample("LATE-1"), sample("LATE-2")], now)
        .await
        .unwrap();
    let count = |sql: &str| -> i64 { raw.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT count(*) FROM intake.telemetry_intake"),
        100_000
    );
    assert_eq!(
        count("SELECT count(*) FROM telemetry WHERE circuit_id LIKE 'LATE-%'"),
        2
    );
    let seen = store
        .telemetry(
            "LATE-1",
            now - chrono::Duration::minutes(1),
            now + chrono::Duration::minutes(1),
            10,
        )
        .await
        .unwrap();
    assert_eq!(seen.len(), 1);
    let backlog = store
        .telemetry("BACKLOG", now - chrono::Duration::hours(2), now, 200_000)
        .await
        .unwrap();
    assert_eq!(backlog.len(), 100_000);

    // Once folded, the intake takes samples again.
    assert_eq!(store.fold_telemetry_intake().await.unwrap(), 100_000);
    store
        .save_telemetry(&[sample("LATE-3")], now)
        .await
        .unwrap();
    assert_eq!(
        count("SELECT count(*) FROM intake.telemetry_intake WHERE circuit_id = 'LATE-3'"),
        1
    );
    // A commit of a thousand samples writes each index page once for many samples anyway: it
    // goes straight into the indexed table.
    let batch: Vec<_> = (0..1_000).map(|i| sample(&format!("BATCH-{i}"))).collect();
    store.save_telemetry(&batch, now).await.unwrap();
    assert_eq!(
        count("SELECT count(*) FROM telemetry WHERE circuit_id LIKE 'BATCH-%'"),
        1_000
    );
}

/// Single-sample commits go on while the intake is folded as fast as it will go: every read
/// sees each sample once, at least those saved before it began and at most those begun.
/// (The intake is a file of its own; a read takes its snapshot before the main file's.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_reads_see_each_sample_once_while_the_intake_is_folded() {
    use netwarden_collector::storage::{SqliteStore, SqliteSync, Store, TelemetryStore};
    use netwarden_collector::telemetry::TelemetrySample;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    const SAMPLES: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("concurrent.db");
    let store = Arc::new(SqliteStore::open(&path, 4, SqliteSync::Full).await.unwrap());
    store.migrate().await.unwrap();
    let now = chrono::Utc::now();
    let (begun, saved, done) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let writing = {
        let (store, begun, saved, done) =
            (store.clone(), begun.clone(), saved.clone(), done.clone());
        tokio::spawn(async move {
            for i in 0..SAMPLES {
                let sample = TelemetrySample {
                    circuit_id: "S-1".into(),
                    utilization_mbps: i as f64,
                    at: now - chrono::Duration::milliseconds(i as i64),
                };
                begun.fetch_add(1, Ordering::SeqCst);
                store.save_telemetry(&[sample], now).await.unwrap();
                saved.fetch_add(1, Ordering::SeqCst);
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let folding = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let mut moved = 0;
            while !done.load(Ordering::SeqCst) {
                moved += store.fold_telemetry_intake().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            moved
        })
    };
    let read = || {
        store.telemetry(
            "S-1",
            now - chrono::Duration::hours(1),
            now + chrono::Duration::seconds(1),
            1_000_000,
        )
    };
    let mut reads = 0;
    while !done.load(Ordering::SeqCst) {
        let at_least = saved.load(Ordering::SeqCst);
        let seen = read().await.unwrap().len();
        let at_most = begun.load(Ordering::SeqCst);
        assert!(
            at_least <= seen && seen <= at_most,
            "read {seen} samples, with {at_least} saved before the read and {at_most} begun after it"
        );
        reads += 1;
    }
    writing.await.unwrap();
    let moved = folding.await.unwrap();
    assert!(reads > 10, "only {reads} reads ran beside the writes");
    assert!(moved > 0, "no fold ran beside the writes");
    store.fold_telemetry_intake().await.unwrap();
    let all = read().await.unwrap();
    assert_eq!(all.len(), SAMPLES);
    let mut values: Vec<i64> = all.iter().map(|p| p.utilization_mbps as i64).collect();
    values.sort_unstable();
    assert_eq!(values, (0..SAMPLES as i64).collect::<Vec<_>>());
}

/// The fold's progress counts ids of one intake file. A main file whose intake file went
/// missing (restored alone, say), or found beside another database's, starts the count over:
/// no sample in the intake is hidden as already moved.
#[tokio::test]
async fn sqlite_a_missing_or_foreign_intake_file_resets_the_fold_progress() {
    use netwarden_collector::storage::{SqliteStore, SqliteSync, Store, TelemetryStore};
    use netwarden_collector::telemetry::TelemetrySample;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("paired.db");
    let intake = netwarden_collector::storage::sqlite_intake_path(&path);
    assert_eq!(intake, dir.path().join("paired.intake.db"));
    let now = chrono::Utc::now();
    let sample = |circuit: &str, minutes_ago: i64| TelemetrySample {
        circuit_id: circuit.into(),
        utilization_mbps: 1.0,
        at: now - chrono::Duration::minutes(minutes_ago),
    };
    async fn seen(store: &SqliteStore, circuit: &str, now: chrono::DateTime<chrono::Utc>) -> usize {
        let from = now - chrono::Duration::hours(1);
        store
            .telemetry(circuit, from, now, 100)
            .await
            .unwrap()
            .len()
    }
    let folded_upto = |path: &std::path::Path| -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row("SELECT folded_upto FROM telemetry_fold", [], |r| r.get(0))
            .unwrap()
    };
    // The store's threads let go of its files within a second or two of its drop.
    let settle = || tokio::time::sleep(std::time::Duration::from_secs(2));
    {
        let store = SqliteStore::open(&path, 2, SqliteSync::Full).await.unwrap();
        store.migrate().await.unwrap();
        let first: Vec<_> = (1..=5).map(|m| sample("P-1", m)).collect();
        store.save_telemetry(&first, now).await.unwrap();
        store.fold_telemetry_intake().await.unwrap();
    }
    assert_eq!(folded_upto(&path), 5);
    settle().await;

    // The intake file is lost: new rows start at id 1 again.
    for suffix in ["", "-wal", "-shm"] {
        let mut file = intake.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
    {
        let store = SqliteStore::open(&path, 2, SqliteSync::Full).await.unwrap();
        store.migrate().await.unwrap();
        assert_eq!(folded_upto(&path), 0);
        let next: Vec<_> = (6..=8).map(|m| sample("P-1", m)).collect();
        store.save_telemetry(&next, now).await.unwrap();
        assert_eq!(seen(&store, "P-1", now).await, 8);
        store.fold_telemetry_intake().await.unwrap();
        assert_eq!(seen(&store, "P-1", now).await, 8);
    }
    settle().await;

    // An intake file of another database, holding rows with ids the fold has passed here.
    assert_eq!(folded_upto(&path), 3);
    let raw = raw_with_intake(&path);
    raw.execute_batch(&format!(
        "INSERT INTO intake.telemetry_intake (id, circuit_id, ts_ms, utilization_mbps, received_ms)
           VALUES (1, 'P-2', {t}, 1.0, {t}), (2, 'P-2', {t} - 1, 1.0, {t});
         UPDATE intake.intake_pairing SET token = 'another database';",
        t = (now - chrono::Duration::minutes(1)).timestamp_millis()
    ))
    .unwrap();
    drop(raw);
    let store = SqliteStore::open(&path, 2, SqliteSync::Full).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(seen(&store, "P-2", now).await, 2);
    store.fold_telemetry_intake().await.unwrap();
    assert_eq!(seen(&store, "P-2", now).await, 2);
    assert_eq!(seen(&store, "P-1", now).await, 8);
}

/// A database from before the intake had a file of its own: the upgrade moves the samples
/// its fold had not moved yet into the indexed table, each once.
#[tokio::test]
async fn sqlite_upgrading_moves_the_old_intake_into_the_indexed_table() {
    use netwarden_collector::storage::{SqliteStore, SqliteSync, Store, TelemetryStore};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upgrade.db");
    {
        let store = SqliteStore::open(&path, 2, SqliteSync::Full).await.unwrap();
        store.migrate().await.unwrap();
    }
    let now = chrono::Utc::now();
    let t = |i: i64| (now - chrono::Duration::minutes(i)).timestamp_millis();
    // The layout of migration 0012a: five intake rows, the first two moved.
    crate::support::sqlite_names_before_0017a(&path);
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch(&format!(
        "CREATE TABLE telemetry_intake (
             id INTEGER PRIMARY KEY AUTOINCREMENT, circuit_id TEXT NOT NULL,
             ts_ms INTEGER NOT NULL, utilization_mbps REAL NOT NULL, received_ms INTEGER NOT NULL);
         INSERT INTO telemetry_intake (circuit_id, ts_ms, utilization_mbps, received_ms) VALUES
             ('U-1', {}, 1, 0), ('U-1', {}, 2, 0), ('U-1', {}, 3, 0), ('U-1', {}, 4, 0),
             ('U-1', {}, 5, 0);
         INSERT INTO telemetry (circuit_id, ts_ms, utilization_mbps, received_ms)
             SELECT circuit_id, ts_ms, utilization_mbps, received_ms FROM telemetry_intake
              WHERE id <= 2;
         UPDATE telemetry_fold SET folded_upto = 2, cycle_upto = 2, done_below = '';
         ALTER TABLE telemetry_fold DROP COLUMN intake_token;
         DELETE FROM schema_migrations WHERE version = '0012b_intake_file';",
        t(1),
        t(2),
        t(3),
        t(4),
        t(5)
    ))
    .unwrap();
    drop(raw);
    let store = SqliteStore::open(&path, 2, SqliteSync::Full).await.unwrap();
    assert_eq!(
        store.migrate().await.unwrap(),
        vec!["0012b_intake_file", "0017a_column_names_as_postgres"]
    );
    let points = store
        .telemetry("U-1", now - chrono::Duration::hours(1), now, 100)
        .await
        .unwrap();
    let values: Vec<f64> = points.iter().map(|p| p.utilization_mbps).collect();
    assert_eq!(values, vec![5.0, 4.0, 3.0, 2.0, 1.0]);
    let tables: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'telemetry_intake'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
}

/// After a power cut under `synchronous = normal`, the intake can lose commits the fold had
/// already moved, and its id counter with them. Ids the fold's progress has passed are never
/// handed out again: a new sample is not hidden as moved.
#[tokio::test]
async fn sqlite_intake_ids_stay_ahead_of_the_fold() {
    use netwarden_collector::storage::{SqliteStore, SqliteSync, Store, TelemetryStore};
    use netwarden_collector::telemetry::TelemetrySample;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ids.db");
    let now = chrono::Utc::now();
    let sample = |minutes_ago: i64| TelemetrySample {
        circuit_id: "I-1".into(),
        utilization_mbps: minutes_ago as f64,
        at: now - chrono::Duration::minutes(minutes_ago),
    };
    {
        let store = SqliteStore::open(&path, 2, SqliteSync::Normal)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let first: Vec<_> = (1..=5).map(sample).collect();
        store.save_telemetry(&first, now).await.unwrap();
        assert_eq!(store.fold_telemetry_intake().await.unwrap(), 5);
    }
    // What the lost commits leave: the counter back at 2, the moved rows gone.
    let raw = raw_with_intake(&path);
    raw.execute(
        "UPDATE intake.sqlite_sequence SET seq = 2 WHERE name = 'telemetry_intake'",
        [],
    )
    .unwrap();
    drop(raw);
    let store = SqliteStore::open(&path, 2, SqliteSync::Normal)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.save_telemetry(&[sample(6)], now).await.unwrap();
    let points = store
        .telemetry("I-1", now - chrono::Duration::hours(1), now, 100)
        .await
        .unwrap();
    assert_eq!(points.len(), 6);
}

/// Two stores on one file (two processes: the server and a CLI command, each folding) fold
/// beside single-sample commits and each other: every sample ends up in the indexed table
/// once. Their folds meet only through the progress row's compare-and-set.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_two_stores_folding_one_file_lose_and_double_nothing() {
    use netwarden_collector::storage::{SqliteStore, SqliteSync, Store, TelemetryStore};
    use netwarden_collector::telemetry::TelemetrySample;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    // Commits of 900 (under the 1,000 that go straight into the indexed table) over 1,500
    // circuits: a cycle that finds two of them moves in two chunks, and can be resumed.
    const BATCH: usize = 900;
    const SAMPLES: usize = 30 * BATCH;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.db");
    let first = Arc::new(SqliteStore::open(&path, 2, SqliteSync::Full).await.unwrap());
    first.migrate().await.unwrap();
    let second = Arc::new(SqliteStore::open(&path, 2, SqliteSync::Full).await.unwrap());
    second.migrate().await.unwrap();
    let now = chrono::Utc::now();
    let done = Arc::new(AtomicBool::new(false));
    let folders: Vec<_> = [first.clone(), second.clone()]
        .into_iter()
        .map(|store| {
            let done = done.clone();
            tokio::spawn(async move {
                while !done.load(Ordering::SeqCst) {
                    store.fold_telemetry_intake().await.unwrap();
                }
            })
        })
        .collect();
    for batch in 0..SAMPLES / BATCH {
        let samples: Vec<_> = (0..BATCH)
            .map(|k| {
                let i = batch * BATCH + k;
                TelemetrySample {
                    circuit_id: format!("T-{:04}", i % 1_500),
                    utilization_mbps: i as f64,
                    at: now - chrono::Duration::milliseconds(i as i64),
                }
            })
            .collect();
        first.save_telemetry(&samples, now).await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    for folder in folders {
        folder.await.unwrap();
    }
    first.fold_telemetry_intake().await.unwrap();
    let raw = raw_with_intake(&path);
    let count = |sql: &str| -> i64 { raw.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM intake.telemetry_intake"), 0);
    assert_eq!(count("SELECT count(*) FROM telemetry"), SAMPLES as i64);
    assert_eq!(
        count("SELECT count(DISTINCT utilization_mbps) FROM telemetry"),
        SAMPLES as i64
    );
}

crate::store::store_suite!(backend:
    an_open_maxout_goes_on_across_a_restart,
    scenario,
);

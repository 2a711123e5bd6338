//! The HTTP API over a collector that has ingested a little data.

use super::support::{exchange, probe_record, wire_batch, Backend, TestCollector};
use serde_json::Value;

async fn get(collector: &TestCollector, path: &str) -> (u16, Value) {
    let response = reqwest::get(collector.api(path)).await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn api_serves_what_was_ingested(backend: Backend) {
    let collector = TestCollector::start(backend).await;
    let mut client = collector
        .client(&collector.pki.agent("site-7"))
        .await
        .unwrap();
    let t0 = chrono::Utc::now().timestamp_millis() - 60_000;
    let batches = vec![
        wire_batch(
            1,
            vec![
                probe_record(1, t0, "10.0.0.2", 4),
                probe_record(2, t0, "10.0.0.3", 0),
            ],
        ),
        wire_batch(2, vec![probe_record(3, t0 + 30_000, "10.0.0.2", 3)]),
    ];
    let (acks, error) = exchange(&mut client, batches).await;
    assert!(error.is_none() && acks.len() == 2);

    let (status, health) = get(&collector, "/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");

    let (status, agents) = get(&collector, "/api/agents").await;
    assert_eq!(status, 200);
    assert_eq!(agents[0]["id"], "site-7");
    assert_eq!(agents[0]["results_received"], 3);
    assert_eq!(
        agents[0]["buffer_backlog"], 1,
        "backlog as the last batch reported it"
    );
    assert!(agents[0]["last_seen"].as_str().unwrap().ends_with('Z'));

    let (_, devices) = get(&collector, "/api/devices").await;
    let devices = devices.as_array().unwrap();
    assert_eq!(devices.len(), 2);
    let d2 = devices.iter().find(|d| d["address"] == "10.0.0.2").unwrap();
    assert_eq!(d2["status"], "degraded");
    let (_, offline) = get(&collector, "/api/devices?status=offline").await;
    assert_eq!(offline.as_array().unwrap().len(), 1);
    assert_eq!(offline[0]["address"], "10.0.0.3");

    let id = d2["id"].as_i64().unwrap();
    let (status, device) = get(&collector, &format!("/api/devices/{id}")).await;
    assert_eq!(
        (status, device["address"].as_str()),
        (200, Some("10.0.0.2"))
    );
    let (status, history) = get(&collector, &format!("/api/devices/{id}/history")).await;
    assert_eq!(status, 200);
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["loss_pct"], 25.0);
    assert_eq!(history[0]["rtts_ms"].as_array().unwrap().len(), 4);
    // A known device with nothing in the window is an empty list; an unknown one is 404, at
    // every resolution.
    let quiet = "from=2001-01-01T00:00:00Z&to=2001-01-02T00:00:00Z";
    for resolution in ["raw", "5m", "1h"] {
        let (status, points) = get(
            &collector,
            &format!("/api/devices/{id}/history?{quiet}&resolution={resolution}"),
        )
        .await;
        assert_eq!(
            (status, points),
            (200, serde_json::json!([])),
            "{resolution}"
        );
        let (status, _) = get(
            &collector,
            &format!("/api/devices/999999/history?resolution={resolution}"),
        )
        .await;
        assert_eq!(status, 404, "{resolution}");
    }

    // An admin says what a device is; the list filters by it (`unassigned`: no type yet).
    let client = reqwest::Client::new();
    let typed = client
        .put(collector.api(&format!("/api/devices/{id}/type")))
        .json(&serde_json::json!({"type": "router"}))
        .send()
        .await
        .unwrap();
    assert_eq!(typed.status(), 200);
    assert_eq!(typed.json::<Value>().await.unwrap()["type"], "router");
    let (_, routers) = get(&collector, "/api/devices?type=router").await;
    assert_eq!(routers.as_array().unwrap().len(), 1);
    assert_eq!(routers[0]["id"], id);
    let (_, rest) = get(&collector, "/api/devices?type=unassigned&status=offline").await;
    assert_eq!(rest.as_array().unwrap().len(), 1);
    assert_eq!(rest[0]["type"], Value::Null);
    let (status, error) = get(&collector, "/api/devices?type=toaster").await;
    assert_eq!(status, 400);
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("type: \"toaster\" is not one of router"));
    for (path, body, expected) in [
        (
            format!("/api/devices/{id}/type"),
            r#"{"type":"toaster"}"#,
            400,
        ),
        (
            "/api/devices/999999/type".to_string(),
            r#"{"type":"switch"}"#,
            404,
        ),
        (
            format!("/api/devices/{id}/type"),
            r#"{"kind":"switch"}"#,
            400,
        ),
        // Clearing a type must be said (`null`), not implied by a missing field.
        (format!("/api/devices/{id}/type"), r#"{}"#, 400),
    ] {
        let response = client
            .put(collector.api(&path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{path} {body}");
    }

    let (status, audit) = get(&collector, "/api/agents/site-7/audit").await;
    assert_eq!((status, audit["batches"].as_i64()), (200, Some(2)));

    let text = collector.metrics().await;
    assert!(text.contains("netwarden_ingest_records_total 3"), "{text}");
    assert!(
        text.contains("netwarden_agent_buffer_backlog{agent=\"site-7\"} 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_are_json_with_the_right_status() {
    let collector = TestCollector::start(Backend::Sqlite).await;
    let cases = [
        ("/api/devices/999", 404, "not_found", "device 999"),
        ("/api/devices/abc", 400, "invalid_argument", "id"),
        ("/api/devices/999/history", 404, "not_found", "device 999"),
        (
            "/api/devices?status=sideways",
            400,
            "invalid_argument",
            "status",
        ),
        ("/api/devices?limit=0", 400, "invalid_argument", "limit"),
        ("/api/devices?limit=5000", 400, "invalid_argument", "limit"),
        ("/api/devices?colour=red", 400, "invalid_argument", "colour"),
        (
            "/api/devices/1/history?from=yesterday",
            400,
            "invalid_argument",
            "from",
        ),
        (
            "/api/devices/1/history?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            400,
            "invalid_argument",
            "from",
        ),
        (
            "/api/agents/bad%20name/audit",
            400,
            "invalid_argument",
            "agent id",
        ),
        ("/api/nothing-here", 404, "not_found", "endpoint"),
        // A name that is no kind matches nothing, but a bad state is still refused.
        (
            "/api/anomalies?kind=nonsense&state=bogus",
            400,
            "invalid_argument",
            "state",
        ),
    ];
    for (path, want_status, want_code, mentions) in cases {
        let (status, body) = get(&collector, path).await;
        assert_eq!(status, want_status, "{path}: {body}");
        assert_eq!(body["error"]["code"], want_code, "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(mentions),
            "{path}: {message:?} should mention {mentions:?}"
        );
    }
    let (status, body) = get(&collector, "/api/anomalies?kind=nonsense").await;
    assert_eq!((status, body), (200, serde_json::json!([])));
}

crate::store::store_suite!(backend:
    api_serves_what_was_ingested,
);

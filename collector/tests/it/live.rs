//! The overview endpoints and the live WebSocket over a collector that has ingested probe
//! rounds: status counts, sites, a device's uptime and ports, and `/ws` events (device status
//! changes, an anomaly opening, then its acknowledgement by an operator token) with filters.

use super::support::{exchange, probe_record, wire_batch, Backend, TestCollector};
use futures::{SinkExt, StreamExt};
use netwarden_collector::auth::Role;
use netwarden_collector::rest::tokens::create_token;
use serde_json::Value;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn get(c: &TestCollector, token: &str, path: &str) -> Value {
    let response = reqwest::Client::new()
        .get(c.api(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// The next text message, as JSON (fails after 10 s).
async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("no WebSocket message within 10 s")
            .expect("the WebSocket closed")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Messages until one matches, failing on any `lagged`.
async fn until(socket: &mut Socket, what: impl Fn(&Value) -> bool) -> Value {
    loop {
        let message = next(socket).await;
        assert_ne!(message["type"], "lagged");
        if what(&message) {
            return message;
        }
    }
}

async fn live_updates_and_overview(backend: Backend) {
    let c = TestCollector::start_with(backend, |c| {
        c.auth.anonymous_role = None;
        // The shipped retention, so uptime reads 5-minute rollups before raw rounds' 7 days.
        c.retention = Default::default();
    })
    .await;
    let (wall, viewer) = create_token(c.store.as_ref(), "wall", Role::Viewer)
        .await
        .unwrap();
    let (_, operator) = create_token(c.store.as_ref(), "noc-1", Role::Operator)
        .await
        .unwrap();
    let ws = |query: &str| format!("ws://{}/ws?{query}", c.http);

    // Without a token the upgrade is refused; an unknown kind is named.
    let refused = tokio_tungstenite::connect_async(ws("kinds=anomaly")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected 401, got {other:?}"),
    }
    match tokio_tungstenite::connect_async(ws(&format!("token={viewer}&kinds=weather"))).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400)
        }
        other => panic!("expected 400, got {other:?}"),
    }

    let (mut socket, _) = tokio_tungstenite::connect_async(ws(&format!(
        "kinds=device_status,anomaly&token={viewer}"
    )))
    .await
    .unwrap();
    let hello = next(&mut socket).await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(
        hello["kinds"],
        serde_json::json!(["anomaly", "device_status"])
    );

    let mut agent = c.client(&c.pki.agent("site-7")).await.unwrap();
    let t0 = chrono::Utc::now().timestamp_millis() - 60_000;
    let (acks, error) = exchange(
        &mut agent,
        vec![wire_batch(
            1,
            vec![
                probe_record(1, t0, "10.0.0.2", 4),
                probe_record(2, t0, "10.0.0.3", 0),
            ],
        )],
    )
    .await;
    assert!(error.is_none() && acks.len() == 1);
    for address in ["10.0.0.2", "10.0.0.3"] {
        let event = until(&mut socket, |m| {
            m["type"] == "device_status" && m["address"] == address
        })
        .await;
        assert_eq!(event["agent"], "site-7");
        assert!(event["previous"].is_null(), "first seen: {event}");
    }

    // A second round: .2 degrades (a change), .3 stays offline (no change, but the anomaly opens).
    let (acks, error) = exchange(
        &mut agent,
        vec![wire_batch(
            2,
            vec![
                probe_record(3, t0 + 30_000, "10.0.0.2", 3),
                probe_record(4, t0 + 30_000, "10.0.0.3", 0),
            ],
        )],
    )
    .await;
    assert!(error.is_none() && acks.len() == 1);
    let change = until(&mut socket, |m| m["type"] == "device_status").await;
    assert_eq!(
        (&change["address"], &change["status"], &change["previous"]),
        (&"10.0.0.2".into(), &"degraded".into(), &"online".into())
    );
    let opened = until(&mut socket, |m| {
        m["type"] == "anomaly" && m["anomaly"]["kind"] == "device_offline"
    })
    .await;
    assert_eq!(opened["action"], "opened");
    assert_eq!(opened["anomaly"]["subject"], "site-7/10.0.0.3");
    let id = opened["anomaly"]["id"].as_i64().unwrap();
    let severity = opened["anomaly"]["severity"].as_str().unwrap().to_string();

    // An operator acknowledges it; the event names the token as who did it.
    let response = reqwest::Client::new()
        .post(c.api(&format!("/api/anomalies/{id}/acknowledge")))
        .bearer_auth(&operator)
        .json(&serde_json::json!({"note": "on it"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let acked = until(&mut socket, |m| m["type"] == "anomaly").await;
    assert_eq!(acked["action"], "acknowledged");
    assert_eq!(acked["anomaly"]["acknowledged_by"], "noc-1");
    assert_eq!(acked["anomaly"]["state"], "acknowledged");

    // The filter can change after connecting; a bad one gets an error message, not a close.
    socket
        .send(Message::Text("{\"kinds\": [\"alert\"]}".into()))
        .await
        .unwrap();
    let hello = until(&mut socket, |m| m["type"] == "hello").await;
    assert_eq!(hello["kinds"], serde_json::json!(["alert"]));
    socket
        .send(Message::Text("{\"kinds\": [\"weather\"]}".into()))
        .await
        .unwrap();
    let error = until(&mut socket, |m| m["type"] == "error").await;
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("weather"));

    // The overview agrees with what was ingested.
    let stats = get(&c, &viewer, "/api/statistics").await;
    assert_eq!(stats["devices_total"], 2);
    assert_eq!(stats["devices_by_status"]["degraded"], 1);
    assert_eq!(stats["devices_by_status"]["offline"], 1);
    assert_eq!(stats["devices_by_status"]["online"], 0);
    assert_eq!(stats["agents"], 1);
    assert_eq!(stats["anomalies_by_severity"][&severity], 1, "{stats}");
    assert_eq!(stats["anomalies_unacknowledged"], 0, "it was acknowledged");
    let sites = get(&c, &viewer, "/api/sites").await;
    assert_eq!(sites.as_array().unwrap().len(), 1);
    assert_eq!(sites[0]["id"], "site-7");
    assert_eq!(sites[0]["devices_total"], 2);
    assert_eq!(sites[0]["anomalies_by_severity"][&severity], 1);

    let devices = get(&c, &viewer, "/api/devices").await;
    // 10.0.0.2 answered both rounds, but lost one probe of eight: availability weighs loss.
    for (address, uptime) in [("10.0.0.2", 87.5), ("10.0.0.3", 0.0)] {
        let id = devices
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["address"] == address)
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        let detail = get(&c, &viewer, &format!("/api/devices/{id}")).await;
        assert_eq!(detail["uptime_7d_pct"], uptime, "{detail}");
        assert_eq!(detail["uptime_30d_pct"], uptime);
        assert_eq!(detail["probe_rounds_30d"], 2);
        assert!(detail["open_ports"].is_null());
        let raw = get(&c, &viewer, &format!("/api/devices/{id}/history")).await;
        assert_eq!(raw.as_array().unwrap().len(), 2);
        let response = reqwest::Client::new()
            .get(c.api(&format!("/api/devices/{id}/history?resolution=2m")))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("raw, 5m, 1h"));
    }
    // Rollups run every 30 s; the minute-old rounds' 5-minute bucket appears once it closes.
    let id = devices[0]["id"].as_i64().unwrap();
    // Revoking the token closes the open socket (checked every 5 s; the cache holds 5 s more).
    c.store
        .revoke_token(wall.id, chrono::Utc::now())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("the socket of a revoked token stayed open for 20 s");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1008);
                assert!(frame.reason.contains("revoked"));
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    let (_, viewer) = create_token(c.store.as_ref(), "wall-2", Role::Viewer)
        .await
        .unwrap();
    let rolled = get(
        &c,
        &viewer,
        &format!("/api/devices/{id}/history?resolution=5m&from=2020-01-01T00:00:00Z"),
    )
    .await;
    assert!(rolled.is_array());
}

crate::store::store_suite!(backend:
    live_updates_and_overview,
);

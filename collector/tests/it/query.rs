//! `netwarden.v1.QueryService` over TLS without a client certificate: tokens and roles as over
//! REST, devices, history (raw and rollups), anomalies, acknowledge/resolve, the live event
//! stream, and server reflection listing the service.

use super::support::{exchange, probe_record, wire_batch, Backend, TestCollector};
use netwarden_collector::auth::Role;
use netwarden_collector::rest::tokens::create_token;
use netwarden_proto::v1;
use netwarden_proto::v1::query_service_client::QueryServiceClient;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::Code;

async fn channel(c: &TestCollector) -> Channel {
    let config = netwarden_shared::tls::client_config_without_client_auth(&c.pki.ca()).unwrap();
    netwarden_shared::tls::connect_channel(
        &format!("https://{}", c.query.expect("the query port is served")),
        Some("localhost"),
        Arc::new(config),
        Duration::from_secs(5),
    )
    .await
    .unwrap()
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

async fn the_query_service_serves_operators(backend: Backend) {
    let c = TestCollector::start_with(backend, |c| c.auth.anonymous_role = None).await;
    let (wall, viewer) = create_token(c.store.as_ref(), "wall", Role::Viewer)
        .await
        .unwrap();
    let (_, operator) = create_token(c.store.as_ref(), "noc-2", Role::Operator)
        .await
        .unwrap();
    let mut query = QueryServiceClient::new(channel(&c).await);

    // Tokens first: none, then a wrong one.
    let none = query
        .list_devices(v1::ListDevicesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(none.code(), Code::Unauthenticated, "{none:?}");
    let bad = query
        .list_devices(with_token(v1::ListDevicesRequest::default(), "nwt_nope"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::Unauthenticated);

    // A live stream, opened before anything happens.
    let mut events = query
        .watch_events(with_token(
            v1::WatchEventsRequest {
                kinds: vec!["anomaly".into()],
            },
            &viewer,
        ))
        .await
        .unwrap()
        .into_inner();
    let weather = query
        .watch_events(with_token(
            v1::WatchEventsRequest {
                kinds: vec!["weather".into()],
            },
            &viewer,
        ))
        .await
        .unwrap_err();
    assert_eq!(weather.code(), Code::InvalidArgument);

    let mut agent = c.client(&c.pki.agent("site-9")).await.unwrap();
    let t0 = chrono::Utc::now().timestamp_millis() - 60_000;
    let (_, error) = exchange(
        &mut agent,
        vec![
            wire_batch(
                1,
                vec![
                    probe_record(1, t0, "10.1.0.1", 4),
                    probe_record(2, t0, "10.1.0.2", 0),
                ],
            ),
            wire_batch(2, vec![probe_record(3, t0 + 30_000, "10.1.0.2", 0)]),
        ],
    )
    .await;
    assert!(error.is_none());

    let devices = query
        .list_devices(with_token(
            v1::ListDevicesRequest {
                status: "offline".into(),
                ..Default::default()
            },
            &viewer,
        ))
        .await
        .unwrap()
        .into_inner()
        .devices;
    assert_eq!(devices.len(), 1);
    assert_eq!(
        (devices[0].address.as_str(), devices[0].agent_id.as_str()),
        ("10.1.0.2", "site-9")
    );
    let id = devices[0].id;
    let device = query
        .get_device(with_token(v1::GetDeviceRequest { id }, &viewer))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(device.status, "offline");
    assert_eq!(device.last_loss_pct, Some(100.0));
    let missing = query
        .get_device(with_token(v1::GetDeviceRequest { id: 999_999 }, &viewer))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // The type filter, as REST has it: a type, `unassigned`, or an error naming the field.
    c.store.set_device_type(id, Some("server")).await.unwrap();
    let typed = |t: &str| {
        with_token(
            v1::ListDevicesRequest {
                r#type: t.into(),
                ..Default::default()
            },
            &viewer,
        )
    };
    let servers = query
        .list_devices(typed("server"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(servers.devices.len(), 1);
    assert_eq!(servers.devices[0].r#type, "server");
    let unassigned = query.list_devices(typed("unassigned")).await.unwrap();
    assert!(unassigned.into_inner().devices.iter().all(|d| d.id != id));
    let wrong = query.list_devices(typed("toaster")).await.unwrap_err();
    assert_eq!(wrong.code(), Code::InvalidArgument);
    assert!(wrong.message().starts_with("type: "), "{}", wrong.message());

    let history = query
        .device_history(with_token(
            v1::DeviceHistoryRequest {
                device_id: id,
                ..Default::default()
            },
            &viewer,
        ))
        .await
        .unwrap()
        .into_inner()
        .points;
    assert_eq!(history.len(), 2);
    assert!(history
        .iter()
        .all(|p| p.rounds == 1 && p.received == 0 && p.status == "offline"));
    let bad = query
        .device_history(with_token(
            v1::DeviceHistoryRequest {
                device_id: id,
                resolution: "2m".into(),
                ..Default::default()
            },
            &viewer,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("raw, 5m, 1h"), "{}", bad.message());

    // The anomaly arrives on the stream, and in the list.
    let opened = tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .expect("no live event in 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(opened.r#type, "anomaly");
    let json: serde_json::Value = serde_json::from_str(&opened.json).unwrap();
    assert_eq!(json["action"], "opened");
    let anomaly_id = json["anomaly"]["id"].as_i64().unwrap();
    let listed = query
        .list_anomalies(with_token(
            v1::ListAnomaliesRequest {
                state: "open".into(),
                ..Default::default()
            },
            &viewer,
        ))
        .await
        .unwrap()
        .into_inner()
        .anomalies;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, anomaly_id);
    assert_eq!(listed[0].kind, "device_offline");

    // A viewer may not act; an operator may, and is named.
    let denied = query
        .acknowledge_anomaly(with_token(
            v1::AnomalyActionRequest {
                id: anomaly_id,
                note: String::new(),
            },
            &viewer,
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let acked = query
        .acknowledge_anomaly(with_token(
            v1::AnomalyActionRequest {
                id: anomaly_id,
                note: "looking".into(),
            },
            &operator,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (acked.state.as_str(), acked.acknowledged_by.as_str()),
        ("acknowledged", "noc-2")
    );
    let event = tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(event.json.contains("\"acknowledged\""), "{}", event.json);
    let resolved = query
        .resolve_anomaly(with_token(
            v1::AnomalyActionRequest {
                id: anomaly_id,
                note: "replaced the switch".into(),
            },
            &operator,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (resolved.state.as_str(), resolved.resolved_by.as_str()),
        ("resolved", "noc-2")
    );

    // Speed tests, as REST serves them: by agent and time window, newest first.
    let speed = |id: u64, ms: i64, mbps: f64, error: &str| v1::Record {
        record_id: id,
        observed_at_unix_ms: ms,
        kind: Some(v1::record::Kind::SpeedTest(v1::SpeedTest {
            url: "http://10.1.0.9:8000/blob.bin".into(),
            direction: v1::SpeedDirection::Download as i32,
            bytes: 5_000_000,
            duration_us: 1_000_000,
            mbps,
            error: error.into(),
        })),
    };
    let now = chrono::Utc::now().timestamp_millis();
    let (_, error) = exchange(
        &mut agent,
        vec![wire_batch(
            3,
            vec![
                speed(10, now - 20_000, 40.0, ""),
                speed(11, now - 10_000, 0.0, "connection refused"),
            ],
        )],
    )
    .await;
    assert!(error.is_none(), "{error:?}");
    let tests = query
        .list_speed_tests(with_token(
            v1::ListSpeedTestsRequest {
                agent_id: "site-9".into(),
                ..Default::default()
            },
            &operator,
        ))
        .await
        .unwrap()
        .into_inner()
        .tests;
    assert_eq!(tests.len(), 2, "{tests:?}");
    assert_eq!(tests[0].error, "connection refused", "newest first");
    assert_eq!(
        (tests[1].mbps, tests[1].bytes, tests[1].url.as_str()),
        (40.0, 5_000_000, "http://10.1.0.9:8000/blob.bin")
    );
    let other = query
        .list_speed_tests(with_token(
            v1::ListSpeedTestsRequest {
                agent_id: "site-1".into(),
                ..Default::default()
            },
            &operator,
        ))
        .await
        .unwrap()
        .into_inner()
        .tests;
    assert!(other.is_empty());
    let backwards = query
        .list_speed_tests(with_token(
            v1::ListSpeedTestsRequest {
                from_ms: now,
                to_ms: now - 60_000,
                ..Default::default()
            },
            &operator,
        ))
        .await
        .unwrap_err();
    assert_eq!(backwards.code(), Code::InvalidArgument, "{backwards:?}");

    // Revoking the token ends the live stream with UNAUTHENTICATED.
    c.store
        .revoke_token(wall.id, chrono::Utc::now())
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stream of a revoked token stayed open for 20 s");
    assert_eq!(ended.unwrap_err().code(), Code::Unauthenticated);

    // Reflection names the service, so grpcurl and friends can discover it.
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut reflection = ServerReflectionClient::new(channel(&c).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"netwarden.v1.QueryService".to_string()),
        "{names:?}"
    );
}

/// The query port does not speak plaintext and asks no client certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_port_needs_tls() {
    let c = TestCollector::start(Backend::Sqlite).await;
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{}", c.query.unwrap()))
        .unwrap()
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .await;
    let refused = match plain {
        Err(_) => true,
        Ok(channel) => QueryServiceClient::new(channel)
            .list_devices(v1::ListDevicesRequest::default())
            .await
            .is_err(),
    };
    assert!(refused, "plaintext gRPC must not be answered");
}

crate::store::store_suite!(backend:
    the_query_service_serves_operators,
);

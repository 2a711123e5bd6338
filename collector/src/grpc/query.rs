//! `netwarden.v1.QueryService`: the operator API over gRPC, with the REST API's rules (the same
//! token check, limits and error codes), on its own TLS port where operators need no client
//! certificate (`[grpc] query_listen`). Server reflection is served beside it.

use crate::alert::engine::Engine;
use crate::auth::guard::Caller;
use crate::auth::{Guard, Role};
use crate::domain::alerting::{Anomaly, AnomalyKind, AnomalyQuery, AnomalyState, Severity};
use crate::error::ApiError;
use crate::events::Event;
use crate::grpc::incoming::TlsConnection;
use crate::rest::alerts::parse;
use crate::rest::{MAX_HISTORY, MAX_PAGE};
use crate::storage::rollup::RollupRow;
use crate::storage::{DeviceQuery, DeviceRow, HistoryQuery, ProbeSample, Store};
use chrono::{DateTime, Duration, Utc};
use netwarden_proto::v1;
use netwarden_shared::DeviceStatus;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// Longest acknowledge or resolve note kept (as over REST).
const MAX_NOTE: usize = 2000;

pub struct Query {
    store: Arc<dyn Store>,
    engine: Arc<Engine>,
    guard: Arc<Guard>,
}

impl Query {
    pub fn new(store: Arc<dyn Store>, engine: Arc<Engine>, guard: Arc<Guard>) -> Self {
        Query {
            store,
            engine,
            guard,
        }
    }

    async fn caller<T>(&self, request: &Request<T>, need: Role) -> Result<Caller, Status> {
        let presented = request
            .metadata()
            .get("authorization")
            .map(|value| crate::auth::guard::bearer_token(value.to_str().ok()));
        Ok(self.guard.authorise(need, presented).await?)
    }
}

#[derive(Clone, Copy)]
enum Action {
    Acknowledge,
    Resolve,
}

impl Query {
    /// Acknowledges or resolves as the token's name, and tells live clients.
    async fn act(
        &self,
        request: Request<v1::AnomalyActionRequest>,
        action: Action,
    ) -> Result<Response<v1::Anomaly>, Status> {
        let caller = self.caller(&request, Role::Operator).await?;
        let r = request.into_inner();
        if r.note.len() > MAX_NOTE {
            return Err(ApiError::invalid(format!("note: at most {MAX_NOTE} bytes")).into());
        }
        let (by, note, now) = (&*caller.name, text("note", r.note)?, Utc::now());
        let done = match action {
            Action::Acknowledge => {
                self.store
                    .acknowledge_anomaly(r.id, by, note.as_deref(), now)
                    .await
            }
            Action::Resolve => {
                self.store
                    .resolve_anomaly(r.id, by, note.as_deref(), now)
                    .await
            }
        }
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::not_found(format!("anomaly {} not found", r.id)))?;
        let label = match action {
            Action::Acknowledge => "acknowledged",
            Action::Resolve => {
                // Resolve notices go to whoever was told.
                self.engine.wake.notify_waiters();
                "resolved"
            }
        };
        self.engine.events.publish(Event::Anomaly {
            action: label,
            anomaly: done.clone(),
        });
        Ok(Response::new(anomaly(done)))
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(field: &str, value: i64) -> Result<Option<DateTime<Utc>>, ApiError> {
    if value == 0 {
        return Ok(None);
    }
    DateTime::from_timestamp_millis(value)
        .map(Some)
        .ok_or_else(|| ApiError::invalid(format!("{field}: not a time in Unix milliseconds")))
}

fn limit(value: u32, default: u32, max: u32) -> Result<u32, ApiError> {
    crate::rest::page_limit((value != 0).then_some(value), default, max)
}

fn device(d: DeviceRow) -> v1::Device {
    v1::Device {
        id: d.id,
        agent_id: d.agent_id,
        address: d.address,
        mac: d.mac.unwrap_or_default(),
        vendor: d.vendor.unwrap_or_default(),
        hostname: d.hostname.unwrap_or_default(),
        status: d.status.unwrap_or_default().to_string(),
        first_seen_ms: ms(d.first_seen),
        last_seen_ms: ms(d.last_seen),
        last_probe_ms: d.last_probe_at.map(ms).unwrap_or_default(),
        last_loss_pct: d.last_loss_pct,
        last_rtt_ms: d.last_rtt_ms,
        r#type: d.device_type.unwrap_or_default(),
    }
}

fn raw_point(p: ProbeSample) -> v1::HistoryPoint {
    v1::HistoryPoint {
        ts_ms: ms(p.ts),
        rounds: 1,
        sent: p.sent.max(0) as u64,
        received: p.received.max(0) as u64,
        loss_pct: p.loss_pct,
        rtt_min_ms: p.rtt_min_ms,
        rtt_mean_ms: p.rtt_mean_ms,
        rtt_max_ms: p.rtt_max_ms,
        rtt_p95_ms: p.rtt_p95_ms,
        status: p.status.to_string(),
    }
}

fn bucket_point(r: RollupRow) -> v1::HistoryPoint {
    v1::HistoryPoint {
        ts_ms: ms(r.ts),
        rounds: r.rounds.clamp(0, i64::from(u32::MAX)) as u32,
        sent: r.sent.max(0) as u64,
        received: r.received.max(0) as u64,
        loss_pct: r.loss_pct,
        rtt_min_ms: r.rtt_min_ms,
        rtt_mean_ms: r.rtt_mean_ms,
        rtt_max_ms: r.rtt_max_ms,
        rtt_p95_ms: r.rtt_p95_ms,
        status: String::new(),
    }
}

fn anomaly(a: Anomaly) -> v1::Anomaly {
    v1::Anomaly {
        id: a.id,
        kind: a.kind.to_string(),
        subject: a.subject,
        group_key: a.group_key.unwrap_or_default(),
        severity: a.severity.as_str().to_string(),
        state: a.state.as_str().to_string(),
        summary: a.summary,
        details_json: a.details.to_string(),
        opened_ms: ms(a.opened_at),
        updated_ms: ms(a.updated_at),
        acknowledged_by: a.acknowledged_by.unwrap_or_default(),
        resolved_by: a.resolved_by.unwrap_or_default(),
    }
}

fn empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// A text field: unset when empty; a NUL is refused as REST refuses it (the database cannot
/// store one).
fn text(field: &str, value: String) -> Result<Option<String>, ApiError> {
    if value.contains('\0') {
        return Err(ApiError::invalid(format!(
            "{field}: must not contain NUL characters"
        )));
    }
    Ok(empty(value))
}

#[tonic::async_trait]
impl v1::query_service_server::QueryService for Query {
    async fn list_devices(
        &self,
        request: Request<v1::ListDevicesRequest>,
    ) -> Result<Response<v1::ListDevicesResponse>, Status> {
        self.caller(&request, Role::Viewer).await?;
        let r = request.into_inner();
        let status = match r.status.as_str() {
            "" => None,
            "online" => Some(DeviceStatus::Online),
            "degraded" => Some(DeviceStatus::Degraded),
            "offline" => Some(DeviceStatus::Offline),
            other => {
                return Err(ApiError::invalid(format!(
                    "status: {other:?} is not one of online, degraded, offline"
                ))
                .into())
            }
        };
        let query = DeviceQuery {
            agent_id: text("agent_id", r.agent_id)?,
            status,
            device_type: empty(r.r#type)
                .map(|t| crate::rest::device_type("type", &t, true))
                .transpose()?,
            limit: limit(r.limit, 100, MAX_PAGE)?,
            offset: r.offset,
        };
        let devices = self.store.devices(&query).await.map_err(ApiError::from)?;
        Ok(Response::new(v1::ListDevicesResponse {
            devices: devices.into_iter().map(device).collect(),
        }))
    }

    async fn get_device(
        &self,
        request: Request<v1::GetDeviceRequest>,
    ) -> Result<Response<v1::Device>, Status> {
        self.caller(&request, Role::Viewer).await?;
        let id = request.into_inner().id;
        let found = self.store.device(id).await.map_err(ApiError::from)?;
        found
            .map(|d| Response::new(device(d)))
            .ok_or_else(|| ApiError::not_found(format!("device {id} not found")).into())
    }

    async fn device_history(
        &self,
        request: Request<v1::DeviceHistoryRequest>,
    ) -> Result<Response<v1::DeviceHistoryResponse>, Status> {
        self.caller(&request, Role::Viewer).await?;
        let r = request.into_inner();
        let resolution = match r.resolution.as_str() {
            "" | "raw" => None,
            "5m" => Some(300),
            "1h" => Some(3600),
            other => {
                return Err(ApiError::invalid(format!(
                    "resolution: {other:?} is not one of raw, 5m, 1h"
                ))
                .into())
            }
        };
        let (from, to) = crate::rest::time_window(
            time("from_ms", r.from_ms)?,
            time("to_ms", r.to_ms)?,
            Duration::hours(24),
        )?;
        let limit = limit(r.limit, 1000, MAX_HISTORY)?;
        let store = self.store.as_ref();
        if store
            .device(r.device_id)
            .await
            .map_err(ApiError::from)?
            .is_none()
        {
            return Err(ApiError::not_found(format!("device {} not found", r.device_id)).into());
        }
        let points = match resolution {
            None => store
                .device_history(r.device_id, &HistoryQuery { from, to, limit })
                .await
                .map_err(ApiError::from)?
                .into_iter()
                .map(raw_point)
                .collect(),
            Some(secs) => store
                .rollups(r.device_id, secs, from, to, limit)
                .await
                .map_err(ApiError::from)?
                .into_iter()
                .map(bucket_point)
                .collect(),
        };
        Ok(Response::new(v1::DeviceHistoryResponse { points }))
    }

    async fn list_speed_tests(
        &self,
        request: Request<v1::ListSpeedTestsRequest>,
    ) -> Result<Response<v1::ListSpeedTestsResponse>, Status> {
        self.caller(&request, Role::Viewer).await?;
        let r = request.into_inner();
        let (from, to) = crate::rest::time_window(
            time("from_ms", r.from_ms)?,
            time("to_ms", r.to_ms)?,
            Duration::days(7),
        )?;
        let query = crate::storage::SpeedTestQuery {
            agent: text("agent_id", r.agent_id)?,
            from,
            to,
            limit: limit(r.limit, 100, MAX_PAGE)?,
            offset: crate::rest::page_offset(Some(r.offset))?,
        };
        let tests = self
            .store
            .speed_tests(&query)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .map(|t| v1::SpeedTestResult {
                agent_id: t.agent_id,
                ts_ms: t.ts.timestamp_millis(),
                url: t.url,
                direction: t.direction,
                bytes: t.bytes.max(0) as u64,
                duration_us: t.duration_us.max(0) as u64,
                mbps: t.mbps,
                error: t.error.unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(v1::ListSpeedTestsResponse { tests }))
    }

    async fn list_anomalies(
        &self,
        request: Request<v1::ListAnomaliesRequest>,
    ) -> Result<Response<v1::ListAnomaliesResponse>, Status> {
        self.caller(&request, Role::Viewer).await?;
        let r = request.into_inner();
        let mut query = AnomalyQuery {
            severity: parse(
                "severity",
                empty(r.severity).as_deref(),
                Severity::parse,
                "critical, high, medium, low",
            )?,
            state: parse(
                "state",
                empty(r.state).as_deref(),
                AnomalyState::parse,
                "open, acknowledged, resolved",
            )?,
            kind: None,
            subject: None,
            group_key: None,
            limit: limit(r.limit, 100, MAX_PAGE)?,
            offset: r.offset,
        };
        // Checked after the rest, as in REST: a name that is no kind matches nothing.
        if let Some(name) = text("kind", r.kind)? {
            match AnomalyKind::parse(&name) {
                Some(kind) => query.kind = Some(kind),
                None => return Ok(Response::new(v1::ListAnomaliesResponse::default())),
            }
        }
        let found = self.store.anomalies(&query).await.map_err(ApiError::from)?;
        Ok(Response::new(v1::ListAnomaliesResponse {
            anomalies: found.into_iter().map(anomaly).collect(),
        }))
    }

    async fn acknowledge_anomaly(
        &self,
        request: Request<v1::AnomalyActionRequest>,
    ) -> Result<Response<v1::Anomaly>, Status> {
        self.act(request, Action::Acknowledge).await
    }

    async fn resolve_anomaly(
        &self,
        request: Request<v1::AnomalyActionRequest>,
    ) -> Result<Response<v1::Anomaly>, Status> {
        self.act(request, Action::Resolve).await
    }

    type WatchEventsStream = ReceiverStream<Result<v1::LiveEvent, Status>>;

    async fn watch_events(
        &self,
        request: Request<v1::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let caller = self.caller(&request, Role::Viewer).await?;
        let guard = self.guard.clone();
        let kinds = request.into_inner().kinds;
        let kinds = crate::rest::live::parse_kinds(kinds.iter().map(String::as_str))
            .map_err(ApiError::invalid)?;
        let mut events = self.engine.events.subscribe();
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            let mut recheck = tokio::time::interval(std::time::Duration::from_secs(5));
            recheck.tick().await;
            loop {
                let event = tokio::select! {
                    _ = recheck.tick() => {
                        if !guard.still_valid(&caller).await {
                            let _ = tx
                                .send(Err(ApiError::new(
                                    crate::error::ErrorCode::Unauthenticated,
                                    "the token was revoked",
                                )
                                .into()))
                                .await;
                            return;
                        }
                        continue;
                    }
                    event = events.recv() => event,
                };
                let message = match event {
                    Ok(event) if kinds.contains(event.kind) => v1::LiveEvent {
                        r#type: event.kind.to_string(),
                        json: event.json.clone(),
                    },
                    Ok(_) => continue,
                    Err(RecvError::Lagged(missed)) => v1::LiveEvent {
                        r#type: "lagged".into(),
                        json: serde_json::json!({"type": "lagged", "missed": missed}).to_string(),
                    },
                    Err(RecvError::Closed) => return,
                };
                if tx.send(Ok(message)).await.is_err() {
                    return; // the client went away
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// A TLS stream from an operator's client (no client certificate), known by its address.
pub type OperatorStream = TlsConnection<OperatorConnInfo>;

/// Who is at the other end of a query connection.
#[derive(Clone)]
pub struct OperatorConnInfo {
    pub remote: SocketAddr,
    pub conn: std::sync::Arc<crate::grpc::conns::Conn>,
}

impl crate::grpc::conns::HasConn for OperatorConnInfo {
    fn conn(&self) -> &std::sync::Arc<crate::grpc::conns::Conn> {
        &self.conn
    }
}

/// Accepts TLS connections until `cancel`; handshakes time out and failures are logged.
pub fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshake_timeout: std::time::Duration,
    registry: crate::grpc::conns::Registry,
    cancel: CancellationToken,
) -> (
    mpsc::Receiver<io::Result<OperatorStream>>,
    crate::grpc::incoming::AcceptTask,
) {
    crate::grpc::incoming::accept_with(
        listener,
        "gRPC query",
        registry,
        cancel,
        move |tcp, remote, conn| {
            let acceptor = acceptor.clone();
            async move {
                match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => Some(TlsConnection::new(tls, OperatorConnInfo { remote, conn })),
                    Ok(Err(err)) => {
                        tracing::warn!(peer = %remote, error = %err, "refused gRPC query connection");
                        None
                    }
                    Err(_) => {
                        tracing::warn!(peer = %remote, "gRPC query TLS handshake timed out");
                        None
                    }
                }
            }
        },
    )
}

//! HTTP: `/health`, `/metrics`, the API under `/api`, the live WebSocket `/ws`, the dashboard
//! at `/` and the speed-test endpoints. Every route passes the token check in [`crate::auth`].

pub mod alerts;
pub mod dashboard;
pub mod input;
pub mod kpis;
pub mod live;
pub mod openapi;
pub mod overview;
pub mod plan;
pub mod pois;
pub mod route_test;
pub mod serve;
pub mod speedtest;
pub mod speedtest_gate;
pub mod telemetry;
pub mod tokens;

use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::metrics::Metrics;
use crate::rest::input::JsonBody;
use crate::storage::rollup::RollupRow;
use crate::storage::{
    AgentRow, DeviceQuery, DeviceRow, HistoryQuery, IdentityChange, IngestAudit, ProbeSample,
    Store, DEVICE_TYPES, UNASSIGNED,
};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json, Router};
use chrono::{DateTime, Duration, Utc};
use netwarden_shared::{AgentId, DeviceStatus};
use serde::Deserialize;
use std::sync::Arc;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, OpenApi, PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub const MAX_PAGE: u32 = 1000;
pub const MAX_HISTORY: u32 = 10_000;

/// What every handler reads. One `Arc`, because axum clones the state for every request: one
/// atomic add, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

pub struct Services {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub telemetry: crate::telemetry::TelemetryCommitter,
    pub engine: Arc<crate::alert::engine::Engine>,
    pub auth: Arc<crate::auth::Guard>,
    pub retention: crate::rollup::RetentionConfig,
    /// Rung after a plan version is saved (see [`crate::grpc::plan::PlanFeed`]).
    pub plan_saved: Arc<tokio::sync::Notify>,
    /// Transfers at once and bytes per token for `/speedtest/*`.
    pub speedtest_gate: Arc<speedtest_gate::SpeedTestGate>,
    /// `[alerting]`: the routes a test notification is sent by.
    pub alerting: crate::alert::routing::AlertingConfig,
    /// The notification channels, for test notifications.
    pub channels: Vec<Arc<dyn crate::alert::dispatch::Channel>>,
    /// When each route was last tested.
    pub route_tests: Arc<route_test::Cooldown>,
}

pub fn router(state: AppState) -> Router {
    let (routes, mut doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(metrics))
        .routes(routes!(network_metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(agents))
        .routes(routes!(agent_audit))
        .routes(routes!(retire_agent))
        .routes(routes!(devices))
        .routes(routes!(device))
        .routes(routes!(put_device_type))
        .routes(routes!(history))
        .routes(routes!(changes))
        .merge(alerts::routes())
        .merge(route_test::routes())
        .merge(pois::routes())
        .merge(kpis::routes())
        .merge(speedtest::routes())
        .merge(telemetry::routes())
        .merge(telemetry::customer_routes())
        .merge(tokens::routes())
        .merge(live::routes())
        .merge(overview::routes())
        .merge(plan::routes())
        .merge(dashboard::routes())
        .split_for_parts();
    openapi::complete(&mut doc, state.auth.config());
    let document = OpenApiJson(Arc::from(doc.to_json().unwrap_or_default()));
    routes
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(Extension(document))
        .layer(axum::middleware::from_fn(input::reject_nul))
        // Outermost, so it also answers for unknown paths under /api.
        .layer(axum::middleware::from_fn_with_state(
            state.auth.clone(),
            crate::auth::guard::enforce,
        ))
        .with_state(state)
}

/// The finished document, rendered once when the router is built.
#[derive(Clone)]
struct OpenApiJson(Arc<str>);

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "system",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)))]
async fn openapi_json(Extension(document): Extension<OpenApiJson>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.0.to_string(),
    )
}

/// A `limit` parameter: `default` when absent, else 1 to `max` (an error names it).
pub(crate) fn page_limit(value: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    let limit = value.unwrap_or(default);
    if limit == 0 || limit > max {
        return Err(ApiError::invalid(format!(
            "limit: must be between 1 and {max}"
        )));
    }
    Ok(limit)
}

/// An `offset` parameter: 0 when absent, at most `i32::MAX` (the document's `int32`).
pub(crate) fn page_offset(value: Option<u32>) -> Result<u32, ApiError> {
    let offset = value.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::invalid(format!(
            "offset: must be at most {MAX_OFFSET}"
        )));
    }
    Ok(offset)
}

pub const MAX_OFFSET: u32 = i32::MAX as u32;

/// A `[from, to)` window from optional parameters: `to` defaults to now, `from` to `default`
/// before `to`; `from` must come first.
pub(crate) fn time_window(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    default: Duration,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let to = to.unwrap_or_else(|| Utc::now() + Duration::seconds(1));
    let from = match from {
        Some(from) => from,
        // `to` may be as early as a timestamp can be: no panic below it.
        None => to
            .checked_sub_signed(default)
            .ok_or_else(|| ApiError::invalid("to: too early to take the default window from"))?,
    };
    if from >= to {
        return Err(ApiError::invalid("from: must be before to"));
    }
    Ok((from, to))
}

#[derive(serde::Serialize, ToSchema)]
struct Health {
    /// `ok`, or `degraded` when the database does not answer.
    status: String,
    /// `ok` or `unavailable`.
    database: String,
    /// `sqlite` or `postgres`.
    backend: String,
    version: String,
}

/// Liveness and the database's state, for load balancers and systemd.
#[utoipa::path(get, path = "/health", tag = "system", responses(
    (status = 200, description = "Up, and the database answers", body = Health),
    (status = 503, description = "Up, but the database does not answer", body = Health)))]
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let (status, database) = match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok".to_string()),
        Err(err) => {
            tracing::warn!(error = %err, "health check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable".to_string())
        }
    };
    (
        status,
        Json(Health {
            status: if status == StatusCode::OK {
                "ok"
            } else {
                "degraded"
            }
            .into(),
            database,
            backend: state.store.backend().to_string(),
            version: netwarden_shared::VERSION.to_string(),
        }),
    )
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "system", responses(
    (status = 200, description = "The metrics", body = String,
     content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// The network in Prometheus metrics (OpenMetrics text): each target's newest round, checked
/// port and speed test, labelled from the fleet plan, within `[http] network_metrics_series`.
#[utoipa::path(get, path = "/metrics/network", tag = "system", responses(
    (status = 200, description = "The metrics", body = String,
     content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
async fn network_metrics(State(state): State<AppState>) -> impl IntoResponse {
    let network = state.metrics.network.clone();
    // Rendering a large fleet is CPU work: off the runtime that serves requests.
    match tokio::task::spawn_blocking(move || network.render(Utc::now())).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => ApiError::new(
            crate::error::ErrorCode::Internal,
            "rendering the network metrics failed",
        )
        .into_response(),
    }
}

/// Every agent that has reported, with its ingest counters.
#[utoipa::path(get, path = "/api/agents", tag = "devices",
    responses((status = 200, description = "The agents", body = Vec<AgentRow>)))]
async fn agents(State(state): State<AppState>) -> Result<Json<Vec<AgentRow>>, ApiError> {
    Ok(Json(state.store.agents().await?))
}

/// Totals that show an agent's ingest was exactly-once (every batch and record once).
#[utoipa::path(get, path = "/api/agents/{id}/audit", tag = "devices",
    params(("id" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$", description = "The agent's id")),
    responses((status = 200, description = "The agent's totals", body = IngestAudit)))]
async fn agent_audit(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<IngestAudit>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::invalid(e.body_text()))?;
    let agent = AgentId::new(id).map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(Json(state.store.ingest_audit(&agent).await?))
}

/// Retires an agent: every certificate of it issued until now is refused, by every collector
/// sharing the database, within seconds; its open streams are closed. A certificate issued
/// afterwards (`pki issue-agent`) works. Its data is kept.
#[utoipa::path(post, path = "/api/agents/{id}/retire", tag = "devices",
    params(("id" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$", description = "The agent's id")),
    responses((status = 200, description = "The revocation recorded", body = crate::storage::tokens::CertRevocation)))]
async fn retire_agent(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<crate::storage::tokens::CertRevocation>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::invalid(e.body_text()))?;
    let agent = AgentId::new(id).map_err(|e| ApiError::invalid(e.to_string()))?;
    let revocation = state
        .store
        .revoke_certificate(&crate::storage::tokens::CertRevocation {
            id: 0,
            agent: Some(agent.as_str().to_string()),
            serial: None,
            revoked_at: Utc::now(),
            reason: "retired through the API".into(),
        })
        .await?;
    tracing::warn!(agent = %agent, "agent retired: its certificates issued until now are refused");
    Ok(Json(revocation))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeviceParams {
    /// Only the devices this agent (site) watches.
    agent: Option<String>,
    /// Only devices in this status.
    #[param(schema_with = device_statuses)]
    status: Option<String>,
    /// Only devices of this type (`unassigned`: those not given one).
    #[serde(rename = "type")]
    #[param(rename = "type", schema_with = device_type_filters)]
    device_type: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Devices to skip (default 0).
    #[param(maximum = 2147483647)]
    offset: Option<u32>,
}

fn device_statuses() -> utoipa::openapi::Object {
    openapi::one_of(&["online", "degraded", "offline"])
}

fn device_type_filters() -> utoipa::openapi::Object {
    let mut names = DEVICE_TYPES.to_vec();
    names.push(UNASSIGNED);
    openapi::one_of(&names)
}

/// `name` checked against the device types (and `unassigned` where `filter`).
pub(crate) fn device_type(field: &str, name: &str, filter: bool) -> Result<String, ApiError> {
    if DEVICE_TYPES.contains(&name) || filter && name == UNASSIGNED {
        return Ok(name.to_string());
    }
    let mut allowed = DEVICE_TYPES.join(", ");
    if filter {
        allowed.push_str(", ");
        allowed.push_str(UNASSIGNED);
    }
    Err(ApiError::invalid(format!(
        "{field}: {name:?} is not one of {allowed}"
    )))
}

/// Devices by id, with their newest probe figures.
#[utoipa::path(get, path = "/api/devices", tag = "devices", params(DeviceParams),
    responses((status = 200, description = "A page of devices", body = Vec<DeviceRow>)))]
async fn devices(
    State(state): State<AppState>,
    params: Result<Query<DeviceParams>, QueryRejection>,
) -> Result<Json<Vec<DeviceRow>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let status = match params.status.as_deref() {
        None => None,
        Some("online") => Some(DeviceStatus::Online),
        Some("degraded") => Some(DeviceStatus::Degraded),
        Some("offline") => Some(DeviceStatus::Offline),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "status: {other:?} is not one of online, degraded, offline"
            )))
        }
    };
    let limit = page_limit(params.limit, 100, MAX_PAGE)?;
    let query = DeviceQuery {
        agent_id: params.agent,
        status,
        device_type: params
            .device_type
            .map(|t| device_type("type", &t, true))
            .transpose()?,
        limit,
        offset: page_offset(params.offset)?,
    };
    Ok(Json(state.store.devices(&query).await?))
}

fn device_id(id: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::invalid("id: must be a device number"))?;
    Ok(id)
}

/// A device with what the list leaves out: its open ports and uptime.
#[derive(Debug, serde::Serialize, ToSchema)]
struct DeviceDetail {
    #[serde(flatten)]
    device: DeviceRow,
    /// From the newest discovery that scanned ports (null: never scanned).
    open_ports: Option<Vec<u16>>,
    /// Availability over 7 and 30 days: the percent of probes answered, so a round that lost
    /// 30 % counts as 0.7 of a round up (null: no rounds).
    uptime_7d_pct: Option<f64>,
    uptime_30d_pct: Option<f64>,
    probe_rounds_30d: i64,
    /// Ports a `tcp` check of the fleet plan connects to, by port (empty: none checked).
    checked_ports: Vec<crate::domain::overview::PortStatus>,
}

/// One device with its open ports and 7- and 30-day uptime.
#[utoipa::path(get, path = "/api/devices/{id}", tag = "devices",
    params(("id" = i64, Path, description = "The device's id")),
    responses(
        (status = 200, description = "The device", body = DeviceDetail),
        (status = 404, description = "No such device", body = ErrorBody)))]
async fn device(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<DeviceDetail>, ApiError> {
    let id = device_id(id)?;
    let device = state
        .store
        .device(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("device {id} not found")))?;
    let now = Utc::now();
    let raw_days = state.retention.raw_days;
    let week = uptime(state.store.as_ref(), id, now - Duration::days(7), raw_days).await?;
    let month = uptime(state.store.as_ref(), id, now - Duration::days(30), raw_days).await?;
    Ok(Json(DeviceDetail {
        device,
        open_ports: state.store.device_ports(id).await?,
        uptime_7d_pct: week.percent(),
        uptime_30d_pct: month.percent(),
        probe_rounds_30d: month.rounds,
        checked_ports: state
            .store
            .device_port_checks(id, now - Duration::days(1))
            .await?,
    }))
}

/// A device's type; `null` clears it (and must be said: a body without `type` is refused).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DeviceTypeBody {
    #[serde(rename = "type", deserialize_with = "required_nullable")]
    #[schema(schema_with = device_types_or_null, required = true)]
    device_type: Option<String>,
}

/// An `Option` field that must be present (as `null` or a value): serde treats a missing
/// `Option` as `None` unless a field has its own deserializer.
fn required_nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

fn device_types_or_null() -> utoipa::openapi::Object {
    openapi::one_of_or_null(DEVICE_TYPES)
}

/// Says what a device is (`router`, `switch`, `server`, ...), for the `type` filter.
#[utoipa::path(put, path = "/api/devices/{id}/type", tag = "devices",
    params(("id" = i64, Path, description = "The device's id")),
    request_body = DeviceTypeBody,
    responses(
        (status = 200, description = "The device as it now stands", body = DeviceRow),
        (status = 404, description = "No such device", body = ErrorBody)))]
async fn put_device_type(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    JsonBody(body): JsonBody<DeviceTypeBody>,
) -> Result<Json<DeviceRow>, ApiError> {
    let id = device_id(id)?;
    let device_type = body
        .device_type
        .map(|t| device_type("type", &t, false))
        .transpose()?;
    state
        .store
        .set_device_type(id, device_type.as_deref())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("device {id} not found")))
}

/// The device's MAC/vendor change log (404 for an unknown device).
#[utoipa::path(get, path = "/api/devices/{id}/changes", tag = "devices",
    params(("id" = i64, Path, description = "The device's id")),
    responses(
        (status = 200, description = "Each change of MAC address, oldest first", body = Vec<IdentityChange>),
        (status = 404, description = "No such device", body = ErrorBody)))]
async fn changes(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Vec<IdentityChange>>, ApiError> {
    let id = device_id(id)?;
    if state.store.device(id).await?.is_none() {
        return Err(ApiError::not_found(format!("device {id} not found")));
    }
    Ok(Json(state.store.identity_changes(id).await?))
}

/// Rounds and probes answered since `since`: raw rounds as far back as retention keeps them whole, and
/// 5-minute rollups before that (raw rounds may be kept for less than the 30 days asked for).
/// Not the rollup watermark as the boundary: rounds delivered late sit behind it, raw, until
/// the next rollup run.
async fn uptime(
    store: &dyn Store,
    id: i64,
    since: DateTime<Utc>,
    raw_days: u32,
) -> Result<crate::storage::overview::Uptime, ApiError> {
    let raw_from = (raw_days > 0).then(|| {
        crate::rollup::bucket_start(Utc::now() - Duration::days(i64::from(raw_days)), 300)
            + Duration::minutes(5)
    });
    let Some(boundary) = raw_from.filter(|b| *b > since) else {
        return Ok(store.device_uptime(id, since).await?);
    };
    let rolled = store.rollups(id, 300, since, boundary, 100_000).await?;
    let mut total = store.device_uptime(id, boundary).await?;
    total.rounds += rolled.iter().map(|r| r.rounds).sum::<i64>();
    total.sent += rolled.iter().map(|r| r.sent).sum::<i64>();
    total.received += rolled.iter().map(|r| r.received).sum::<i64>();
    Ok(total)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct HistoryParams {
    /// Start of the window (default: 24 hours before `to`); must be before `to`.
    from: Option<DateTime<Utc>>,
    /// End of the window, exclusive (default: now).
    to: Option<DateTime<Utc>>,
    /// Most points, 1 to 10000 (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
    /// `raw` (default), `5m` or `1h`.
    #[param(schema_with = resolutions)]
    resolution: Option<String>,
}

fn resolutions() -> utoipa::openapi::Object {
    openapi::one_of(&["raw", "5m", "1h"])
}

/// Raw probe rounds, or 5-minute or 1-hour rollups, by `resolution`.
struct HistoryPoints;

impl PartialSchema for HistoryPoints {
    fn schema() -> RefOr<Schema> {
        openapi::list_of_either(&ProbeSample::name(), &RollupRow::name())
    }
}

impl ToSchema for HistoryPoints {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((ProbeSample::name().into(), ProbeSample::schema()));
        schemas.push((RollupRow::name().into(), RollupRow::schema()));
        ProbeSample::schemas(schemas);
        RollupRow::schemas(schemas);
    }
}

/// Raw rounds, or 5-minute / 1-hour rollups (`resolution=5m|1h`), oldest first.
#[utoipa::path(get, path = "/api/devices/{id}/history", tag = "devices",
    params(("id" = i64, Path, description = "The device's id"), HistoryParams),
    responses(
        (status = 200, description = "Raw rounds (`ProbeSample`) or rollups (`RollupRow`), oldest first", body = HistoryPoints),
        (status = 404, description = "No such device", body = ErrorBody)))]
async fn history(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let id = device_id(id)?;
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let resolution = match params.resolution.as_deref() {
        None | Some("raw") => None,
        Some("5m") => Some(300),
        Some("1h") => Some(3600),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "resolution: {other:?} is not one of raw, 5m, 1h"
            )))
        }
    };
    let (from, to) = time_window(params.from, params.to, Duration::hours(24))?;
    let limit = page_limit(params.limit, 1000, MAX_HISTORY)?;
    // Points first: only an empty answer needs the second query that tells an unknown device
    // (404) from a quiet one.
    let (empty, response) = match resolution {
        None => {
            let points = state
                .store
                .device_history(id, &HistoryQuery { from, to, limit })
                .await?;
            (points.is_empty(), Json(points).into_response())
        }
        Some(secs) => {
            let points = state.store.rollups(id, secs, from, to, limit).await?;
            (points.is_empty(), Json(points).into_response())
        }
    };
    if empty && state.store.device(id).await?.is_none() {
        return Err(ApiError::not_found(format!("device {id} not found")));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_ending_at_the_dawn_of_time_is_an_error_not_a_panic() {
        let earliest = DateTime::<Utc>::MIN_UTC;
        let err = time_window(None, Some(earliest), Duration::days(7)).unwrap_err();
        assert!(err.message.starts_with("to: "), "{}", err.message);
        let (from, to) = time_window(None, Some(earliest + Duration::days(8)), Duration::days(7))
            .expect("a week fits");
        assert_eq!(to - from, Duration::days(7));
        assert!(time_window(Some(to), Some(from), Duration::days(7)).is_err());
    }
}

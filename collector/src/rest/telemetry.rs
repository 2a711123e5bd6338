//! Circuit telemetry over REST, compatible with the MaxOut-Capacity API:
//! `POST /api/v1/telemetry` (one sample: 201 `{"status":"success","message",
//! "recorded_utilization"}`, 422 naming the field), `POST /api/v1/telemetry/batch` (a JSON
//! array or NDJSON, all or nothing), and the circuits the samples are measured against.

use super::AppState;
use crate::error::ApiError;
use crate::storage::customers::{Account, Employee, NotificationRecord};
use crate::storage::telemetry::{CircuitRecord, TelemetryPoint, UnknownCircuit};
use crate::telemetry::sample::{self, FieldError};
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

/// Largest single-sample body.
pub const MAX_SINGLE_BYTES: usize = 64 * 1024;
/// Largest batch body.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/telemetry",
            post(single).layer(DefaultBodyLimit::max(MAX_SINGLE_BYTES)),
        )
        .route(
            "/api/v1/telemetry/batch",
            post(batch).layer(DefaultBodyLimit::max(MAX_BATCH_BYTES)),
        )
        .route("/api/circuits", get(circuits))
        .route("/api/circuits/unknown", get(unknown))
        .route("/api/circuits/{id}", get(circuit).put(put_circuit))
        .route("/api/circuits/{id}/telemetry", get(telemetry))
}

/// 422 with the field named, in FastAPI's shape (`detail[].loc/msg/type`, as clients of the
/// MaxOut-Capacity API expect) and ours (`error.code/message`).
fn unprocessable(err: &FieldError) -> Response {
    let mut loc = vec![json!("body")];
    if let Some(i) = err.index {
        loc.push(json!(i));
    }
    if err.field != "body" {
        loc.push(json!(err.field));
    }
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({
            "status": "error",
            "message": err.to_string(),
            "detail": [{"loc": loc, "msg": err.message, "type": "value_error"}],
            "error": {"code": "invalid_argument", "message": err.to_string()},
        })),
    )
        .into_response()
}

fn body_error(message: String) -> Response {
    unprocessable(&FieldError {
        index: None,
        field: "body",
        message,
    })
}

async fn single(State(state): State<AppState>, body: Bytes) -> Response {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(e) => return body_error(format!("is not JSON: {e}")),
    };
    let sample = match sample::from_json(&value, Utc::now()) {
        Ok(sample) => sample,
        Err(err) => return unprocessable(&err),
    };
    let (circuit, utilization) = (sample.circuit_id.clone(), sample.utilization_mbps);
    match state.telemetry.save(vec![sample]).await {
        Ok(unknown) => {
            let note = if unknown.is_empty() {
                String::new()
            } else {
                " (unknown circuit: stored and listed at /api/circuits/unknown)".into()
            };
            (
                StatusCode::CREATED,
                Json(json!({
                    "status": "success",
                    "message": format!("Telemetry recorded for circuit {circuit}{note}"),
                    "recorded_utilization": utilization,
                })),
            )
                .into_response()
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}

async fn batch(State(state): State<AppState>, body: Bytes) -> Response {
    let samples = match sample::batch_from_bytes(&body, Utc::now()) {
        Ok(samples) => samples,
        Err(err) => return unprocessable(&err),
    };
    let count = samples.len();
    match state.telemetry.save(samples).await {
        Ok(unknown) => (
            StatusCode::CREATED,
            Json(json!({
                "status": "success",
                "message": format!("{count} samples recorded"),
                "recorded": count,
                "unknown_circuits": unknown,
            })),
        )
            .into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageParams {
    limit: Option<u32>,
    offset: Option<u32>,
}

async fn circuits(
    State(state): State<AppState>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<Vec<CircuitRecord>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = super::page_limit(params.limit, 1000, 10_000)?;
    Ok(Json(
        state
            .store
            .circuits(limit, params.offset.unwrap_or(0))
            .await?,
    ))
}

async fn unknown(State(state): State<AppState>) -> Result<Json<Vec<UnknownCircuit>>, ApiError> {
    Ok(Json(state.store.unknown_circuits().await?))
}

fn circuit_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    entity_id("circuit_id", id)
}

async fn circuit(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<CircuitRecord>, ApiError> {
    let id = circuit_id(id)?;
    state
        .store
        .circuit(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("circuit {id} not found")))
}

/// The circuit's facts; the id comes from the path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CircuitBody {
    account: Option<String>,
    provisioned_mbps: f64,
    burst_mbps: Option<f64>,
    pop: Option<String>,
    provisioned_at: Option<DateTime<Utc>>,
    upgraded_at: Option<DateTime<Utc>>,
    decommissioned_at: Option<DateTime<Utc>>,
}

async fn put_circuit(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<CircuitBody>, JsonRejection>,
) -> Result<Json<CircuitRecord>, ApiError> {
    let id = circuit_id(id)?;
    let Json(body) = body.map_err(|e| ApiError::invalid(e.body_text()))?;
    if !(body.provisioned_mbps.is_finite() && body.provisioned_mbps > 0.0) {
        return Err(ApiError::invalid(
            "provisioned_mbps: must be a number above 0",
        ));
    }
    if let Some(burst) = body.burst_mbps {
        if !(burst.is_finite() && burst >= body.provisioned_mbps) {
            return Err(ApiError::invalid(
                "burst_mbps: must be at least provisioned_mbps",
            ));
        }
    }
    let record = CircuitRecord {
        circuit_id: id,
        account: body.account,
        provisioned_mbps: body.provisioned_mbps,
        burst_mbps: body.burst_mbps,
        pop: body.pop,
        provisioned_at: body.provisioned_at,
        upgraded_at: body.upgraded_at,
        decommissioned_at: body.decommissioned_at,
    };
    state.store.save_circuit(&record, Utc::now()).await?;
    Ok(Json(record))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowParams {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: Option<u32>,
}

async fn telemetry(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<WindowParams>, QueryRejection>,
) -> Result<Json<Vec<TelemetryPoint>>, ApiError> {
    let id = circuit_id(id)?;
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let (from, to) = super::time_window(params.from, params.to, Duration::hours(24))?;
    let limit = super::page_limit(params.limit, 10_000, 100_000)?;
    Ok(Json(state.store.telemetry(&id, from, to, limit).await?))
}

pub fn customer_routes() -> Router<AppState> {
    Router::new()
        .route("/api/accounts", get(accounts))
        .route("/api/accounts/{id}", get(account).put(put_account))
        .route("/api/employees/{id}", get(employee).put(put_employee))
        .route("/api/notifications", get(notifications))
}

/// A circuit, account or employee id from the path.
fn entity_id(what: &str, id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::invalid(e.body_text()))?;
    if !sample::valid_id(&id) {
        return Err(ApiError::invalid(format!(
            "{what}: {id:?} {}",
            sample::ID_RULE
        )));
    }
    Ok(id)
}

async fn accounts(State(state): State<AppState>) -> Result<Json<Vec<Account>>, ApiError> {
    Ok(Json(state.store.accounts().await?))
}

async fn account(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Account>, ApiError> {
    let id = entity_id("account", id)?;
    state
        .store
        .account(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("account {id} not found")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountBody {
    name: String,
    contact_name: Option<String>,
    contact_email: Option<String>,
    account_manager: Option<String>,
    cx_manager: Option<String>,
}

fn check_email(field: &str, value: &Option<String>) -> Result<(), ApiError> {
    if let Some(email) = value {
        email.parse::<lettre::Address>().map_err(|_| {
            ApiError::invalid(format!("{field}: {email:?} is not an email address"))
        })?;
    }
    Ok(())
}

async fn put_account(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<AccountBody>, JsonRejection>,
) -> Result<Json<Account>, ApiError> {
    let id = entity_id("account", id)?;
    let Json(body) = body.map_err(|e| ApiError::invalid(e.body_text()))?;
    if body.name.trim().is_empty() {
        return Err(ApiError::invalid("name: is required"));
    }
    check_email("contact_email", &body.contact_email)?;
    for (field, employee) in [
        ("account_manager", &body.account_manager),
        ("cx_manager", &body.cx_manager),
    ] {
        if let Some(employee) = employee {
            if state.store.employee(employee).await?.is_none() {
                return Err(ApiError::invalid(format!(
                    "{field}: no employee {employee:?} (PUT /api/employees/{employee} first)"
                )));
            }
        }
    }
    let record = Account {
        id,
        name: body.name,
        contact_name: body.contact_name,
        contact_email: body.contact_email,
        account_manager: body.account_manager,
        cx_manager: body.cx_manager,
    };
    state.store.save_account(&record, Utc::now()).await?;
    Ok(Json(record))
}

async fn employee(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Employee>, ApiError> {
    let id = entity_id("employee", id)?;
    state
        .store
        .employee(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("employee {id} not found")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmployeeBody {
    name: String,
    email: String,
    phone: Option<String>,
}

async fn put_employee(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<EmployeeBody>, JsonRejection>,
) -> Result<Json<Employee>, ApiError> {
    let id = entity_id("employee", id)?;
    let Json(body) = body.map_err(|e| ApiError::invalid(e.body_text()))?;
    if body.name.trim().is_empty() {
        return Err(ApiError::invalid("name: is required"));
    }
    check_email("email", &Some(body.email.clone()))?;
    let record = Employee {
        id,
        name: body.name,
        email: body.email,
        phone: body.phone,
    };
    state.store.save_employee(&record, Utc::now()).await?;
    Ok(Json(record))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotificationParams {
    event_kind: Option<String>,
    event_id: Option<i64>,
}

async fn notifications(
    State(state): State<AppState>,
    params: Result<Query<NotificationParams>, QueryRejection>,
) -> Result<Json<Vec<NotificationRecord>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let kind = params
        .event_kind
        .unwrap_or_else(|| crate::alert::customer::EVENT_KIND.into());
    Ok(Json(
        state.store.notifications(&kind, params.event_id).await?,
    ))
}

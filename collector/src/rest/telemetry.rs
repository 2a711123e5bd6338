//! Circuit telemetry over REST, compatible with the MaxOut-Capacity API:
//! `POST /api/v1/telemetry` (one sample: 201 `{"status":"success","message",
//! "recorded_utilization"}`, 422 naming the field), `POST /api/v1/telemetry/batch` (a JSON
//! array or NDJSON, all or nothing), and the circuits the samples are measured against.

use super::AppState;
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::rest::input::JsonBody;
use crate::storage::customers::{Account, Employee, NotificationRecord};
use crate::storage::telemetry::{CircuitRecord, LateSample, TelemetryPoint, UnknownCircuit};
use crate::telemetry::sample::{self, FieldError};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

/// Largest single-sample body.
pub const MAX_SINGLE_BYTES: usize = 64 * 1024;
/// Largest batch body.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(limited(routes!(single), MAX_SINGLE_BYTES))
        .routes(limited(routes!(batch), MAX_BATCH_BYTES))
        .routes(routes!(circuits))
        .routes(routes!(unknown))
        .routes(routes!(circuit, put_circuit))
        .routes(routes!(telemetry))
        .routes(routes!(late))
}

/// A route whose body may be at most `bytes`.
pub(crate) fn limited(
    (schemas, paths, router): UtoipaMethodRouter<AppState>,
    bytes: usize,
) -> UtoipaMethodRouter<AppState> {
    (schemas, paths, router.layer(DefaultBodyLimit::max(bytes)))
}

/// One telemetry sample. Other fields are ignored, as the MaxOut-Capacity API does.
#[derive(ToSchema)]
#[allow(dead_code)]
struct TelemetrySampleBody {
    /// 1 to 64 letters, digits or `. _ : / -` (spaces, tabs and line ends around it are
    /// dropped).
    #[schema(pattern = "^[ \t\n\r]*[A-Za-z0-9._:/-]{1,64}[ \t\n\r]*$")]
    circuit_id: String,
    /// Mbps, 0 to 10000000.
    #[schema(minimum = 0, maximum = 10000000)]
    utilization_mbps: f64,
    /// RFC 3339 (a time without a zone is UTC) or Unix seconds; at most 30 days old and 5
    /// minutes ahead. Default: now.
    #[schema(schema_with = time_or_seconds)]
    timestamp: Option<String>,
}

/// A JSON batch: 1 to 100000 samples.
struct TelemetryBatch;

impl utoipa::PartialSchema for TelemetryBatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(utoipa::openapi::Ref::from_schema_name(
                TelemetrySampleBody::name(),
            ))
            .min_items(Some(1))
            .max_items(Some(sample::MAX_BATCH))
            .into()
    }
}

impl ToSchema for TelemetryBatch {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            TelemetrySampleBody::name().into(),
            <TelemetrySampleBody as utoipa::PartialSchema>::schema(),
        ));
    }
}

/// A sample's time: text (RFC 3339) or a number (Unix seconds), or null for now.
fn time_or_seconds() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([
            Type::String,
            Type::Number,
            Type::Null,
        ]))
        .build()
}

#[derive(Serialize, ToSchema)]
struct Recorded {
    /// `success`.
    status: &'static str,
    message: String,
    recorded_utilization: f64,
}

#[derive(Serialize, ToSchema)]
struct BatchRecorded {
    /// `success`.
    status: String,
    message: String,
    recorded: usize,
    /// Circuits not (yet) configured: stored and listed at `/api/circuits/unknown`.
    unknown_circuits: Vec<String>,
}

/// A 422 in FastAPI's shape (`detail`) and ours (`error`), naming the field.
#[derive(ToSchema)]
#[allow(dead_code)]
struct Unprocessable {
    /// `error`.
    status: String,
    message: String,
    detail: Vec<FieldDetail>,
    error: crate::error::ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct FieldDetail {
    /// `body`, the item's index in a batch, then the field.
    #[schema(value_type = Vec<serde_json::Value>)]
    loc: Vec<Value>,
    msg: String,
    #[serde(rename = "type")]
    kind: String,
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

/// The request body, or the error naming it: a 413 in our shape (not axum's plain text)
/// when it is over `limit` bytes.
fn read_body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                crate::error::ErrorCode::PayloadTooLarge,
                format!("body: larger than {limit} bytes"),
            )
        } else {
            ApiError::invalid(format!("body: {}", rejection.body_text()))
        }
    })
}

/// Records one sample (MaxOut-Capacity's `POST /api/v1/telemetry`).
#[utoipa::path(post, path = "/api/v1/telemetry", tag = "telemetry",
    request_body = TelemetrySampleBody,
    responses(
        (status = 201, description = "Recorded", body = Recorded),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid; `detail` names it", body = Unprocessable)))]
async fn single(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match read_body(body, MAX_SINGLE_BYTES) {
        Ok(body) => body,
        Err(err) => return err.into_response(),
    };
    let sample = match sample::from_bytes(&body, Utc::now()) {
        Ok(sample) => sample,
        Err(err) => return unprocessable(&err),
    };
    let (circuit, utilization) = (sample.circuit_id.clone(), sample.utilization_mbps);
    match state.telemetry.save(vec![sample]).await {
        Ok(unknown) => {
            let note = if unknown.is_empty() {
                ""
            } else {
                " (unknown circuit: stored and listed at /api/circuits/unknown)"
            };
            (
                StatusCode::CREATED,
                Json(Recorded {
                    status: "success",
                    message: format!("Telemetry recorded for circuit {circuit}{note}"),
                    recorded_utilization: utilization,
                }),
            )
                .into_response()
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// Records up to 100000 samples, all or nothing: a JSON array, or NDJSON (one object a line).
#[utoipa::path(post, path = "/api/v1/telemetry/batch", tag = "telemetry",
    request_body(content(
        (TelemetryBatch = "application/json"),
        (String = "application/x-ndjson"))),
    responses(
        (status = 201, description = "Recorded", body = BatchRecorded),
        (status = 413, description = "The body is over 16 MiB", body = ErrorBody),
        (status = 422, description = "An item is invalid; `detail` names its index and field", body = Unprocessable)))]
async fn batch(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match read_body(body, MAX_BATCH_BYTES) {
        Ok(body) => body,
        Err(err) => return err.into_response(),
    };
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PageParams {
    /// Page size, 1 to 10000 (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
    #[param(maximum = 2147483647)]
    offset: Option<u32>,
}

/// Configured circuits, by id.
#[utoipa::path(get, path = "/api/circuits", tag = "telemetry", params(PageParams),
    responses((status = 200, description = "A page of circuits", body = Vec<CircuitRecord>)))]
async fn circuits(
    State(state): State<AppState>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<Vec<CircuitRecord>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = super::page_limit(params.limit, 1000, 10_000)?;
    Ok(Json(
        state
            .store
            .circuits(limit, super::page_offset(params.offset)?)
            .await?,
    ))
}

/// Circuits that telemetry named but nobody configured.
#[utoipa::path(get, path = "/api/circuits/unknown", tag = "telemetry",
    responses((status = 200, description = "The circuits", body = Vec<UnknownCircuit>)))]
async fn unknown(State(state): State<AppState>) -> Result<Json<Vec<UnknownCircuit>>, ApiError> {
    Ok(Json(state.store.unknown_circuits().await?))
}

fn circuit_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    entity_id("circuit_id", id)
}

/// One circuit.
#[utoipa::path(get, path = "/api/circuits/{id}", tag = "telemetry",
    params(("id" = String, Path, pattern = "^[A-Za-z0-9._:/-]{1,64}$", description = "The circuit's id")),
    responses(
        (status = 200, description = "The circuit", body = CircuitRecord),
        (status = 404, description = "No such circuit", body = ErrorBody)))]
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CircuitBody {
    /// The account's id.
    account: Option<String>,
    /// 0.001 (1 kb/s) to 10000000 (10 Tb/s).
    #[schema(minimum = 0.001, maximum = 10000000)]
    provisioned_mbps: f64,
    /// At least `provisioned_mbps`, at most 10000000.
    #[schema(maximum = 10000000)]
    burst_mbps: Option<f64>,
    pop: Option<String>,
    provisioned_at: Option<DateTime<Utc>>,
    upgraded_at: Option<DateTime<Utc>>,
    decommissioned_at: Option<DateTime<Utc>>,
}

/// Creates or replaces a circuit. Its account, if given, must exist.
#[utoipa::path(put, path = "/api/circuits/{id}", tag = "telemetry",
    params(("id" = String, Path, pattern = "^[A-Za-z0-9._:/-]{1,64}$", description = "The circuit's id")),
    request_body = CircuitBody,
    responses((status = 200, description = "The circuit as stored", body = CircuitRecord)))]
async fn put_circuit(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<CircuitBody>,
) -> Result<Json<CircuitRecord>, ApiError> {
    let id = circuit_id(id)?;
    sample::check_rates(body.provisioned_mbps, body.burst_mbps)
        .map_err(|(field, message)| ApiError::invalid(format!("{field}: {message}")))?;
    // As `import circuits` does: a circuit's maxout emails go to its account's contacts.
    if let Some(account) = &body.account {
        if state.store.account(account).await?.is_none() {
            return Err(ApiError::invalid(format!(
                "account: no account {account:?}; create it first (PUT /api/accounts/{{id}})"
            )));
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
    state.telemetry.circuits_changed();
    Ok(Json(record))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct WindowParams {
    /// Start of the window (default: 24 hours before `to`); must be before `to`.
    from: Option<DateTime<Utc>>,
    /// End of the window, exclusive (default: now).
    to: Option<DateTime<Utc>>,
    /// Most points, 1 to 100000 (default 10000).
    #[param(minimum = 1, maximum = 100000)]
    limit: Option<u32>,
}

/// A circuit's samples in the window, oldest first.
#[utoipa::path(get, path = "/api/circuits/{id}/telemetry", tag = "telemetry",
    params(("id" = String, Path, pattern = "^[A-Za-z0-9._:/-]{1,64}$", description = "The circuit's id"), WindowParams),
    responses((status = 200, description = "The samples", body = Vec<TelemetryPoint>)))]
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

pub fn customer_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(accounts))
        .routes(routes!(account, put_account))
        .routes(routes!(employees))
        .routes(routes!(employee, put_employee))
        .routes(routes!(notifications))
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

/// Every customer account.
#[utoipa::path(get, path = "/api/accounts", tag = "telemetry",
    responses((status = 200, description = "The accounts", body = Vec<Account>)))]
async fn accounts(State(state): State<AppState>) -> Result<Json<Vec<Account>>, ApiError> {
    Ok(Json(state.store.accounts().await?))
}

/// One account.
#[utoipa::path(get, path = "/api/accounts/{id}", tag = "telemetry",
    params(("id" = String, Path, pattern = "^[A-Za-z0-9._:/-]{1,64}$", description = "The account's id")),
    responses(
        (status = 200, description = "The account", body = Account),
        (status = 404, description = "No such account", body = ErrorBody)))]
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AccountBody {
    /// Not blank.
    #[schema(pattern = "\\S")]
    name: String,
    contact_name: Option<String>,
    /// The customer's address: alerts about the account go to it.
    #[schema(format = Email)]
    contact_email: Option<String>,
    /// An employee's id (PUT /api/employees/{id} first); copied on the account's alerts.
    account_manager: Option<String>,
    /// An employee's id; copied on the account's alerts.
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

/// Creates or replaces an account.
#[utoipa::path(put, path = "/api/accounts/{id}", tag = "telemetry",
    params(("id" = String, Path, pattern = "^[A-Za-z0-9._:/-]{1,64}$", description = "The account's id")),
    request_body = AccountBody,
    responses((status = 200, description = "The account as stored", body = Account)))]
async fn put_account(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<AccountBody>,
) -> Result<Json<Account>, ApiError> {
    let id = entity_id("account", id)?;
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

/// Every employee (account and CX managers).
#[utoipa::path(get, path = "/api/employees", tag = "telemetry",
    responses((status = 200, description = "The employees", body = Vec<Employee>)))]
async fn employees(State(state): State<AppState>) -> Result<Json<Vec<Employee>>, ApiError> {
    Ok(Json(state.store.employees().await?))
}

/// One employee.
#[utoipa::path(get, path = "/api/employees/{id}", tag = "telemetry",
    params(("id" = String, Path, pattern = "^[A-Za-z0-9._:/-]{1,64}$", description = "The employee's id")),
    responses(
        (status = 200, description = "The employee", body = Employee),
        (status = 404, description = "No such employee", body = ErrorBody)))]
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EmployeeBody {
    /// Not blank.
    #[schema(pattern = "\\S")]
    name: String,
    #[schema(format = Email)]
    email: String,
    phone: Option<String>,
}

/// Creates or replaces an employee (an account or CX manager).
#[utoipa::path(put, path = "/api/employees/{id}", tag = "telemetry",
    params(("id" = String, Path, pattern = "^[A-Za-z0-9._:/-]{1,64}$", description = "The employee's id")),
    request_body = EmployeeBody,
    responses((status = 200, description = "The employee as stored", body = Employee)))]
async fn put_employee(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<EmployeeBody>,
) -> Result<Json<Employee>, ApiError> {
    let id = entity_id("employee", id)?;
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct NotificationParams {
    /// The kind of event (default: `circuit_maxout`).
    event_kind: Option<String>,
    /// Only this event's notifications.
    event_id: Option<i64>,
    /// The latest this many, 1 to 10000 (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
}

/// Customer notifications sent (or tried) for events.
#[utoipa::path(get, path = "/api/notifications", tag = "telemetry", params(NotificationParams),
    responses((status = 200, description = "The notifications", body = Vec<NotificationRecord>)))]
async fn notifications(
    State(state): State<AppState>,
    params: Result<Query<NotificationParams>, QueryRejection>,
) -> Result<Json<Vec<NotificationRecord>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let kind = params
        .event_kind
        .unwrap_or_else(|| crate::alert::customer::EVENT_KIND.into());
    let limit = page_limit(params.limit)?;
    Ok(Json(
        state
            .store
            .notifications(&kind, params.event_id, limit)
            .await?,
    ))
}

/// A list's `limit`: 1 to 10000, 1000 when not given.
fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit.unwrap_or(1000) {
        n @ 1..=10_000 => Ok(n),
        n => Err(ApiError::invalid(format!(
            "limit: {n} must be from 1 to 10000"
        ))),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct LateParams {
    /// The latest this many, 1 to 10000 (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
}

/// Samples that came later than the reorder horizon (`[telemetry] reorder_horizon_secs`)
/// behind their circuit's newest: stored, not evaluated. `netwarden-collector import telemetry`
/// evaluates a file of them (or of any history) in time order.
#[utoipa::path(get, path = "/api/telemetry/late", tag = "telemetry", params(LateParams),
    responses((status = 200, description = "The late samples, latest received first", body = Vec<LateSample>)))]
async fn late(
    State(state): State<AppState>,
    params: Result<Query<LateParams>, QueryRejection>,
) -> Result<Json<Vec<LateSample>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = page_limit(params.limit)?;
    Ok(Json(state.store.late_telemetry(limit).await?))
}

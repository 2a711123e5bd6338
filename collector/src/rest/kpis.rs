//! `/api/kpis` (and `/api/KPIs/`, the network-analysis project's spelling), `/api/kpis/{id}`
//! with its filters, and `/api/kpis/issues`.

use super::AppState;
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::storage::kpi::{Granularity, Kpi, KpiIssueRecord, KpiQuery, KpiRow};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::openapi::schema::{
    KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub const MAX_PAGE_SIZE: u32 = 10_000;
pub const MAX_TOP: u32 = 1_000_000;
/// The last page there can be (`page * page_size` stays within `u32`).
pub const MAX_PAGE: u32 = u32::MAX / MAX_PAGE_SIZE;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(list_alias))
        .routes(routes!(issues))
        .routes(routes!(rows))
        .routes(routes!(rows_alias))
}

#[derive(Debug, Serialize, ToSchema)]
struct KpiName {
    id: i64,
    name: &'static str,
}

/// The KPIs there are.
#[utoipa::path(get, path = "/api/kpis", tag = "kpis",
    responses((status = 200, description = "Each KPI's id and name", body = Vec<KpiName>)))]
async fn list() -> Json<Vec<KpiName>> {
    Json(
        Kpi::ALL
            .iter()
            .map(|k| KpiName {
                id: *k as i64,
                name: k.name(),
            })
            .collect(),
    )
}

/// The same as `/api/kpis`, under the network-analysis project's spelling.
#[utoipa::path(get, path = "/api/KPIs/", tag = "kpis",
    responses((status = 200, description = "Each KPI's id and name", body = Vec<KpiName>)))]
async fn list_alias() -> Json<Vec<KpiName>> {
    list().await
}

/// Query parameters; empty values (`interval_end_timestamp__lte=`) mean "not set", as in the
/// Django filters this API follows.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RowParams {
    /// Intervals starting at or after this ISO 8601 time.
    #[serde(rename = "interval_start_timestamp__gte")]
    #[param(rename = "interval_start_timestamp__gte", schema_with = time_or_empty)]
    start_gte: Option<String>,
    /// Intervals ending at or before this ISO 8601 time.
    #[serde(rename = "interval_end_timestamp__lte")]
    #[param(rename = "interval_end_timestamp__lte", schema_with = time_or_empty)]
    end_lte: Option<String>,
    /// 1: 5-minute intervals, 2: 1-hour intervals (default: both).
    #[param(schema_with = interval_or_empty)]
    interval: Option<String>,
    /// The top N ids of each interval, 1 to 1000000 (default 3).
    #[param(schema_with = top_or_empty)]
    top: Option<String>,
    /// The page, from 1 (default 1).
    #[param(schema_with = page_or_empty)]
    page: Option<String>,
    /// Rows per page, 1 to 10000 (default 1000).
    #[param(schema_with = page_size_or_empty)]
    page_size: Option<String>,
}

/// `schema`, or an empty value (which means "not set", as in Django's filters).
fn or_empty(schema: ObjectBuilder) -> Schema {
    let one_of = OneOfBuilder::new()
        .item(schema)
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([""])),
        )
        .build();
    Schema::OneOf(one_of)
}

fn time_or_empty() -> Schema {
    or_empty(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
    )
}

fn integer_or_empty(min: u32, max: u32) -> Schema {
    or_empty(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(min))
            .maximum(Some(max)),
    )
}

fn interval_or_empty() -> Schema {
    integer_or_empty(1, 2)
}

fn top_or_empty() -> Schema {
    integer_or_empty(1, MAX_TOP)
}

fn page_or_empty() -> Schema {
    integer_or_empty(1, MAX_PAGE)
}

fn page_size_or_empty() -> Schema {
    integer_or_empty(1, MAX_PAGE_SIZE)
}

fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn time(name: &str, value: &Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    set(value)
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::invalid(format!(
                        "{name}: {v:?} is not an ISO 8601 time like 2021-07-18T00:00:00Z"
                    ))
                })
        })
        .transpose()
}

fn number(name: &str, value: &Option<String>, min: u32, max: u32) -> Result<Option<u32>, ApiError> {
    set(value)
        .map(|v| {
            v.parse::<u32>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "{name}: {v:?} must be a number from {min} to {max}"
                    ))
                })
        })
        .transpose()
}

/// One row: the id and value columns are named for the KPI (`service_id` and `total_bytes`,
/// or `cell_id` and `number_of_unique_users`).
#[derive(ToSchema)]
#[allow(dead_code)]
struct KpiRowJson {
    id: i64,
    interval_start_timestamp: DateTime<Utc>,
    interval_end_timestamp: DateTime<Utc>,
    /// 1: 5 minutes, 2: 1 hour.
    interval: i64,
    #[schema(nullable = false)]
    service_id: Option<i64>,
    #[schema(nullable = false)]
    total_bytes: Option<i64>,
    #[schema(nullable = false)]
    cell_id: Option<i64>,
    #[schema(nullable = false)]
    number_of_unique_users: Option<i64>,
}

/// The KPI's top ids per interval.
#[utoipa::path(get, path = "/api/kpis/{id}", tag = "kpis",
    params(("id" = i64, Path, minimum = 1, maximum = 2, description = "The KPI's id (see /api/kpis)"), RowParams),
    responses(
        (status = 200, description = "Rows, by interval then rank", body = Vec<KpiRowJson>),
        (status = 404, description = "No such KPI", body = ErrorBody)))]
async fn rows(
    state: State<AppState>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<RowParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    kpi_rows(state, id, params).await
}

/// The same as `/api/kpis/{id}`, under the network-analysis project's spelling.
#[utoipa::path(get, path = "/api/KPIs/{id}/", tag = "kpis",
    params(("id" = i64, Path, minimum = 1, maximum = 2, description = "The KPI's id (see /api/kpis)"), RowParams),
    responses(
        (status = 200, description = "Rows, by interval then rank", body = Vec<KpiRowJson>),
        (status = 404, description = "No such KPI", body = ErrorBody)))]
async fn rows_alias(
    state: State<AppState>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<RowParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    kpi_rows(state, id, params).await
}

async fn kpi_rows(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<RowParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::invalid(e.body_text()))?;
    let kpi = id
        .parse::<i64>()
        .ok()
        .and_then(Kpi::from_id)
        .ok_or_else(|| ApiError::not_found(format!("no KPI {id:?}; GET /api/kpis lists them")))?;
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let granularity = number("interval", &params.interval, 1, 2)?
        .and_then(|g| Granularity::from_id(i64::from(g)));
    let page_size = number("page_size", &params.page_size, 1, MAX_PAGE_SIZE)?.unwrap_or(1000);
    let page = number("page", &params.page, 1, MAX_PAGE)?.unwrap_or(1);
    let query = KpiQuery {
        kpi,
        granularity,
        start_gte: time("interval_start_timestamp__gte", &params.start_gte)?,
        end_lte: time("interval_end_timestamp__lte", &params.end_lte)?,
        top: number("top", &params.top, 1, MAX_TOP)?.unwrap_or(3),
        limit: page_size,
        offset: (page - 1) * page_size,
    };
    let rows = state.store.kpi_rows(&query).await?;
    Ok(Json(Value::Array(
        rows.iter().map(|r| row_json(kpi, r)).collect(),
    )))
}

/// A row with the KPI's own names for the id and value columns.
fn row_json(kpi: Kpi, row: &KpiRow) -> Value {
    let (key, value) = match kpi {
        Kpi::ServiceTrafficVolume => ("service_id", "total_bytes"),
        Kpi::CellUniqueUsers => ("cell_id", "number_of_unique_users"),
    };
    let iso = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({
        "id": row.id,
        "interval_start_timestamp": iso(row.interval_start_timestamp),
        "interval_end_timestamp": iso(row.interval_end_timestamp),
        "interval": row.interval,
        key: row.key,
        value: row.value,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct IssueParams {
    /// Most issues, 1 to 10000 (default 100).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
}

/// Malformed rows and unreadable files, newest first.
#[utoipa::path(get, path = "/api/kpis/issues", tag = "kpis", params(IssueParams),
    responses((status = 200, description = "The issues", body = Vec<KpiIssueRecord>)))]
async fn issues(
    State(state): State<AppState>,
    params: Result<Query<IssueParams>, QueryRejection>,
) -> Result<Json<Vec<KpiIssueRecord>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = super::page_limit(params.limit, 100, MAX_PAGE_SIZE)?;
    Ok(Json(state.store.kpi_issues(limit).await?))
}

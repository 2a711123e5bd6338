//! `/api/kpis` (and `/api/KPIs/`, the network-analysis project's spelling), `/api/kpis/{id}`
//! with its filters, and `/api/kpis/issues`.

use super::AppState;
use crate::error::ApiError;
use crate::storage::kpi::{Granularity, Kpi, KpiIssueRecord, KpiQuery, KpiRow};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

pub const MAX_PAGE_SIZE: u32 = 10_000;
pub const MAX_TOP: u32 = 1_000_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/kpis", get(list))
        .route("/api/KPIs/", get(list))
        .route("/api/kpis/issues", get(issues))
        .route("/api/kpis/{id}", get(rows))
        .route("/api/KPIs/{id}/", get(rows))
}

async fn list() -> Json<Value> {
    Json(Value::Array(
        Kpi::ALL
            .iter()
            .map(|k| json!({"id": *k as i64, "name": k.name()}))
            .collect(),
    ))
}

/// Query parameters; empty values (`interval_end_timestamp__lte=`) mean "not set", as in the
/// Django filters this API follows.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RowParams {
    #[serde(rename = "interval_start_timestamp__gte")]
    start_gte: Option<String>,
    #[serde(rename = "interval_end_timestamp__lte")]
    end_lte: Option<String>,
    interval: Option<String>,
    top: Option<String>,
    page: Option<String>,
    page_size: Option<String>,
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

async fn rows(
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
    let page = number("page", &params.page, 1, u32::MAX / MAX_PAGE_SIZE)?.unwrap_or(1);
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueParams {
    limit: Option<u32>,
}

/// Malformed rows and unreadable files, newest first.
async fn issues(
    State(state): State<AppState>,
    params: Result<Query<IssueParams>, QueryRejection>,
) -> Result<Json<Vec<KpiIssueRecord>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = super::page_limit(params.limit, 100, MAX_PAGE_SIZE)?;
    Ok(Json(state.store.kpi_issues(limit).await?))
}

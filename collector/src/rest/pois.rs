//! `/api/pois`, `/api/pois/unparsed`, `/api/pois/{code}`, `/api/pois/{code}/utilisation`,
//! `/api/maxouts` and `/api/cacti/runs`: the Cacti scraper's results.

use super::AppState;
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::poi::utilisation::{daily, DailyFigure, Sample};
use crate::rest::openapi::{list_of_either, one_of};
use crate::storage::poi::ScrapeRunRecord;
use crate::storage::poi::{GraphRecord, MaxoutQuery, MaxoutRecord, PoiRecord, SampleRecord};
use crate::storage::telemetry::{AccountMaxoutSummary, CircuitMaxoutQuery, CircuitMaxoutRecord};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The longest utilisation window one request may ask for.
pub const MAX_UTILISATION_DAYS: i64 = 31;
pub const MAX_MAXOUTS: u32 = 10_000;
/// Days of daily figures in a POI's detail.
pub const DAILY_DAYS: i64 = 7;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(pois))
        .routes(routes!(unparsed))
        .routes(routes!(poi))
        .routes(routes!(utilisation))
        .routes(routes!(maxouts_list))
        .routes(routes!(maxout_summary))
        .routes(routes!(runs))
}

/// Every POI, from the XLSX reference and the graphs scraped.
#[utoipa::path(get, path = "/api/pois", tag = "pois",
    responses((status = 200, description = "The POIs", body = Vec<PoiRecord>)))]
async fn pois(State(state): State<AppState>) -> Result<Json<Vec<PoiRecord>>, ApiError> {
    Ok(Json(state.store.pois().await?))
}

/// Graphs whose titles no pattern could read.
#[utoipa::path(get, path = "/api/pois/unparsed", tag = "pois",
    responses((status = 200, description = "The graphs", body = Vec<GraphRecord>)))]
async fn unparsed(State(state): State<AppState>) -> Result<Json<Vec<GraphRecord>>, ApiError> {
    Ok(Json(state.store.unparsed_graphs().await?))
}

/// POI codes are a state digit and three letters (`2ABT`); case is ignored.
fn poi_code(code: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(code) = code.map_err(|e| ApiError::invalid(e.body_text()))?;
    if !crate::poi::title::is_code_shape(&code) {
        return Err(ApiError::invalid(format!(
            "code: {code:?} is not a POI code (a state digit 0 or 2-7 and three letters, e.g. 2ABT)"
        )));
    }
    Ok(code.to_ascii_uppercase())
}

#[derive(Debug, Serialize, ToSchema)]
struct GraphDetail {
    #[serde(flatten)]
    graph: GraphRecord,
    /// Daily figures over the last days (whole local days in the POI's state; absent without
    /// capacity).
    daily: Vec<DailyFigure>,
}

#[derive(Debug, Serialize, ToSchema)]
struct PoiDetail {
    #[serde(flatten)]
    poi: PoiRecord,
    graphs: Vec<GraphDetail>,
    /// Maxouts of the last days, oldest first.
    recent_maxouts: Vec<MaxoutRecord>,
}

/// One POI with its graphs' daily figures and recent maxouts.
#[utoipa::path(get, path = "/api/pois/{code}", tag = "pois",
    params(("code" = String, Path, pattern = "^[02-7][A-Za-z]{3}$", description = "The POI code, e.g. 2ABT")),
    responses(
        (status = 200, description = "The POI", body = PoiDetail),
        (status = 404, description = "No such POI", body = ErrorBody)))]
async fn poi(
    State(state): State<AppState>,
    code: Result<Path<String>, PathRejection>,
) -> Result<Json<PoiDetail>, ApiError> {
    let code = poi_code(code)?;
    let poi = state
        .store
        .poi(&code)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("POI {code} not found")))?;
    let to = Utc::now() + Duration::seconds(1);
    let zone = crate::poi::poi_zone(&code, poi.state.as_deref());
    // Whole local days: from midnight, DAILY_DAYS - 1 days before today, in the POI's zone.
    let from = local_midnight(zone, to, DAILY_DAYS - 1);
    let mut graphs = Vec::new();
    for graph in state.store.poi_graphs(&code).await? {
        let samples = state
            .store
            .samples(&graph.source, graph.graph_id, from, to)
            .await?;
        // Graphs stored before the step was recorded were all scraped at Cacti's 5 minutes.
        let step = graph.step_secs.unwrap_or(300) as u32;
        let figures = match graph.capacity_bps {
            Some(capacity) if capacity > 0 => {
                daily(&as_series(&samples), capacity as u64, step, zone)
            }
            _ => Vec::new(),
        };
        graphs.push(GraphDetail {
            graph,
            daily: figures,
        });
    }
    let recent_maxouts = state
        .store
        .maxouts(&MaxoutQuery {
            poi_code: Some(code),
            from,
            to,
            limit: MAX_MAXOUTS,
        })
        .await?;
    Ok(Json(PoiDetail {
        poi,
        graphs,
        recent_maxouts,
    }))
}

/// Midnight, `days_back` days before the local date of `at`, in `zone`.
fn local_midnight(zone: chrono_tz::Tz, at: DateTime<Utc>, days_back: i64) -> DateTime<Utc> {
    use chrono::TimeZone;
    let date = at.with_timezone(&zone).date_naive() - Duration::days(days_back);
    date.and_hms_opt(0, 0, 0)
        .and_then(|midnight| zone.from_local_datetime(&midnight).earliest())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(at - Duration::days(days_back + 1))
}

fn as_series(samples: &[SampleRecord]) -> Vec<Sample> {
    samples
        .iter()
        .map(|s| Sample {
            at: s.ts.timestamp(),
            in_bps: s.in_bps,
            out_bps: s.out_bps,
        })
        .collect()
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct WindowParams {
    /// Start of the window (default: 24 hours before `to`); before `to`, at most 31 days.
    from: Option<DateTime<Utc>>,
    /// End of the window, exclusive (default: now).
    to: Option<DateTime<Utc>>,
}

/// `[from, to)`: `to` defaults to now, `from` to `default` before `to`.
fn window(
    params: Result<Query<WindowParams>, QueryRejection>,
    default: Duration,
    max: Duration,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let (from, to) = super::time_window(params.from, params.to, default)?;
    if to - from > max {
        return Err(ApiError::invalid(format!(
            "from: the window may span at most {} days",
            max.num_days()
        )));
    }
    Ok((from, to))
}

#[derive(Debug, Serialize, ToSchema)]
struct GraphUtilisation {
    source: String,
    graph_id: i64,
    circuit_id: Option<String>,
    traffic_class: Option<String>,
    capacity_bps: Option<i64>,
    samples: Vec<SampleRecord>,
}

/// Each of the POI's graphs with its samples in the window.
#[utoipa::path(get, path = "/api/pois/{code}/utilisation", tag = "pois",
    params(("code" = String, Path, pattern = "^[02-7][A-Za-z]{3}$", description = "The POI code, e.g. 2ABT"), WindowParams),
    responses(
        (status = 200, description = "The graphs and samples", body = Vec<GraphUtilisation>),
        (status = 404, description = "No such POI", body = ErrorBody)))]
async fn utilisation(
    State(state): State<AppState>,
    code: Result<Path<String>, PathRejection>,
    params: Result<Query<WindowParams>, QueryRejection>,
) -> Result<Json<Vec<GraphUtilisation>>, ApiError> {
    let code = poi_code(code)?;
    let (from, to) = window(
        params,
        Duration::hours(24),
        Duration::days(MAX_UTILISATION_DAYS),
    )?;
    let graphs = state.store.poi_graphs(&code).await?;
    if graphs.is_empty() {
        return Err(ApiError::not_found(format!("POI {code} not found")));
    }
    let mut out = Vec::with_capacity(graphs.len());
    for g in graphs {
        let samples = state.store.samples(&g.source, g.graph_id, from, to).await?;
        out.push(GraphUtilisation {
            source: g.source,
            graph_id: g.graph_id,
            circuit_id: g.circuit_id,
            traffic_class: g.traffic_class,
            capacity_bps: g.capacity_bps,
            samples,
        });
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct MaxoutParams {
    /// A POI code (POI maxouts only).
    #[param(pattern = "^[02-7][A-Za-z]{3}$")]
    poi: Option<String>,
    /// An account id (circuit maxouts).
    account: Option<String>,
    /// A circuit id (circuit maxouts).
    circuit: Option<String>,
    /// `poi` (Cacti POI maxouts, the default) or `circuit` (customer circuits; implied by
    /// `account` or `circuit`).
    #[param(schema_with = maxout_kinds)]
    kind: Option<String>,
    /// Start of the window (default: 7 days before `to`); before `to`, at most 366 days.
    from: Option<DateTime<Utc>>,
    /// End of the window, exclusive (default: now).
    to: Option<DateTime<Utc>>,
    /// Most events, 1 to 10000 (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
}

fn maxout_kinds() -> utoipa::openapi::Object {
    one_of(&["poi", "circuit"])
}

/// POI maxouts (`MaxoutRecord`) or circuit maxouts (`CircuitMaxoutRecord`), by `kind`.
struct Maxouts;

impl PartialSchema for Maxouts {
    fn schema() -> RefOr<Schema> {
        list_of_either(&MaxoutRecord::name(), &CircuitMaxoutRecord::name())
    }
}

impl ToSchema for Maxouts {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((MaxoutRecord::name().into(), MaxoutRecord::schema()));
        schemas.push((
            CircuitMaxoutRecord::name().into(),
            CircuitMaxoutRecord::schema(),
        ));
    }
}

/// POI maxouts (`?poi=`) or circuit maxouts (`?account=` / `?circuit=` / `?kind=circuit`).
#[utoipa::path(get, path = "/api/maxouts", tag = "pois", params(MaxoutParams),
    responses((status = 200, description = "Maxout events, oldest first", body = Maxouts)))]
async fn maxouts_list(
    State(state): State<AppState>,
    params: Result<Query<MaxoutParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let (from, to) = window(
        Ok(Query(WindowParams {
            from: params.from,
            to: params.to,
        })),
        Duration::days(7),
        Duration::days(366),
    )?;
    let limit = super::page_limit(params.limit, 1000, MAX_MAXOUTS)?;
    let circuit_kind = match params.kind.as_deref() {
        None => params.account.is_some() || params.circuit.is_some(),
        Some("circuit") => true,
        Some("poi") => false,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "kind: {other:?} is not poi or circuit"
            )))
        }
    };
    if circuit_kind {
        if params.poi.is_some() {
            return Err(ApiError::invalid(
                "poi: not with account, circuit or kind=circuit",
            ));
        }
        let events = state
            .store
            .circuit_maxouts(&CircuitMaxoutQuery {
                account: params.account,
                circuit_id: params.circuit,
                from: Some(from),
                to: Some(to),
                open_only: false,
                limit,
            })
            .await?;
        return Ok(Json(serde_json::to_value(events).unwrap_or_default()));
    }
    let poi = params
        .poi
        .map(|p| poi_code(Ok(Path(p))))
        .transpose()
        .map_err(|e| ApiError::invalid(e.message.replacen("code:", "poi:", 1)))?;
    let events = state
        .store
        .maxouts(&MaxoutQuery {
            poi_code: poi,
            from,
            to,
            limit,
        })
        .await?;
    Ok(Json(serde_json::to_value(events).unwrap_or_default()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SummaryParams {
    /// Only this account.
    account: Option<String>,
    /// Start of the window (default: 30 days before `to`); before `to`, at most 366 days.
    from: Option<DateTime<Utc>>,
    /// End of the window, exclusive (default: now).
    to: Option<DateTime<Utc>>,
}

/// Circuit maxouts summed per account.
#[utoipa::path(get, path = "/api/maxouts/summary", tag = "pois", params(SummaryParams),
    responses((status = 200, description = "One row per account", body = Vec<AccountMaxoutSummary>)))]
async fn maxout_summary(
    State(state): State<AppState>,
    params: Result<Query<SummaryParams>, QueryRejection>,
) -> Result<Json<Vec<AccountMaxoutSummary>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let (from, to) = window(
        Ok(Query(WindowParams {
            from: params.from,
            to: params.to,
        })),
        Duration::days(30),
        Duration::days(366),
    )?;
    Ok(Json(
        state
            .store
            .circuit_maxout_summary(&CircuitMaxoutQuery {
                account: params.account,
                from: Some(from),
                to: Some(to),
                ..CircuitMaxoutQuery::default()
            })
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RunParams {
    /// Most runs, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The Cacti scraper's runs, newest first.
#[utoipa::path(get, path = "/api/cacti/runs", tag = "pois", params(RunParams),
    responses((status = 200, description = "The runs", body = Vec<ScrapeRunRecord>)))]
async fn runs(
    State(state): State<AppState>,
    params: Result<Query<RunParams>, QueryRejection>,
) -> Result<Json<Vec<ScrapeRunRecord>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = super::page_limit(params.limit, 50, super::MAX_PAGE)?;
    Ok(Json(state.store.scrape_runs(limit).await?))
}

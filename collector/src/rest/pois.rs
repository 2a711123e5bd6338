//! `/api/pois`, `/api/pois/unparsed`, `/api/pois/{code}`, `/api/pois/{code}/utilisation`,
//! `/api/maxouts` and `/api/cacti/runs`: the Cacti scraper's results.

use super::AppState;
use crate::error::ApiError;
use crate::poi::utilisation::{daily, DailyFigure, Sample};
use crate::storage::poi::ScrapeRunRecord;
use crate::storage::poi::{GraphRecord, MaxoutQuery, MaxoutRecord, PoiRecord, SampleRecord};
use crate::storage::telemetry::CircuitMaxoutQuery;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The longest utilisation window one request may ask for.
pub const MAX_UTILISATION_DAYS: i64 = 31;
pub const MAX_MAXOUTS: u32 = 10_000;
/// Days of daily figures in a POI's detail.
pub const DAILY_DAYS: i64 = 7;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/pois", get(pois))
        .route("/api/pois/unparsed", get(unparsed))
        .route("/api/pois/{code}", get(poi))
        .route("/api/pois/{code}/utilisation", get(utilisation))
        .route("/api/maxouts", get(maxouts_list))
        .route("/api/maxouts/summary", get(maxout_summary))
        .route("/api/cacti/runs", get(runs))
}

async fn pois(State(state): State<AppState>) -> Result<Json<Vec<PoiRecord>>, ApiError> {
    Ok(Json(state.store.pois().await?))
}

async fn unparsed(State(state): State<AppState>) -> Result<Json<Vec<GraphRecord>>, ApiError> {
    Ok(Json(state.store.unparsed_graphs().await?))
}

/// POI codes are a state digit and three letters (`2ABT`); case is ignored.
fn poi_code(code: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(code) = code.map_err(|e| ApiError::invalid(e.body_text()))?;
    let valid = code.len() == 4
        && matches!(code.as_bytes()[0], b'1'..=b'7')
        && code[1..].bytes().all(|b| b.is_ascii_alphabetic());
    if !valid {
        return Err(ApiError::invalid(format!(
            "code: {code:?} is not a POI code (a state digit 1-7 and three letters, e.g. 2ABT)"
        )));
    }
    Ok(code.to_ascii_uppercase())
}

#[derive(Debug, Serialize)]
struct GraphDetail {
    #[serde(flatten)]
    graph: GraphRecord,
    /// Daily figures over the last days (whole local days in the POI's state; absent without
    /// capacity).
    daily: Vec<DailyFigure>,
}

#[derive(Debug, Serialize)]
struct PoiDetail {
    #[serde(flatten)]
    poi: PoiRecord,
    graphs: Vec<GraphDetail>,
    /// Maxouts of the last days, oldest first.
    recent_maxouts: Vec<MaxoutRecord>,
}

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
    let zone = poi_zone(&code);
    // Whole local days: from midnight, DAILY_DAYS - 1 days before today, in the POI's zone.
    let from = local_midnight(zone, to, DAILY_DAYS - 1);
    let mut graphs = Vec::new();
    for graph in state.store.poi_graphs(&code).await? {
        let samples = state
            .store
            .samples(&graph.source, graph.graph_id, from, to)
            .await?;
        let figures = match graph.capacity_bps {
            Some(capacity) if capacity > 0 => daily(&as_series(&samples), capacity as u64, zone),
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

/// The zone of a POI's state, from its code's first digit (NBN numbering: 1 NSW/ACT, 2 VIC,
/// 3 QLD, 4 SA, 5 WA, 6 TAS, 7 NT): the busy hour is 7-10 pm where the customers are, not
/// where the Cacti server is.
pub fn poi_zone(code: &str) -> chrono_tz::Tz {
    use chrono_tz::Australia;
    match code.as_bytes().first() {
        Some(b'1') => Australia::Sydney,
        Some(b'2') => Australia::Melbourne,
        Some(b'3') => Australia::Brisbane,
        Some(b'4') => Australia::Adelaide,
        Some(b'5') => Australia::Perth,
        Some(b'6') => Australia::Hobart,
        Some(b'7') => Australia::Darwin,
        _ => chrono_tz::UTC,
    }
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowParams {
    from: Option<DateTime<Utc>>,
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

#[derive(Debug, Serialize)]
struct GraphUtilisation {
    source: String,
    graph_id: i64,
    circuit_id: Option<String>,
    traffic_class: Option<String>,
    capacity_bps: Option<i64>,
    samples: Vec<SampleRecord>,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaxoutParams {
    poi: Option<String>,
    account: Option<String>,
    circuit: Option<String>,
    /// `poi` (Cacti POI maxouts, the default) or `circuit` (customer circuits; implied by
    /// `account` or `circuit`).
    kind: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: Option<u32>,
}

/// POI maxouts (`?poi=`) or circuit maxouts (`?account=` / `?circuit=` / `?kind=circuit`).
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryParams {
    account: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

/// Per account, for CX and account management: events, hours at max, peak.
#[derive(Debug, Default, serde::Serialize)]
struct AccountSummary {
    account: Option<String>,
    events: u32,
    circuits: u32,
    hours_at_max: f64,
    peak_mbps: f64,
    peak_pct: f64,
}

async fn maxout_summary(
    State(state): State<AppState>,
    params: Result<Query<SummaryParams>, QueryRejection>,
) -> Result<Json<Vec<AccountSummary>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let (from, to) = window(
        Ok(Query(WindowParams {
            from: params.from,
            to: params.to,
        })),
        Duration::days(30),
        Duration::days(366),
    )?;
    let events = state
        .store
        .circuit_maxouts(&CircuitMaxoutQuery {
            account: params.account,
            circuit_id: None,
            from: Some(from),
            to: Some(to),
            limit: 1_000_000,
        })
        .await?;
    let mut by_account: std::collections::BTreeMap<
        Option<String>,
        (AccountSummary, std::collections::BTreeSet<String>),
    > = std::collections::BTreeMap::new();
    for e in events {
        let (summary, circuits) = by_account.entry(e.account.clone()).or_default();
        summary.account = e.account.clone();
        summary.events += 1;
        summary.hours_at_max += e.duration_secs as f64 / 3600.0;
        if e.peak_pct > summary.peak_pct {
            summary.peak_pct = e.peak_pct;
            summary.peak_mbps = e.peak_mbps;
        }
        circuits.insert(e.circuit_id);
    }
    Ok(Json(
        by_account
            .into_values()
            .map(|(mut summary, circuits)| {
                summary.circuits = circuits.len() as u32;
                summary
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunParams {
    limit: Option<u32>,
}

async fn runs(
    State(state): State<AppState>,
    params: Result<Query<RunParams>, QueryRejection>,
) -> Result<Json<Vec<ScrapeRunRecord>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = super::page_limit(params.limit, 50, super::MAX_PAGE)?;
    Ok(Json(state.store.scrape_runs(limit).await?))
}

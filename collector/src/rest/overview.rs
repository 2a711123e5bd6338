//! The NOC's overview: `/api/statistics` (devices by status, unresolved anomalies by severity,
//! unacknowledged notifications) and `/api/sites` (each agent is the site it monitors: its
//! devices by status, last contact and unresolved anomalies).

use super::AppState;
use crate::error::ApiError;
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(statistics))
        .routes(routes!(sites))
}

/// Counts by name; every known name is present, with 0 when there are none.
fn zeroed(names: &[&str]) -> BTreeMap<String, i64> {
    names.iter().map(|n| (n.to_string(), 0)).collect()
}

const STATUSES: &[&str] = &["online", "degraded", "offline", "unknown"];
const SEVERITIES: &[&str] = &["critical", "high", "medium", "low"];

#[derive(Debug, Serialize, ToSchema)]
struct Statistics {
    devices_total: i64,
    devices_by_status: BTreeMap<String, i64>,
    agents: usize,
    /// Open and acknowledged (not resolved) anomalies.
    anomalies_by_severity: BTreeMap<String, i64>,
    anomalies_unacknowledged: i64,
    alerts_unacknowledged: i64,
    generated_at: DateTime<Utc>,
}

/// Devices by status, unresolved anomalies by severity, unacknowledged notifications.
#[utoipa::path(get, path = "/api/statistics", tag = "devices",
    responses((status = 200, description = "The counts", body = Statistics)))]
async fn statistics(State(state): State<AppState>) -> Result<Json<Statistics>, ApiError> {
    let mut by_status = zeroed(STATUSES);
    let mut total = 0;
    for c in state.store.status_counts().await? {
        *by_status
            .entry(c.status.unwrap_or("unknown").to_string())
            .or_default() += c.count;
        total += c.count;
    }
    let mut by_severity = zeroed(SEVERITIES);
    let mut unacknowledged = 0;
    for c in state.store.unresolved_anomaly_counts().await? {
        *by_severity.entry(c.severity).or_default() += c.count;
        if c.state == "open" {
            unacknowledged += c.count;
        }
    }
    Ok(Json(Statistics {
        devices_total: total,
        devices_by_status: by_status,
        agents: state.store.agents().await?.len(),
        anomalies_by_severity: by_severity,
        anomalies_unacknowledged: unacknowledged,
        alerts_unacknowledged: state.store.unacknowledged_alerts().await?,
        generated_at: Utc::now(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
struct Site {
    /// The agent's id.
    id: String,
    last_seen: DateTime<Utc>,
    devices_total: i64,
    devices_by_status: BTreeMap<String, i64>,
    /// Unresolved anomalies grouped under this agent.
    anomalies_by_severity: BTreeMap<String, i64>,
}

/// Each site (an agent) with its devices by status and its unresolved anomalies.
#[utoipa::path(get, path = "/api/sites", tag = "devices",
    responses((status = 200, description = "The sites", body = Vec<Site>)))]
async fn sites(State(state): State<AppState>) -> Result<Json<Vec<Site>>, ApiError> {
    let mut sites: BTreeMap<String, Site> = state
        .store
        .agents()
        .await?
        .into_iter()
        .map(|a| {
            (
                a.id.clone(),
                Site {
                    id: a.id,
                    last_seen: a.last_seen,
                    devices_total: 0,
                    devices_by_status: zeroed(STATUSES),
                    anomalies_by_severity: zeroed(SEVERITIES),
                },
            )
        })
        .collect();
    for c in state.store.status_counts().await? {
        if let Some(site) = sites.get_mut(&c.agent_id) {
            *site
                .devices_by_status
                .entry(c.status.unwrap_or("unknown").to_string())
                .or_default() += c.count;
            site.devices_total += c.count;
        }
    }
    for c in state.store.unresolved_anomaly_counts().await? {
        let Some(group) = &c.group_key else { continue };
        // Device anomalies are grouped by agent id (`agent:<id>` or the bare id).
        let agent = group.strip_prefix("agent:").unwrap_or(group);
        if let Some(site) = sites.get_mut(agent) {
            *site.anomalies_by_severity.entry(c.severity).or_default() += c.count;
        }
    }
    Ok(Json(sites.into_values().collect()))
}

//! Anomalies, their notifications and silences: `/api/anomalies`, `/api/alerts`,
//! `/api/silences`. Unknown ids are 404; acknowledging or resolving twice is harmless and
//! answers the anomaly as it stands.

use super::{page_limit, AppState, MAX_PAGE};
use crate::auth::guard::Caller;
use crate::error::ApiError;
use crate::events::Event;
use crate::storage::alerting::{
    AlertQuery, AlertRow, Anomaly, AnomalyQuery, AnomalyState, NewSilence, Severity, Silence,
};
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::Extension;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// Longest note or comment kept.
const MAX_NOTE: usize = 2000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/anomalies", get(anomalies))
        .route("/api/anomalies/{id}", get(anomaly))
        .route("/api/anomalies/{id}/acknowledge", post(acknowledge))
        .route("/api/anomalies/{id}/resolve", post(resolve))
        .route("/api/alerts", get(alerts))
        .route("/api/alerts/{id}/acknowledge", post(acknowledge_alert))
        .route("/api/silences", get(silences).post(create_silence))
        .route("/api/silences/{id}", delete(delete_silence))
}

fn id(what: &str, id: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|_| ApiError::invalid(format!("id: must be {what} number")))
}

pub(crate) fn parse<T>(
    field: &str,
    value: Option<&str>,
    parse: fn(&str) -> Option<T>,
    allowed: &str,
) -> Result<Option<T>, ApiError> {
    value
        .map(|v| {
            parse(v)
                .ok_or_else(|| ApiError::invalid(format!("{field}: {v:?} is not one of {allowed}")))
        })
        .transpose()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnomalyParams {
    severity: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    subject: Option<String>,
    group: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

async fn anomalies(
    State(state): State<AppState>,
    params: Result<Query<AnomalyParams>, QueryRejection>,
) -> Result<Json<Vec<Anomaly>>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let query = AnomalyQuery {
        severity: parse(
            "severity",
            p.severity.as_deref(),
            Severity::parse,
            "critical, high, medium, low",
        )?,
        state: parse(
            "state",
            p.state.as_deref(),
            AnomalyState::parse,
            "open, acknowledged, resolved",
        )?,
        kind: p.kind,
        subject: p.subject,
        group_key: p.group,
        limit: page_limit(p.limit, 100, MAX_PAGE)?,
        offset: p.offset.unwrap_or(0),
    };
    Ok(Json(state.store.anomalies(&query).await?))
}

async fn anomaly(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Anomaly>, ApiError> {
    let id = self::id("an anomaly", id)?;
    state
        .store
        .anomaly(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("anomaly {id} not found")))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    /// Who does it (until API tokens name the operator).
    by: Option<String>,
    note: Option<String>,
}

/// The optional JSON body of an action: empty means no `by` and no note.
fn action(body: &Bytes) -> Result<ActionBody, ApiError> {
    let body: ActionBody = if body.iter().all(u8::is_ascii_whitespace) {
        ActionBody::default()
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("body: {e}")))?
    };
    for (field, value) in [("by", &body.by), ("note", &body.note)] {
        if value.as_ref().is_some_and(|v| v.len() > MAX_NOTE) {
            return Err(ApiError::invalid(format!(
                "{field}: at most {MAX_NOTE} bytes"
            )));
        }
    }
    Ok(body)
}

/// Who acted: the body's `by`, else the token's name.
fn actor(by: &Option<String>, caller: &Option<Extension<Caller>>) -> String {
    by.clone()
        .or_else(|| caller.as_ref().map(|Extension(c)| c.name.clone()))
        .unwrap_or_else(|| "operator".into())
}

async fn acknowledge(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    id: Result<Path<i64>, PathRejection>,
    body: Bytes,
) -> Result<Json<Anomaly>, ApiError> {
    let id = self::id("an anomaly", id)?;
    let body = action(&body)?;
    let by = actor(&body.by, &caller);
    let anomaly = state
        .store
        .acknowledge_anomaly(id, &by, body.note.as_deref(), Utc::now())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("anomaly {id} not found")))?;
    state.engine.events.publish(Event::Anomaly {
        action: "acknowledged",
        anomaly: anomaly.clone(),
    });
    Ok(Json(anomaly))
}

async fn resolve(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    id: Result<Path<i64>, PathRejection>,
    body: Bytes,
) -> Result<Json<Anomaly>, ApiError> {
    let id = self::id("an anomaly", id)?;
    let body = action(&body)?;
    let by = actor(&body.by, &caller);
    let anomaly = state
        .store
        .resolve_anomaly(id, &by, body.note.as_deref(), Utc::now())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("anomaly {id} not found")))?;
    state.engine.wake.notify_waiters();
    state.engine.events.publish(Event::Anomaly {
        action: "resolved",
        anomaly: anomaly.clone(),
    });
    Ok(Json(anomaly))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertParams {
    channel: Option<String>,
    acknowledged: Option<bool>,
    anomaly: Option<i64>,
    state: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

async fn alerts(
    State(state): State<AppState>,
    params: Result<Query<AlertParams>, QueryRejection>,
) -> Result<Json<Vec<AlertRow>>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    if let Some(channel) = p.channel.as_deref() {
        if !["email", "telegram"].contains(&channel) {
            return Err(ApiError::invalid(format!(
                "channel: {channel:?} is not one of email, telegram"
            )));
        }
    }
    if let Some(s) = p.state.as_deref() {
        if !["pending", "sending", "sent", "failed", "cancelled"].contains(&s) {
            return Err(ApiError::invalid(format!(
                "state: {s:?} is not one of pending, sending, sent, failed, cancelled"
            )));
        }
    }
    let query = AlertQuery {
        channel: p.channel,
        acknowledged: p.acknowledged,
        anomaly_id: p.anomaly,
        state: p.state,
        limit: page_limit(p.limit, 100, MAX_PAGE)?,
        offset: p.offset.unwrap_or(0),
    };
    Ok(Json(state.store.alerts(&query).await?))
}

async fn acknowledge_alert(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    id: Result<Path<i64>, PathRejection>,
    body: Bytes,
) -> Result<Json<AlertRow>, ApiError> {
    let id = self::id("an alert", id)?;
    let body = action(&body)?;
    let by = actor(&body.by, &caller);
    let alert = state
        .store
        .acknowledge_alert(id, &by, Utc::now())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("alert {id} not found")))?;
    state.engine.events.publish(Event::Alert {
        action: "acknowledged",
        alert_id: id,
        by,
    });
    Ok(Json(alert))
}

async fn silences(State(state): State<AppState>) -> Result<Json<Vec<Silence>>, ApiError> {
    Ok(Json(state.store.silences(Utc::now()).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceBody {
    kind: Option<String>,
    subject: Option<String>,
    group: Option<String>,
    severity: Option<String>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: DateTime<Utc>,
    created_by: String,
    comment: String,
}

async fn create_silence(
    State(state): State<AppState>,
    body: Result<Json<SilenceBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Silence>), ApiError> {
    let Json(b) = body.map_err(|e| ApiError::invalid(e.body_text()))?;
    let now = Utc::now();
    let starts_at = b.starts_at.unwrap_or(now);
    if b.ends_at <= starts_at {
        return Err(ApiError::invalid("ends_at: must be after starts_at"));
    }
    if let Some(kind) = b.kind.as_deref() {
        if !crate::detect::kinds::ALL.contains(&kind) {
            return Err(ApiError::invalid(format!(
                "kind: {kind:?} is not a known anomaly kind"
            )));
        }
    }
    let severity = parse(
        "severity",
        b.severity.as_deref(),
        Severity::parse,
        "critical, high, medium, low",
    )?;
    if b.kind.is_none() && b.subject.is_none() && b.group.is_none() && severity.is_none() {
        return Err(ApiError::invalid(
            "kind: a silence needs at least one matcher (kind, subject, group or severity)",
        ));
    }
    if b.created_by.trim().is_empty() {
        return Err(ApiError::invalid("created_by: must not be empty"));
    }
    if b.comment.len() > MAX_NOTE || b.created_by.len() > 200 {
        return Err(ApiError::invalid(format!(
            "comment: at most {MAX_NOTE} bytes"
        )));
    }
    let spec = NewSilence {
        kind: b.kind,
        subject: b.subject,
        group_key: b.group,
        severity,
        starts_at,
        ends_at: b.ends_at,
        created_by: b.created_by,
        comment: b.comment,
    };
    let silence = state.store.create_silence(&spec, now).await?;
    state.engine.silences_changed();
    Ok((StatusCode::CREATED, Json(silence)))
}

async fn delete_silence(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = self::id("a silence", id)?;
    if state.store.delete_silence(id).await? {
        state.engine.silences_changed();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("silence {id} not found")))
    }
}

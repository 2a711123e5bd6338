//! Anomalies, their notifications and silences: `/api/anomalies`, `/api/alerts`,
//! `/api/silences`. Unknown ids are 404; acknowledging or resolving twice is harmless and
//! answers the anomaly as it stands.

use super::{page_limit, AppState, MAX_PAGE};
use crate::auth::guard::Caller;
use crate::domain::alerting::{
    AlertQuery, AlertRow, Anomaly, AnomalyKind, AnomalyQuery, AnomalyState, NewSilence, Severity,
    Silence,
};
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::events::Event;
use crate::rest::input::JsonBody;
use crate::rest::openapi::{one_of, one_of_or_null};
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Extension;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Longest note or comment kept.
const MAX_NOTE: usize = 2000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(anomalies))
        .routes(routes!(anomaly))
        .routes(routes!(acknowledge))
        .routes(routes!(resolve))
        .routes(routes!(alerts))
        .routes(routes!(acknowledge_alert))
        .routes(routes!(silences, create_silence))
        .routes(routes!(delete_silence))
}

fn severities() -> utoipa::openapi::Object {
    one_of(&["critical", "high", "medium", "low"])
}

fn anomaly_states() -> utoipa::openapi::Object {
    one_of(&["open", "acknowledged", "resolved"])
}

/// The outbox's channels.
const CHANNELS: &[&str] = &["email", "telegram", crate::alert::customer::CHANNEL];

fn channels() -> utoipa::openapi::Object {
    one_of(CHANNELS)
}

fn alert_states() -> utoipa::openapi::Object {
    one_of(&["pending", "sending", "sent", "failed", "cancelled"])
}

fn anomaly_kinds_or_null() -> utoipa::openapi::Object {
    one_of_or_null(&AnomalyKind::names())
}

fn severities_or_null() -> utoipa::openapi::Object {
    one_of_or_null(&["critical", "high", "medium", "low"])
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AnomalyParams {
    #[param(schema_with = severities)]
    severity: Option<String>,
    #[param(schema_with = anomaly_states)]
    state: Option<String>,
    /// The anomaly kind (`device_offline`, `circuit_maxout`, ...); a name that is no kind
    /// matches nothing.
    kind: Option<String>,
    /// The subject, exactly (a device address, a POI code, a circuit id, ...).
    subject: Option<String>,
    /// The group key (`agent:<id>`, a POI code or an account).
    group: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    #[param(maximum = 2147483647)]
    offset: Option<u32>,
}

/// Anomalies, newest first.
#[utoipa::path(get, path = "/api/anomalies", tag = "alerting", params(AnomalyParams),
    responses((status = 200, description = "A page of anomalies", body = Vec<Anomaly>)))]
async fn anomalies(
    State(state): State<AppState>,
    params: Result<Query<AnomalyParams>, QueryRejection>,
) -> Result<Json<Vec<Anomaly>>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let mut query = AnomalyQuery {
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
        kind: None,
        subject: p.subject,
        group_key: p.group,
        limit: page_limit(p.limit, 100, MAX_PAGE)?,
        offset: super::page_offset(p.offset)?,
    };
    // The other parameters are checked first: a name that is no kind matches nothing, but
    // does not excuse a bad `state`.
    if let Some(name) = p.kind.as_deref() {
        match AnomalyKind::parse(name) {
            Some(kind) => query.kind = Some(kind),
            None => return Ok(Json(Vec::new())),
        }
    }
    Ok(Json(state.store.anomalies(&query).await?))
}

/// One anomaly.
#[utoipa::path(get, path = "/api/anomalies/{id}", tag = "alerting",
    params(("id" = i64, Path, description = "The anomaly's id")),
    responses(
        (status = 200, description = "The anomaly", body = Anomaly),
        (status = 404, description = "No such anomaly", body = ErrorBody)))]
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

/// An optional body; an empty body is the same as `{}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    /// Who does it (default: the token's name), at most 2000 characters.
    #[schema(max_length = 2000)]
    by: Option<String>,
    /// At most 2000 characters.
    #[schema(max_length = 2000)]
    note: Option<String>,
}

/// The optional JSON body of an action: empty means no `by` and no note.
fn action(body: &Bytes) -> Result<ActionBody, ApiError> {
    let body: ActionBody = if body.iter().all(u8::is_ascii_whitespace) {
        ActionBody::default()
    } else {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("body: {e}")))?;
        if let Some(field) = crate::rest::input::field_with_nul(&value, "") {
            return Err(ApiError::invalid(format!(
                "{field}: must not contain NUL characters"
            )));
        }
        // `null` is no body, as an empty one is.
        serde_json::from_value::<Option<ActionBody>>(value)
            .map_err(|e| ApiError::invalid(format!("body: {e}")))?
            .unwrap_or_default()
    };
    for (field, value) in [("by", &body.by), ("note", &body.note)] {
        // Characters, as the document's `maxLength` counts them.
        if value.as_ref().is_some_and(|v| v.chars().count() > MAX_NOTE) {
            return Err(ApiError::invalid(format!(
                "{field}: at most {MAX_NOTE} characters"
            )));
        }
    }
    Ok(body)
}

/// Who acted: the body's `by`, else the token's name.
fn actor(by: &Option<String>, caller: &Option<Extension<Caller>>) -> String {
    by.clone()
        .or_else(|| caller.as_ref().map(|Extension(c)| c.name.to_string()))
        .unwrap_or_else(|| "operator".into())
}

/// Acknowledges an anomaly: its escalation stops. Harmless when repeated.
#[utoipa::path(post, path = "/api/anomalies/{id}/acknowledge", tag = "alerting",
    params(("id" = i64, Path, description = "The anomaly's id")),
    request_body(content = Option<ActionBody>, description = "Who and why (optional)"),
    responses(
        (status = 200, description = "The anomaly as it now stands", body = Anomaly),
        (status = 404, description = "No such anomaly", body = ErrorBody)))]
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
    // A one-off event (a new device, a changed MAC) has nothing left to watch once someone
    // has seen it: acknowledging it resolves it.
    if anomaly.kind.is_one_off() {
        if let Some(resolved) = state
            .store
            .resolve_anomaly(id, &by, body.note.as_deref(), Utc::now())
            .await?
        {
            state.engine.wake.notify_waiters();
            state.engine.events.publish(Event::Anomaly {
                action: "resolved",
                anomaly: resolved.clone(),
            });
            return Ok(Json(resolved));
        }
    }
    Ok(Json(anomaly))
}

/// Resolves an anomaly by hand. Harmless when repeated.
#[utoipa::path(post, path = "/api/anomalies/{id}/resolve", tag = "alerting",
    params(("id" = i64, Path, description = "The anomaly's id")),
    request_body(content = Option<ActionBody>, description = "Who and why (optional)"),
    responses(
        (status = 200, description = "The anomaly as it now stands", body = Anomaly),
        (status = 404, description = "No such anomaly", body = ErrorBody)))]
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AlertParams {
    #[param(schema_with = channels)]
    channel: Option<String>,
    acknowledged: Option<bool>,
    /// Only the notifications of this anomaly.
    anomaly: Option<i64>,
    #[param(schema_with = alert_states)]
    state: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    #[param(maximum = 2147483647)]
    offset: Option<u32>,
}

/// Notifications planned and sent, newest first: email and Telegram for anomalies, and the
/// customer maxout emails (`customer_email`, naming the circuit event instead of an anomaly).
#[utoipa::path(get, path = "/api/alerts", tag = "alerting", params(AlertParams),
    responses((status = 200, description = "A page of notifications", body = Vec<AlertRow>)))]
async fn alerts(
    State(state): State<AppState>,
    params: Result<Query<AlertParams>, QueryRejection>,
) -> Result<Json<Vec<AlertRow>>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    if let Some(channel) = p.channel.as_deref() {
        if !CHANNELS.contains(&channel) {
            return Err(ApiError::invalid(format!(
                "channel: {channel:?} is not one of {}",
                CHANNELS.join(", ")
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
        offset: super::page_offset(p.offset)?,
    };
    Ok(Json(state.store.alerts(&query).await?))
}

/// Acknowledges one notification.
#[utoipa::path(post, path = "/api/alerts/{id}/acknowledge", tag = "alerting",
    params(("id" = i64, Path, description = "The notification's id")),
    request_body(content = Option<ActionBody>, description = "Who (optional)"),
    responses(
        (status = 200, description = "The notification", body = AlertRow),
        (status = 404, description = "No such notification", body = ErrorBody)))]
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

/// Silences in force or still to come.
#[utoipa::path(get, path = "/api/silences", tag = "alerting",
    responses((status = 200, description = "The silences", body = Vec<Silence>)))]
async fn silences(State(state): State<AppState>) -> Result<Json<Vec<Silence>>, ApiError> {
    Ok(Json(state.store.silences(Utc::now()).await?))
}

/// A silence mutes notifications of anomalies matching every matcher given (at least one).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SilenceBody {
    #[schema(schema_with = anomaly_kinds_or_null)]
    kind: Option<String>,
    /// A subject; `*` matches any run of characters.
    subject: Option<String>,
    group: Option<String>,
    #[schema(schema_with = severities_or_null)]
    severity: Option<String>,
    /// Default: now.
    starts_at: Option<DateTime<Utc>>,
    /// Must be after `starts_at`.
    ends_at: DateTime<Utc>,
    /// Who, 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    created_by: String,
    /// Why, at most 2000 characters.
    #[schema(max_length = 2000)]
    comment: String,
}

/// Creates a silence.
#[utoipa::path(post, path = "/api/silences", tag = "alerting", request_body = SilenceBody,
    responses((status = 201, description = "The silence", body = Silence)))]
async fn create_silence(
    State(state): State<AppState>,
    JsonBody(b): JsonBody<SilenceBody>,
) -> Result<(StatusCode, Json<Silence>), ApiError> {
    let now = Utc::now();
    let starts_at = b.starts_at.unwrap_or(now);
    if b.ends_at <= starts_at {
        return Err(ApiError::invalid("ends_at: must be after starts_at"));
    }
    let kind = b
        .kind
        .as_deref()
        .map(|kind| {
            AnomalyKind::parse(kind).ok_or_else(|| {
                ApiError::invalid(format!("kind: {kind:?} is not a known anomaly kind"))
            })
        })
        .transpose()?;
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
    if b.comment.chars().count() > MAX_NOTE {
        return Err(ApiError::invalid(format!(
            "comment: at most {MAX_NOTE} characters"
        )));
    }
    if b.created_by.chars().count() > 200 {
        return Err(ApiError::invalid("created_by: at most 200 characters"));
    }
    let spec = NewSilence {
        kind,
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

/// Ends a silence.
#[utoipa::path(delete, path = "/api/silences/{id}", tag = "alerting",
    params(("id" = i64, Path, description = "The silence's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such silence", body = ErrorBody)))]
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

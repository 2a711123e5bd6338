//! `[alerting]` routes as the API sees them, and a test notification per route: the route's
//! every recipient (escalation steps included) is sent a message marked as a test, through
//! the same channel code real notifications use, and the answer says what each one came to.
//! Nothing is stored: a test opens no anomaly and queues nothing.

use super::AppState;
use crate::alert::dispatch::Attempt;
use crate::auth::guard::Caller;
use crate::domain::alerting::{
    AlertEvent, AlertJob, AlertRow, Anomaly, AnomalyKind, AnomalyState, Severity,
};
use crate::error::ApiError;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(send_test))
}

/// A route and where it sends.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteView {
    pub name: String,
    /// The kinds it takes; empty for all.
    pub kinds: Vec<AnomalyKind>,
    pub min_severity: Severity,
    pub recipients: Vec<Recipient>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Recipient {
    /// `email`, `telegram`, `webhook` or `alertmanager`.
    pub channel: String,
    /// An address, a chat, or a webhook's or Alertmanager's name.
    pub recipient: String,
}

/// What a test notification to one recipient came to.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestOutcome {
    pub channel: String,
    pub recipient: String,
    /// `sent`, `failed` (with `error`) or `deferred` (a flood limit: try again shortly).
    pub outcome: String,
    pub error: Option<String>,
}

/// The alert routes from `[alerting]`, with every recipient.
#[utoipa::path(get, path = "/api/alerting/routes", tag = "alerting",
    responses((status = 200, description = "The routes", body = Vec<RouteView>)))]
async fn list(State(state): State<AppState>) -> Json<Vec<RouteView>> {
    Json(
        state
            .alerting
            .routes
            .iter()
            .map(|r| RouteView {
                name: r.name.clone(),
                kinds: r.kinds.clone(),
                min_severity: r.min_severity,
                recipients: r
                    .recipients()
                    .into_iter()
                    .map(|(channel, recipient)| Recipient {
                        channel: channel.to_string(),
                        recipient,
                    })
                    .collect(),
            })
            .collect(),
    )
}

/// Sends a test notification to each of the route's recipients, now, and says what came of
/// each. 200 even when some failed (each outcome says why); 404 for no such route.
#[utoipa::path(post, path = "/api/alerting/routes/{name}/test", tag = "alerting",
    params(("name" = String, Path, description = "The route's name")),
    responses(
        (status = 200, description = "Each recipient's outcome", body = Vec<TestOutcome>),
        (status = 400, description = "The route has no recipients", body = crate::error::ErrorBody),
        (status = 404, description = "No such route", body = crate::error::ErrorBody)))]
async fn send_test(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<TestOutcome>>, ApiError> {
    let Path(name) = name.map_err(|e| ApiError::invalid(e.body_text()))?;
    let route = state
        .alerting
        .routes
        .iter()
        .find(|r| r.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no route named {name:?} in [alerting]")))?;
    let by = caller.map_or_else(|| "anonymous".to_string(), |c| c.name.to_string());
    let mut outcomes = Vec::new();
    for (channel_name, recipient) in route.recipients() {
        let Some(channel) = state.channels.iter().find(|c| c.name() == channel_name) else {
            outcomes.push(TestOutcome {
                channel: channel_name.into(),
                recipient,
                outcome: "failed".into(),
                error: Some(format!("the {channel_name} channel is not configured")),
            });
            continue;
        };
        let job = test_job(&route.name, channel_name, &recipient, &by);
        let (outcome, error) = match channel.deliver(&job).await {
            Attempt::Sent => ("sent", None),
            Attempt::Defer(wait) => (
                "deferred",
                Some(format!("a flood limit: try again in {} s", wait.as_secs())),
            ),
            Attempt::Transient(e) | Attempt::Permanent(e) | Attempt::NoContact(e) => {
                ("failed", Some(e))
            }
        };
        tracing::info!(route = %route.name, channel = channel_name, %recipient, outcome, by = %by, "test notification");
        outcomes.push(TestOutcome {
            channel: channel_name.into(),
            recipient,
            outcome: outcome.into(),
            error,
        });
    }
    if outcomes.is_empty() {
        return Err(ApiError::invalid(format!(
            "route {name:?} has no recipients"
        )));
    }
    Ok(Json(outcomes))
}

/// A notification that says it is a test, for one recipient; never stored (ids are 0).
fn test_job(route: &str, channel: &str, recipient: &str, by: &str) -> AlertJob {
    let now = Utc::now();
    AlertJob {
        alert: AlertRow {
            id: 0,
            anomaly_id: Some(0),
            channel: channel.into(),
            recipient: recipient.into(),
            event: AlertEvent::Open,
            step: 0,
            severity: Severity::Low,
            state: "sending".into(),
            due_at: now,
            attempts: 1,
            recovered: false,
            error: None,
            sent_at: None,
            created_at: now,
            acknowledged_at: None,
            acknowledged_by: None,
            circuit_event_id: None,
            details: None,
        },
        anomaly: Some(Anomaly {
            id: 0,
            kind: AnomalyKind::TestNotification,
            subject: format!("route/{route}"),
            group_key: None,
            severity: Severity::Low,
            state: AnomalyState::Open,
            summary: format!("Test notification for route {route}, sent by {by}: nothing is wrong"),
            details: serde_json::json!({"route": route, "sent_by": by}),
            suppressed: None,
            opened_at: now,
            updated_at: now,
            acknowledged_at: None,
            acknowledged_by: None,
            acknowledge_note: None,
            resolved_at: None,
            resolved_by: None,
            resolve_note: None,
        }),
    }
}

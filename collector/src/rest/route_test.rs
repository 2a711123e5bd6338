//! `[alerting]` routes as the API sees them, and a test notification per route: the route's
//! every recipient (escalation steps included) is sent a message marked as a test, through
//! the same channel code real notifications use, and the answer says what each one came to.
//! Nothing is stored: a test opens no anomaly and queues nothing. All recipients are tried at
//! once, each given [`SEND_WITHIN`]; a route can be tested once per [`COOLDOWN`], so a loop
//! cannot page people over and over or eat the flood limits real notifications need.

use super::AppState;
use crate::alert::dispatch::{Attempt, Channel};
use crate::alert::routing::RouteConfig;
use crate::auth::guard::{Caller, Refusal};
use crate::domain::alerting::{
    AlertEvent, AlertJob, AlertRow, Anomaly, AnomalyKind, AnomalyState, Severity,
};
use crate::error::{ApiError, ErrorCode};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use chrono::Utc;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// How long one recipient's test may take (under the CLI's default 30 s timeout).
pub const SEND_WITHIN: Duration = Duration::from_secs(20);
/// The least time between two tests of one route.
pub const COOLDOWN: Duration = Duration::from_secs(30);

/// When each route was last tested, per collector.
#[derive(Default)]
pub struct Cooldown {
    last: Mutex<HashMap<String, Instant>>,
}

impl Cooldown {
    /// `Err(seconds to wait)` when `route` was tested less than [`COOLDOWN`] ago.
    fn take(&self, route: &str) -> Result<(), u64> {
        let Ok(mut last) = self.last.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        if let Some(at) = last.get(route) {
            let since = now.duration_since(*at);
            if since < COOLDOWN {
                return Err((COOLDOWN - since).as_secs().max(1));
            }
        }
        last.insert(route.to_string(), now);
        Ok(())
    }
}

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
        (status = 404, description = "No such route", body = crate::error::ErrorBody),
        (status = 429, description = "The route was tested less than 30 s ago", body = crate::error::ErrorBody)))]
async fn send_test(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<TestOutcome>>, Refusal> {
    let Path(name) = name.map_err(|e| ApiError::invalid(e.body_text()))?;
    let route = state
        .alerting
        .routes
        .iter()
        .find(|r| r.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no route named {name:?} in [alerting]")))?;
    let recipients = route.recipients();
    if recipients.is_empty() {
        return Err(ApiError::invalid(format!("route {name:?} has no recipients")).into());
    }
    if let Err(wait) = state.route_tests.take(&route.name) {
        return Err(Refusal {
            error: ApiError::new(
                ErrorCode::ResourceExhausted,
                format!("route {name:?} was tested moments ago; again in {wait} s"),
            ),
            retry_after: Some(wait),
        });
    }
    let by = caller.map_or_else(|| "anonymous".to_string(), |c| c.name.to_string());
    // Ids no stored notification has (they are positive), different for every test: a mail
    // server or a pager that drops repeats of a Message-ID or a group key still shows it.
    let id = -Utc::now().timestamp_micros();
    let sends = recipients.into_iter().map(|(channel_name, recipient)| {
        let channel = state
            .channels
            .iter()
            .find(|c| c.name() == channel_name)
            .cloned();
        let job = test_job(id, route, channel_name, &recipient, &by);
        async move {
            let (outcome, error) = match channel {
                None => (
                    "failed",
                    Some(format!("the {channel_name} channel is not configured")),
                ),
                Some(channel) => deliver(channel.as_ref(), job).await,
            };
            TestOutcome {
                channel: channel_name.into(),
                recipient,
                outcome: outcome.into(),
                error,
            }
        }
    });
    let outcomes = futures::future::join_all(sends).await;
    for o in &outcomes {
        tracing::info!(route = %route.name, channel = %o.channel, recipient = %o.recipient,
            outcome = %o.outcome, by = %by, "test notification");
    }
    Ok(Json(outcomes))
}

/// Sends one test, within [`SEND_WITHIN`]. A webhook's test is followed by its resolve, so a
/// receiver that opens incidents (a PagerDuty bridge) closes the one the test opened.
async fn deliver(channel: &dyn Channel, job: AlertJob) -> (&'static str, Option<String>) {
    let attempt = |job: AlertJob| async move {
        match tokio::time::timeout(SEND_WITHIN, channel.deliver(&job)).await {
            Ok(attempt) => attempt,
            Err(_) => Attempt::Transient(format!("no answer within {} s", SEND_WITHIN.as_secs())),
        }
    };
    let mut result = attempt(job.clone()).await;
    if matches!(result, Attempt::Sent) && channel.name() == "webhook" {
        let mut resolve = job;
        resolve.alert.event = AlertEvent::Resolve;
        if let Some(anomaly) = resolve.anomaly.as_mut() {
            anomaly.state = AnomalyState::Resolved;
            anomaly.resolved_at = Some(Utc::now());
        }
        result = match attempt(resolve).await {
            Attempt::Sent => Attempt::Sent,
            Attempt::Defer(_) => Attempt::Transient("its resolve was deferred".into()),
            Attempt::Transient(e) | Attempt::Permanent(e) | Attempt::NoContact(e) => {
                Attempt::Transient(format!("sent, but its resolve failed: {e}"))
            }
        };
    }
    match result {
        Attempt::Sent => ("sent", None),
        Attempt::Defer(wait) => (
            "deferred",
            Some(format!("a flood limit: try again in {} s", wait.as_secs())),
        ),
        Attempt::Transient(e) | Attempt::Permanent(e) | Attempt::NoContact(e) => {
            ("failed", Some(e))
        }
    }
}

/// A notification that says it is a test, for one recipient, at the route's least severity
/// (so it passes the same severity filters downstream); never stored (`id` is negative).
fn test_job(id: i64, route: &RouteConfig, channel: &str, recipient: &str, by: &str) -> AlertJob {
    let now = Utc::now();
    let severity = route.min_severity;
    let route = route.name.as_str();
    AlertJob {
        alert: AlertRow {
            id,
            anomaly_id: Some(id),
            channel: channel.into(),
            recipient: recipient.into(),
            event: AlertEvent::Open,
            step: 0,
            severity,
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
            id,
            kind: AnomalyKind::TestNotification,
            subject: format!("route/{route}"),
            group_key: None,
            severity,
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

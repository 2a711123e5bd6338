//! What a notification says: the email through the operator-editable `anomaly` template, the
//! Telegram message as HTML built here (escaped, split to Telegram's limit).

use super::telegram::{escape, split, MAX_MESSAGE_CHARS};
use super::templates::{Rendered, Template};
use crate::storage::alerting::{AlertEvent, AlertJob, Anomaly};
use std::collections::BTreeMap;

fn event_title(job: &AlertJob) -> String {
    let title = match job.alert.event {
        AlertEvent::Open => "OPEN".to_string(),
        AlertEvent::Repeat => format!("STILL OPEN (reminder {})", job.alert.step),
        AlertEvent::Escalate => format!("ESCALATED (step {}, unacknowledged)", job.alert.step),
        AlertEvent::Resolve => "RESOLVED".to_string(),
    };
    if job.alert.recovered {
        // The collector sending it vanished mid-send: it may have gone out already.
        format!("{title} (possible repeat after a collector restart)")
    } else {
        title
    }
}

fn resolution(a: &Anomaly) -> String {
    match (a.resolved_at, &a.resolved_by) {
        (Some(at), by) => format!(
            "resolved {} by {}{}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            by.as_deref().unwrap_or("netwarden"),
            a.resolve_note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default()
        ),
        (None, _) => match (&a.acknowledged_by, a.acknowledged_at) {
            (Some(by), Some(at)) => format!(
                "acknowledged {} by {by}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            _ => "not acknowledged".to_string(),
        },
    }
}

pub fn values(job: &AlertJob, a: &Anomaly) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("event_title", event_title(job)),
        ("severity", job.alert.severity.as_str().to_string()),
        (
            "severity_upper",
            job.alert.severity.as_str().to_ascii_uppercase(),
        ),
        ("kind", a.kind.to_string()),
        ("subject", a.subject.clone()),
        ("group", a.group_key.clone().unwrap_or_else(|| "-".into())),
        ("state", a.state.as_str().to_string()),
        ("summary", a.summary.clone()),
        (
            "opened_at",
            a.opened_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        ("resolution", resolution(a)),
        ("details", a.details.to_string()),
        ("anomaly_id", a.id.to_string()),
    ])
}

pub fn email(template: &Template, job: &AlertJob, anomaly: &Anomaly) -> Rendered {
    template.render(&values(job, anomaly))
}

/// Stable per notification, so a resend after a crash is the same message to mail clients.
pub fn message_id(job: &AlertJob) -> String {
    let alert = &job.alert;
    match (alert.anomaly_id, alert.circuit_event_id) {
        (Some(anomaly), _) => format!("<alert-{}.anomaly-{anomaly}@netwarden>", alert.id),
        (None, Some(event)) => format!("<alert-{}.maxout-{event}@netwarden>", alert.id),
        (None, None) => format!("<alert-{}@netwarden>", alert.id),
    }
}

pub fn telegram(job: &AlertJob, anomaly: &Anomaly) -> Vec<String> {
    let v = values(job, anomaly);
    let icon = match job.alert.event {
        AlertEvent::Resolve => "✅",
        _ => "🚨",
    };
    let text = format!(
        "{icon} <b>[{}] {}</b>\n{}\n<code>{}</code> · {} · {}\nopened {} · {}\nanomaly {}\n{}",
        escape(&v["severity_upper"]),
        escape(&v["event_title"]),
        escape(&v["summary"]),
        escape(&v["subject"]),
        escape(&v["kind"]),
        escape(&v["group"]),
        escape(&v["opened_at"]),
        escape(&v["resolution"]),
        escape(&v["anomaly_id"]),
        escape(&v["details"]),
    );
    split(&text, MAX_MESSAGE_CHARS)
}

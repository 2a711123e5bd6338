//! Anomalies, the notification outbox and silences (issue 7).
//!
//! Every state change that makes or cancels notifications happens in one transaction with
//! the outbox rows it implies, so a crash between them cannot lose or invent a notification.
//! Collectors claim due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL) with a lease; a row whose
//! holder vanished mid-send is claimed again after the lease and marked `recovered`.

use super::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How bad an anomaly is, in order.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// One step up (escalation); critical stays critical.
    pub fn raised(self) -> Severity {
        match self {
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            _ => Severity::Critical,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnomalyState {
    Open,
    Acknowledged,
    Resolved,
}

impl AnomalyState {
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyState::Open => "open",
            AnomalyState::Acknowledged => "acknowledged",
            AnomalyState::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<AnomalyState> {
        [
            AnomalyState::Open,
            AnomalyState::Acknowledged,
            AnomalyState::Resolved,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// What a detector found, before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAnomaly {
    pub kind: String,
    pub subject: String,
    pub group_key: Option<String>,
    pub severity: Severity,
    pub summary: String,
    pub details: serde_json::Value,
}

impl NewAnomaly {
    pub fn dedup_key(&self) -> String {
        dedup_key(&self.kind, &self.subject)
    }
}

pub fn dedup_key(kind: &str, subject: &str) -> String {
    format!("{kind}:{subject}")
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Anomaly {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    pub group_key: Option<String>,
    pub severity: Severity,
    pub state: AnomalyState,
    pub summary: String,
    pub details: serde_json::Value,
    /// Why nobody was notified (a silence or an inhibiting anomaly), if so.
    pub suppressed: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub acknowledge_note: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub resolve_note: Option<String>,
}

/// Why a notification is sent.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AlertEvent {
    Open,
    Repeat,
    Escalate,
    Resolve,
}

impl AlertEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Open => "open",
            AlertEvent::Repeat => "repeat",
            AlertEvent::Escalate => "escalate",
            AlertEvent::Resolve => "resolve",
        }
    }

    pub fn parse(text: &str) -> Option<AlertEvent> {
        [
            AlertEvent::Open,
            AlertEvent::Repeat,
            AlertEvent::Escalate,
            AlertEvent::Resolve,
        ]
        .into_iter()
        .find(|e| e.as_str() == text)
    }
}

/// A notification the routing decided on when an anomaly opened.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedAlert {
    pub channel: String,
    pub recipient: String,
    pub event: AlertEvent,
    pub step: i32,
    pub severity: Severity,
    /// From the anomaly's opening to when it is due (group wait, escalation delay).
    pub delay: Duration,
    /// After this one is sent, another every this often while the anomaly stays open
    /// and unacknowledged; zero for none.
    pub repeat: Duration,
}

/// What became of an anomaly the detectors reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// Stored now, with its notifications (unless suppressed).
    New(i64),
    /// Already active: its details were refreshed (severity only ever rises).
    Existing(i64),
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct AlertRow {
    pub id: i64,
    pub anomaly_id: i64,
    pub channel: String,
    pub recipient: String,
    pub event: AlertEvent,
    pub step: i32,
    pub severity: Severity,
    /// pending, sending, sent, failed or cancelled.
    pub state: String,
    pub due_at: DateTime<Utc>,
    pub attempts: i32,
    /// Claimed again after the collector sending it vanished (it may have gone out twice).
    pub recovered: bool,
    pub error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
}

/// A claimed notification with what rendering it needs.
#[derive(Debug, Clone)]
pub struct AlertJob {
    pub alert: AlertRow,
    pub anomaly: Anomaly,
}

/// How one send ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertOutcome {
    Sent,
    /// Try again at `at` (transient failure, or the channel's flood limit).
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
    /// Put back untried until `at` (a flood limit, or shutting down): not an attempt.
    Defer {
        at: DateTime<Utc>,
    },
    /// Given up (permanent refusal or out of attempts).
    Failed {
        error: String,
    },
}

#[derive(Debug, Clone, Default)]
pub struct AnomalyQuery {
    pub severity: Option<Severity>,
    pub state: Option<AnomalyState>,
    pub kind: Option<String>,
    pub subject: Option<String>,
    pub group_key: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

#[derive(Debug, Clone, Default)]
pub struct AlertQuery {
    pub channel: Option<String>,
    pub acknowledged: Option<bool>,
    pub anomaly_id: Option<i64>,
    pub state: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

/// Mutes notifications of matching anomalies between `starts_at` and `ends_at`. Unset
/// matchers match anything; `subject` may use `*` as a wildcard.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct NewSilence {
    pub kind: Option<String>,
    pub subject: Option<String>,
    pub group_key: Option<String>,
    pub severity: Option<Severity>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Silence {
    pub id: i64,
    #[serde(flatten)]
    pub spec: NewSilence,
    pub created_at: DateTime<Utc>,
}

impl Silence {
    pub fn matches(&self, a: &NewAnomaly, at: DateTime<Utc>) -> bool {
        let s = &self.spec;
        at >= s.starts_at
            && at < s.ends_at
            && s.kind.as_deref().is_none_or(|k| k == a.kind)
            && s.severity.is_none_or(|v| v == a.severity)
            && s.group_key
                .as_deref()
                .is_none_or(|g| Some(g) == a.group_key.as_deref())
            && s.subject.as_deref().is_none_or(|p| glob(p, &a.subject))
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[async_trait]
pub trait AlertStore {
    /// Opens an anomaly with its planned notifications, or refreshes the active one with the
    /// same dedup key. `suppressed` stores it without notifications.
    async fn open_anomaly(
        &self,
        anomaly: &NewAnomaly,
        suppressed: Option<&str>,
        plan: &[PlannedAlert],
        now: DateTime<Utc>,
    ) -> Result<Opened>;
    async fn active_anomaly(&self, dedup_key: &str) -> Result<Option<Anomaly>>;
    /// Resolves the anomaly: cancels its pending notifications and queues a resolve notice to
    /// every recipient that was told it opened. `None` if there is no such anomaly.
    async fn resolve_anomaly(
        &self,
        id: i64,
        by: &str,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Anomaly>>;
    /// Acknowledges an open anomaly and cancels its pending repeats and escalations.
    async fn acknowledge_anomaly(
        &self,
        id: i64,
        by: &str,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Anomaly>>;
    async fn anomaly(&self, id: i64) -> Result<Option<Anomaly>>;
    async fn anomalies(&self, query: &AnomalyQuery) -> Result<Vec<Anomaly>>;

    /// Claims up to `limit` due notifications of `channel` for `holder` until `now + lease`.
    async fn claim_alerts(
        &self,
        channel: &str,
        holder: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<AlertJob>>;
    /// Records how a claimed send ended; ignored if `holder` lost the claim meanwhile.
    /// A sent notification with a repeat interval queues the next repeat.
    async fn finish_alert(
        &self,
        id: i64,
        holder: &str,
        outcome: &AlertOutcome,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// When the next pending notification of `channel` is due, if any.
    async fn next_alert_due(&self, channel: &str) -> Result<Option<DateTime<Utc>>>;
    async fn alert(&self, id: i64) -> Result<Option<AlertRow>>;
    async fn alerts(&self, query: &AlertQuery) -> Result<Vec<AlertRow>>;
    /// Acknowledges the notification and with it its anomaly.
    async fn acknowledge_alert(
        &self,
        id: i64,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<AlertRow>>;

    async fn create_silence(&self, silence: &NewSilence, now: DateTime<Utc>) -> Result<Silence>;
    /// Silences that have not ended by `now`.
    async fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>>;
    async fn delete_silence(&self, id: i64) -> Result<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_wildcards_anywhere() {
        assert!(glob("10.1.2.*", "10.1.2.77"));
        assert!(!glob("10.1.2.*", "10.1.3.77"));
        assert!(glob("*", "anything"));
        assert!(glob("branch-*-core", "branch-7-core"));
        assert!(!glob("branch-*-core", "branch-7-edge"));
        assert!(glob("a*b*c", "a-x-b-y-c"));
        assert!(!glob("a*b*c", "a-x-c"));
        assert!(glob("exact", "exact"));
        assert!(!glob("ab*ab", "ab"));
    }

    #[test]
    fn severities_order_and_escalate() {
        assert!(Severity::Critical > Severity::High);
        assert_eq!(Severity::Low.raised(), Severity::Medium);
        assert_eq!(Severity::Critical.raised(), Severity::Critical);
        assert_eq!(Severity::parse("high"), Some(Severity::High));
        assert_eq!(Severity::parse("urgent"), None);
    }
}

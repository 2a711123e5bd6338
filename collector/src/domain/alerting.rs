//! Anomalies and what is done about them: kinds, severities, states, notifications, silences.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What an anomaly is about: each detector's kind, stored and served as its snake_case name.
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
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// A device stopped answering.
    DeviceOffline,
    /// A device loses packets.
    PacketLoss,
    /// A device answers slower than its baseline.
    Latency,
    /// A device's round-trip times vary more than they should.
    Jitter,
    /// A device goes up and down.
    Flapping,
    /// A device seen for the first time (one-off).
    NewDevice,
    /// A known address answers from another MAC (one-off).
    MacChange,
    /// A device's open ports changed (one-off).
    PortsChanged,
    /// Speed tests below the floor.
    SpeedLow,
    /// An agent stopped reporting.
    AgentSilent,
    /// A customer circuit at or over its provisioned rate.
    CircuitMaxout,
    /// A POI's bandwidth at or over its capacity.
    PoiMaxout,
    /// A Cacti source's graphs whose titles name no POI (their maxouts can never be seen).
    CactiTitlesUnparsed,
    /// Most of an agent's targets offline at once: its site (LAN, uplink) is unreachable. It mutes the anomalies of the agent's targets.
    SiteUnreachable,
    /// A circuit maxout whose customer could not be emailed (no contact, or the send failed).
    CustomerNotNotified,
    /// A TCP port a `tcp` check expects open stopped accepting connections.
    PortDown,
    /// A route's test notification, sent by hand to check its recipients; never stored.
    TestNotification,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 17] = [
        AnomalyKind::DeviceOffline,
        AnomalyKind::PacketLoss,
        AnomalyKind::Latency,
        AnomalyKind::Jitter,
        AnomalyKind::Flapping,
        AnomalyKind::NewDevice,
        AnomalyKind::MacChange,
        AnomalyKind::PortsChanged,
        AnomalyKind::SpeedLow,
        AnomalyKind::AgentSilent,
        AnomalyKind::CircuitMaxout,
        AnomalyKind::PoiMaxout,
        AnomalyKind::CactiTitlesUnparsed,
        AnomalyKind::SiteUnreachable,
        AnomalyKind::CustomerNotNotified,
        AnomalyKind::PortDown,
        AnomalyKind::TestNotification,
    ];

    /// Kinds that are one-off events rather than conditions: they do not repeat, and they
    /// resolve when acknowledged or after `[alerting] one_off_resolve_secs`.
    pub const ONE_OFF: [AnomalyKind; 3] = [
        AnomalyKind::NewDevice,
        AnomalyKind::MacChange,
        AnomalyKind::PortsChanged,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::DeviceOffline => "device_offline",
            AnomalyKind::PacketLoss => "packet_loss",
            AnomalyKind::Latency => "latency",
            AnomalyKind::Jitter => "jitter",
            AnomalyKind::Flapping => "flapping",
            AnomalyKind::NewDevice => "new_device",
            AnomalyKind::MacChange => "mac_change",
            AnomalyKind::PortsChanged => "ports_changed",
            AnomalyKind::SpeedLow => "speed_low",
            AnomalyKind::AgentSilent => "agent_silent",
            AnomalyKind::CircuitMaxout => "circuit_maxout",
            AnomalyKind::PoiMaxout => "poi_maxout",
            AnomalyKind::CactiTitlesUnparsed => "cacti_titles_unparsed",
            AnomalyKind::SiteUnreachable => "site_unreachable",
            AnomalyKind::CustomerNotNotified => "customer_not_notified",
            AnomalyKind::PortDown => "port_down",
            AnomalyKind::TestNotification => "test_notification",
        }
    }

    /// The kind a name stands for; `None` for a name that is not a kind.
    pub fn parse(text: &str) -> Option<AnomalyKind> {
        AnomalyKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    pub fn is_one_off(self) -> bool {
        AnomalyKind::ONE_OFF.contains(&self)
    }

    /// Every name, for messages and the API document.
    pub fn names() -> Vec<&'static str> {
        AnomalyKind::ALL.iter().map(|k| k.as_str()).collect()
    }
}

impl std::fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AnomalyKind {
    type Err = UnknownKind;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        AnomalyKind::parse(text).ok_or_else(|| UnknownKind(text.to_string()))
    }
}

/// A name that is not an anomaly kind (in a request, a configuration or a stored row).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not one of {}", AnomalyKind::names().join(", "), name = self.0)]
pub struct UnknownKind(pub String);

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
    pub kind: AnomalyKind,
    pub subject: String,
    pub group_key: Option<String>,
    pub severity: Severity,
    pub summary: String,
    pub details: serde_json::Value,
}

impl NewAnomaly {
    pub fn dedup_key(&self) -> String {
        dedup_key(self.kind, &self.subject)
    }
}

pub fn dedup_key(kind: AnomalyKind, subject: &str) -> String {
    format!("{kind}:{subject}")
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Anomaly {
    pub id: i64,
    pub kind: AnomalyKind,
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
    /// The anomaly it tells of; none for a customer email, which tells of a circuit event.
    pub anomaly_id: Option<i64>,
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
    /// The circuit maxout event a customer email tells of (channel `customer_email`).
    pub circuit_event_id: Option<i64>,
    /// What it tells of as it was queued: a customer email's event as it opened.
    pub details: Option<serde_json::Value>,
}

/// A claimed notification with what rendering it needs.
#[derive(Debug, Clone)]
pub struct AlertJob {
    pub alert: AlertRow,
    /// The anomaly it tells of (none for a customer email: its channel reads the event).
    pub anomaly: Option<Anomaly>,
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
    pub kind: Option<AnomalyKind>,
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
    pub kind: Option<AnomalyKind>,
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
            && s.kind.is_none_or(|k| k == a.kind)
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

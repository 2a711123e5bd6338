//! Circuits, their telemetry and maxout events, and the customer email claims.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A customer circuit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CircuitRecord {
    pub circuit_id: String,
    pub account: Option<String>,
    pub provisioned_mbps: f64,
    pub burst_mbps: Option<f64>,
    pub pop: Option<String>,
    pub provisioned_at: Option<DateTime<Utc>>,
    pub upgraded_at: Option<DateTime<Utc>>,
    pub decommissioned_at: Option<DateTime<Utc>>,
}

/// A circuit id that sent samples but is not known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UnknownCircuit {
    pub circuit_id: String,
    pub samples: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// A stored sample.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TelemetryPoint {
    pub timestamp: DateTime<Utc>,
    pub utilization_mbps: f64,
}

/// A stored circuit maxout event.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CircuitMaxoutRecord {
    pub id: i64,
    pub circuit_id: String,
    pub account: Option<String>,
    /// `burst` (over the threshold, at or below the burst ceiling) or `maxout` (above it).
    pub severity: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub duration_secs: i64,
    pub samples: i32,
    pub peak_mbps: f64,
    pub peak_pct: f64,
    /// When the peak was (its first sample); absent for events recorded before it was kept.
    pub peak_at: Option<DateTime<Utc>>,
    pub provisioned_mbps: f64,
    pub burst_mbps: Option<f64>,
    /// True while the circuit is still over the threshold.
    pub open: bool,
    /// Found by a backfill of old samples (`import telemetry`), not as they came.
    pub historical: bool,
}

/// A sample that came later than the reorder horizon behind its circuit's newest: stored,
/// not evaluated (a backfill can evaluate it).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LateSample {
    pub circuit_id: String,
    pub timestamp: DateTime<Utc>,
    pub utilization_mbps: f64,
    /// The circuit's newest sample when this one came.
    pub newest: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

/// Circuit maxouts summed per account, for CX and account management.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AccountMaxoutSummary {
    pub account: Option<String>,
    pub events: i64,
    pub circuits: i64,
    /// Hours over the threshold, all events together (an open one so far).
    pub hours_at_max: f64,
    /// The highest peak relative to its circuit's provisioned capacity, and that peak.
    pub peak_mbps: f64,
    pub peak_pct: f64,
}

#[derive(Debug, Clone, Default)]
pub struct CircuitMaxoutQuery {
    pub account: Option<String>,
    pub circuit_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Only events still open.
    pub open_only: bool,
    pub limit: u32,
}

/// A circuit maxout event's customer email, to be claimed (its circuit's cooldown) and queued.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerEmailJob {
    /// The outbox channel that delivers it.
    pub channel: &'static str,
    pub circuit_id: String,
    pub event_id: i64,
    /// The event's start, Unix ms: the cooldown counts in event time.
    pub start: i64,
    pub cooldown_ms: i64,
    pub severity: crate::domain::alerting::Severity,
    /// The event as it opened, which the email describes.
    pub event: CircuitEvent,
}

/// A granted customer email claim (event starts in Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmailClaim {
    /// The claimed event's start.
    pub start: i64,
    /// The circuit's last claimed start before this one, if any.
    pub previous: Option<i64>,
}

/// A circuit sample as committed.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetrySample {
    pub circuit_id: String,
    pub utilization_mbps: f64,
    pub at: DateTime<Utc>,
}

/// How far over its capacity a circuit went: at or below its burst ceiling, or above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaxoutClass {
    /// At or over the threshold, at or below the burst ceiling.
    Burst,
    /// Above the burst ceiling (or at or over the threshold, when there is no burst).
    Maxout,
}

impl MaxoutClass {
    /// As stored and served.
    pub fn as_str(self) -> &'static str {
        match self {
            MaxoutClass::Burst => "burst",
            MaxoutClass::Maxout => "maxout",
        }
    }

    /// As stored; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        [MaxoutClass::Burst, MaxoutClass::Maxout]
            .into_iter()
            .find(|c| c.as_str() == text)
    }
}

/// An event as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CircuitEvent {
    /// Unix milliseconds of the first sample over the threshold.
    pub start: i64,
    /// Unix milliseconds of the last sample over the threshold.
    pub end: i64,
    pub samples: u32,
    pub peak_mbps: f64,
    /// Unix milliseconds of the (first) sample at the peak.
    pub peak_at: i64,
    pub severity: MaxoutClass,
}

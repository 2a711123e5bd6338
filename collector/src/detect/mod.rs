//! Detectors: pure functions over a series and its state, no IO, so they are tested round by
//! round. Each turns an observation into signals (an anomaly firing or clearing); the alert
//! engine (`crate::alerting`) stores them and decides who hears about them.

pub mod device;
pub mod identity;
pub mod speed;
mod streak;

use crate::storage::alerting::{NewAnomaly, Severity};

pub use streak::Streak;

/// What a detector concluded from one observation.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// The condition holds (new, or worse than before).
    Firing(NewAnomaly),
    /// The condition has cleared (after the detector's hysteresis).
    Clear { kind: &'static str, subject: String },
}

impl Signal {
    pub fn kind(&self) -> &str {
        match self {
            Signal::Firing(a) => &a.kind,
            Signal::Clear { kind, .. } => kind,
        }
    }
}

/// The anomaly kinds the collector detects.
pub mod kinds {
    pub const DEVICE_OFFLINE: &str = "device_offline";
    pub const PACKET_LOSS: &str = "packet_loss";
    pub const LATENCY: &str = "latency";
    pub const JITTER: &str = "jitter";
    pub const FLAPPING: &str = "flapping";
    pub const NEW_DEVICE: &str = "new_device";
    pub const MAC_CHANGE: &str = "mac_change";
    pub const PORTS_CHANGED: &str = "ports_changed";
    pub const SPEED_LOW: &str = "speed_low";
    pub const AGENT_SILENT: &str = "agent_silent";
    pub const CIRCUIT_MAXOUT: &str = "circuit_maxout";
    pub const POI_MAXOUT: &str = "poi_maxout";
    /// A Cacti source's graphs whose titles name no POI (their maxouts can never be seen).
    pub const CACTI_TITLES_UNPARSED: &str = "cacti_titles_unparsed";
    /// Most of an agent's targets offline at once: its site (LAN, uplink) is unreachable.
    /// It mutes the anomalies of the agent's targets.
    pub const SITE_UNREACHABLE: &str = "site_unreachable";

    /// Kinds that are one-off events rather than conditions: they do not repeat, and they
    /// resolve when acknowledged or after `[alerting] one_off_resolve_secs`.
    pub const ONE_OFF: &[&str] = &[NEW_DEVICE, MAC_CHANGE, PORTS_CHANGED];
    /// A circuit maxout whose customer could not be emailed (no contact, or the send failed).
    pub const CUSTOMER_NOT_NOTIFIED: &str = "customer_not_notified";

    pub const ALL: &[&str] = &[
        DEVICE_OFFLINE,
        PACKET_LOSS,
        LATENCY,
        JITTER,
        FLAPPING,
        NEW_DEVICE,
        MAC_CHANGE,
        PORTS_CHANGED,
        SPEED_LOW,
        AGENT_SILENT,
        CIRCUIT_MAXOUT,
        POI_MAXOUT,
        CACTI_TITLES_UNPARSED,
        SITE_UNREACHABLE,
        CUSTOMER_NOT_NOTIFIED,
    ];
}

pub(crate) fn firing(
    kind: &str,
    subject: &str,
    group: &str,
    severity: Severity,
    summary: String,
    details: serde_json::Value,
) -> Signal {
    Signal::Firing(NewAnomaly {
        kind: kind.to_string(),
        subject: subject.to_string(),
        group_key: Some(group.to_string()),
        severity,
        summary,
        details,
    })
}

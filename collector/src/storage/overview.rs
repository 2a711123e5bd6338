//! Counts for the NOC's overview (`/api/statistics`, `/api/sites`) and a device's uptime, behind
//! [`OverviewStore`] (both backends). Each is one grouped query, not a scan in Rust.

use super::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Devices of one agent in one status (`None`: never probed).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusCount {
    pub agent_id: String,
    pub status: Option<&'static str>,
    pub count: i64,
}

/// Unresolved anomalies of one group, severity and state.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyCount {
    pub group_key: Option<String>,
    pub severity: String,
    pub state: String,
    pub count: i64,
}

/// Probe rounds of a device since a time, and how many got at least one reply.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Uptime {
    pub rounds: i64,
    pub answered: i64,
}

impl Uptime {
    /// Percent of rounds answered; `None` with no rounds.
    pub fn percent(&self) -> Option<f64> {
        (self.rounds > 0).then(|| 100.0 * self.answered as f64 / self.rounds as f64)
    }
}

#[async_trait]
pub trait OverviewStore: Send + Sync {
    async fn status_counts(&self) -> Result<Vec<StatusCount>>;
    async fn unresolved_anomaly_counts(&self) -> Result<Vec<AnomalyCount>>;
    /// Notifications sent that nobody has acknowledged.
    async fn unacknowledged_alerts(&self) -> Result<i64>;
    async fn device_uptime(&self, id: i64, since: DateTime<Utc>) -> Result<Uptime>;
    /// The open ports the newest discovery of the device saw.
    async fn device_ports(&self, id: i64) -> Result<Option<Vec<u16>>>;
}

pub(crate) fn parse_ports(text: &str) -> Vec<u16> {
    text.split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

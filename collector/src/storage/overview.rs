//! Counts for the NOC's overview (`/api/statistics`, `/api/sites`) and a device's uptime, behind
//! [`OverviewStore`] (both backends). Each is one grouped query, not a scan in Rust.

use super::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use crate::domain::overview::*;

#[async_trait]
pub trait OverviewStore: Send + Sync {
    async fn status_counts(&self) -> Result<Vec<StatusCount>>;
    async fn unresolved_anomaly_counts(&self) -> Result<Vec<AnomalyCount>>;
    /// Notifications sent that nobody has acknowledged.
    async fn unacknowledged_alerts(&self) -> Result<i64>;
    async fn device_uptime(&self, id: i64, since: DateTime<Utc>) -> Result<Uptime>;
    /// The open ports the newest discovery of the device saw.
    async fn device_ports(&self, id: i64) -> Result<Option<Vec<u16>>>;
    /// The device's checked TCP ports, by port, with their checks since `since`.
    async fn device_port_checks(&self, id: i64, since: DateTime<Utc>) -> Result<Vec<PortStatus>>;
}

//! What circuit telemetry stores and the API reads, behind [`TelemetryStore`] (both backends;
//! tests in `tests/it/telemetry.rs`).

use super::Result;
use crate::telemetry::detect::CircuitEvent;
use crate::telemetry::sample::TelemetrySample;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

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
    /// `burst` (over provisioned, within burst) or `maxout`.
    pub severity: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub duration_secs: i64,
    pub samples: i32,
    pub peak_mbps: f64,
    pub peak_pct: f64,
    pub provisioned_mbps: f64,
    pub burst_mbps: Option<f64>,
    /// True while the circuit is still over the threshold.
    pub open: bool,
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

/// Stores samples as [`TelemetryStore::save_telemetry`] does, on the calling thread.
pub type BlockingTelemetrySaver =
    Box<dyn FnMut(&[TelemetrySample], DateTime<Utc>) -> Result<BTreeSet<String>> + Send>;

#[async_trait]
pub trait TelemetryStore: Send + Sync {
    /// Stores samples in one transaction; returns the circuit ids among them that are not
    /// known (their samples are stored too, and the ids listed as unknown).
    async fn save_telemetry(
        &self,
        samples: &[TelemetrySample],
        now: DateTime<Utc>,
    ) -> Result<BTreeSet<String>>;
    /// A blocking form of `save_telemetry`, for a backend whose commits block a thread
    /// anyway (SQLite): the committer then runs on a thread of its own, with no hop to a
    /// blocking pool per commit.
    fn blocking_telemetry_saver(&self) -> Option<BlockingTelemetrySaver> {
        None
    }
    async fn telemetry(
        &self,
        circuit_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<TelemetryPoint>>;
    /// Inserts or replaces a circuit; it stops being listed as unknown.
    async fn save_circuit(&self, circuit: &CircuitRecord, now: DateTime<Utc>) -> Result<()> {
        self.save_circuits(std::slice::from_ref(circuit), now).await
    }
    /// Inserts or replaces circuits in one transaction: all or none.
    async fn save_circuits(&self, circuits: &[CircuitRecord], now: DateTime<Utc>) -> Result<()>;
    async fn circuit(&self, circuit_id: &str) -> Result<Option<CircuitRecord>>;
    async fn circuits(&self, limit: u32, offset: u32) -> Result<Vec<CircuitRecord>>;
    async fn unknown_circuits(&self) -> Result<Vec<UnknownCircuit>>;
    /// Deletes up to `limit` samples older than `cutoff`; returns how many went.
    async fn delete_telemetry_before(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64>;
    /// The circuits among these ids that are known.
    async fn circuits_by_ids(&self, ids: &[String]) -> Result<Vec<CircuitRecord>>;
    /// Records a maxout event that just opened; returns its id.
    async fn open_circuit_maxout(
        &self,
        circuit: &CircuitRecord,
        event: &CircuitEvent,
        now: DateTime<Utc>,
    ) -> Result<i64>;
    /// Updates an event as it goes on, or closes it.
    async fn update_circuit_maxout(&self, id: i64, event: &CircuitEvent, open: bool) -> Result<()>;
    async fn circuit_maxouts(&self, query: &CircuitMaxoutQuery)
        -> Result<Vec<CircuitMaxoutRecord>>;
    /// Circuit maxouts in the window (`query.from`, `.to`, `.account`) summed per account,
    /// by account id.
    async fn circuit_maxout_summary(
        &self,
        query: &CircuitMaxoutQuery,
    ) -> Result<Vec<AccountMaxoutSummary>>;
    /// Records that the customer was emailed about an event.
    async fn mark_circuit_maxout_notified(&self, id: i64, now: DateTime<Utc>) -> Result<()>;
    /// The start of the latest event of a circuit whose customer was emailed: the customer
    /// email's cooldown counts from there, across restarts.
    async fn last_notified_circuit_maxout(&self, circuit_id: &str)
        -> Result<Option<DateTime<Utc>>>;
}

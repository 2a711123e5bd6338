//! What circuit telemetry stores and the API reads, behind [`TelemetryStore`] (both backends;
//! tests in `tests/it/telemetry.rs`).

use super::Result;
use crate::telemetry::sample::TelemetrySample;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A customer circuit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownCircuit {
    pub circuit_id: String,
    pub samples: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// A stored sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TelemetryPoint {
    pub timestamp: DateTime<Utc>,
    pub utilization_mbps: f64,
}

#[async_trait]
pub trait TelemetryStore: Send + Sync {
    /// Stores samples in one transaction; returns the circuit ids among them that are not
    /// known (their samples are stored too, and the ids listed as unknown).
    async fn save_telemetry(
        &self,
        samples: &[TelemetrySample],
        now: DateTime<Utc>,
    ) -> Result<BTreeSet<String>>;
    async fn telemetry(
        &self,
        circuit_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<TelemetryPoint>>;
    /// Inserts or replaces a circuit; it stops being listed as unknown.
    async fn save_circuit(&self, circuit: &CircuitRecord, now: DateTime<Utc>) -> Result<()>;
    async fn circuit(&self, circuit_id: &str) -> Result<Option<CircuitRecord>>;
    async fn circuits(&self, limit: u32, offset: u32) -> Result<Vec<CircuitRecord>>;
    async fn unknown_circuits(&self) -> Result<Vec<UnknownCircuit>>;
}

//! What circuit telemetry stores and the API reads, behind [`TelemetryStore`] (both backends;
//! tests in `tests/it/telemetry.rs`).

use super::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

pub use crate::domain::telemetry::*;

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
    /// Records a maxout event that just opened (or, `open` false, one a backfill found
    /// whole); returns its id.
    async fn open_circuit_maxout(
        &self,
        circuit: &CircuitRecord,
        event: &CircuitEvent,
        open: bool,
        historical: bool,
        now: DateTime<Utc>,
    ) -> Result<i64>;
    /// Updates an event as it goes on, closes, or is reshaped by a late sample (its start,
    /// end, samples, peak and severity).
    async fn update_circuit_maxout(&self, id: i64, event: &CircuitEvent, open: bool) -> Result<()>;
    /// Withdraws an event a late sample undid: kept, no longer listed or summed.
    async fn withdraw_circuit_maxout(&self, id: i64, now: DateTime<Utc>) -> Result<()>;
    /// Bumped by every change to the circuits (a trigger): detection re-reads what it cached
    /// when it moves.
    async fn circuits_version(&self) -> Result<i64>;
    /// Lists samples that came beyond the reorder horizon.
    async fn save_late_telemetry(&self, samples: &[LateSample]) -> Result<()>;
    /// The latest `limit` late samples, newest received first.
    async fn late_telemetry(&self, limit: u32) -> Result<Vec<LateSample>>;
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
    /// Claims the customer email about a circuit's event starting at `start` (Unix ms): it is
    /// granted unless the circuit's last claimed event starts less than `cooldown_ms` before
    /// it, or after it (the customer heard of a later one). Atomic across collectors on one
    /// database: of two claims within a cooldown, one is granted.
    async fn claim_customer_email(
        &self,
        circuit_id: &str,
        start: i64,
        cooldown_ms: i64,
    ) -> Result<Option<EmailClaim>>;
    /// Gives back a claim whose email could not be sent: the cooldown counts from the claim
    /// before it again, unless a later claim was granted meanwhile.
    async fn release_customer_email(&self, circuit_id: &str, claim: &EmailClaim) -> Result<()>;
    /// Claims the event's customer email as [`claim_customer_email`](Self::claim_customer_email)
    /// does and, if granted, queues it in the notification outbox, in one transaction: a
    /// claimed email is always queued. The queued notification's id; none within the
    /// cooldown, when nothing is queued.
    async fn queue_customer_email(
        &self,
        job: &CustomerEmailJob,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>>;
    /// The claim the event's email holds, if it is still the circuit's last: what a failed
    /// send gives back, and whether its outcome is the one the NOC goes by.
    async fn customer_email_claim(
        &self,
        circuit_id: &str,
        event_id: i64,
    ) -> Result<Option<EmailClaim>>;
    /// One event by id, withdrawn or not.
    async fn circuit_maxout(&self, id: i64) -> Result<Option<CircuitMaxoutRecord>>;
}

/// Stores samples as [`TelemetryStore::save_telemetry`] does, on the calling thread.
pub type BlockingTelemetrySaver =
    Box<dyn FnMut(&[TelemetrySample], DateTime<Utc>) -> Result<BTreeSet<String>> + Send>;

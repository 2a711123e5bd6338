//! Probe rollups behind [`RollupStore`] (both backends): raw rounds read by time, rollup rows
//! written idempotently (a bucket recomputed replaces itself), per-resolution watermarks, and
//! retention deletes in slices.

use super::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One raw probe round, as the rollup needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRound {
    pub device_id: i64,
    pub ts: DateTime<Utc>,
    pub sent: i32,
    pub received: i32,
    pub rtts_ms: Vec<f32>,
}

/// One device's bucket.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RollupRow {
    #[serde(skip)]
    pub device_id: i64,
    /// Bucket start.
    pub ts: DateTime<Utc>,
    pub rounds: i64,
    /// Rounds with at least one reply.
    pub answered: i64,
    pub sent: i64,
    pub received: i64,
    pub loss_pct: f32,
    pub rtt_min_ms: Option<f32>,
    pub rtt_mean_ms: Option<f32>,
    pub rtt_max_ms: Option<f32>,
    /// Over every reply in the bucket, not an average of rounds' p95s.
    pub rtt_p95_ms: Option<f32>,
}

#[async_trait]
pub trait RollupStore: Send + Sync {
    /// Raw rounds with `from <= ts < to`, of every device.
    async fn raw_rounds(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<RawRound>>;
    /// The time of the oldest raw round, if any (where a first rollup starts).
    async fn oldest_raw_round(&self) -> Result<Option<DateTime<Utc>>>;
    /// Inserts or replaces these buckets.
    async fn save_rollups(&self, resolution_secs: u32, rows: &[RollupRow]) -> Result<()>;
    /// A device's buckets with `from <= ts < to`, oldest first.
    async fn rollups(
        &self,
        device_id: i64,
        resolution_secs: u32,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RollupRow>>;
    /// The end of the last bucket computed at this resolution.
    async fn rollup_watermark(&self, resolution_secs: u32) -> Result<Option<DateTime<Utc>>>;
    async fn set_rollup_watermark(&self, resolution_secs: u32, done: DateTime<Utc>) -> Result<()>;
    /// Deletes up to `limit` raw rounds older than `cutoff`; returns how many.
    async fn delete_raw_rounds_before(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64>;
    async fn delete_rollups_before(
        &self,
        resolution_secs: u32,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64>;
    /// Makes storage ready for the coming days' rounds (PostgreSQL: daily partitions).
    async fn prepare_partitions(&self, _now: DateTime<Utc>) -> Result<()> {
        Ok(())
    }
}

pub(crate) fn loss_pct(sent: i64, received: i64) -> f32 {
    if sent <= 0 {
        return 0.0;
    }
    (100.0 * (sent - received.min(sent)) as f64 / sent as f64) as f32
}

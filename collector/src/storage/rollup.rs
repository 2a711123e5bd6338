//! Probe rollups behind [`RollupStore`] (both backends): raw rounds read by time, rollup rows
//! written idempotently (a bucket recomputed replaces itself), per-resolution watermarks, and
//! retention deletes in slices.

use super::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use crate::domain::rollup::*;

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
    /// Deletes up to `limit` raw rounds, and up to `limit` port checks, older than `cutoff`;
    /// returns how many in all.
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

//! What the Cacti POI scraper stores and the API reads, behind [`PoiStore`], which both
//! backends implement (`sqlite/poi.rs`, `postgres/poi.rs`) and one test suite covers
//! (`tests/it/store/poi.rs`).

use super::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

pub use crate::domain::poi::*;

#[async_trait]
pub trait PoiStore: Send + Sync {
    /// Inserts or updates a graph (keyed by source and id); `first_seen` is kept.
    async fn save_graph(&self, graph: &GraphRecord) -> Result<()>;
    /// Inserts or updates the reference rows of POIs.
    async fn save_pois(&self, pois: &[PoiRecord], now: DateTime<Utc>) -> Result<()>;
    /// Upserts samples on (source, graph, time): an overlapping export never duplicates, and a
    /// gap in a later export never erases a value stored before. Returns the rows written.
    async fn save_samples(
        &self,
        source: &str,
        graph_id: i64,
        samples: &[SampleRecord],
    ) -> Result<u64>;
    /// A graph's samples in [from, to), oldest first.
    async fn samples(
        &self,
        source: &str,
        graph_id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SampleRecord>>;
    /// Stores maxouts detected on a graph: one that overlaps or touches a stored event of the
    /// same direction extends it; the others are created. One transaction.
    async fn merge_maxouts(
        &self,
        source: &str,
        graph_id: i64,
        maxouts: &[NewMaxout],
        now: DateTime<Utc>,
    ) -> Result<MaxoutMerge>;
    async fn save_scrape_run(&self, run: &ScrapeRunRecord) -> Result<()>;
    /// Maxouts the alert engine has not taken yet, oldest first.
    async fn unalerted_maxouts(&self, limit: u32) -> Result<Vec<MaxoutRecord>>;
    /// Records that the alert engine took a maxout (after its anomaly is stored, so a crash
    /// in between only repeats an idempotent, deduplicated firing).
    async fn mark_maxout_alerted(&self, id: i64, at: DateTime<Utc>) -> Result<()>;

    /// POIs seen in titles, by code.
    async fn pois(&self) -> Result<Vec<PoiRecord>>;
    async fn poi(&self, code: &str) -> Result<Option<PoiRecord>>;
    /// The graphs of a POI, by source and id.
    async fn poi_graphs(&self, code: &str) -> Result<Vec<GraphRecord>>;
    /// Graphs whose title no pattern parsed, or that named no POI code.
    async fn unparsed_graphs(&self) -> Result<Vec<GraphRecord>>;
    async fn maxouts(&self, query: &MaxoutQuery) -> Result<Vec<MaxoutRecord>>;
    /// The most recent scrape runs, newest first.
    async fn scrape_runs(&self, limit: u32) -> Result<Vec<ScrapeRunRecord>>;

    /// Takes or renews the lease of a singleton job for `ttl`; false while another holder's
    /// lease runs. Several collectors on one PostgreSQL thus scrape Cacti once, not each.
    async fn claim_job(
        &self,
        job: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Gives a lease back (a one-off run from the CLI is done with it).
    async fn release_job(&self, job: &str, holder: &str) -> Result<()>;
}

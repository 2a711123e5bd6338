//! What the KPI pipeline stores and the API reads, behind [`KpiStore`] (both backends; one
//! test suite in `tests/it/kpi.rs`).

use super::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

pub use crate::domain::kpi::*;

#[async_trait]
pub trait KpiStore: Send + Sync {
    /// Recorded files whose interval ends at or after `since`, by name.
    async fn kpi_files(&self, since: DateTime<Utc>) -> Result<HashMap<String, KpiFileState>>;
    /// Starts of the computed intervals of a granularity at or after `since`.
    async fn kpi_computed(
        &self,
        granularity: Granularity,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>>;
    /// Replaces an interval's (or hour's) KPIs, files and issues in one transaction, so a
    /// reprocessed interval never counts a file twice.
    async fn save_kpi_result(&self, result: &KpiResult, now: DateTime<Utc>) -> Result<()>;
    /// Records problems that belong to no computed interval (an unreadable file, a bad name).
    async fn save_kpi_issues(&self, issues: &[KpiIssueRecord]) -> Result<()>;
    async fn kpi_rows(&self, query: &KpiQuery) -> Result<Vec<KpiRow>>;
    /// The most recent issues, newest first.
    async fn kpi_issues(&self, limit: u32) -> Result<Vec<KpiIssueRecord>>;
}

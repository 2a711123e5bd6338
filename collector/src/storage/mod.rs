//! Storage behind one trait, with SQLite (default, embedded) and PostgreSQL (production)
//! backends. Both run the same store suite (`tests/it/store/`).

pub mod alerting;
pub mod customers;
pub mod fleet_plan;
mod group;
pub mod kpi;
pub mod merge;
pub mod overview;
mod plan;
pub mod poi;
pub mod postgres;
pub mod retry;
pub mod rollup;
pub mod sql;
mod sqlite;
pub mod telemetry;
pub mod tokens;

pub use alerting::AlertStore;
pub use customers::CustomerStore;
pub use fleet_plan::FleetPlanStore;
pub use group::GroupCommitter;
pub use kpi::KpiStore;
pub use overview::OverviewStore;
pub use plan::{BatchPlan, DeviceLatest};
pub use poi::PoiStore;
pub use postgres::PostgresStore;
pub use rollup::RollupStore;
pub use sqlite::{intake_path as sqlite_intake_path, SqliteStore};
pub use telemetry::TelemetryStore;
pub use tokens::TokenStore;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use netwarden_shared::{AgentId, Batch, DeviceStatus};
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("database error while {action}: {source}")]
    Backend {
        action: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
        /// Whether the same work may succeed later (see [`retry::is_retryable`]).
        retryable: bool,
    },
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("a database worker stopped unexpectedly: {0}")]
    Worker(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// False for errors the same input will meet again (a value the database refuses, a
    /// constraint): the caller must not ask for a resend.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Backend { retryable, .. } => *retryable,
            StoreError::Worker(_) => true,
            StoreError::UnsupportedUrl(_) | StoreError::Migration(_) => false,
        }
    }
}

/// Maps a backend error to a [`StoreError`] that says what was being done and whether a retry
/// may help.
pub(crate) fn failed<E: std::error::Error + Send + Sync + 'static>(
    action: &'static str,
) -> impl Fn(E) -> StoreError {
    move |err| StoreError::Backend {
        action,
        retryable: retry::is_retryable(&err),
        source: Box::new(err),
    }
}

impl StoreError {
    /// An error of the store's own making (not the database's), with whether a retry helps.
    pub(crate) fn own(action: &'static str, message: impl Into<String>, retryable: bool) -> Self {
        StoreError::Backend {
            action,
            source: message.into().into(),
            retryable,
        }
    }
}

pub use crate::domain::inventory::*;

#[async_trait]
pub trait Store:
    PoiStore
    + KpiStore
    + TelemetryStore
    + CustomerStore
    + AlertStore
    + TokenStore
    + FleetPlanStore
    + OverviewStore
    + RollupStore
    + Send
    + Sync
    + 'static
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Applies pending migrations; returns the descriptions of those applied now.
    async fn migrate(&self) -> Result<Vec<String>>;
    async fn ping(&self) -> Result<()>;
    /// How many ingest transactions may run at once (SQLite has one writer; PostgreSQL more).
    fn concurrent_commits(&self) -> usize {
        1
    }

    /// Stores batches in one transaction, each unless its (agent, sequence) was stored before.
    /// The outer error means nothing was committed; an inner error fails only that batch.
    async fn ingest_group(
        &self,
        items: Arc<Vec<(AgentId, Batch)>>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<IngestOutcome>>>;

    /// Stores one batch in its own transaction.
    async fn ingest(
        &self,
        agent: &AgentId,
        batch: Batch,
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome> {
        self.ingest_group(Arc::new(vec![(agent.clone(), batch)]), now)
            .await?
            .pop()
            .unwrap_or(Err(StoreError::Worker("no outcome for the batch".into())))
    }
    async fn agents(&self) -> Result<Vec<AgentRow>>;
    async fn devices(&self, query: &DeviceQuery) -> Result<Vec<DeviceRow>>;
    async fn device(&self, id: i64) -> Result<Option<DeviceRow>>;
    /// The time of a discovery site's first sweep (its baseline): `sweep_at` when the site
    /// had none yet (it is recorded), else the one recorded, by whichever collector was first.
    async fn site_baseline(
        &self,
        agent: &str,
        site: &str,
        sweep_at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>>;
    /// Sets (or with `None` clears) a device's type; `None` when there is no such device.
    async fn set_device_type(
        &self,
        id: i64,
        device_type: Option<&str>,
    ) -> Result<Option<DeviceRow>>;
    async fn device_history(&self, id: i64, query: &HistoryQuery) -> Result<Vec<ProbeSample>>;
    /// Speed tests in a time window, newest first.
    async fn speed_tests(&self, query: &SpeedTestQuery) -> Result<Vec<SpeedTestRow>>;
    async fn ingest_audit(&self, agent: &AgentId) -> Result<IngestAudit>;
    /// MAC (and with it vendor) changes of a device, oldest first.
    async fn identity_changes(&self, id: i64) -> Result<Vec<IdentityChange>>;
}

/// How the SQLite backend syncs commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    /// fsync on every commit: an acknowledged batch survives power loss.
    #[default]
    Full,
    /// fsync at checkpoints only: survives a crash of the process, not of the machine.
    Normal,
}

/// Where the data lives, parsed from `database.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseLocation {
    /// For logs and messages: the SQLite path, or the PostgreSQL URL without its password.
    pub fn describe(&self) -> String {
        match self {
            DatabaseLocation::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseLocation::Postgres(url) => postgres::redact_url(url),
        }
    }

    pub fn parse(url: &str) -> Result<Self> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(StoreError::UnsupportedUrl(url.to_string()));
            }
            Ok(DatabaseLocation::Sqlite(PathBuf::from(path)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseLocation::Postgres(url.to_string()))
        } else {
            Err(StoreError::UnsupportedUrl(url.to_string()))
        }
    }
}

/// Opens the store the location names (without migrating it).
pub async fn open(
    location: &DatabaseLocation,
    max_connections: u32,
    sqlite_sync: SqliteSync,
) -> Result<Arc<dyn Store>> {
    Ok(match location {
        DatabaseLocation::Sqlite(path) => {
            Arc::new(SqliteStore::open(path, max_connections, sqlite_sync).await?)
        }
        DatabaseLocation::Postgres(url) => {
            Arc::new(PostgresStore::connect(url, max_connections).await?)
        }
    })
}

/// Packs RTTs as little-endian f32 for storage.
pub(crate) fn pack_rtts(rtts: &[f32]) -> Vec<u8> {
    rtts.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub(crate) fn unpack_rtts(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

pub(crate) fn status_name(code: i64) -> Option<&'static str> {
    DeviceStatus::from_code(code).map(DeviceStatus::as_str)
}

/// The row id of a device the batch's devices were written under.
pub(crate) fn device_id(ids: &HashMap<IpAddr, i64>, address: IpAddr) -> Result<i64> {
    ids.get(&address).copied().ok_or_else(|| {
        StoreError::own(
            "matching records to devices",
            format!("no device row for {address}"),
            false,
        )
    })
}

/// Open ports as stored: comma-separated.
pub(crate) fn ports_text(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn loss(sent: i32, received: i32) -> f32 {
    if sent <= 0 {
        0.0
    } else {
        100.0 * (sent - received) as f32 / sent as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_recognised() {
        assert_eq!(
            DatabaseLocation::parse("sqlite://netwarden.db").unwrap(),
            DatabaseLocation::Sqlite("netwarden.db".into())
        );
        assert_eq!(
            DatabaseLocation::parse("sqlite:///var/lib/netwarden/c.db").unwrap(),
            DatabaseLocation::Sqlite("/var/lib/netwarden/c.db".into())
        );
        assert!(matches!(
            DatabaseLocation::parse("postgres://u@h/db").unwrap(),
            DatabaseLocation::Postgres(_)
        ));
        assert!(DatabaseLocation::parse("mysql://x").is_err());
        assert!(DatabaseLocation::parse("sqlite://").is_err());
    }

    #[test]
    fn rtts_round_trip_through_bytes() {
        let rtts = vec![0.25, 30.5, 1000.0];
        assert_eq!(unpack_rtts(&pack_rtts(&rtts)), rtts);
    }
}

//! Storage behind one trait, with SQLite (default, embedded) and PostgreSQL (production)
//! backends. Both run the same test suite (`tests/it/storage.rs`).

pub mod alerting;
pub mod customers;
mod group;
pub mod kpi;
pub mod overview;
mod plan;
pub mod poi;
pub mod postgres;
pub mod retry;
pub mod rollup;
mod sqlite;
pub mod telemetry;
pub mod tokens;

pub use alerting::AlertStore;
pub use customers::CustomerStore;
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
use netwarden_shared::{AgentId, Batch, DeviceStatus, DiscoveryMethod, SpeedDirection};
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("database error while {action}: {message}")]
    Backend {
        action: &'static str,
        message: String,
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
pub(crate) fn failed<E: std::fmt::Display + 'static>(
    action: &'static str,
) -> impl Fn(E) -> StoreError {
    move |err| StoreError::Backend {
        action,
        retryable: retry::is_retryable(&err),
        message: err.to_string(),
    }
}

/// What became of one ingested batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    Stored {
        records: u32,
    },
    /// The (agent, sequence) was committed before; nothing changed.
    Duplicate,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct AgentRow {
    pub id: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub results_received: i64,
    pub batches_received: i64,
    pub last_sequence: i64,
    /// Records waiting in the agent's buffer, as the agent last reported.
    pub buffer_backlog: i64,
    /// Records the agent's buffer dropped because it was full, as the agent last reported.
    pub dropped_total: i64,
}

/// A device's status as the API spells it (the API document's name for the strings rows hold).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum StatusName {
    Online,
    Degraded,
    Offline,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct DeviceRow {
    pub id: i64,
    pub agent_id: String,
    pub address: String,
    pub mac: Option<String>,
    pub vendor: Option<String>,
    pub hostname: Option<String>,
    /// `online`, `degraded`, `offline`, or null when never probed.
    #[schema(value_type = Option<StatusName>)]
    pub status: Option<&'static str>,
    /// What showed the device up at its last round: `icmp` (it answered pings), `arp` or
    /// `tcp` (it answered no ping, but ARP or a port it has open); null when offline.
    pub alive_by: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub last_probe_at: Option<DateTime<Utc>>,
    pub last_loss_pct: Option<f32>,
    pub last_rtt_ms: Option<f32>,
    /// What an operator says the device is (null: not assigned).
    #[serde(rename = "type")]
    #[schema(schema_with = device_type_or_null)]
    pub device_type: Option<String>,
}

/// The types an operator may give a device.
pub const DEVICE_TYPES: &[&str] = &[
    "router",
    "switch",
    "firewall",
    "access_point",
    "server",
    "workstation",
    "printer",
    "phone",
    "camera",
    "ups",
    "other",
];

/// The `type` filter value for devices no one has given a type.
pub const UNASSIGNED: &str = "unassigned";

fn device_type_or_null() -> utoipa::openapi::Object {
    crate::rest::openapi::one_of_or_null(DEVICE_TYPES)
}

#[derive(Debug, Clone, Default)]
pub struct DeviceQuery {
    pub agent_id: Option<String>,
    pub status: Option<DeviceStatus>,
    /// One of [`DEVICE_TYPES`], or [`UNASSIGNED`].
    pub device_type: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct IdentityChange {
    /// When the new identity was first reported.
    pub at: DateTime<Utc>,
    pub old_mac: Option<String>,
    pub new_mac: Option<String>,
    pub old_vendor: Option<String>,
    pub new_vendor: Option<String>,
}

/// The inventory's change log of a device, derived from its discovery records in time order
/// (so late replays after an outage land in the right place): every point where the MAC
/// address differs from the one reported before it. Shared by both backends' query results.
pub(crate) fn identity_changes(
    rows: Vec<(DateTime<Utc>, Option<String>, Option<String>)>,
) -> Vec<IdentityChange> {
    let mut changes = Vec::new();
    let mut previous: Option<(Option<String>, Option<String>)> = None;
    for (at, mac, vendor) in rows {
        if mac.is_none() {
            continue; // an ICMP-only sighting says nothing about the MAC
        }
        if let Some((old_mac, old_vendor)) = &previous {
            if *old_mac != mac {
                changes.push(IdentityChange {
                    at,
                    old_mac: old_mac.clone(),
                    new_mac: mac.clone(),
                    old_vendor: old_vendor.clone(),
                    new_vendor: vendor.clone(),
                });
            }
        }
        previous = Some((mac, vendor));
    }
    changes
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ProbeSample {
    pub ts: DateTime<Utc>,
    pub agent_record_id: i64,
    pub sent: i32,
    pub received: i32,
    pub loss_pct: f32,
    pub rtt_min_ms: Option<f32>,
    pub rtt_median_ms: Option<f32>,
    pub rtt_mean_ms: Option<f32>,
    pub rtt_max_ms: Option<f32>,
    pub rtt_p95_ms: Option<f32>,
    pub rtt_stddev_ms: Option<f32>,
    pub jitter_ms: Option<f32>,
    pub rtts_ms: Vec<f32>,
    #[schema(value_type = StatusName)]
    pub status: &'static str,
}

#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub limit: u32,
}

/// Totals that prove ingest was exactly-once for one agent: every batch once, every record once.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct IngestAudit {
    pub batches: i64,
    pub min_sequence: i64,
    pub max_sequence: i64,
    /// Sum of the record counts of the committed batches.
    pub records_in_batches: i64,
    pub probe_results: i64,
    pub distinct_probe_record_ids: i64,
    pub min_record_id: i64,
    pub max_record_id: i64,
}

#[async_trait]
pub trait Store:
    PoiStore
    + KpiStore
    + TelemetryStore
    + CustomerStore
    + AlertStore
    + TokenStore
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
    ids.get(&address).copied().ok_or(StoreError::Backend {
        action: "matching records to devices",
        retryable: false,
        message: format!("no device row for {address}"),
    })
}

pub(crate) fn method_name(method: DiscoveryMethod) -> &'static str {
    match method {
        DiscoveryMethod::Icmp => "icmp",
        DiscoveryMethod::Arp => "arp",
        DiscoveryMethod::IcmpAndArp => "icmp+arp",
    }
}

pub(crate) fn direction_name(direction: SpeedDirection) -> &'static str {
    match direction {
        SpeedDirection::Download => "download",
        SpeedDirection::Upload => "upload",
    }
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

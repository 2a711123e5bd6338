//! The agents' side of the data: ingest outcomes, agents, devices, their probe history and
//! identity changes, and the audit that proves ingest exactly-once.

use chrono::{DateTime, Utc};
use netwarden_shared::DeviceStatus;
use serde::Serialize;

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
    super::schema::one_of_or_null(DEVICE_TYPES)
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
pub fn identity_changes(
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

/// One direction of one stored speed test.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct SpeedTestRow {
    pub agent_id: String,
    /// When the test ended.
    pub ts: DateTime<Utc>,
    /// The URL tested against.
    pub url: String,
    /// `download` or `upload`.
    pub direction: String,
    /// Bytes moved.
    pub bytes: i64,
    pub duration_us: i64,
    /// Megabits per second (0 when it failed).
    pub mbps: f64,
    /// Why it failed (null on success).
    pub error: Option<String>,
}

/// Which stored speed tests, newest first.
#[derive(Debug, Clone)]
pub struct SpeedTestQuery {
    pub agent: Option<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub limit: u32,
    pub offset: u32,
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

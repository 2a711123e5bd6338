//! KPIs computed from flow files: the files, the results and the issues met.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The two KPIs, with the ids the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Kpi {
    ServiceTrafficVolume = 1,
    CellUniqueUsers = 2,
}

impl Kpi {
    pub const ALL: [Kpi; 2] = [Kpi::ServiceTrafficVolume, Kpi::CellUniqueUsers];

    pub fn from_id(id: i64) -> Option<Kpi> {
        Kpi::ALL.into_iter().find(|k| *k as i64 == id)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kpi::ServiceTrafficVolume => "ServiceTrafficVolume",
            Kpi::CellUniqueUsers => "CellUniqueUsers",
        }
    }
}

/// 1 = five minutes, 2 = one hour (the API's `interval`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Granularity {
    FiveMinutes = 1,
    Hour = 2,
}

impl Granularity {
    pub fn from_id(id: i64) -> Option<Granularity> {
        match id {
            1 => Some(Granularity::FiveMinutes),
            2 => Some(Granularity::Hour),
            _ => None,
        }
    }
}

/// A processed flow file, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KpiFileRecord {
    pub name: String,
    pub interval_end: DateTime<Utc>,
    pub size: i64,
    pub modified_ms: i64,
    pub rows: i64,
    pub skipped_rows: i64,
}

/// A recorded file as it was when counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KpiFileState {
    pub interval_end: DateTime<Utc>,
    pub size: i64,
    pub modified_ms: i64,
}

/// A reported problem with a file or a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct KpiIssueRecord {
    pub interval_end: DateTime<Utc>,
    pub file: String,
    pub line: Option<i64>,
    /// For machines: `column_count`, `non_numeric`, `negative_bytes`, `out_of_range`,
    /// `line_too_long`, `bad_header`, `unreadable`, `not_listed`, `files_gone`, `too_old`
    /// (`unclassified` for issues recorded before reasons were).
    pub reason: String,
    pub message: String,
    pub recorded_at: DateTime<Utc>,
}

/// One computed interval or hour: both KPIs in full.
#[derive(Debug, Clone, PartialEq)]
pub struct KpiResult {
    pub granularity: Granularity,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// (service_id, total bytes).
    pub services: Vec<(i64, i64)>,
    /// (cell_id, distinct users).
    pub cells: Vec<(i64, i64)>,
    /// The files it was computed from (five-minute intervals only; empty for hours).
    pub files: Vec<KpiFileRecord>,
    /// Problems found while reading them; they replace the interval's earlier ones.
    pub issues: Vec<KpiIssueRecord>,
}

/// A KPI row as the API serves it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KpiRow {
    pub id: i64,
    pub interval_start_timestamp: DateTime<Utc>,
    pub interval_end_timestamp: DateTime<Utc>,
    pub interval: i64,
    /// `service_id` or `cell_id`, depending on the KPI.
    pub key: i64,
    /// `total_bytes` or `number_of_unique_users`.
    pub value: i64,
}

#[derive(Debug, Clone)]
pub struct KpiQuery {
    pub kpi: Kpi,
    pub granularity: Option<Granularity>,
    pub start_gte: Option<DateTime<Utc>>,
    pub end_lte: Option<DateTime<Utc>>,
    /// Rows per interval, largest first (ties by ascending id).
    pub top: u32,
    pub limit: u32,
    pub offset: u32,
}

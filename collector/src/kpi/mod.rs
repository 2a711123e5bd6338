//! The KPI pipeline: 5-minute flow files from a mobile core (`files`) are streamed into
//! ServiceTrafficVolume and CellUniqueUsers per interval and per hour (`aggregate`) by a
//! job that catches up on every completed interval and reprocesses late arrivals (`job`).

pub mod aggregate;
pub mod files;
pub mod job;

pub use job::{KpiConfig, KpiJob, KpiRunReport, KpiSettings};

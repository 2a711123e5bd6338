//! Probe results rolled up by interval.

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

pub(crate) fn loss_pct(sent: i64, received: i64) -> f32 {
    if sent <= 0 {
        return 0.0;
    }
    (100.0 * (sent - received.min(sent)) as f64 / sent as f64) as f32
}

//! Rollup statements both backends run as written (see [`super`]).

use super::Statement;

pub const RAW_ROUNDS: Statement = statement!(
    "SELECT device_id, ts, sent, received, rtts FROM probe_results
     WHERE ts >= $1 AND ts < $2"
);

pub const OLDEST_RAW_ROUND: Statement = statement!("SELECT MIN(ts) FROM probe_results");

pub const ROLLUPS: Statement = statement!(
    "SELECT bucket, rounds, answered, sent, received, rtt_min, rtt_mean, rtt_max, rtt_p95
     FROM probe_rollups
     WHERE resolution = $1 AND device_id = $2 AND bucket >= $3 AND bucket < $4
     ORDER BY bucket LIMIT $5"
);

pub const ROLLUP_WATERMARK: Statement =
    statement!("SELECT done_at FROM rollup_watermarks WHERE resolution = $1");

pub const SET_ROLLUP_WATERMARK: Statement = statement!(
    "INSERT INTO rollup_watermarks (resolution, done_at) VALUES ($1, $2)
     ON CONFLICT (resolution) DO UPDATE SET done_at = excluded.done_at"
);

/// Every statement here, by name, for the test that prepares them on both backends.
pub const ALL: &[(&str, Statement)] = &[
    ("rollup::RAW_ROUNDS", RAW_ROUNDS),
    ("rollup::OLDEST_RAW_ROUND", OLDEST_RAW_ROUND),
    ("rollup::ROLLUPS", ROLLUPS),
    ("rollup::ROLLUP_WATERMARK", ROLLUP_WATERMARK),
    ("rollup::SET_ROLLUP_WATERMARK", SET_ROLLUP_WATERMARK),
];

//! Core statements both backends run as written (see [`super`]).

use super::Statement;
use const_format::concatcp;

pub const DEVICE_COLUMNS: &str =
    "id, agent_id, address, mac, vendor, hostname, status, first_seen, last_seen,
    last_probe_at, last_loss_pct, last_rtt_ms, device_type, alive_by";

pub const PING: Statement = statement!("SELECT 1");

pub const AGENTS: Statement = statement!(
    "SELECT id, first_seen, last_seen, results_received, batches_received, last_sequence,
     buffer_backlog, dropped_total FROM agents ORDER BY id"
);

pub const DEVICE: Statement = statement!(concatcp!(
    "SELECT ",
    DEVICE_COLUMNS,
    " FROM devices WHERE id = $1"
));

pub const IDENTITY_CHANGES: Statement = statement!(
    "SELECT ts, mac, vendor FROM discoveries WHERE device_id = $1
     ORDER BY ts, agent_record_id"
);

pub const DEVICE_HISTORY: Statement = statement!(
    "SELECT ts, agent_record_id, sent, received, rtt_min, rtt_median, rtt_mean, rtt_max,
         rtt_p95, rtt_stddev, jitter, rtts, status
     FROM probe_results WHERE device_id = $1 AND ts >= $2 AND ts < $3
     ORDER BY ts, agent_record_id LIMIT $4"
);

/// Every statement here, by name, for the test that prepares them on both backends.
pub const ALL: &[(&str, Statement)] = &[
    ("core::PING", PING),
    ("core::AGENTS", AGENTS),
    ("core::DEVICE", DEVICE),
    ("core::IDENTITY_CHANGES", IDENTITY_CHANGES),
    ("core::DEVICE_HISTORY", DEVICE_HISTORY),
];

//! Core statements both backends run as written (see [`super`]).

use const_format::concatcp;

pub const DEVICE_COLUMNS: &str =
    "id, agent_id, address, mac, vendor, hostname, status, first_seen, last_seen,
    last_probe_at, last_loss_pct, last_rtt_ms, device_type, alive_by";

statements! {
    PING = "SELECT 1";

    /// `$1` an agent or null for all; `[$2, $3)` the window.
    SPEED_TESTS = "SELECT agent_id, ts, url, direction, bytes, duration_us, mbps, error
         FROM speed_tests
         WHERE (agent_id = $1 OR $1 IS NULL) AND ts >= $2 AND ts < $3
         ORDER BY ts DESC, agent_id, agent_record_id DESC LIMIT $4 OFFSET $5";

    AGENTS = "SELECT id, first_seen, last_seen, results_received, batches_received, last_sequence,
         buffer_backlog, dropped_total FROM agents ORDER BY id";

    DEVICE = concatcp!(
        "SELECT ",
        DEVICE_COLUMNS,
        " FROM devices WHERE id = $1"
    );

    IDENTITY_CHANGES = "SELECT ts, mac, vendor FROM discoveries WHERE device_id = $1
         ORDER BY ts, agent_record_id";

    DEVICE_HISTORY = "SELECT ts, agent_record_id, sent, received, rtt_min, rtt_median, rtt_mean, rtt_max,
             rtt_p95, rtt_stddev, jitter, rtts, status
         FROM probe_results WHERE device_id = $1 AND ts >= $2 AND ts < $3
         ORDER BY ts, agent_record_id LIMIT $4";
}

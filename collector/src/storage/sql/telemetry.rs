//! Telemetry statements both backends run as written (see [`super`]).

use const_format::concatcp;

pub const CIRCUIT_COLUMNS: &str =
    "circuit_id, account, provisioned_mbps, burst_mbps, pop, provisioned_at,
    upgraded_at, decommissioned_at";

statements! {
    UPSERT_CIRCUIT = "INSERT INTO circuits (circuit_id, account, provisioned_mbps, burst_mbps, pop,
             provisioned_at, upgraded_at, decommissioned_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (circuit_id) DO UPDATE SET account = excluded.account,
             provisioned_mbps = excluded.provisioned_mbps,
             burst_mbps = excluded.burst_mbps, pop = excluded.pop,
             provisioned_at = excluded.provisioned_at, upgraded_at = excluded.upgraded_at,
             decommissioned_at = excluded.decommissioned_at,
             updated_at = excluded.updated_at";

    FORGET_UNKNOWN_CIRCUIT = "DELETE FROM telemetry_unknown WHERE circuit_id = $1";

    CIRCUIT = concatcp!(
        "SELECT ",
        CIRCUIT_COLUMNS,
        " FROM circuits WHERE circuit_id = $1"
    );

    CIRCUITS = concatcp!(
        "SELECT ",
        CIRCUIT_COLUMNS,
        " FROM circuits ORDER BY circuit_id LIMIT $1 OFFSET $2"
    );

    UNKNOWN_CIRCUITS = "SELECT circuit_id, samples, first_seen, last_seen FROM telemetry_unknown
         ORDER BY circuit_id";

    OPEN_CIRCUIT_MAXOUT = "INSERT INTO circuit_maxouts (circuit_id, account, severity, start_at, end_at,
             samples, peak_mbps, provisioned_mbps, burst_mbps, open, detected_at, peak_at,
             historical)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id";

    UPDATE_CIRCUIT_MAXOUT = "UPDATE circuit_maxouts SET start_at = $2, end_at = $3, samples = $4, peak_mbps = $5,
         peak_at = $6, severity = $7, open = $8 WHERE id = $1";

    CIRCUITS_VERSION = "SELECT version FROM circuit_changes WHERE id = 1";

    MARK_CIRCUIT_MAXOUT_NOTIFIED = "UPDATE circuit_maxouts SET notified_at = $2 WHERE id = $1";
}

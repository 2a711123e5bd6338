//! Telemetry statements both backends run as written (see [`super`]).

use const_format::concatcp;

pub const MAXOUT_COLUMNS: &str =
    "id, circuit_id, account, severity, start_at, end_at, samples, peak_mbps,
    provisioned_mbps, burst_mbps, open, peak_at, historical";

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

    /// One event by id, withdrawn or not (its customer email tells of it as it opened).
    CIRCUIT_MAXOUT = concatcp!(
        "SELECT ",
        MAXOUT_COLUMNS,
        " FROM circuit_maxouts WHERE id = $1"
    );

    /// The cooldown claim as one conditional upsert (`$1` circuit, `$2` event start in Unix
    /// ms, `$3` cooldown in ms, `$4` the event, if any, whose email holds it). A conflicting
    /// row is locked by the upsert, so concurrent claims on PostgreSQL are decided one after
    /// the other.
    CLAIM_CUSTOMER_EMAIL = "INSERT INTO customer_email_claims AS c
             (circuit_id, last_start_ms, previous_start_ms, last_event_id)
         VALUES ($1, $2, NULL, $4)
         ON CONFLICT (circuit_id) DO UPDATE
            SET previous_start_ms = c.last_start_ms, last_start_ms = excluded.last_start_ms,
                last_event_id = excluded.last_event_id
          WHERE c.last_start_ms IS NULL OR excluded.last_start_ms >= c.last_start_ms + $3
         RETURNING previous_start_ms";

    /// Restores the claim before (`$3`) if the circuit's last claim is still `$2`.
    RELEASE_CUSTOMER_EMAIL = "UPDATE customer_email_claims
            SET last_start_ms = $3, previous_start_ms = NULL, last_event_id = NULL
          WHERE circuit_id = $1 AND last_start_ms = $2";

    /// The claim event `$2` holds, if it is still the circuit's last.
    CUSTOMER_EMAIL_CLAIM = "SELECT last_start_ms, previous_start_ms FROM customer_email_claims
          WHERE circuit_id = $1 AND last_event_id = $2";

    /// The customer email of event `$1` in the outbox, on channel `$2`, due at once, with the
    /// event as it opened (`$6`, JSON).
    QUEUE_CUSTOMER_EMAIL = "INSERT INTO alerts (circuit_event_id, channel, recipient, event, step,
             severity, repeat_secs, state, due_at, created_at, details)
         VALUES ($1, $2, $3, 'open', 0, $4, 0, 'pending', $5, $5, $6)
         ON CONFLICT DO NOTHING RETURNING id";

    /// The customer email of event `$1` on channel `$2` queued before (the queueing repeated).
    QUEUED_CUSTOMER_EMAIL = "SELECT id FROM alerts WHERE circuit_event_id = $1 AND channel = $2";
}

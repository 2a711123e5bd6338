//! Alerting statements both backends run as written (see [`super`]).

use const_format::concatcp;

pub const ANOMALY_COLUMNS: &str =
    "id, kind, subject, group_key, severity, state, summary, details, suppressed,
    opened_at, updated_at, ack_at, ack_by, ack_note, resolved_at, resolved_by,
    resolve_note";

pub const ALERT_COLUMNS: &str =
    "id, anomaly_id, channel, recipient, event, step, severity, state, due_at,
    attempts, recovered, error, sent_at, created_at, ack_at, ack_by, circuit_event_id, details";

statements! {
    GET_ANOMALY = concatcp!(
        "SELECT ",
        ANOMALY_COLUMNS,
        " FROM anomalies WHERE id = $1"
    );

    GET_ALERT = concatcp!(
        "SELECT ",
        ALERT_COLUMNS,
        " FROM alerts WHERE id = $1"
    );

    ACKNOWLEDGE_ANOMALY = "UPDATE anomalies SET state = 'acknowledged', ack_at = $2, ack_by = $3, ack_note = $4,
         updated_at = $2 WHERE id = $1 AND state = 'open'";

    ACKNOWLEDGE_ANOMALY_ALERTS = "UPDATE alerts SET ack_at = $2, ack_by = $3 WHERE anomaly_id = $1 AND ack_at IS NULL";

    REFRESH_ANOMALY = "UPDATE anomalies SET severity = $2, summary = $3, details = $4, updated_at = $5
         WHERE id = $1";

    QUEUE_ALERT = "INSERT INTO alerts (anomaly_id, channel, recipient, event, step,
             severity, repeat_secs, state, due_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9)
         ON CONFLICT DO NOTHING";

    ACTIVE_ANOMALY = concatcp!(
        "SELECT ",
        ANOMALY_COLUMNS,
        " FROM anomalies WHERE dedup_key = $1 AND state <> 'resolved'"
    );

    RESOLVE_ANOMALY = "UPDATE anomalies SET state = 'resolved', resolved_at = $2, resolved_by = $3,
         resolve_note = $4, updated_at = $2 WHERE id = $1 AND state <> 'resolved'";

    ALERT_SENT = "UPDATE alerts SET state = 'sent', sent_at = $3, error = NULL, claimed_by = NULL
         WHERE id = $1 AND claimed_by = $2 AND state = 'sending'";

    ALERT_RETRY = "UPDATE alerts SET state = 'pending', due_at = $3, error = $4, claimed_by = NULL
         WHERE id = $1 AND claimed_by = $2 AND state = 'sending'";

    ALERT_FAILED = "UPDATE alerts SET state = 'failed', error = $3, claimed_by = NULL
         WHERE id = $1 AND claimed_by = $2 AND state = 'sending'";

    NEXT_ALERT_DUE = "SELECT MIN(CASE WHEN state = 'pending' THEN due_at ELSE claim_until_at END)
         FROM alerts WHERE channel = $1 AND state IN ('pending', 'sending')";

    ACKNOWLEDGE_ALERT = "UPDATE alerts SET ack_at = $2, ack_by = $3 WHERE id = $1 AND ack_at IS NULL";

    SILENCES = "SELECT id, kind, subject, group_key, severity, starts_at, ends_at, created_by,
         comment, created_at FROM silences WHERE ends_at > $1 ORDER BY id";

    DELETE_SILENCE = "DELETE FROM silences WHERE id = $1";
}

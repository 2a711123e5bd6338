//! Alerting statements both backends run as written (see [`super`]).

use super::Statement;
use const_format::concatcp;

pub const ANOMALY_COLUMNS: &str =
    "id, kind, subject, group_key, severity, state, summary, details, suppressed,
    opened_at, updated_at, ack_at, ack_by, ack_note, resolved_at, resolved_by,
    resolve_note";

pub const ALERT_COLUMNS: &str =
    "id, anomaly_id, channel, recipient, event, step, severity, state, due_at,
    attempts, recovered, error, sent_at, created_at, ack_at, ack_by";

pub const GET_ANOMALY: Statement = statement!(concatcp!(
    "SELECT ",
    ANOMALY_COLUMNS,
    " FROM anomalies WHERE id = $1"
));

pub const GET_ALERT: Statement = statement!(concatcp!(
    "SELECT ",
    ALERT_COLUMNS,
    " FROM alerts WHERE id = $1"
));

pub const ACKNOWLEDGE_ANOMALY: Statement = statement!(
    "UPDATE anomalies SET state = 'acknowledged', ack_at = $2, ack_by = $3, ack_note = $4,
     updated_at = $2 WHERE id = $1 AND state = 'open'"
);

pub const ACKNOWLEDGE_ANOMALY_ALERTS: Statement = statement!(
    "UPDATE alerts SET ack_at = $2, ack_by = $3 WHERE anomaly_id = $1 AND ack_at IS NULL"
);

pub const REFRESH_ANOMALY: Statement = statement!(
    "UPDATE anomalies SET severity = $2, summary = $3, details = $4, updated_at = $5
     WHERE id = $1"
);

pub const QUEUE_ALERT: Statement = statement!(
    "INSERT INTO alerts (anomaly_id, channel, recipient, event, step,
         severity, repeat_secs, state, due_at, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9)
     ON CONFLICT DO NOTHING"
);

pub const ACTIVE_ANOMALY: Statement = statement!(concatcp!(
    "SELECT ",
    ANOMALY_COLUMNS,
    " FROM anomalies WHERE dedup_key = $1 AND state <> 'resolved'"
));

pub const RESOLVE_ANOMALY: Statement = statement!(
    "UPDATE anomalies SET state = 'resolved', resolved_at = $2, resolved_by = $3,
     resolve_note = $4, updated_at = $2 WHERE id = $1 AND state <> 'resolved'"
);

pub const ALERT_SENT: Statement = statement!(
    "UPDATE alerts SET state = 'sent', sent_at = $3, error = NULL, claimed_by = NULL
     WHERE id = $1 AND claimed_by = $2 AND state = 'sending'"
);

pub const ALERT_RETRY: Statement = statement!(
    "UPDATE alerts SET state = 'pending', due_at = $3, error = $4, claimed_by = NULL
     WHERE id = $1 AND claimed_by = $2 AND state = 'sending'"
);

pub const ALERT_FAILED: Statement = statement!(
    "UPDATE alerts SET state = 'failed', error = $3, claimed_by = NULL
     WHERE id = $1 AND claimed_by = $2 AND state = 'sending'"
);

pub const NEXT_ALERT_DUE: Statement = statement!(
    "SELECT MIN(CASE WHEN state = 'pending' THEN due_at ELSE claim_until_at END)
     FROM alerts WHERE channel = $1 AND state IN ('pending', 'sending')"
);

pub const ACKNOWLEDGE_ALERT: Statement =
    statement!("UPDATE alerts SET ack_at = $2, ack_by = $3 WHERE id = $1 AND ack_at IS NULL");

pub const SILENCES: Statement = statement!(
    "SELECT id, kind, subject, group_key, severity, starts_at, ends_at, created_by,
     comment, created_at FROM silences WHERE ends_at > $1 ORDER BY id"
);

pub const DELETE_SILENCE: Statement = statement!("DELETE FROM silences WHERE id = $1");

/// Every statement here, by name, for the test that prepares them on both backends.
pub const ALL: &[(&str, Statement)] = &[
    ("alerting::GET_ANOMALY", GET_ANOMALY),
    ("alerting::GET_ALERT", GET_ALERT),
    ("alerting::ACKNOWLEDGE_ANOMALY", ACKNOWLEDGE_ANOMALY),
    (
        "alerting::ACKNOWLEDGE_ANOMALY_ALERTS",
        ACKNOWLEDGE_ANOMALY_ALERTS,
    ),
    ("alerting::REFRESH_ANOMALY", REFRESH_ANOMALY),
    ("alerting::QUEUE_ALERT", QUEUE_ALERT),
    ("alerting::ACTIVE_ANOMALY", ACTIVE_ANOMALY),
    ("alerting::RESOLVE_ANOMALY", RESOLVE_ANOMALY),
    ("alerting::ALERT_SENT", ALERT_SENT),
    ("alerting::ALERT_RETRY", ALERT_RETRY),
    ("alerting::ALERT_FAILED", ALERT_FAILED),
    ("alerting::NEXT_ALERT_DUE", NEXT_ALERT_DUE),
    ("alerting::ACKNOWLEDGE_ALERT", ACKNOWLEDGE_ALERT),
    ("alerting::SILENCES", SILENCES),
    ("alerting::DELETE_SILENCE", DELETE_SILENCE),
];

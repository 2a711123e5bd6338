//! Overview statements both backends run as written (see [`super`]).

use const_format::concatcp;

/// How a batch's newest check of a port merges into `port_status` (the `ON CONFLICT` part of
/// each backend's insert; the incoming row is `excluded`, its run's start `state_since`, and
/// `$7` whether that run is all the batch said of the port): a late check never overwrites a
/// newer one, and a port that stays open, or stays not open, keeps its `state_since`.
const PORT_STATUS_MERGE: &str = "ON CONFLICT (device_id, port) DO UPDATE SET
         state = excluded.state, checked_at = excluded.checked_at,
         connect_ms = excluded.connect_ms,
         state_since = CASE WHEN $7 AND (port_status.state = 'open') = (excluded.state = 'open')
                            THEN port_status.state_since ELSE excluded.state_since END
     WHERE excluded.checked_at >= port_status.checked_at";

statements! {
    UNACKNOWLEDGED_ALERTS = "SELECT COUNT(*) FROM alerts WHERE state = 'sent' AND ack_at IS NULL
         AND anomaly_id IS NOT NULL";

    DEVICE_PORTS = "SELECT open_ports FROM discoveries WHERE device_id = $1 AND open_ports IS NOT NULL
         ORDER BY ts DESC, agent_record_id DESC LIMIT 1";

    /// One port's newest state from a batch ([`PORT_STATUS_MERGE`]).
    PORT_STATUS_UPSERT = concatcp!(
        "INSERT INTO port_status (device_id, port, state, checked_at, connect_ms, state_since)
         VALUES ($1, $2, $3, $4, $5, $6) ",
        PORT_STATUS_MERGE
    );

    /// Each checked port's state (`port_status`) with its checks since `$2`.
    DEVICE_PORT_CHECKS = "SELECT s.port, s.state, s.checked_at, s.connect_ms, s.state_since,
                (SELECT COUNT(*) FROM port_checks c
                 WHERE c.device_id = s.device_id AND c.port = s.port AND c.ts >= $2),
                (SELECT COUNT(*) FROM port_checks c
                 WHERE c.device_id = s.device_id AND c.port = s.port AND c.ts >= $2
                   AND c.state = 'open')
         FROM port_status s WHERE s.device_id = $1 ORDER BY s.port";
}

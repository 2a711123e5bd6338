//! Overview statements both backends run as written (see [`super`]).

statements! {
    UNACKNOWLEDGED_ALERTS = "SELECT COUNT(*) FROM alerts WHERE state = 'sent' AND ack_at IS NULL
         AND anomaly_id IS NOT NULL";

    DEVICE_PORTS = "SELECT open_ports FROM discoveries WHERE device_id = $1 AND open_ports IS NOT NULL
         ORDER BY ts DESC, agent_record_id DESC LIMIT 1";

    /// Each checked port's newest check, the start of its current run of that state (after
    /// the newest check in another state, else since `$3`: the earliest time) and its checks
    /// since `$2`.
    DEVICE_PORT_CHECKS = "WITH newest AS (
             SELECT port, state, ts, connect_ms,
                    ROW_NUMBER() OVER (PARTITION BY port ORDER BY ts DESC, agent_record_id DESC) AS nth
             FROM port_checks WHERE device_id = $1),
         day AS (
             SELECT port, COUNT(*) AS checks,
                    SUM(CASE WHEN state = 'open' THEN 1 ELSE 0 END) AS open
             FROM port_checks WHERE device_id = $1 AND ts >= $2 GROUP BY port)
         SELECT n.port, n.state, n.ts, n.connect_ms,
                (SELECT MIN(x.ts) FROM port_checks x
                 WHERE x.device_id = $1 AND x.port = n.port
                   AND x.ts > COALESCE((SELECT MAX(y.ts) FROM port_checks y
                                        WHERE y.device_id = $1 AND y.port = n.port
                                          AND y.state <> n.state), $3)) AS since,
                COALESCE(d.checks, 0), COALESCE(d.open, 0)
         FROM newest n LEFT JOIN day d ON d.port = n.port
         WHERE n.nth = 1 ORDER BY n.port";
}

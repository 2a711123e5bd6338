//! Overview statements both backends run as written (see [`super`]).

statements! {
    UNACKNOWLEDGED_ALERTS = "SELECT COUNT(*) FROM alerts WHERE state = 'sent' AND ack_at IS NULL
         AND anomaly_id IS NOT NULL";

    DEVICE_PORTS = "SELECT open_ports FROM discoveries WHERE device_id = $1 AND open_ports IS NOT NULL
         ORDER BY ts DESC, agent_record_id DESC LIMIT 1";
}

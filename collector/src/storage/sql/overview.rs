//! Overview statements both backends run as written (see [`super`]).

use super::Statement;

pub const UNACKNOWLEDGED_ALERTS: Statement =
    statement!("SELECT COUNT(*) FROM alerts WHERE state = 'sent' AND ack_at IS NULL");

pub const DEVICE_PORTS: Statement = statement!(
    "SELECT open_ports FROM discoveries WHERE device_id = $1 AND open_ports IS NOT NULL
     ORDER BY ts DESC, agent_record_id DESC LIMIT 1"
);

/// Every statement here, by name, for the test that prepares them on both backends.
pub const ALL: &[(&str, Statement)] = &[
    ("overview::UNACKNOWLEDGED_ALERTS", UNACKNOWLEDGED_ALERTS),
    ("overview::DEVICE_PORTS", DEVICE_PORTS),
];

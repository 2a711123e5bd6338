-- TCP port checks (issue 30, `kind: tcp` in the fleet plan): one row per connection attempt
-- to a device's port. Raw rows are kept as long as raw probe rounds (`[retention] raw_days`).
CREATE TABLE port_checks (
    device_id       INTEGER NOT NULL REFERENCES devices (id),
    ts              INTEGER NOT NULL,
    agent_record_id INTEGER NOT NULL,
    port            INTEGER NOT NULL,
    state           TEXT    NOT NULL,   -- open, refused, timeout, unreachable
    connect_ms      REAL                -- open only
);
CREATE INDEX port_checks_device_port_ts ON port_checks (device_id, port, ts);
CREATE INDEX port_checks_ts ON port_checks (ts);

-- Each checked port's newest state, and since when it has been open or not: written with each
-- batch (a late check never overwrites a newer one), read by the device's page in one lookup.
CREATE TABLE port_status (
    device_id   INTEGER NOT NULL,
    port        INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    checked_at  INTEGER NOT NULL,
    connect_ms  REAL,
    state_since INTEGER NOT NULL,
    PRIMARY KEY (device_id, port)
);

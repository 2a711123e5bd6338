-- Circuit telemetry (issue 5). Times in Unix ms.

-- Customer circuits: what a sample's utilisation is measured against.
CREATE TABLE circuits (
    circuit_id        TEXT PRIMARY KEY,
    account           TEXT,
    provisioned_mbps  REAL    NOT NULL,
    burst_mbps        REAL,
    pop               TEXT,
    provisioned_ms    INTEGER,
    upgraded_ms       INTEGER,
    decommissioned_ms INTEGER,
    updated_ms        INTEGER NOT NULL
);

-- Every sample, raw (retention trims it, nothing else).
CREATE TABLE telemetry (
    circuit_id       TEXT    NOT NULL,
    ts_ms            INTEGER NOT NULL,
    utilization_mbps REAL    NOT NULL,
    received_ms      INTEGER NOT NULL
);
CREATE INDEX telemetry_circuit_ts ON telemetry (circuit_id, ts_ms);

-- Circuit ids that sent samples but are not (yet) in `circuits`: stored, and listed.
CREATE TABLE telemetry_unknown (
    circuit_id    TEXT PRIMARY KEY,
    samples       INTEGER NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL
);

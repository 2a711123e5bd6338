-- Circuit telemetry (issue 5).

-- Customer circuits: what a sample's utilisation is measured against.
CREATE TABLE circuits (
    circuit_id       TEXT PRIMARY KEY,
    account          TEXT,
    provisioned_mbps DOUBLE PRECISION NOT NULL,
    burst_mbps       DOUBLE PRECISION,
    pop              TEXT,
    provisioned_at   TIMESTAMPTZ,
    upgraded_at      TIMESTAMPTZ,
    decommissioned_at TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL
);

-- Every sample, raw (retention trims it, nothing else).
CREATE TABLE telemetry (
    circuit_id       TEXT             NOT NULL,
    ts               TIMESTAMPTZ      NOT NULL,
    utilization_mbps DOUBLE PRECISION NOT NULL,
    received_at      TIMESTAMPTZ      NOT NULL
);
CREATE INDEX telemetry_circuit_ts ON telemetry (circuit_id, ts);

-- Circuit ids that sent samples but are not (yet) in `circuits`: stored, and listed.
CREATE TABLE telemetry_unknown (
    circuit_id TEXT PRIMARY KEY,
    samples    BIGINT      NOT NULL,
    first_seen TIMESTAMPTZ NOT NULL,
    last_seen  TIMESTAMPTZ NOT NULL
);

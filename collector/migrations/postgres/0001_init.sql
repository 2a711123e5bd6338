-- Spine schema (PostgreSQL).
CREATE TABLE agents (
    id               TEXT PRIMARY KEY,
    first_seen       TIMESTAMPTZ NOT NULL,
    last_seen        TIMESTAMPTZ NOT NULL,
    results_received BIGINT NOT NULL DEFAULT 0,
    batches_received BIGINT NOT NULL DEFAULT 0,
    last_sequence    BIGINT NOT NULL DEFAULT 0,
    buffer_backlog   BIGINT NOT NULL DEFAULT 0,
    dropped_total    BIGINT NOT NULL DEFAULT 0
);

-- One row per committed batch: the idempotency key for replays.
CREATE TABLE ingest_batches (
    agent_id     TEXT        NOT NULL,
    sequence     BIGINT      NOT NULL,
    record_count INTEGER     NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (agent_id, sequence)
);

CREATE TABLE devices (
    id            BIGSERIAL PRIMARY KEY,
    agent_id      TEXT        NOT NULL,
    address       TEXT        NOT NULL,
    mac           TEXT,
    vendor        TEXT,
    hostname      TEXT,
    first_seen    TIMESTAMPTZ NOT NULL,
    last_seen     TIMESTAMPTZ NOT NULL,
    status        SMALLINT,           -- 1 online, 2 degraded, 3 offline; NULL: never probed
    last_probe_at TIMESTAMPTZ,
    last_loss_pct REAL,
    last_rtt_ms   REAL,
    UNIQUE (agent_id, address)
) WITH (fillfactor = 50);  -- room on each page for HOT updates: every round rewrites its device row

CREATE TABLE probe_results (
    device_id       BIGINT      NOT NULL,
    ts              TIMESTAMPTZ NOT NULL,
    agent_record_id BIGINT      NOT NULL,
    sent            INTEGER     NOT NULL,
    received        INTEGER     NOT NULL,
    rtt_min         REAL,
    rtt_median      REAL,
    rtt_mean        REAL,
    rtt_max         REAL,
    rtt_p95         REAL,
    rtt_stddev      REAL,
    jitter          REAL,
    rtts            BYTEA,            -- replies' RTTs in ms, little-endian f32, in send order
    status          SMALLINT    NOT NULL
);
CREATE INDEX probe_results_device_ts ON probe_results (device_id, ts);

CREATE TABLE discoveries (
    device_id       BIGINT      NOT NULL,
    ts              TIMESTAMPTZ NOT NULL,
    agent_record_id BIGINT      NOT NULL,
    mac             TEXT,
    vendor          TEXT,
    hostname        TEXT,
    open_ports      TEXT,
    rtt_ms          REAL,
    method          TEXT        NOT NULL
);
CREATE INDEX discoveries_device_ts ON discoveries (device_id, ts);

CREATE TABLE speed_tests (
    agent_id        TEXT             NOT NULL,
    ts              TIMESTAMPTZ      NOT NULL,
    agent_record_id BIGINT           NOT NULL,
    url             TEXT             NOT NULL,
    direction       TEXT             NOT NULL,
    bytes           BIGINT           NOT NULL,
    duration_us     BIGINT           NOT NULL,
    mbps            DOUBLE PRECISION NOT NULL,
    error           TEXT
);
CREATE INDEX speed_tests_agent_ts ON speed_tests (agent_id, ts);

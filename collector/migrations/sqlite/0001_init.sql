-- Spine schema (SQLite). Times are Unix milliseconds, UTC.
CREATE TABLE agents (
    id               TEXT PRIMARY KEY,
    first_seen_ms    INTEGER NOT NULL,
    last_seen_ms     INTEGER NOT NULL,
    results_received INTEGER NOT NULL DEFAULT 0,
    batches_received INTEGER NOT NULL DEFAULT 0,
    last_sequence    INTEGER NOT NULL DEFAULT 0,
    buffer_backlog   INTEGER NOT NULL DEFAULT 0,
    dropped_total    INTEGER NOT NULL DEFAULT 0
);

-- One row per committed batch: the idempotency key for replays.
CREATE TABLE ingest_batches (
    agent_id     TEXT    NOT NULL,
    sequence     INTEGER NOT NULL,
    record_count INTEGER NOT NULL,
    received_ms  INTEGER NOT NULL,
    PRIMARY KEY (agent_id, sequence)
) WITHOUT ROWID;

CREATE TABLE devices (
    id            INTEGER PRIMARY KEY,
    agent_id      TEXT    NOT NULL,
    address       TEXT    NOT NULL,
    mac           TEXT,
    vendor        TEXT,
    hostname      TEXT,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    status        INTEGER,            -- 1 online, 2 degraded, 3 offline; NULL: never probed
    last_probe_ms INTEGER,
    last_loss_pct REAL,
    last_rtt_ms   REAL,
    UNIQUE (agent_id, address)
);

CREATE TABLE probe_results (
    device_id       INTEGER NOT NULL REFERENCES devices (id),
    ts_ms           INTEGER NOT NULL,
    agent_record_id INTEGER NOT NULL,
    sent            INTEGER NOT NULL,
    received        INTEGER NOT NULL,
    rtt_min         REAL,
    rtt_median      REAL,
    rtt_mean        REAL,
    rtt_max         REAL,
    rtt_p95         REAL,
    rtt_stddev      REAL,
    jitter          REAL,
    rtts            BLOB,             -- replies' RTTs in ms, little-endian f32, in send order
    status          INTEGER NOT NULL
);
CREATE INDEX probe_results_device_ts ON probe_results (device_id, ts_ms);

CREATE TABLE discoveries (
    device_id       INTEGER NOT NULL REFERENCES devices (id),
    ts_ms           INTEGER NOT NULL,
    agent_record_id INTEGER NOT NULL,
    mac             TEXT,
    vendor          TEXT,
    hostname        TEXT,
    open_ports      TEXT,             -- comma-separated
    rtt_ms          REAL,
    method          TEXT NOT NULL
);
CREATE INDEX discoveries_device_ts ON discoveries (device_id, ts_ms);

CREATE TABLE speed_tests (
    agent_id        TEXT    NOT NULL,
    ts_ms           INTEGER NOT NULL,
    agent_record_id INTEGER NOT NULL,
    url             TEXT    NOT NULL,
    direction       TEXT    NOT NULL,
    bytes           INTEGER NOT NULL,
    duration_us     INTEGER NOT NULL,
    mbps            REAL    NOT NULL,
    error           TEXT
);
CREATE INDEX speed_tests_agent_ts ON speed_tests (agent_id, ts_ms);

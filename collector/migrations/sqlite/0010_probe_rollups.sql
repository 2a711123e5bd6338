-- Probe rollups (issue 8): per device, 5-minute (300) and 1-hour (3600) buckets of probe
-- rounds, computed from the raw rounds after each bucket closes (and again when late rounds
-- arrive), kept longer than the raw rounds. `rollup_watermarks` holds, per resolution, the end
-- of the last bucket computed.
CREATE TABLE probe_rollups (
    resolution INTEGER NOT NULL,          -- bucket length in seconds
    device_id  INTEGER NOT NULL,
    bucket_ms  INTEGER NOT NULL,          -- bucket start
    rounds     INTEGER NOT NULL,
    answered   INTEGER NOT NULL,          -- rounds with at least one reply
    sent       INTEGER NOT NULL,
    received   INTEGER NOT NULL,
    rtt_min    REAL,
    rtt_mean   REAL,
    rtt_max    REAL,
    rtt_p95    REAL,
    PRIMARY KEY (resolution, device_id, bucket_ms)
) WITHOUT ROWID;
CREATE INDEX probe_rollups_age ON probe_rollups (resolution, bucket_ms);
CREATE TABLE rollup_watermarks (
    resolution INTEGER PRIMARY KEY,
    done_ms    INTEGER NOT NULL
);
-- Rollups and retention read raw rounds by time across devices.
CREATE INDEX probe_results_ts ON probe_results (ts_ms);

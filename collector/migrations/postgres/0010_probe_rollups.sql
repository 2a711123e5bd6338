-- Probe rollups (issue 8): per device, 5-minute (300) and 1-hour (3600) buckets of probe
-- rounds, computed from the raw rounds after each bucket closes (and again when late rounds
-- arrive), kept longer than the raw rounds. `rollup_watermarks` holds, per resolution, the end
-- of the last bucket computed.
CREATE TABLE probe_rollups (
    resolution INTEGER     NOT NULL,      -- bucket length in seconds
    device_id  BIGINT      NOT NULL,
    bucket     TIMESTAMPTZ NOT NULL,      -- bucket start
    rounds     INTEGER     NOT NULL,
    answered   INTEGER     NOT NULL,      -- rounds with at least one reply
    sent       BIGINT      NOT NULL,
    received   BIGINT      NOT NULL,
    rtt_min    REAL,
    rtt_mean   REAL,
    rtt_max    REAL,
    rtt_p95    REAL,
    PRIMARY KEY (resolution, device_id, bucket)
);
CREATE INDEX probe_rollups_age ON probe_rollups (resolution, bucket);
CREATE TABLE rollup_watermarks (
    resolution INTEGER PRIMARY KEY,
    done_at    TIMESTAMPTZ NOT NULL
);
-- Rollups and retention read raw rounds by time across devices; rows arrive roughly in time
-- order, so a BRIN index is small and enough.
CREATE INDEX probe_results_ts ON probe_results USING brin (ts);

-- Circuit maxout events (issue 5): for the alert engine (notified_ms empty until it has sent
-- them: an outbox) and for CX/AM analytics.
CREATE TABLE circuit_maxouts (
    id               INTEGER PRIMARY KEY,
    circuit_id       TEXT    NOT NULL,
    account          TEXT,
    severity         TEXT    NOT NULL,   -- 'burst' or 'maxout'
    start_ms         INTEGER NOT NULL,
    end_ms           INTEGER NOT NULL,
    samples          INTEGER NOT NULL,
    peak_mbps        REAL    NOT NULL,
    provisioned_mbps REAL    NOT NULL,
    burst_mbps       REAL,
    open             INTEGER NOT NULL,   -- 1 while samples stay over the threshold
    detected_ms      INTEGER NOT NULL,
    notified_ms      INTEGER
);
CREATE INDEX circuit_maxouts_circuit ON circuit_maxouts (circuit_id, start_ms);
CREATE INDEX circuit_maxouts_account ON circuit_maxouts (account, start_ms);

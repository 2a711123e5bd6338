-- Circuit maxout events (issue 5): for the alert engine (notified_at empty until it has sent
-- them: an outbox) and for CX/AM analytics.
CREATE TABLE circuit_maxouts (
    id               BIGSERIAL PRIMARY KEY,
    circuit_id       TEXT             NOT NULL,
    account          TEXT,
    severity         TEXT             NOT NULL,   -- 'burst' or 'maxout'
    start_at         TIMESTAMPTZ      NOT NULL,
    end_at           TIMESTAMPTZ      NOT NULL,
    samples          INTEGER          NOT NULL,
    peak_mbps        DOUBLE PRECISION NOT NULL,
    provisioned_mbps DOUBLE PRECISION NOT NULL,
    burst_mbps       DOUBLE PRECISION,
    open             BOOLEAN          NOT NULL,   -- true while samples stay over the threshold
    detected_at      TIMESTAMPTZ      NOT NULL,
    notified_at      TIMESTAMPTZ
);
CREATE INDEX circuit_maxouts_circuit ON circuit_maxouts (circuit_id, start_at);
CREATE INDEX circuit_maxouts_account ON circuit_maxouts (account, start_at);

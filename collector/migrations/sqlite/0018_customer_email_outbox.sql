-- The customer maxout email is a channel of the one notification outbox (issue 29): its row
-- names the circuit maxout event where an anomaly's row names the anomaly, so it is claimed,
-- retried, recovered after a crash and recorded as every other notification is. The cooldown
-- claim remembers which event holds it, so the send's outcome can give back exactly that one.
-- SQLite cannot drop a NOT NULL: the table is rebuilt (nothing references it).
CREATE TABLE alerts_new (
    id               INTEGER PRIMARY KEY,
    anomaly_id       INTEGER REFERENCES anomalies (id),
    channel          TEXT    NOT NULL,        -- email, telegram, customer_email
    recipient        TEXT    NOT NULL,
    event            TEXT    NOT NULL,        -- open, repeat, escalate, resolve
    step             INTEGER NOT NULL,
    severity         TEXT    NOT NULL,
    repeat_secs      INTEGER NOT NULL,        -- 0: no repeat after this one
    state            TEXT    NOT NULL,        -- pending, sending, sent, failed, cancelled
    due_at           INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    recovered        INTEGER NOT NULL DEFAULT 0, -- claimed again after its holder vanished mid-send
    error            TEXT,
    claimed_by       TEXT,
    claim_until_at   INTEGER,
    sent_at          INTEGER,
    created_at       INTEGER NOT NULL,
    ack_at           INTEGER,
    ack_by           TEXT,
    circuit_event_id INTEGER REFERENCES circuit_maxouts (id),
    -- What the notification tells of as it was queued (JSON): a customer email describes the
    -- event as it opened, however it has grown by the time it is sent.
    details          TEXT,
    UNIQUE (anomaly_id, channel, recipient, event, step),
    CHECK ((anomaly_id IS NULL) <> (circuit_event_id IS NULL))
);
INSERT INTO alerts_new (id, anomaly_id, channel, recipient, event, step, severity, repeat_secs,
        state, due_at, attempts, recovered, error, claimed_by, claim_until_at, sent_at,
        created_at, ack_at, ack_by)
    SELECT id, anomaly_id, channel, recipient, event, step, severity, repeat_secs, state, due_at,
        attempts, recovered, error, claimed_by, claim_until_at, sent_at, created_at, ack_at,
        ack_by
      FROM alerts;
DROP TABLE alerts;
ALTER TABLE alerts_new RENAME TO alerts;
CREATE INDEX alerts_due ON alerts (channel, state, due_at);
CREATE UNIQUE INDEX alerts_circuit_event ON alerts (circuit_event_id, channel)
    WHERE circuit_event_id IS NOT NULL;
ALTER TABLE customer_email_claims ADD COLUMN last_event_id INTEGER;

-- Detection and alerting (issue 7): anomalies with a lifecycle, the notification outbox
-- (`alerts`: one row per anomaly, channel, recipient, event and step, claimed by one
-- collector at a time), and silences.
CREATE TABLE anomalies (
    id            INTEGER PRIMARY KEY,
    dedup_key     TEXT    NOT NULL,          -- kind ':' subject
    kind          TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    group_key     TEXT,                      -- the incident it belongs to: agent, site or POI
    severity      TEXT    NOT NULL,          -- critical, high, medium, low
    state         TEXT    NOT NULL,          -- open, acknowledged, resolved
    summary       TEXT    NOT NULL,
    details       TEXT    NOT NULL,          -- JSON
    suppressed    TEXT,                      -- why nobody was notified (silence, inhibition)
    opened_ms     INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL,
    ack_ms        INTEGER,
    ack_by        TEXT,
    ack_note      TEXT,
    resolved_ms   INTEGER,
    resolved_by   TEXT,
    resolve_note  TEXT
);
-- One active anomaly per dedup key: replicas detecting the same thing meet here.
CREATE UNIQUE INDEX anomalies_active ON anomalies (dedup_key) WHERE state <> 'resolved';
CREATE INDEX anomalies_opened ON anomalies (opened_ms);

CREATE TABLE alerts (
    id              INTEGER PRIMARY KEY,
    anomaly_id      INTEGER NOT NULL REFERENCES anomalies (id),
    channel         TEXT    NOT NULL,        -- email, telegram
    recipient       TEXT    NOT NULL,
    event           TEXT    NOT NULL,        -- open, repeat, escalate, resolve
    step            INTEGER NOT NULL,
    severity        TEXT    NOT NULL,
    repeat_secs     INTEGER NOT NULL,        -- 0: no repeat after this one
    state           TEXT    NOT NULL,        -- pending, sending, sent, failed, cancelled
    due_ms          INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    recovered       INTEGER NOT NULL DEFAULT 0, -- claimed again after its holder vanished mid-send
    error           TEXT,
    claimed_by      TEXT,
    claim_until_ms  INTEGER,
    sent_ms         INTEGER,
    created_ms      INTEGER NOT NULL,
    ack_ms          INTEGER,
    ack_by          TEXT,
    UNIQUE (anomaly_id, channel, recipient, event, step)
);
CREATE INDEX alerts_due ON alerts (channel, state, due_ms);

CREATE TABLE silences (
    id          INTEGER PRIMARY KEY,
    kind        TEXT,                        -- null matches any
    subject     TEXT,                        -- glob with *
    group_key   TEXT,
    severity    TEXT,
    starts_ms   INTEGER NOT NULL,
    ends_ms     INTEGER NOT NULL,
    created_by  TEXT    NOT NULL,
    comment     TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL
);

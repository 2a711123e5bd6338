-- Hardening (issue 28): agent certificates can be revoked. A row with a serial refuses that
-- certificate; a row with only an agent refuses every certificate of that agent issued at or
-- before revoked_ms (the agent was retired; a certificate issued after it works).
CREATE TABLE cert_revocations (
    id         INTEGER PRIMARY KEY,
    agent_id   TEXT,
    serial     TEXT,
    revoked_ms INTEGER NOT NULL,
    reason     TEXT    NOT NULL DEFAULT '',
    CHECK (agent_id IS NOT NULL OR serial IS NOT NULL)
);

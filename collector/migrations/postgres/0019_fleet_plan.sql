-- The fleet plan (issue 30): every version kept whole, with who saved it, when, why and what
-- changed, so the history is the audit log. The newest version is the plan in force. Several
-- collectors may save at once: the primary key lets one version number be taken only once.
CREATE TABLE plan_versions (
    version    BIGINT      PRIMARY KEY,
    document   TEXT        NOT NULL,
    author     TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    comment    TEXT        NOT NULL DEFAULT '',
    summary    TEXT        NOT NULL DEFAULT ''
);

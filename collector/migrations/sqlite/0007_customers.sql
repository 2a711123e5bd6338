-- Customers (issue 5): employees (account and CX managers), accounts with their primary
-- contact, and the record of every notification sent or tried.
CREATE TABLE employees (
    id         TEXT PRIMARY KEY,
    name       TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    phone      TEXT,
    updated_ms INTEGER NOT NULL
);

CREATE TABLE accounts (
    id              TEXT PRIMARY KEY,
    name            TEXT    NOT NULL,
    contact_name    TEXT,
    contact_email   TEXT,
    account_manager TEXT,                -- employees.id
    cx_manager      TEXT,                -- employees.id
    updated_ms      INTEGER NOT NULL
);

CREATE TABLE notifications (
    id          INTEGER PRIMARY KEY,
    event_kind  TEXT    NOT NULL,        -- 'circuit_maxout'
    event_id    INTEGER NOT NULL,
    channel     TEXT    NOT NULL,        -- 'email'
    recipients  TEXT    NOT NULL,        -- To and Cc, as sent
    subject     TEXT    NOT NULL,
    status      TEXT    NOT NULL,        -- 'sent', 'failed', 'no_contact'
    error       TEXT,
    attempts    INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL
);
CREATE INDEX notifications_event ON notifications (event_kind, event_id);

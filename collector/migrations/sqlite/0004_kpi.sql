-- KPI pipeline (issue 6): flow files into per-interval and per-hour KPIs. Times in Unix ms.
-- granularity: 1 = five minutes, 2 = one hour.

CREATE TABLE kpi_service_traffic (
    id          INTEGER PRIMARY KEY,
    granularity INTEGER NOT NULL,
    start_ms    INTEGER NOT NULL,
    end_ms      INTEGER NOT NULL,
    service_id  INTEGER NOT NULL,
    total_bytes INTEGER NOT NULL,
    UNIQUE (granularity, start_ms, service_id)
);

CREATE TABLE kpi_cell_users (
    id          INTEGER PRIMARY KEY,
    granularity INTEGER NOT NULL,
    start_ms    INTEGER NOT NULL,
    end_ms      INTEGER NOT NULL,
    cell_id     INTEGER NOT NULL,
    users       INTEGER NOT NULL,
    UNIQUE (granularity, start_ms, cell_id)
);

-- Which intervals and hours have been computed (and when).
CREATE TABLE kpi_computed (
    granularity INTEGER NOT NULL,
    start_ms    INTEGER NOT NULL,
    end_ms      INTEGER NOT NULL,
    computed_ms INTEGER NOT NULL,
    PRIMARY KEY (granularity, start_ms)
);

-- Every flow file counted, with the size and time it had: a file that changes or arrives
-- late makes its interval be computed again (from all its files: nothing counts twice).
CREATE TABLE kpi_files (
    name           TEXT PRIMARY KEY,
    interval_end_ms INTEGER NOT NULL,
    size           INTEGER NOT NULL,
    modified_ms    INTEGER NOT NULL,
    rows           INTEGER NOT NULL,
    skipped_rows   INTEGER NOT NULL,
    processed_ms   INTEGER NOT NULL
);
CREATE INDEX kpi_files_interval ON kpi_files (interval_end_ms);

-- Malformed rows and unreadable files, with file and line.
CREATE TABLE kpi_issues (
    id              INTEGER PRIMARY KEY,
    interval_end_ms INTEGER NOT NULL,
    file            TEXT    NOT NULL,
    line            INTEGER,
    message         TEXT    NOT NULL,
    recorded_ms     INTEGER NOT NULL
);
CREATE INDEX kpi_issues_interval ON kpi_issues (interval_end_ms, file);

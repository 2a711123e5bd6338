-- KPI pipeline (issue 6): flow files into per-interval and per-hour KPIs.
-- granularity: 1 = five minutes, 2 = one hour.

CREATE TABLE kpi_service_traffic (
    id          BIGSERIAL PRIMARY KEY,
    granularity SMALLINT    NOT NULL,
    start_at    TIMESTAMPTZ NOT NULL,
    end_at      TIMESTAMPTZ NOT NULL,
    service_id  BIGINT      NOT NULL,
    total_bytes BIGINT      NOT NULL,
    UNIQUE (granularity, start_at, service_id)
);

CREATE TABLE kpi_cell_users (
    id          BIGSERIAL PRIMARY KEY,
    granularity SMALLINT    NOT NULL,
    start_at    TIMESTAMPTZ NOT NULL,
    end_at      TIMESTAMPTZ NOT NULL,
    cell_id     BIGINT      NOT NULL,
    users       BIGINT      NOT NULL,
    UNIQUE (granularity, start_at, cell_id)
);

-- Which intervals and hours have been computed (and when).
CREATE TABLE kpi_computed (
    granularity SMALLINT    NOT NULL,
    start_at    TIMESTAMPTZ NOT NULL,
    end_at      TIMESTAMPTZ NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (granularity, start_at)
);

-- Every flow file counted, with the size and time it had: a file that changes or arrives
-- late makes its interval be computed again (from all its files: nothing counts twice).
CREATE TABLE kpi_files (
    name         TEXT PRIMARY KEY,
    interval_end TIMESTAMPTZ NOT NULL,
    size         BIGINT      NOT NULL,
    modified_ms  BIGINT      NOT NULL,
    rows         BIGINT      NOT NULL,
    skipped_rows BIGINT      NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX kpi_files_interval ON kpi_files (interval_end);

-- Malformed rows and unreadable files, with file and line.
CREATE TABLE kpi_issues (
    id           BIGSERIAL PRIMARY KEY,
    interval_end TIMESTAMPTZ NOT NULL,
    file         TEXT        NOT NULL,
    line         BIGINT,
    message      TEXT        NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX kpi_issues_interval ON kpi_issues (interval_end, file);

-- Cacti POI scraping (issue 4).

-- One row per Cacti graph ever fetched, with what its title said. A title no pattern parsed is
-- kept here with parsed = false and listed by the API, never dropped.
CREATE TABLE cacti_graphs (
    source        TEXT        NOT NULL,
    graph_id      BIGINT      NOT NULL,
    title         TEXT        NOT NULL,
    parsed        BOOLEAN     NOT NULL,
    pattern       TEXT,
    poi_code      TEXT,
    poi_name      TEXT,
    circuit_id    TEXT,
    capacity_bps  BIGINT,                -- in effect: the reference's override, else the title's
    capacity_from TEXT,                  -- 'reference' or 'title'
    traffic_class TEXT,
    direction     TEXT,
    timezone      TEXT        NOT NULL,  -- the Cacti source's: for local days and the busy hour
    first_seen    TIMESTAMPTZ NOT NULL,
    last_seen     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, graph_id)
);
CREATE INDEX cacti_graphs_poi ON cacti_graphs (poi_code);

-- The reference workbook's view of each POI seen, refreshed on every scrape.
CREATE TABLE pois (
    code         TEXT PRIMARY KEY,
    name         TEXT,
    state        TEXT,
    latitude     DOUBLE PRECISION,
    longitude    DOUBLE PRECISION,
    provider     TEXT,
    capacity_bps BIGINT,
    notes        TEXT,
    in_reference BOOLEAN     NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

-- Utilisation samples; overlapping 12-hour exports upsert on the key, never duplicate.
CREATE TABLE poi_samples (
    source   TEXT        NOT NULL,
    graph_id BIGINT      NOT NULL,
    ts       TIMESTAMPTZ NOT NULL,
    in_bps   DOUBLE PRECISION,           -- NULL: a gap in Cacti's data
    out_bps  DOUBLE PRECISION,
    in_pct   DOUBLE PRECISION,           -- of the capacity in effect when stored
    out_pct  DOUBLE PRECISION,
    PRIMARY KEY (source, graph_id, ts)
);

-- Maxout events. A run seen again by the next scrape extends its row; alerted_at stays NULL
-- until the alert engine has taken the event (an outbox: nothing is lost while it is down).
CREATE TABLE poi_maxouts (
    id           BIGSERIAL PRIMARY KEY,
    source       TEXT             NOT NULL,
    graph_id     BIGINT           NOT NULL,
    poi_code     TEXT,
    circuit_id   TEXT,
    direction    TEXT             NOT NULL,
    start_at     TIMESTAMPTZ      NOT NULL,
    end_at       TIMESTAMPTZ      NOT NULL,
    samples      INTEGER          NOT NULL,
    peak_bps     DOUBLE PRECISION NOT NULL,
    peak_pct     DOUBLE PRECISION NOT NULL,
    capacity_bps BIGINT           NOT NULL,
    detected_at  TIMESTAMPTZ      NOT NULL,
    alerted_at   TIMESTAMPTZ
);
CREATE INDEX poi_maxouts_graph ON poi_maxouts (source, graph_id, direction, start_at);
CREATE INDEX poi_maxouts_poi ON poi_maxouts (poi_code, start_at);

-- What each scrape did, per Cacti source.
CREATE TABLE scrape_runs (
    id          BIGSERIAL PRIMARY KEY,
    source      TEXT        NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    fetched     INTEGER     NOT NULL,
    samples     BIGINT      NOT NULL,
    skipped     JSONB       NOT NULL,    -- [[graph, reason], ...]
    failed      JSONB       NOT NULL     -- [[graph, error], ...]
);

-- Singleton jobs (the Cacti scrape): a lease one collector holds at a time.
CREATE TABLE job_leases (
    name   TEXT PRIMARY KEY,
    holder TEXT        NOT NULL,
    until  TIMESTAMPTZ NOT NULL
);

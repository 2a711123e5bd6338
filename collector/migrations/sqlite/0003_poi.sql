-- Cacti POI scraping (issue 4). Times are Unix milliseconds, like the rest of the SQLite schema.

-- One row per Cacti graph ever fetched, with what its title said. A title no pattern parsed is
-- kept here with parsed = 0 and listed by the API, never dropped.
CREATE TABLE cacti_graphs (
    source        TEXT    NOT NULL,
    graph_id      INTEGER NOT NULL,
    title         TEXT    NOT NULL,
    parsed        INTEGER NOT NULL,      -- 1 when a pattern parsed the title
    pattern       TEXT,                  -- the pattern that did
    poi_code      TEXT,
    poi_name      TEXT,
    circuit_id    TEXT,
    capacity_bps  INTEGER,               -- in effect: the reference's override, else the title's
    capacity_from TEXT,                  -- 'reference' or 'title'
    traffic_class TEXT,
    direction     TEXT,
    timezone      TEXT    NOT NULL,      -- the Cacti source's: for local days and the busy hour
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    PRIMARY KEY (source, graph_id)
);
CREATE INDEX cacti_graphs_poi ON cacti_graphs (poi_code);

-- The reference workbook's view of each POI seen, refreshed on every scrape.
CREATE TABLE pois (
    code         TEXT PRIMARY KEY,
    name         TEXT,
    state        TEXT,
    latitude     REAL,
    longitude    REAL,
    provider     TEXT,
    capacity_bps INTEGER,
    notes        TEXT,
    in_reference INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL
);

-- Utilisation samples; overlapping 12-hour exports upsert on the key, never duplicate.
CREATE TABLE poi_samples (
    source       TEXT    NOT NULL,
    graph_id     INTEGER NOT NULL,
    ts_ms        INTEGER NOT NULL,
    in_bps       REAL,                   -- NULL: a gap in Cacti's data
    out_bps      REAL,
    in_pct       REAL,                   -- of the capacity in effect when stored
    out_pct      REAL,
    PRIMARY KEY (source, graph_id, ts_ms)
) WITHOUT ROWID;

-- Maxout events. A run seen again by the next scrape extends its row; alerted_ms stays NULL
-- until the alert engine has taken the event (an outbox: nothing is lost while it is down).
CREATE TABLE poi_maxouts (
    id           INTEGER PRIMARY KEY,
    source       TEXT    NOT NULL,
    graph_id     INTEGER NOT NULL,
    poi_code     TEXT,
    circuit_id   TEXT,
    direction    TEXT    NOT NULL,       -- 'in' or 'out'
    start_ms     INTEGER NOT NULL,
    end_ms       INTEGER NOT NULL,
    samples      INTEGER NOT NULL,
    peak_bps     REAL    NOT NULL,
    peak_pct     REAL    NOT NULL,
    capacity_bps INTEGER NOT NULL,
    detected_ms  INTEGER NOT NULL,
    alerted_ms   INTEGER
);
CREATE INDEX poi_maxouts_graph ON poi_maxouts (source, graph_id, direction, start_ms);
CREATE INDEX poi_maxouts_poi ON poi_maxouts (poi_code, start_ms);

-- What each scrape did, per Cacti source.
CREATE TABLE scrape_runs (
    id          INTEGER PRIMARY KEY,
    source      TEXT    NOT NULL,
    started_ms  INTEGER NOT NULL,
    finished_ms INTEGER NOT NULL,
    fetched     INTEGER NOT NULL,
    samples     INTEGER NOT NULL,
    skipped     TEXT    NOT NULL,        -- JSON [[graph, reason], ...]
    failed      TEXT    NOT NULL         -- JSON [[graph, error], ...]
);

-- Singleton jobs (the Cacti scrape): a lease one collector holds at a time.
CREATE TABLE job_leases (
    name     TEXT PRIMARY KEY,
    holder   TEXT    NOT NULL,
    until_ms INTEGER NOT NULL
);

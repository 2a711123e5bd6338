-- Samples are committed here first: append-only, no index, so a commit of a few dozen
-- samples writes a page or two instead of one index page per sample. A fold thread moves
-- them into `telemetry` (indexed) about once a second; reads look at both. AUTOINCREMENT:
-- ids must never be reused, or a new sample could look already moved.
CREATE TABLE telemetry_intake (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    circuit_id       TEXT    NOT NULL,
    ts_ms            INTEGER NOT NULL,
    utilization_mbps REAL    NOT NULL,
    received_ms      INTEGER NOT NULL
);

-- How far the fold has got (one row): intake ids up to folded_upto are in `telemetry`; of
-- those up to cycle_upto (the fold under way), the circuits sorting before done_below are.
CREATE TABLE telemetry_fold (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    folded_upto INTEGER NOT NULL,
    cycle_upto  INTEGER NOT NULL,
    done_below  TEXT    NOT NULL
);
INSERT INTO telemetry_fold (id, folded_upto, cycle_upto, done_below) VALUES (1, 0, 0, '');

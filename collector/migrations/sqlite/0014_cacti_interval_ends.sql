-- Cacti 1.2 labels each export row one step after the interval it averages (the row labelled
-- T holds [T - 2 step, T - step]); samples were stored at the label and maxouts ran from the
-- first label to the last label + step. From here on a sample is stamped at the end of its
-- interval and a maxout runs from its first interval's start to its last interval's end, so
-- what is stored moves back: samples one step, maxouts two. Every POI graph was scraped at
-- Cacti's 5-minute step (the 12-hour window stays in the 5-minute RRA).
ALTER TABLE cacti_graphs ADD COLUMN step_secs INTEGER;

CREATE TABLE poi_samples_moved (
    source       TEXT    NOT NULL,
    graph_id     INTEGER NOT NULL,
    ts_ms        INTEGER NOT NULL,
    in_bps       REAL,
    out_bps      REAL,
    in_pct       REAL,
    out_pct      REAL,
    PRIMARY KEY (source, graph_id, ts_ms)
) WITHOUT ROWID;
INSERT INTO poi_samples_moved
    SELECT source, graph_id, ts_ms - 300000, in_bps, out_bps, in_pct, out_pct FROM poi_samples;
DROP TABLE poi_samples;
ALTER TABLE poi_samples_moved RENAME TO poi_samples;

UPDATE poi_maxouts SET start_ms = start_ms - 600000, end_ms = end_ms - 600000;

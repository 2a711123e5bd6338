-- Cacti 1.2 labels each export row one step after the interval it averages (the row labelled
-- T holds [T - 2 step, T - step]); samples were stored at the label and maxouts ran from the
-- first label to the last label + step. From here on a sample is stamped at the end of its
-- interval and a maxout runs from its first interval's start to its last interval's end, so
-- what is stored moves back: samples one step, maxouts two. Every POI graph was scraped at
-- Cacti's 5-minute step (the 12-hour window stays in the 5-minute RRA).
ALTER TABLE cacti_graphs ADD COLUMN step_secs INTEGER;

-- The key is checked row by row, so the move goes through a copy rather than an UPDATE that
-- could collide with a row not yet moved.
CREATE TABLE poi_samples_moved (LIKE poi_samples INCLUDING ALL);
INSERT INTO poi_samples_moved
    SELECT source, graph_id, ts - interval '300 seconds', in_bps, out_bps, in_pct, out_pct
    FROM poi_samples;
DROP TABLE poi_samples;
ALTER TABLE poi_samples_moved RENAME TO poi_samples;
ALTER INDEX poi_samples_moved_pkey RENAME TO poi_samples_pkey;

UPDATE poi_maxouts SET start_at = start_at - interval '600 seconds',
                       end_at = end_at - interval '600 seconds';

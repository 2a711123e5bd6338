-- probe_results becomes partitioned by day (issue 8), so retention drops whole days instead
-- of deleting row by row. Existing rows land in the DEFAULT partition; the collector creates
-- each day's partition ahead of time (moving any default rows of that day into it) and drops
-- days older than [retention] raw_days.
ALTER TABLE probe_results RENAME TO probe_results_unpartitioned;
ALTER INDEX probe_results_device_ts RENAME TO probe_results_unpartitioned_device_ts;
ALTER INDEX probe_results_ts RENAME TO probe_results_unpartitioned_ts;
CREATE TABLE probe_results (LIKE probe_results_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (ts);
CREATE TABLE probe_results_default PARTITION OF probe_results DEFAULT;
CREATE INDEX probe_results_device_ts ON probe_results (device_id, ts);
CREATE INDEX probe_results_ts ON probe_results USING brin (ts);
INSERT INTO probe_results SELECT * FROM probe_results_unpartitioned;
DROP TABLE probe_results_unpartitioned;

-- Circuit telemetry in time order whatever the arrival order (issue 26).
-- A late sample can reshape an event: the time of its peak is kept, an event a late sample
-- undid is withdrawn (kept, with when, but no longer listed), and events found by a backfill
-- of old samples are historical (no customer email unless asked).
ALTER TABLE circuit_maxouts ADD COLUMN peak_ms INTEGER;          -- NULL: recorded before it was kept
ALTER TABLE circuit_maxouts ADD COLUMN withdrawn_ms INTEGER;
ALTER TABLE circuit_maxouts ADD COLUMN historical INTEGER NOT NULL DEFAULT 0;

-- A counter every change to `circuits` bumps: detection re-reads the circuits it caches when
-- it moves, so a circuit registered or changed (by any collector, or the import command) is
-- evaluated from its next sample.
CREATE TABLE circuit_changes (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO circuit_changes (id, version) VALUES (1, 0);
CREATE TRIGGER circuits_inserted AFTER INSERT ON circuits
BEGIN
    UPDATE circuit_changes SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER circuits_updated AFTER UPDATE ON circuits
BEGIN
    UPDATE circuit_changes SET version = version + 1 WHERE id = 1;
END;

-- Samples that came later than the reorder horizon behind their circuit's newest: stored in
-- `telemetry` like any other, not evaluated, listed here for a backfill.
CREATE TABLE late_telemetry (
    circuit_id       TEXT    NOT NULL,
    ts_ms            INTEGER NOT NULL,
    utilization_mbps REAL    NOT NULL,
    newest_ms        INTEGER NOT NULL,   -- the circuit's newest sample when it came
    received_ms      INTEGER NOT NULL
);
CREATE INDEX late_telemetry_received ON late_telemetry (received_ms);

-- KPI issues carry a machine-readable reason beside the message (column_count, non_numeric,
-- negative_bytes, too_old, ...); those recorded before are 'unclassified'.
ALTER TABLE kpi_issues ADD COLUMN reason TEXT NOT NULL DEFAULT 'unclassified';

-- Circuit telemetry in time order whatever the arrival order (issue 26).
-- A late sample can reshape an event: the time of its peak is kept, an event a late sample
-- undid is withdrawn (kept, with when, but no longer listed), and events found by a backfill
-- of old samples are historical (no customer email unless asked).
ALTER TABLE circuit_maxouts ADD COLUMN peak_at TIMESTAMPTZ;      -- NULL: recorded before it was kept
ALTER TABLE circuit_maxouts ADD COLUMN withdrawn_at TIMESTAMPTZ;
ALTER TABLE circuit_maxouts ADD COLUMN historical BOOLEAN NOT NULL DEFAULT false;

-- A counter every change to `circuits` bumps: detection re-reads the circuits it caches when
-- it moves, so a circuit registered or changed (by any collector, or the import command) is
-- evaluated from its next sample.
CREATE TABLE circuit_changes (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO circuit_changes (id, version) VALUES (1, 0);
CREATE FUNCTION circuits_changed() RETURNS trigger AS $$
BEGIN
    UPDATE circuit_changes SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER circuits_changed AFTER INSERT OR UPDATE ON circuits
    FOR EACH STATEMENT EXECUTE FUNCTION circuits_changed();

-- Samples that came later than the reorder horizon behind their circuit's newest: stored in
-- `telemetry` like any other, not evaluated, listed here for a backfill.
CREATE TABLE late_telemetry (
    circuit_id       TEXT             NOT NULL,
    ts               TIMESTAMPTZ      NOT NULL,
    utilization_mbps DOUBLE PRECISION NOT NULL,
    newest           TIMESTAMPTZ      NOT NULL,
    received_at      TIMESTAMPTZ      NOT NULL
);
CREATE INDEX late_telemetry_received ON late_telemetry (received_at);

-- KPI issues carry a machine-readable reason beside the message (column_count, non_numeric,
-- negative_bytes, too_old, ...); those recorded before are 'unclassified'.
ALTER TABLE kpi_issues ADD COLUMN reason TEXT NOT NULL DEFAULT 'unclassified';

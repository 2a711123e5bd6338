-- The telemetry intake moves to a database file of its own (`<name>.intake.db`), with its
-- own writer, so that the fold and every other write never hold up a sample's commit.
-- Rows the fold had not moved yet go straight into the indexed table here.
INSERT INTO telemetry (circuit_id, ts_ms, utilization_mbps, received_ms)
    SELECT circuit_id, ts_ms, utilization_mbps, received_ms
      FROM telemetry_intake, telemetry_fold f
     WHERE telemetry_intake.id > f.folded_upto
       AND NOT (telemetry_intake.id <= f.cycle_upto AND telemetry_intake.circuit_id < f.done_below);
DROP TABLE telemetry_intake;

-- The progress counts ids of one intake file: this token names it (the intake file holds the
-- same one), so a replaced or missing intake file resets the progress instead of hiding rows.
ALTER TABLE telemetry_fold ADD COLUMN intake_token TEXT;
UPDATE telemetry_fold SET folded_upto = 0, cycle_upto = 0, done_below = '';

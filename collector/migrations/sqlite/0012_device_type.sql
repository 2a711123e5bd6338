-- A device's type (issue 8): what an operator says it is (`router`, `switch`, `server`, ...),
-- for filtering the inventory. Discovery never sets it, and ingest upserts leave it alone.
ALTER TABLE devices ADD COLUMN device_type TEXT;

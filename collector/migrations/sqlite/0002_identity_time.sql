-- When the device's MAC/vendor/name were observed, so an older sighting replayed late (after
-- an agent's outage) never overwrites a newer one.
ALTER TABLE devices ADD COLUMN identity_ms INTEGER;

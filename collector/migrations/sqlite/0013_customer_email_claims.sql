-- Per circuit, the start of the last maxout event whose customer email was claimed (sent or
-- being sent): the cooldown counts from it. Claimed with one conditional upsert, so that two
-- collectors on one database never both email a customer within a cooldown.
CREATE TABLE customer_email_claims (
    circuit_id        TEXT PRIMARY KEY,
    last_start_ms     INTEGER,            -- empty once a failed first send gave it back
    previous_start_ms INTEGER             -- what a failed send of the last claim restores
);
INSERT INTO customer_email_claims (circuit_id, last_start_ms)
    SELECT circuit_id, max(start_ms) FROM circuit_maxouts
     WHERE notified_ms IS NOT NULL GROUP BY circuit_id;

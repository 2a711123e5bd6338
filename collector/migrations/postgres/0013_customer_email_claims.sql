-- Per circuit, the start of the last maxout event whose customer email was claimed (sent or
-- being sent): the cooldown counts from it. Claimed with one conditional upsert (it locks the
-- circuit's row), so that two collectors on one database never both email a customer within a
-- cooldown.
CREATE TABLE customer_email_claims (
    circuit_id        TEXT PRIMARY KEY,
    last_start_ms     BIGINT,             -- empty once a failed first send gave it back
    previous_start_ms BIGINT              -- what a failed send of the last claim restores
);
INSERT INTO customer_email_claims (circuit_id, last_start_ms)
    SELECT circuit_id, (extract(epoch FROM max(start_at)) * 1000)::BIGINT FROM circuit_maxouts
     WHERE notified_at IS NOT NULL GROUP BY circuit_id;

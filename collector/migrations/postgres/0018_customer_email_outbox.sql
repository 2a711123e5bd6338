-- The customer maxout email is a channel of the one notification outbox (issue 29): its row
-- names the circuit maxout event where an anomaly's row names the anomaly, so it is claimed,
-- retried, recovered after a crash and recorded as every other notification is. The cooldown
-- claim remembers which event holds it, so the send's outcome can give back exactly that one.
ALTER TABLE alerts ALTER COLUMN anomaly_id DROP NOT NULL;
ALTER TABLE alerts ADD COLUMN circuit_event_id BIGINT REFERENCES circuit_maxouts (id);
-- What the notification tells of as it was queued (JSON): a customer email describes the
-- event as it opened, however it has grown by the time it is sent.
ALTER TABLE alerts ADD COLUMN details TEXT;
ALTER TABLE alerts ADD CONSTRAINT alerts_one_subject
    CHECK ((anomaly_id IS NULL) <> (circuit_event_id IS NULL));
CREATE UNIQUE INDEX alerts_circuit_event ON alerts (circuit_event_id, channel)
    WHERE circuit_event_id IS NOT NULL;
ALTER TABLE customer_email_claims ADD COLUMN last_event_id BIGINT;

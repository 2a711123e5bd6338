-- Detection a NOC can trust (issue 27).
-- What showed a device up at its last round: icmp, arp or tcp (NULL: offline, or never said).
ALTER TABLE devices ADD COLUMN alive_by TEXT;

-- The first sweep of each discovery site is its baseline: the hosts it found are learnt, not
-- raised as new devices. Kept here so a restart does not forget it.
CREATE TABLE discovery_sites (
    agent_id    TEXT    NOT NULL,
    site        TEXT    NOT NULL,       -- '' for agents that do not name their sites
    baseline_ms INTEGER NOT NULL,       -- the first sweep's observed time
    PRIMARY KEY (agent_id, site)
);

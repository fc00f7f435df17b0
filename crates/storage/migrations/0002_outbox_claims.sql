-- Several processes drain one outbox: an entry being processed is claimed by one process until
-- claimed_until_ms, and the others skip it. A process that crashed mid-drain leaves its claims to
-- expire; the same process, back after an outage, takes its own claims again at once.
ALTER TABLE outbox ADD COLUMN claimed_by text;
ALTER TABLE outbox ADD COLUMN claimed_until_ms bigint NOT NULL DEFAULT 0;

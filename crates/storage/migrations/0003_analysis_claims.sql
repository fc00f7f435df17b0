-- Several processes serve Analyze: an unfinished analysis is claimed by the process that runs it (or
-- queues it) until claimed_until_ms, which that process keeps extending. A process that died leaves its
-- claims to expire, and then another process claims and runs those analyses; none runs one another
-- process holds.
ALTER TABLE analyses ADD COLUMN claimed_by text;
ALTER TABLE analyses ADD COLUMN claimed_until_ms bigint NOT NULL DEFAULT 0;

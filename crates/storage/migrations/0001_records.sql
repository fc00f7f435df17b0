-- crow's shared records in PostgreSQL (see crates/storage/src/postgres.rs). Identifiers are
-- [A-Za-z0-9._-] and compare bytewise (COLLATE "C"), so pages come in the same order as in sled.

-- Interactions, newest first per organization: newest_first = -timestamp_ms, so that a page is one
-- forward range of (organization_id, newest_first, id) from the cursor.
CREATE TABLE interactions (
    id              text COLLATE "C" PRIMARY KEY,
    organization_id text COLLATE "C" NOT NULL,
    source_type     text NOT NULL CHECK (source_type IN ('web', 'cctv', 'social')),
    timestamp_ms    bigint NOT NULL,
    newest_first    bigint GENERATED ALWAYS AS (-timestamp_ms) STORED,
    -- The record's search words (crow_storage::text::interaction_words), for `q`.
    words           text[] NOT NULL,
    record          json NOT NULL
);
CREATE INDEX interactions_by_time ON interactions (organization_id, newest_first, id);
CREATE INDEX interactions_by_source ON interactions (organization_id, source_type, newest_first, id);
CREATE INDEX interactions_by_word ON interactions USING gin (words);

-- Per-organization counters, kept in the inserting statement: the summary is one index lookup.
CREATE TABLE interaction_counts (
    organization_id text COLLATE "C" NOT NULL,
    source_type     text NOT NULL,
    n               bigint NOT NULL,
    PRIMARY KEY (organization_id, source_type)
);

-- Accepted CreateInteraction events waiting to be processed.
CREATE TABLE outbox (
    seq             bigserial PRIMARY KEY,
    id              text COLLATE "C" NOT NULL UNIQUE,
    organization_id text COLLATE "C" NOT NULL,
    attempts        integer NOT NULL,
    next_attempt_ms bigint NOT NULL,
    last_error      text,
    record          json NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt_ms, seq);

CREATE TABLE idempotency_keys (
    organization_id text COLLATE "C" NOT NULL,
    key             text COLLATE "C" NOT NULL,
    id              text COLLATE "C" NOT NULL,
    PRIMARY KEY (organization_id, key)
);

CREATE TABLE dead_letters (
    organization_id text COLLATE "C" NOT NULL,
    id              text COLLATE "C" NOT NULL,
    letter          json NOT NULL,
    PRIMARY KEY (organization_id, id)
);

CREATE TABLE products (
    organization_id text COLLATE "C" NOT NULL,
    id              text COLLATE "C" NOT NULL,
    product         json NOT NULL,
    PRIMARY KEY (organization_id, id)
);

CREATE TABLE cameras (
    organization_id text COLLATE "C" NOT NULL,
    camera_id       text COLLATE "C" NOT NULL,
    camera          json NOT NULL,
    PRIMARY KEY (organization_id, camera_id)
);

CREATE TABLE analyses (
    id              text COLLATE "C" PRIMARY KEY,
    organization_id text COLLATE "C" NOT NULL,
    unfinished      boolean NOT NULL,
    record          json NOT NULL
);
CREATE INDEX analyses_unfinished ON analyses (id) WHERE unfinished;

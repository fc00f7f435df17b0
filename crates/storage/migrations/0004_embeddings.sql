-- Sentence-embedding vectors of interactions (crow_storage::embeddings), made off the ingest path by
-- whichever node's worker gets to a record first. `seq` grows with every write, so a node's search index
-- catches up by reading rows above the last seq it saw; `vectors` is RecordVectors::encode.
CREATE SEQUENCE interaction_embeddings_seq;
CREATE TABLE interaction_embeddings (
    id      text COLLATE "C" PRIMARY KEY REFERENCES interactions (id),
    seq     bigint NOT NULL,
    model   text NOT NULL,
    vectors bytea NOT NULL
);
CREATE INDEX interaction_embeddings_by_seq ON interaction_embeddings (seq);

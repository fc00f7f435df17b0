-- Store metrics (crow_storage::metrics): per camera, buckets five minutes (width 1) and one hour
-- (width 2) wide, aligned to UTC, each the JSON of a MetricBucket; and the levels of people in view
-- and in each zone that the camera's latest record left. Both change in the transaction that stores
-- the record they come from.
CREATE TABLE metric_buckets (
    organization_id text COLLATE "C" NOT NULL,
    camera_id       text COLLATE "C" NOT NULL,
    width           smallint NOT NULL,
    start_ms        bigint NOT NULL,
    bucket          json NOT NULL,
    PRIMARY KEY (organization_id, camera_id, width, start_ms)
);
CREATE TABLE metric_carry (
    organization_id text COLLATE "C" NOT NULL,
    camera_id       text COLLATE "C" NOT NULL,
    levels          json NOT NULL,
    PRIMARY KEY (organization_id, camera_id)
);
-- A report over every camera of an organization reads one width's time range.
CREATE INDEX metric_buckets_by_time ON metric_buckets (organization_id, width, start_ms);

-- The inbox: one row per event a consumer group has handled. The row is inserted in the same
-- transaction as the handler's effect, so the effect and "processed" commit together.
CREATE TABLE inbox (
  group_name   text NOT NULL,
  -- The CloudEvents identity: source and id (the dedup key the bus gives).
  event_key    text NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (group_name, event_key)
);

-- Retention: cleanup deletes the oldest rows in batches.
CREATE INDEX inbox_processed_at ON inbox (processed_at);

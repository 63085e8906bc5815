-- The transactional outbox. Runs with search_path set to the target schema (see src/migrate.ts).
-- Rows are appended inside the application's own transaction and deleted by the relay once the
-- broker confirmed them, so the table holds only unsent and parked events.
CREATE TABLE outbox (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- hash(key) % partitions, computed by append; a relay leases whole partitions.
  partition       integer NOT NULL,
  -- Events of one key are published in id order, which equals their commit order (see append).
  key             text NOT NULL,
  channel         text NOT NULL,
  -- CloudEvents context attributes.
  event_id        text NOT NULL,
  source          text NOT NULL,
  type            text NOT NULL,
  time            text,
  datacontenttype text,
  subject         text,
  -- Every other attribute (extensions: partitionkey, traceparent, correlationid…), as strings.
  headers         jsonb NOT NULL DEFAULT '{}',
  -- The data encoded as it goes on the wire (JSON text, or bytes for binary content types).
  payload         bytea NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
  attempts        integer NOT NULL DEFAULT 0,
  last_error      text,
  -- Set when the row failed too often: it is no longer relayed and its key is blocked.
  parked_at       timestamptz,
  CONSTRAINT outbox_source_id UNIQUE (source, event_id)
);

-- The relay's fetch: its partitions' unsent rows in id order.
CREATE INDEX outbox_partition_id ON outbox (partition, id) WHERE parked_at IS NULL;
-- "Is this key blocked by a parked row?" and the parked count.
CREATE INDEX outbox_parked_key ON outbox (key) WHERE parked_at IS NOT NULL;

-- Partition leases: a relay owns a partition while expires_at is in the future. The token grows by
-- one on every change of owner, so a relay that lost a lease can be refused (fencing).
CREATE TABLE outbox_leases (
  partition  integer PRIMARY KEY,
  owner      text,
  token      bigint NOT NULL DEFAULT 0,
  expires_at timestamptz NOT NULL DEFAULT '-infinity'
);

-- Relays alive, so each takes a fair share of the partitions.
CREATE TABLE outbox_relays (
  owner      text PRIMARY KEY,
  expires_at timestamptz NOT NULL
);

-- Rows parked in dead-letter mode are moved here, so their key goes on.
CREATE TABLE outbox_dead_letters (
  id              bigint PRIMARY KEY,
  partition       integer NOT NULL,
  key             text NOT NULL,
  channel         text NOT NULL,
  event_id        text NOT NULL,
  source          text NOT NULL,
  type            text NOT NULL,
  time            text,
  datacontenttype text,
  subject         text,
  headers         jsonb NOT NULL,
  payload         bytea NOT NULL,
  created_at      timestamptz NOT NULL,
  attempts        integer NOT NULL,
  last_error      text,
  parked_at       timestamptz NOT NULL
);

-- Bands and their lifecycle. Live sessions and challenges live in Redis; this table holds what
-- must survive a Redis flush: who owns a band, its keys, and whether it may pay at all.
CREATE TABLE devices (
  device_id uuid PRIMARY KEY,
  account_id text NOT NULL,
  model text NOT NULL,
  serial text NOT NULL UNIQUE,
  status text NOT NULL CHECK (status IN ('PENDING_PAIRING', 'ACTIVE', 'SUSPENDED', 'LOST', 'DEREGISTERED')),
  ed25519_public_key bytea NOT NULL,
  x25519_public_key bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  paired_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX devices_by_account ON devices (account_id, created_at, device_id);

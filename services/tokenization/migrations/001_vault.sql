-- The token vault. A device token stands in for a funding source; the funding source itself is
-- stored only encrypted (envelope encryption, src/domain/envelope.ts): a random data key per
-- record encrypts it with AES-256-GCM, and the KEK of version kek_version wraps that data key.
-- Token keys are never stored: they are derived from the master key and the token id on demand.
CREATE TABLE tokens (
  token_id uuid PRIMARY KEY,
  -- The device token (from the token BIN range); not a secret on its own, the lookup key for taps.
  token_number text NOT NULL UNIQUE,
  device_id uuid NOT NULL,
  account_id text NOT NULL,
  channels text[] NOT NULL CHECK (cardinality(channels) > 0 AND channels <@ ARRAY['BAND_TAP', 'BAND_QR']::text[]),
  status text NOT NULL CHECK (status IN ('ACTIVE', 'SUSPENDED', 'DELETED')),
  -- Why the token last changed status: an operator's reason or the device event that caused it.
  status_reason text NOT NULL DEFAULT '',
  funding_ciphertext bytea NOT NULL,
  funding_iv bytea NOT NULL,
  funding_tag bytea NOT NULL,
  -- The data key wrapped under KEK kek_version: iv (12) || ciphertext (32) || tag (16).
  data_key_wrapped bytea NOT NULL,
  kek_version integer NOT NULL CHECK (kek_version > 0),
  funding_last4 text NOT NULL,
  -- The highest ATC accepted so far: a tap is accepted only with a strictly greater one, by one
  -- conditional UPDATE, so replay protection survives restarts and holds across replicas.
  atc_high bigint NOT NULL DEFAULT 0 CHECK (atc_high >= 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Device events suspend or delete every token of a band.
CREATE INDEX tokens_by_device ON tokens (device_id);
-- Key rotation walks the records not yet under the active KEK.
CREATE INDEX tokens_by_kek_version ON tokens (kek_version, token_id);

-- Refused verifications per token, for the recent-failures risk feature; rows older than the
-- window are pruned as new failures arrive.
CREATE TABLE verification_failures (
  token_id uuid NOT NULL REFERENCES tokens (token_id),
  failed_at timestamptz NOT NULL DEFAULT now(),
  result text NOT NULL
);

CREATE INDEX verification_failures_recent ON verification_failures (token_id, failed_at);

-- Offline codes already accepted: each (token, time step) pays once.
CREATE TABLE offline_codes_used (
  token_id uuid NOT NULL REFERENCES tokens (token_id),
  step bigint NOT NULL,
  used_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (token_id, step)
);

-- Events this service has consumed (device.*), so a redelivery changes nothing twice.
CREATE TABLE processed_events (
  consumer text NOT NULL,
  event_id text NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_id)
);

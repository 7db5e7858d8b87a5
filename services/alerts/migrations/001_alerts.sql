-- Each account's alert feed: the last sequence handed out. A new alert bumps it (UPDATE ...
-- RETURNING, or the first INSERT) in the transaction that stores the alert, so the row lock
-- orders the account's alerts: alert n+1 gets its number only after alert n has committed, and a
-- reader can never see n+1 without n. Never pruned, so sequences carry on after retention.
CREATE TABLE alert_feeds (
  account_id text PRIMARY KEY,
  last_sequence bigint NOT NULL CHECK (last_sequence > 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- One alert per event (event_id unique: a redelivered event makes no second alert). What the
-- wrist shows is only merchant name, amount and outcome; the phone gets a title and a sentence.
CREATE TABLE alerts (
  account_id text NOT NULL,
  sequence bigint NOT NULL CHECK (sequence > 0),
  event_id text NOT NULL UNIQUE,
  kind text NOT NULL CHECK (kind IN ('AUTHORIZED', 'CHALLENGED', 'DECLINED', 'CAPTURED', 'REFUNDED', 'ESCROW_RELEASED', 'DISPUTE_OPENED', 'DISPUTE_RESOLVED', 'LIMITS_CHANGED')),
  device_id text NOT NULL DEFAULT '',
  payment_id text NOT NULL DEFAULT '',
  occurred_at timestamptz NOT NULL,
  wrist_merchant_name text NOT NULL,
  wrist_amount_minor bigint,
  wrist_currency text,
  wrist_outcome text NOT NULL,
  phone_title text NOT NULL,
  phone_body text NOT NULL,
  merchant_id text NOT NULL DEFAULT '',
  decline_reason text NOT NULL DEFAULT '',
  -- clock_timestamp(), not now(): taken after the feed bump, so it rises with the sequence within
  -- an account and retention by age prunes a feed from its oldest end, never from its middle.
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (account_id, sequence),
  CHECK ((wrist_amount_minor IS NULL) = (wrist_currency IS NULL))
);

-- Retention (ALERTS_RETENTION_DAYS) deletes the oldest alerts in batches.
CREATE INDEX alerts_created_at ON alerts (created_at);

-- Events the consumer has already applied (JetStream redelivers after a crash or a missed ack).
CREATE TABLE processed_events (
  consumer text NOT NULL,
  event_id text NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_id)
);

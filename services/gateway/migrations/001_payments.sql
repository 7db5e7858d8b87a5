-- The merchant registry: who may be paid, under which name, in which currency. A merchant's
-- terminals call as the mTLS identity `merchant.<merchant_id>`.
CREATE TABLE merchants (
  merchant_id text PRIMARY KEY,
  display_name text NOT NULL,
  mcc text NOT NULL CHECK (mcc ~ '^[0-9]{4}$'),
  country text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
  settlement_currency text NOT NULL CHECK (settlement_currency ~ '^[A-Z]{3}$'),
  status text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'SUSPENDED')),
  status_reason text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- One payment, a state machine (services/gateway/src/domain/payment-state.ts). The row is
-- written RECEIVED before the first downstream call, under the merchant's idempotency key, and
-- each later transition commits with its outbox event. Never the cryptogram, offline code or
-- token number: only the request's hash, to tell a retry from a reused key.
CREATE TABLE payments (
  payment_id uuid PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (merchant_id),
  idempotency_key text NOT NULL,
  request_hash bytea NOT NULL,
  status text NOT NULL CHECK (status IN ('RECEIVED', 'CHALLENGED', 'APPROVED', 'DECLINED', 'CAPTURED', 'VOIDED', 'EXPIRED', 'REFUNDED')),
  decline_reason text NOT NULL DEFAULT '',
  message text NOT NULL DEFAULT '',
  channel text NOT NULL,
  amount_minor bigint NOT NULL CHECK (amount_minor > 0),
  currency text NOT NULL,
  discount_minor bigint NOT NULL DEFAULT 0,
  charged_minor bigint NOT NULL,
  voucher_code text NOT NULL DEFAULT '',
  merchant_name text NOT NULL,
  device_id text NOT NULL DEFAULT '',
  account_id text NOT NULL DEFAULT '',
  hold_id text NOT NULL DEFAULT '',
  risk_score integer NOT NULL DEFAULT 0,
  risk_reasons text[] NOT NULL DEFAULT '{}',
  -- The step-up, once risk asked for one.
  challenge_id uuid UNIQUE,
  challenge_nonce bytea,
  challenge_expires_at timestamptz,
  -- Set when the owner confirmed the step-up: the payment resumes at the hold.
  confirmed_at timestamptz,
  -- The ConfirmPayment / DeclinePayment that ended the challenge (a retry with it gets the answer).
  resolved_key text,
  resolved_hash bytea,
  -- The replica running the current attempt while RECEIVED, and a fencing number: a take-over
  -- bumps it, so a superseded attempt cannot write its outcome.
  owner uuid NOT NULL,
  attempt integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (merchant_id, idempotency_key)
);

CREATE INDEX payments_challenge_expiry ON payments (challenge_expires_at) WHERE status = 'CHALLENGED';
CREATE INDEX payments_received ON payments (updated_at) WHERE status = 'RECEIVED';
CREATE INDEX payments_account ON payments (account_id, created_at);

-- Gateway replicas and their last heartbeat: a RECEIVED payment whose replica stopped beating
-- is taken over by the next retry instead of waiting out a lease.
CREATE TABLE gateway_instances (
  instance_id uuid PRIMARY KEY,
  beat_at timestamptz NOT NULL DEFAULT now()
);

-- Disputes freeze a captured hold's escrow until resolved (refund the buyer or release).
CREATE TABLE disputes (
  dispute_id uuid PRIMARY KEY,
  hold_id uuid NOT NULL REFERENCES holds (hold_id),
  reason text NOT NULL,
  status text NOT NULL CHECK (status IN ('OPEN', 'RESOLVED')),
  outcome text CHECK (outcome IN ('REFUND_BUYER', 'RELEASE_TO_MERCHANT')),
  transfer_id uuid REFERENCES transfers (transfer_id),
  opened_at timestamptz NOT NULL DEFAULT now(),
  resolved_at timestamptz,
  CONSTRAINT resolved_has_outcome CHECK ((status = 'RESOLVED') = (outcome IS NOT NULL))
);

CREATE UNIQUE INDEX disputes_one_open_per_hold ON disputes (hold_id) WHERE status = 'OPEN';

-- One payout per merchant, currency and business date: the net of the payable transfers
-- (releases, refunds after release) not yet paid out, committed before the run.
CREATE TABLE payouts (
  payout_id uuid PRIMARY KEY,
  merchant_id text NOT NULL,
  currency text NOT NULL,
  business_date date NOT NULL,
  amount_minor bigint NOT NULL CHECK (amount_minor > 0),
  transfer_id uuid NOT NULL REFERENCES transfers (transfer_id),
  transfers integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (merchant_id, currency, business_date)
);

-- Which payable transfer went into which payout: each is paid out at most once.
CREATE TABLE payout_items (
  transfer_id uuid PRIMARY KEY REFERENCES transfers (transfer_id),
  payout_id uuid NOT NULL REFERENCES payouts (payout_id)
);

-- Bands reported lost (device.lost): PlaceHold for them answers ACCOUNT_FROZEN.
CREATE TABLE frozen_devices (
  device_id text PRIMARY KEY,
  account_id text NOT NULL,
  event_id text NOT NULL,
  frozen_at timestamptz NOT NULL DEFAULT now()
);

-- Events this service has consumed, so a redelivery changes nothing.
CREATE TABLE processed_events (
  event_id text PRIMARY KEY,
  processed_at timestamptz NOT NULL DEFAULT now()
);

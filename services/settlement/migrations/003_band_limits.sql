-- Spending limits a band's owner sets on it (SetBandLimits); PlaceHold locks the row and
-- enforces them in the same transaction as the balance check. One row per band, owned by the
-- account that first set it. NULL limit: no limit of that kind. `currency` is the limits'
-- currency and is set exactly when at least one limit is.
CREATE TABLE band_limits (
  device_id text PRIMARY KEY,
  account_id text NOT NULL,
  currency text CHECK (currency ~ '^[A-Z]{3}$'),
  per_payment_minor bigint CHECK (per_payment_minor > 0),
  per_day_minor bigint CHECK (per_day_minor > 0),
  frozen boolean NOT NULL DEFAULT false,
  version bigint NOT NULL CHECK (version > 0),
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- The caller identity (mTLS certificate CN) of the last change.
  updated_by text NOT NULL,
  CONSTRAINT currency_iff_a_limit CHECK ((currency IS NOT NULL) = (per_payment_minor IS NOT NULL OR per_day_minor IS NOT NULL))
);

-- Every change to a band's limits, never updated or pruned: who, when, why, and the values
-- before and after (the *_before columns are NULL/false for a band's first change, version 1).
CREATE TABLE band_limit_changes (
  device_id text NOT NULL,
  version bigint NOT NULL,
  account_id text NOT NULL,
  changed_by text NOT NULL,
  changed_at timestamptz NOT NULL DEFAULT now(),
  reason text NOT NULL,
  currency_before text,
  per_payment_minor_before bigint,
  per_day_minor_before bigint,
  frozen_before boolean NOT NULL,
  currency_after text,
  per_payment_minor_after bigint,
  per_day_minor_after bigint,
  frozen_after boolean NOT NULL,
  PRIMARY KEY (device_id, version)
);

-- The index on holds by device and day is 005_holds_by_device_day.sql: holds is large by the
-- time this runs, so it is built CONCURRENTLY, which cannot share this migration's transaction.
-- (A database that applied this file before it moved already has the index; 005 then does nothing.)

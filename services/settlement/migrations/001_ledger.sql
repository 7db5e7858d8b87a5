-- The double-entry ledger. Money is int64 minor units (bigint) plus an ISO 4217 code, never a
-- float. An account exists once per currency. Its stored balance is a cache of the sum of its
-- postings, kept in the same transaction as the postings and checked by ledger-check.
--
-- Account names (see src/domain/accounts.ts):
--   wallet:<accountId>             a buyer's money (WALLET)
--   merchant:<merchantId>:escrow   captured money held for buyer protection (ESCROW)
--   merchant:<merchantId>:payable  released money owed to the merchant until payout (PAYABLE)
--   external:funding               where top-ups come from (EXTERNAL, goes negative)
--   external:payouts               where payouts go (EXTERNAL)
-- Signs: a posting credits with a positive amount and debits with a negative one, and an
-- account's balance is the plain sum of its postings.
CREATE TABLE accounts (
  account text NOT NULL,
  currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  kind text NOT NULL CHECK (kind IN ('WALLET', 'ESCROW', 'PAYABLE', 'EXTERNAL')),
  -- The buyer or merchant id the account belongs to (empty for external accounts).
  owner text NOT NULL DEFAULT '',
  posted bigint NOT NULL DEFAULT 0,
  -- Sum of the PENDING holds on a wallet: reserved, not yet moved.
  held bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account, currency),
  CONSTRAINT only_wallets_hold CHECK (kind = 'WALLET' OR held = 0),
  -- The last line of defence: whatever the code does, a wallet never goes below zero available.
  CONSTRAINT wallet_available_not_negative CHECK (kind <> 'WALLET' OR posted - held >= 0),
  CONSTRAINT escrow_not_negative CHECK (kind <> 'ESCROW' OR posted >= 0)
);

-- A hold reserves money on a wallet (accounts.held) without moving it. It ends exactly once:
-- CAPTURED (money moves to the merchant's escrow), VOIDED or EXPIRED (reservation released).
-- After capture the escrow columns follow the captured money:
--   captured_minor = escrow_minor + released_minor + refunded_minor, always.
CREATE TABLE holds (
  hold_id uuid PRIMARY KEY,
  payment_id text NOT NULL UNIQUE,
  account_id text NOT NULL,
  merchant_id text NOT NULL,
  device_id text NOT NULL,
  currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  amount_minor bigint NOT NULL CHECK (amount_minor > 0),
  status text NOT NULL CHECK (status IN ('PENDING', 'CAPTURED', 'VOIDED', 'EXPIRED')),
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  ended_at timestamptz,
  captured_minor bigint NOT NULL DEFAULT 0,
  escrow_minor bigint NOT NULL DEFAULT 0 CHECK (escrow_minor >= 0),
  released_minor bigint NOT NULL DEFAULT 0 CHECK (released_minor >= 0),
  refunded_minor bigint NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0),
  escrow_status text CHECK (escrow_status IN ('HELD', 'DISPUTED', 'RELEASED', 'REFUNDED')),
  escrow_until timestamptz,
  CONSTRAINT ended_when_not_pending CHECK ((status = 'PENDING') = (ended_at IS NULL)),
  CONSTRAINT captured_within_hold CHECK (captured_minor >= 0 AND captured_minor <= amount_minor),
  CONSTRAINT captured_iff_status CHECK ((status = 'CAPTURED') = (captured_minor > 0)),
  CONSTRAINT escrow_accounts_for_capture CHECK (captured_minor = escrow_minor + released_minor + refunded_minor),
  CONSTRAINT escrow_only_after_capture CHECK ((status = 'CAPTURED') = (escrow_status IS NOT NULL))
);

CREATE INDEX holds_pending_expiry ON holds (expires_at) WHERE status = 'PENDING';
CREATE INDEX holds_escrow_due ON holds (escrow_until) WHERE escrow_status = 'HELD';

CREATE TABLE transfers (
  transfer_id uuid PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('topup', 'capture', 'release', 'refund', 'payout')),
  -- The outside reference: top-up source, payment id, dispute id, payout business date.
  reference text NOT NULL DEFAULT '',
  hold_id uuid REFERENCES holds (hold_id),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX transfers_by_hold ON transfers (hold_id) WHERE hold_id IS NOT NULL;

-- Each transfer's postings sum to zero per currency: enforced in src/domain/postings.ts before
-- insert and verified by src/invariants.ts.
CREATE TABLE postings (
  transfer_id uuid NOT NULL REFERENCES transfers (transfer_id),
  seq smallint NOT NULL,
  account text NOT NULL,
  currency text NOT NULL,
  amount_minor bigint NOT NULL CHECK (amount_minor <> 0),
  PRIMARY KEY (transfer_id, seq),
  FOREIGN KEY (account, currency) REFERENCES accounts (account, currency)
);

CREATE INDEX postings_by_account ON postings (account, currency);

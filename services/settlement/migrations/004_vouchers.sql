-- Merchant vouchers (issue 7). Independent of 003 (band limits): nothing here reads its tables.
--
-- A voucher takes an amount (amount_off_minor + currency) or a whole percent (1-99, rounded
-- down to the minor unit) off a payment at the merchant that issued it. Its code is unique across
-- all merchants, case-insensitively, so a buyer's code names one voucher whatever the case typed.
-- max_uses payments may redeem it; uses counts the redemptions that still stand.
--
-- Redemption: PlaceHold locks the voucher row FOR UPDATE first (lock order: voucher, then the
-- band's limits, then the wallet), checks it and, only when the hold is PLACED, adds one use
-- and a voucher_redemptions row, in the hold's transaction. A hold that is not placed (not enough
-- money, frozen band) or a refused voucher leaves the voucher untouched.
--
-- Release: when a voucher hold is VOIDED or EXPIRES, nothing was bought, so its redemption is
-- released (released_at set, uses - 1) in the same transaction and the buyer keeps the voucher
-- (even past its expiry the use is given back: an expired voucher is then refused as expired).
-- A capture keeps the use for good; a later refund or dispute gives money back, not the voucher.
--
-- Money: the buyer's wallet, the merchant's escrow and payable carry the net (amount - discount),
-- so holds, refunds, disputes and payouts work on the net as before. The discount is the
-- merchant's cost: at capture a second transfer (kind 'voucher') debits the merchant's
-- merchant:<id>:vouchers account (kind VOUCHER, never positive: what it gave away in vouchers)
-- and credits external:vouchers (EXTERNAL: the face value buyers received).
CREATE TABLE vouchers (
  voucher_id uuid PRIMARY KEY,
  merchant_id text NOT NULL,
  code text NOT NULL CHECK (code ~ '^[A-Za-z0-9-]{4,32}$'),
  amount_off_minor bigint CHECK (amount_off_minor > 0),
  currency text CHECK (currency ~ '^[A-Z]{3}$'),
  percent_off integer CHECK (percent_off BETWEEN 1 AND 99),
  expires_at timestamptz NOT NULL,
  max_uses integer NOT NULL CHECK (max_uses BETWEEN 1 AND 1000000),
  uses integer NOT NULL DEFAULT 0 CHECK (uses >= 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT voucher_one_discount CHECK (
    (amount_off_minor IS NOT NULL AND currency IS NOT NULL AND percent_off IS NULL)
    OR (amount_off_minor IS NULL AND currency IS NULL AND percent_off IS NOT NULL)),
  CONSTRAINT voucher_uses_within_max CHECK (uses <= max_uses)
);

CREATE UNIQUE INDEX vouchers_code_unique ON vouchers (upper(code));
CREATE INDEX vouchers_by_merchant ON vouchers (merchant_id);

-- One row per hold that redeemed a voucher; released_at is set when the hold was voided or
-- expired (the use was given back). Standing redemptions = vouchers.uses, checked by ledger-check.
CREATE TABLE voucher_redemptions (
  voucher_id uuid NOT NULL REFERENCES vouchers (voucher_id),
  payment_id text NOT NULL UNIQUE,
  hold_id uuid NOT NULL UNIQUE REFERENCES holds (hold_id),
  gross_minor bigint NOT NULL,
  discount_minor bigint NOT NULL,
  currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  redeemed_at timestamptz NOT NULL DEFAULT now(),
  released_at timestamptz,
  CONSTRAINT redemption_leaves_something_to_pay CHECK (discount_minor > 0 AND discount_minor < gross_minor)
);

CREATE INDEX voucher_redemptions_by_voucher ON voucher_redemptions (voucher_id);

-- A hold's amount_minor stays what is reserved on the wallet (the net); gross_minor is the price
-- before the voucher and discount_minor what it took off. merchant_name is the display name the
-- terminal sent (empty when none), carried on the hold's events.
ALTER TABLE holds ADD COLUMN gross_minor bigint;
UPDATE holds SET gross_minor = amount_minor WHERE gross_minor IS NULL;
ALTER TABLE holds ALTER COLUMN gross_minor SET NOT NULL;
ALTER TABLE holds ADD COLUMN discount_minor bigint NOT NULL DEFAULT 0;
ALTER TABLE holds ADD COLUMN voucher_id uuid REFERENCES vouchers (voucher_id);
ALTER TABLE holds ADD COLUMN merchant_name text NOT NULL DEFAULT '';
ALTER TABLE holds ADD CONSTRAINT hold_gross_is_net_plus_discount CHECK (discount_minor >= 0 AND gross_minor = amount_minor + discount_minor);
ALTER TABLE holds ADD CONSTRAINT hold_discount_iff_voucher CHECK ((voucher_id IS NULL) = (discount_minor = 0));
ALTER TABLE holds ADD CONSTRAINT hold_merchant_name_length CHECK (char_length(merchant_name) <= 64);

-- The new account kind and transfer kind (names as PostgreSQL gave the inline CHECKs of 001).
ALTER TABLE accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_check CHECK (kind IN ('WALLET', 'ESCROW', 'PAYABLE', 'EXTERNAL', 'VOUCHER'));
ALTER TABLE accounts ADD CONSTRAINT voucher_not_positive CHECK (kind <> 'VOUCHER' OR posted <= 0);
ALTER TABLE transfers DROP CONSTRAINT transfers_kind_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_kind_check CHECK (kind IN ('topup', 'capture', 'release', 'refund', 'payout', 'voucher'));

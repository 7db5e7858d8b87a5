-- PlaceHold in one statement (issue 16): `SELECT * FROM place_hold(...)` is the whole hold,
-- from the idempotency key to the outbox row, in one implicit transaction and one round trip.
--
-- Why a PL/pgSQL function and not data-modifying CTEs: PlaceHold is a chain of decisions, each
-- one under a row lock taken in the global lock order (idempotency key → voucher → the band's
-- limits row → wallet), and each refusal must stop before anything after it is locked or
-- written. CTEs run their sub-statements in one snapshot with no order between them and no way
-- to stop half way; a function has real control flow, takes its locks in the order written, and
-- a RAISE rolls back everything it did (the key included), as a thrown error rolled back the
-- transaction before. Its plans are prepared once per connection, like the statements it replaces.
--
-- What stays in TypeScript (src/place-hold.ts): validation, pricing a voucher (domain/voucher.ts
-- `quote`, on a read without lock; the function re-checks under the lock that the voucher can
-- still be used, the terms that decide the discount never change), building the event and the
-- protobuf answer. The rules below are the only copy of PlaceHold's ledger rules.

-- Midnight UTC of the database clock's today. now() is the transaction's start, the same clock
-- that stamps holds.created_at. Used with no upper bound: a hold stamped by a transaction that
-- started after this one (across midnight) counts too, which can only refuse, never overspend.
CREATE FUNCTION utc_today_start() RETURNS timestamptz LANGUAGE sql STABLE AS
  $$ SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' $$;

-- What a band spent today in `p_currency` (optionally: only `p_account`'s holds): pending holds
-- reserve their amount, captured ones spent what was captured; voided and expired ones spent
-- nothing, so they give the allowance back. PlaceHold's daily limit and GetBandLimits both use it.
-- PL/pgSQL, not SQL: its plan (index holds_by_device_day) is cached per connection.
CREATE FUNCTION band_spent_today(p_device_id text, p_currency text, p_account_id text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (
    SELECT coalesce(sum(CASE status WHEN 'PENDING' THEN amount_minor WHEN 'CAPTURED' THEN captured_minor ELSE 0 END), 0)::bigint
    FROM holds
    WHERE device_id = p_device_id AND currency = p_currency AND created_at >= utc_today_start()
      AND (p_account_id IS NULL OR account_id = p_account_id));
END
$$;

-- A protobuf varint (unsigned LEB128): what place_hold needs to append the hold's expiry, the
-- one field of the answer only the database knows (its clock), to the bytes the service encoded.
CREATE FUNCTION pb_varint(p_value bigint) RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  v bigint := p_value;
  encoded bytea := ''::bytea;
BEGIN
  IF v < 0 THEN
    RAISE EXCEPTION 'pb_varint: % is negative', v;
  END IF;
  LOOP
    IF v < 128 THEN
      RETURN encoded || set_byte('\x00'::bytea, 0, v::int);
    END IF;
    encoded := encoded || set_byte('\x00'::bytea, 0, ((v & 127) | 128)::int);
    v := v >> 7;
  END LOOP;
END
$$;

-- A length-delimited protobuf field: tag (field number, wire type 2), length, bytes.
CREATE FUNCTION pb_field(p_field int, p_bytes bytea) RETURNS bytea LANGUAGE sql IMMUTABLE STRICT AS
  $$ SELECT pb_varint((p_field << 3) | 2) || pb_varint(length(p_bytes)) || p_bytes $$;

-- google.protobuf.Timestamp (seconds = 1, nanos = 2; a zero field is left out, as encoders do).
CREATE FUNCTION pb_timestamp(p_at timestamptz) RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  micros bigint := (extract(epoch FROM p_at) * 1000000)::bigint;
  seconds bigint := floor(micros / 1000000.0)::bigint;
  nanos bigint := (micros - seconds * 1000000) * 1000;
BEGIN
  RETURN CASE WHEN seconds = 0 THEN ''::bytea ELSE '\x08'::bytea || pb_varint(seconds) END
      || CASE WHEN nanos = 0 THEN ''::bytea ELSE '\x10'::bytea || pb_varint(nanos) END;
END
$$;

-- One PlaceHold. With p_scope NULL no idempotency record is read or written (the store tests
-- drive the ledger without keys). Returns the outcome and the answer as stored:
--   REPLAYED          the key's stored answer (the first call's), nothing else done;
--   PLACED            the hold, reserved, voucher use counted, outbox row written, answer stored;
--   a refusal         (ACCOUNT_FROZEN, BAND_FROZEN, OVER_PAYMENT_LIMIT, OVER_DAILY_LIMIT,
--                     INSUFFICIENT_FUNDS): nothing written but the key and its answer.
-- Errors roll back everything, the key included (SQLSTATE, mapped in src/place-hold.ts):
--   WP001 the payment already has a hold (DETAIL: its id, when known);
--   WP002 the key was used for another request;
--   WP003 the voucher was used up or expired between its quote and its lock: quote again.
--
-- p_answers holds the service's encoding of each outcome's answer without a hold, by the names
-- in p_outcomes; PLACED's answer is that plus the hold: p_hold (protobuf Hold without
-- expires_at) with expires_at appended. Protobuf field numbers used here: PlaceHoldResponse.hold
-- = 2, Hold.expires_at = 7 (proto/wristpay/settlement/v1/settlement.proto; the store test decodes
-- what this writes, so a renumbering fails it).
CREATE FUNCTION place_hold(
  p_scope text, p_key text, p_request_hash bytea,
  p_hold_id uuid, p_payment_id text, p_account_id text, p_wallet text, p_merchant_id text, p_device_id text,
  p_currency text, p_amount bigint, p_ttl_seconds bigint,
  p_voucher_id uuid, p_discount bigint, p_merchant_name text,
  p_event_id uuid, p_event bytea, p_trace_context jsonb,
  p_outcomes text[], p_answers bytea[], p_hold bytea
) RETURNS TABLE (outcome text, answer bytea, created_at timestamptz, expires_at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  first_call record;
  limits band_limits%ROWTYPE;
  existing uuid;
  available bigint;
  decided text;
  placed_at timestamptz;
  placed_until timestamptz;
  stored bytea;
BEGIN
  -- 1. The idempotency key, first in the lock order: a concurrent call with the same key waits
  -- here for the first to commit and then gets its answer (platform/idempotency.ts, same rules).
  -- Twice at most: the row that made the insert conflict may be pruned by retention before the
  -- SELECT sees it; the second insert then succeeds.
  IF p_scope IS NOT NULL THEN
    FOR attempt IN 1..2 LOOP
      INSERT INTO idempotency_keys (scope, key, request_hash) VALUES (p_scope, p_key, p_request_hash) ON CONFLICT DO NOTHING;
      EXIT WHEN FOUND;
      SELECT k.request_hash, k.response INTO first_call FROM idempotency_keys k WHERE k.scope = p_scope AND k.key = p_key FOR UPDATE;
      IF FOUND THEN
        IF first_call.request_hash <> p_request_hash THEN
          RAISE EXCEPTION 'idempotency key was already used for a different request' USING ERRCODE = 'WP002';
        END IF;
        IF first_call.response IS NOT NULL THEN
          RETURN QUERY SELECT 'REPLAYED'::text, first_call.response, NULL::timestamptz, NULL::timestamptz;
          RETURN;
        END IF;
        EXIT;
      END IF;
      IF attempt = 2 THEN
        RAISE EXCEPTION 'idempotency key % neither insertable nor found', p_key;
      END IF;
    END LOOP;
  END IF;

  -- 2. The voucher (lock order: voucher → band limits → wallet), priced by the service: still
  -- usable now that it is locked? (Its discount terms are never updated.)
  IF p_voucher_id IS NOT NULL THEN
    PERFORM 1 FROM vouchers v
      WHERE v.voucher_id = p_voucher_id AND v.merchant_id = p_merchant_id AND v.uses < v.max_uses AND v.expires_at > now()
      FOR UPDATE;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'voucher % changed since it was quoted', p_voucher_id USING ERRCODE = 'WP003';
    END IF;
  END IF;

  -- 3. A band reported lost pays nothing.
  IF EXISTS (SELECT 1 FROM frozen_devices f WHERE f.device_id = p_device_id) THEN
    decided := 'ACCOUNT_FROZEN';
  END IF;

  -- 4. One hold per payment.
  IF decided IS NULL THEN
    SELECT h.hold_id INTO existing FROM holds h WHERE h.payment_id = p_payment_id;
    IF FOUND THEN
      RAISE EXCEPTION 'payment % already has hold %', p_payment_id, existing USING ERRCODE = 'WP001', DETAIL = existing::text;
    END IF;
  END IF;

  -- 5. The band's own limits, on the net, with its row locked: concurrent holds on one band
  -- queue here, so each sums the holds committed before it and together they never pass the
  -- daily limit. A band without limits takes no lock. While any limit is set, a payment in
  -- another currency is over the per-payment limit (limits in EUR say nothing about JPY).
  IF decided IS NULL THEN
    SELECT * INTO limits FROM band_limits b WHERE b.device_id = p_device_id FOR UPDATE;
    IF FOUND THEN
      IF limits.frozen THEN
        decided := 'BAND_FROZEN';
      ELSIF limits.currency IS NOT NULL AND (p_currency <> limits.currency OR p_amount > coalesce(limits.per_payment_minor, p_amount)) THEN
        decided := 'OVER_PAYMENT_LIMIT';
      ELSIF limits.per_day_minor IS NOT NULL AND band_spent_today(p_device_id, limits.currency) + p_amount > limits.per_day_minor THEN
        decided := 'OVER_DAILY_LIMIT';
      END IF;
    END IF;
  END IF;

  -- 6. The wallet row, locked: concurrent holds on one wallet queue and each sees the
  -- reservations committed before it, so together they never reserve more than it has. A
  -- missing wallet has nothing in it.
  IF decided IS NULL THEN
    SELECT a.posted - a.held INTO available FROM accounts a WHERE a.account = p_wallet AND a.currency = p_currency FOR UPDATE;
    IF p_amount > coalesce(available, 0) THEN
      decided := 'INSUFFICIENT_FUNDS';
    END IF;
  END IF;

  IF decided IS NOT NULL THEN
    stored := p_answers[array_position(p_outcomes, decided)];
  ELSE
    -- 7. Placed: the hold, the reservation, the voucher's use, the event.
    INSERT INTO holds AS h (hold_id, payment_id, account_id, merchant_id, device_id, currency, amount_minor, status, expires_at,
                            gross_minor, discount_minor, voucher_id, merchant_name)
      VALUES (p_hold_id, p_payment_id, p_account_id, p_merchant_id, p_device_id, p_currency, p_amount, 'PENDING',
              now() + make_interval(secs => p_ttl_seconds::double precision), p_amount + p_discount, p_discount, p_voucher_id, p_merchant_name)
      ON CONFLICT (payment_id) DO NOTHING
      RETURNING h.created_at, h.expires_at INTO placed_at, placed_until;
    IF NOT FOUND THEN
      -- A concurrent PlaceHold for the same payment committed first.
      RAISE EXCEPTION 'payment % already has a hold', p_payment_id USING ERRCODE = 'WP001';
    END IF;
    -- The row locked in step 6; the CHECK on available money sees the final row.
    UPDATE accounts a SET held = a.held + p_amount, updated_at = now() WHERE a.account = p_wallet AND a.currency = p_currency;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'wallet % % has no row to reserve % on', p_wallet, p_currency, p_amount;
    END IF;
    IF p_voucher_id IS NOT NULL THEN
      UPDATE vouchers v SET uses = v.uses + 1 WHERE v.voucher_id = p_voucher_id AND v.uses < v.max_uses;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'voucher % could not count a use for hold %', p_voucher_id, p_hold_id;
      END IF;
      INSERT INTO voucher_redemptions (voucher_id, payment_id, hold_id, gross_minor, discount_minor, currency)
        VALUES (p_voucher_id, p_payment_id, p_hold_id, p_amount + p_discount, p_discount, p_currency);
    END IF;
    INSERT INTO outbox (event_id, event, trace_context) VALUES (p_event_id, p_event, p_trace_context);
    decided := 'PLACED';
    stored := p_answers[array_position(p_outcomes, 'PLACED')] || pb_field(2, p_hold || pb_field(7, pb_timestamp(placed_until)));
  END IF;

  IF stored IS NULL THEN
    RAISE EXCEPTION 'place_hold: no answer given for outcome %', decided;
  END IF;
  -- 8. The answer, stored with the key: a retry gets exactly these bytes.
  IF p_scope IS NOT NULL THEN
    UPDATE idempotency_keys k SET response = stored WHERE k.scope = p_scope AND k.key = p_key;
  END IF;
  RETURN QUERY SELECT decided, stored, placed_at, placed_until;
END
$$;

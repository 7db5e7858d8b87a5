-- A verification's whole write in one round trip (issue 16): VerifyPayment and VerifyOfflineCode
-- used to run a transaction of ~8 statements (BEGIN, idempotency row, token, ATC, failures,
-- count, outbox, stored answer, COMMIT), one socket write, parse and span each. Now the service
-- reads the token (it must: the cryptogram is an HMAC under a key that exists only in the
-- process, so the check cannot move into SQL), checks the credential, and sends this one call,
-- which runs in the statement's own transaction.
--
-- Why a PL/pgSQL function and not a data-modifying CTE: the write must (1) take the payment id's
-- idempotency row first, so a concurrent retry waits on it and then gets the stored answer, and
-- so a retry never moves the ATC again; (2) move the replay guard only if (1) inserted; (3) store
-- the answer in the row (1) inserted. A CTE's parts share one snapshot and may not modify one row
-- twice, so it can neither store the answer in the row it just inserted nor see the answer a
-- concurrent retry committed while it waited on that row. A function's statements run in order,
-- each on a fresh snapshot (READ COMMITTED), exactly like the transaction platform/idempotency.ts
-- `once` runs, in one round trip.
--
-- Secrets never reach this statement: the cryptogram or code is checked in Node, and only the
-- outcome of that check (a refusal, or "go on and move the guard") is sent.

-- The protobuf varint (base 128, least significant group first, high bit = more follows) of a
-- non-negative integer: how Verification.recent_failures (field 5, int32) is written on the wire.
CREATE FUNCTION pb_varint(n bigint) RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  encoded bytea := '\x'::bytea;
  rest bigint := n;
BEGIN
  IF n < 0 THEN
    RAISE EXCEPTION 'pb_varint: % is negative', n;
  END IF;
  LOOP
    IF rest < 128 THEN
      RETURN encoded || set_byte('\x00'::bytea, 0, rest::int);
    END IF;
    encoded := encoded || set_byte('\x00'::bytea, 0, ((rest & 127) | 128)::int);
    rest := rest >> 7;
  END LOOP;
END $$;

-- One verification's write; src/verification-write.ts builds the call. Returns one row:
--   verdict 'done'     the verification ran: outcome, recent_failures and the stored answer;
--           'repeated' the payment id already has an answer for this same request: response;
--           'reused'   the payment id was used for a different request (IdempotencyKeyReused).
-- p_key NULL: no payment id, no idempotency row (a direct caller). p_token_id NULL: unknown token.
-- p_guard: 'atc' moves the ATC high-water mark to p_atc (OK, else REPLAY / TOKEN_SUSPENDED /
-- TOKEN_DELETED); 'code' spends the offline code's (token, p_step) pair (OK, else CODE_REUSED /
-- TOKEN_SUSPENDED / TOKEN_DELETED); NULL: the refusal the service already decided, p_outcomes[1].
-- p_outcomes lists the outcomes the service built an answer and an event for; p_responses (the
-- encoded Verification without recent_failures, hex), p_event_ids and p_events (hex) are in the
-- same order. The failures counter and the count are as before: a refusal on a known token adds
-- a row and prunes rows older than p_failure_window; the count covers that window.
CREATE FUNCTION record_verification(
  p_scope text,
  p_key text,
  p_request_hash bytea,
  p_token_id uuid,
  p_guard text,
  p_atc bigint,
  p_step bigint,
  p_failure_window interval,
  p_outcomes text[],
  p_responses text[],
  p_event_ids uuid[],
  p_events text[],
  p_trace_context jsonb
) RETURNS TABLE (verdict text, outcome text, recent_failures integer, response bytea)
LANGUAGE plpgsql AS $$
DECLARE
  stored_hash bytea;
  stored_response bytea;
  changed integer;
  token_status text;
  decided text;
  failures integer := 0;
  pick integer;
  answer bytea;
BEGIN
  IF p_key IS NOT NULL THEN
    -- As `once`: twice at most, because the row that made the insert conflict may be pruned by
    -- retention before the SELECT sees it; the second insert then succeeds.
    FOR attempt IN 1..2 LOOP
      INSERT INTO idempotency_keys (scope, key, request_hash) VALUES (p_scope, p_key, p_request_hash) ON CONFLICT DO NOTHING;
      GET DIAGNOSTICS changed = ROW_COUNT;
      EXIT WHEN changed = 1;
      SELECT k.request_hash, k.response INTO stored_hash, stored_response
        FROM idempotency_keys k WHERE k.scope = p_scope AND k.key = p_key FOR UPDATE;
      CONTINUE WHEN NOT FOUND;
      IF stored_hash <> p_request_hash THEN
        RETURN QUERY SELECT 'reused'::text, NULL::text, NULL::integer, NULL::bytea;
        RETURN;
      END IF;
      IF stored_response IS NOT NULL THEN
        RETURN QUERY SELECT 'repeated'::text, NULL::text, NULL::integer, stored_response;
        RETURN;
      END IF;
      EXIT;
    END LOOP;
  END IF;

  IF p_guard = 'atc' THEN
    -- Two racing taps with one ATC cannot both win: the second sees atc_high < p_atc false. A
    -- token suspended or deleted since the service read it is not moved either.
    UPDATE tokens SET atc_high = p_atc WHERE token_id = p_token_id AND atc_high < p_atc AND status = 'ACTIVE';
    GET DIAGNOSTICS changed = ROW_COUNT;
    IF changed = 1 THEN
      decided := 'OK';
    ELSE
      SELECT t.status INTO token_status FROM tokens t WHERE t.token_id = p_token_id;
      decided := CASE token_status WHEN 'SUSPENDED' THEN 'TOKEN_SUSPENDED' WHEN 'DELETED' THEN 'TOKEN_DELETED' ELSE 'REPLAY' END;
    END IF;
  ELSIF p_guard = 'code' THEN
    -- The row is held against a concurrent status change until the code is spent and committed.
    SELECT t.status INTO token_status FROM tokens t WHERE t.token_id = p_token_id FOR SHARE;
    IF token_status = 'SUSPENDED' THEN
      decided := 'TOKEN_SUSPENDED';
    ELSIF token_status = 'DELETED' THEN
      decided := 'TOKEN_DELETED';
    ELSE
      INSERT INTO offline_codes_used (token_id, step) VALUES (p_token_id, p_step) ON CONFLICT DO NOTHING;
      GET DIAGNOSTICS changed = ROW_COUNT;
      IF changed = 0 THEN
        decided := 'CODE_REUSED';
      ELSE
        -- Steps more than a few behind can never match again; keep the table small.
        DELETE FROM offline_codes_used WHERE token_id = p_token_id AND step < p_step - 4;
        decided := 'OK';
      END IF;
    END IF;
  ELSIF p_guard IS NULL THEN
    decided := p_outcomes[1];
  ELSE
    RAISE EXCEPTION 'record_verification: unknown guard %', p_guard;
  END IF;

  IF p_token_id IS NOT NULL THEN
    IF decided <> 'OK' THEN
      INSERT INTO verification_failures (token_id, result) VALUES (p_token_id, decided);
      DELETE FROM verification_failures WHERE token_id = p_token_id AND failed_at < now() - p_failure_window;
    END IF;
    SELECT count(*)::integer INTO failures FROM verification_failures WHERE token_id = p_token_id AND failed_at >= now() - p_failure_window;
  END IF;

  pick := array_position(p_outcomes, decided);
  IF pick IS NULL THEN
    RAISE EXCEPTION 'record_verification: no answer was built for outcome %', decided;
  END IF;
  -- recent_failures is Verification's last field (5, varint, tag 0x28), left out when 0 as
  -- protobuf does, so appending it gives the bytes the service's encoder would write.
  answer := decode(p_responses[pick], 'hex') || CASE WHEN failures > 0 THEN '\x28'::bytea || pb_varint(failures) ELSE '\x'::bytea END;
  INSERT INTO outbox (event_id, event, trace_context) VALUES (p_event_ids[pick], decode(p_events[pick], 'hex'), p_trace_context);
  IF p_key IS NOT NULL THEN
    UPDATE idempotency_keys SET response = answer WHERE scope = p_scope AND key = p_key;
  END IF;
  RETURN QUERY SELECT 'done'::text, decided, failures, answer;
END $$;

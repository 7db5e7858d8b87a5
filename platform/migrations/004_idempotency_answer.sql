-- The committed first answer to (scope, key), waiting for a first call still in flight
-- (platform/idempotency.ts storedAnswer). A plain SELECT does not see a concurrent transaction's
-- uncommitted key row, so a retry refused early (settlement's voucher expired meanwhile) would
-- answer with its refusal while the first call goes on to succeed. An INSERT of the same key
-- waits for that transaction to end; the probe is undone in a subtransaction whichever way it
-- went, so this writes nothing.
CREATE OR REPLACE FUNCTION idempotency_answer(p_scope text, p_key text)
RETURNS TABLE (request_hash bytea, response bytea)
LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    INSERT INTO idempotency_keys (scope, key, request_hash) VALUES (p_scope, p_key, '\x'::bytea) ON CONFLICT DO NOTHING;
    RAISE EXCEPTION 'idempotency probe undone' USING ERRCODE = 'WP004';
  EXCEPTION WHEN SQLSTATE 'WP004' THEN
    NULL;
  END;
  RETURN QUERY SELECT k.request_hash, k.response FROM idempotency_keys k WHERE k.scope = p_scope AND k.key = p_key;
END
$$;

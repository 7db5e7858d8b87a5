import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Money } from '../../gen/wristpay/common/v1/common';
import { migrate, type Db } from '../../platform/db';
import { DomainError, FailedPrecondition } from '../../platform/errors';
import { once } from '../../platform/idempotency';

const money = (amountMinor: bigint, currency = 'EUR'): Money => ({ amountMinor, currency });

/**
 * platform/idempotency.ts `once` on whatever database `db` is: the first answer stored and
 * returned again, the work run once, a reused key refused, a failed call storing nothing, and a
 * key that is all quotes and backslashes (it travels as a literal) kept verbatim. Returns what it
 * saw as JSON; the test expects the same on PostgreSQL and on PGlite.
 */
export async function runIdempotencyScenario(db: Db): Promise<Record<string, unknown>> {
  // The platform's migrations (idempotency_keys) and one of the scenario's own, whose PL/pgSQL
  // body (semicolons inside $$ ... $$) must reach the database as one statement.
  const dir = mkdtempSync(join(tmpdir(), 'idempotency-'));
  try {
    writeFileSync(
      join(dir, '001_effects.sql'),
      [
        '-- What each run of the work left: a row per run; a comment with $$ and a semicolon;',
        'CREATE TABLE idem_effects (key text NOT NULL, n integer NOT NULL);',
        'CREATE FUNCTION idem_effects_of(p_key text) RETURNS integer LANGUAGE plpgsql AS $fn$',
        'DECLARE',
        '  found_rows integer;',
        'BEGIN',
        '  SELECT count(*) INTO found_rows FROM idem_effects WHERE key = p_key;',
        '  RETURN found_rows;',
        'END',
        '$fn$;',
        '',
      ].join('\n'),
    );
    await migrate(db, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const seen: Record<string, unknown> = {};
  let runs = 0;
  const call = (key: string, request: Money, fail = false) =>
    once(db, 'Scenario', key, { codec: Money, value: request }, Money, async (q) => {
      runs++;
      await q.query('INSERT INTO idem_effects (key, n) VALUES ($1, $2)', [key, runs]);
      if (fail) throw new FailedPrecondition('refused on purpose');
      return money(request.amountMinor * 2n, request.currency);
    });
  const show = async (fn: () => Promise<Money>) => {
    try {
      const r = await fn();
      return `${r.amountMinor} ${r.currency}`;
    } catch (err) {
      if (err instanceof DomainError) return `${err.name}: ${err.message}`;
      throw err;
    }
  };
  const effects = async (key: string) => Number((await db.query<{ n: number }>('SELECT idem_effects_of($1) AS n', [key])).rows[0]!.n);

  seen.first = await show(() => call('k1', money(21n)));
  seen.retry = await show(() => call('k1', money(21n)));
  seen.runsAfterRetry = runs;
  seen.reused = await show(() => call('k1', money(22n)));
  seen.effectsK1 = await effects('k1');

  seen.failed = await show(() => call('k2', money(5n), true));
  seen.failedStored = (await db.query("SELECT 1 FROM idempotency_keys WHERE scope = 'Scenario' AND key = 'k2'")).rowCount;
  seen.failedEffects = await effects('k2');
  seen.afterFailure = await show(() => call('k2', money(5n)));
  seen.effectsK2 = await effects('k2');

  const nasty = `it's a \\'key\\' ); DROP TABLE idem_effects; --`;
  seen.nasty = await show(() => call(nasty, money(1n, 'USD')));
  seen.nastyRetry = await show(() => call(nasty, money(1n, 'USD')));
  seen.nastyStored = (await db.query<{ key: string }>("SELECT key FROM idempotency_keys WHERE scope = 'Scenario' AND key = $1", [nasty])).rows.map((r) => r.key === nasty);
  seen.effectsNasty = await effects(nasty);

  const concurrent = await Promise.all(Array.from({ length: 8 }, () => show(() => call('k3', money(7n)))));
  seen.concurrent = [...new Set(concurrent)];
  seen.effectsK3 = await effects('k3');
  seen.runs = runs;
  return seen;
}

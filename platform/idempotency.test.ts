import { Client } from 'pg';
import { Money } from '../gen/wristpay/common/v1/common';
import { inChildProcess, onFreshPostgres } from '../test/support/both-databases';
import { runIdempotencyScenario } from '../test/support/idempotency-scenario';
import { migrate, type Db } from './db';
import { IdempotencyKeyReused } from './errors';
import { once, requestHash, storedAnswer } from './idempotency';
import { repoPath } from './paths';

// The PGlite run starts a child process and a WASM database: on a busy machine, well over 30 s.
jest.setTimeout(120_000);

const EXPECTED = {
  first: '42 EUR',
  retry: '42 EUR',
  runsAfterRetry: 1,
  reused: 'IdempotencyKeyReused: idempotency key was already used for a different request',
  effectsK1: 1,
  failed: 'FailedPrecondition: refused on purpose',
  failedStored: 0,
  failedEffects: 0,
  afterFailure: '10 EUR',
  effectsK2: 1,
  nasty: '2 USD',
  nastyRetry: '2 USD',
  nastyStored: [true],
  effectsNasty: 1,
  concurrent: ['14 EUR'],
  effectsK3: 1,
  // k1 once, k2 twice (failed, then again), the nasty key once, k3 once.
  runs: 5,
};

describe('once() on both databases', () => {
  it('on PostgreSQL', async () => {
    expect(await onFreshPostgres(runIdempotencyScenario)).toEqual(EXPECTED);
  });

  it('on embedded PGlite (openDb with no DATABASE_URL), in a child process', async () => {
    expect(await inChildProcess('test/support/idempotency-pglite.ts')).toEqual(EXPECTED);
  });
});

describe('once() round trips on PostgreSQL', () => {
  it('three besides the work: BEGIN with the key, the answer, COMMIT; a retry is BEGIN with the key, one read, COMMIT', async () => {
    await onFreshPostgres(async (db) => {
      await migrate(db, repoPath('platform', 'migrations'));
      const sent: string[] = [];
      const original = Client.prototype.query;
      Client.prototype.query = function (this: Client, ...args: unknown[]) {
        sent.push(String(typeof args[0] === 'string' ? args[0] : (args[0] as { text: string }).text).split(/\s+/).slice(0, 3).join(' '));
        return (original as (...a: unknown[]) => unknown).apply(this, args);
      } as typeof Client.prototype.query;
      try {
        const call = () => once(db, 'Count', 'key-1', { codec: Money, value: { amountMinor: 1n, currency: 'EUR' } }, Money, async (q) => {
          await q.query('SELECT 1');
          return { amountMinor: 2n, currency: 'EUR' };
        });
        await call();
        expect(sent).toEqual(['BEGIN; INSERT INTO', 'SELECT 1', 'UPDATE idempotency_keys SET', 'COMMIT']);
        sent.length = 0;
        expect(await call()).toEqual({ amountMinor: 2n, currency: 'EUR' });
        expect(sent).toEqual(['BEGIN; INSERT INTO', 'SELECT request_hash, response', 'COMMIT']);
      } finally {
        Client.prototype.query = original;
      }
    });
  });
});

describe('storedAnswer (migrations/004_idempotency_answer.sql) on PostgreSQL', () => {
  const money = (minor: bigint) => ({ amountMinor: minor, currency: 'EUR' });
  const hashOf = (minor: bigint) => requestHash({ codec: Money, value: money(minor) });

  /** A first call under (Pay, key) in flight on another connection: its key row written, not committed, until `end`. */
  function firstCallInFlight(db: Db, key: string, answer: bigint) {
    let end!: (commit: boolean) => void;
    const ended = new Promise<boolean>((r) => (end = r));
    let written!: () => void;
    const rowWritten = new Promise<void>((r) => (written = r));
    const done = db
      .tx(async (q) => {
        await q.query('INSERT INTO idempotency_keys (scope, key, request_hash, response) VALUES ($1, $2, $3, $4)', ['Pay', key, hashOf(1n), Money.encode(money(answer)).finish()]);
        written();
        if (!(await ended)) throw new Error('first call failed');
      })
      .catch(() => undefined);
    return { rowWritten, end: async (commit: boolean) => (end(commit), done) };
  }

  it('waits for a first call in flight and returns its answer once committed; nothing if it failed; writes no row of its own', async () => {
    await onFreshPostgres(async (db) => {
      await migrate(db, repoPath('platform', 'migrations'));
      const rowsFor = async (key: string) => (await db.query('SELECT 1 FROM idempotency_keys WHERE key = $1', [key])).rowCount;

      expect(await storedAnswer(db, 'Pay', 'none', hashOf(1n), Money)).toBeUndefined();
      expect(await rowsFor('none')).toBe(0);

      const committed = firstCallInFlight(db, 'k-commit', 7n);
      await committed.rowWritten;
      let settled = false;
      const answer = storedAnswer(db, 'Pay', 'k-commit', hashOf(1n), Money).finally(() => (settled = true));
      // Still waiting while the first call's transaction is open (a plain read would have said "none" at once).
      await new Promise((r) => setTimeout(r, 300));
      expect(settled).toBe(false);
      await committed.end(true);
      expect(await answer).toEqual(money(7n));

      const failed = firstCallInFlight(db, 'k-fail', 8n);
      await failed.rowWritten;
      const none = storedAnswer(db, 'Pay', 'k-fail', hashOf(1n), Money);
      await failed.end(false);
      expect(await none).toBeUndefined();
      expect(await rowsFor('k-fail')).toBe(0);

      await expect(storedAnswer(db, 'Pay', 'k-commit', hashOf(2n), Money)).rejects.toBeInstanceOf(IdempotencyKeyReused);
    });
  });
});

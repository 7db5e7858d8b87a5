import { Client } from 'pg';
import { Money } from '../gen/wristpay/common/v1/common';
import { inChildProcess, onFreshPostgres } from '../test/support/both-databases';
import { runIdempotencyScenario } from '../test/support/idempotency-scenario';
import { migrate } from './db';
import { once } from './idempotency';
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

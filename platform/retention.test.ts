import { onFreshPostgres, inChildProcess } from '../test/support/both-databases';
import { RETENTION_EXPECTED, runRetentionScenario } from '../test/support/retention-scenario';
import { testLogger } from '../test/support/services';
import { RetentionJob } from './retention';

jest.setTimeout(120_000);

describe('retention on both databases', () => {
  it('on PostgreSQL', async () => {
    expect(await onFreshPostgres(runRetentionScenario)).toEqual(RETENTION_EXPECTED);
  });

  it('on embedded PGlite (openDb with no DATABASE_URL), in a child process', async () => {
    expect(await inChildProcess('test/support/retention-pglite.ts')).toEqual(RETENTION_EXPECTED);
  });
});

describe('RetentionJob rules', () => {
  const db = { query: async () => ({ rows: [], rowCount: 0 }) };
  const rule = { table: 'outbox', key: ['seq'], timeColumn: 'published_at', retainDays: 7 };

  it('refuses names that are not plain identifiers, since they are spliced into SQL', () => {
    expect(() => new RetentionJob(db, [{ ...rule, table: 'outbox; DROP TABLE x' }], testLogger('t'), { intervalMs: 1000 })).toThrow(/not a plain lower-case SQL identifier/);
    expect(() => new RetentionJob(db, [{ ...rule, key: ['Seq'] }], testLogger('t'), { intervalMs: 1000 })).toThrow(/identifier/);
  });

  it('refuses a table listed twice, a rule without a key, and less than a day', () => {
    expect(() => new RetentionJob(db, [rule, rule], testLogger('t'), { intervalMs: 1000 })).toThrow(/listed twice/);
    expect(() => new RetentionJob(db, [{ ...rule, key: [] }], testLogger('t'), { intervalMs: 1000 })).toThrow(/primary key/);
    expect(() => new RetentionJob(db, [{ ...rule, retainDays: 0 }], testLogger('t'), { intervalMs: 1000 })).toThrow(/at least 1/);
  });

  it('sends one bounded DELETE per batch, by key, with the cutoff computed by the database', async () => {
    const sent: Array<{ sql: string; params: unknown[] | undefined }> = [];
    const counts = [3, 3, 1];
    const spy = {
      query: async <R>(sql: string, params?: unknown[]) => {
        sent.push({ sql, params });
        return { rows: [] as R[], rowCount: counts.shift() ?? 0 };
      },
    };
    const run = await new RetentionJob(spy, [{ ...rule, onlyIf: 'published_at IS NOT NULL' }], testLogger('t'), { intervalMs: 1000, batchSize: 3 }).runOnce();
    expect(run.deleted).toEqual({ outbox: 7 });
    expect(sent).toHaveLength(3);
    expect(sent[0]!.params).toEqual([7, 3]);
    expect(sent[0]!.sql).toBe(
      'DELETE FROM "outbox" WHERE ("seq") IN (SELECT "seq" FROM "outbox" WHERE "published_at" < now() - make_interval(days => $1::int) AND (published_at IS NOT NULL) LIMIT $2::int FOR UPDATE SKIP LOCKED) AND "published_at" < now() - make_interval(days => $1::int) AND (published_at IS NOT NULL)',
    );
  });
});

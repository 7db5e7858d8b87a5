import Redis from 'ioredis';
import { Client } from 'pg';
import { TEST_REDIS_URL } from './servers';

/**
 * Tables a background job writes on its own, whatever the callers do: comparing them would
 * blame a request for the job's work.
 * - gateway_instances: each gateway replica upserts its heartbeat row every few seconds
 *   (services/gateway/src/instances.ts).
 */
const BACKGROUND_TABLES = new Set(['gateway_instances']);
/**
 * Tables whose rows only requests add, but which a background job updates in place: their row
 * count is compared, their contents are not.
 * - outbox: the relay marks each row published (published_at) after the request committed it.
 */
const COUNT_ONLY_TABLES = new Set(['outbox']);

/** What was written where: `database.table` → rows (and a digest of their contents), Redis keys, events seen. */
export type WriteSnapshot = Record<string, string>;

/**
 * Takes snapshots of everything a request could write in the mesh — every table of every
 * service database, the Redis keys under the mesh's prefix, the events seen on its streams —
 * so a test can assert that a refused request wrote nothing.
 */
export async function meshWrites(databaseUrls: Record<string, string>, redisPrefix: string, eventsSeen: () => number) {
  const dbs = await Promise.all(
    Object.entries(databaseUrls).map(async ([service, url]) => {
      const client = new Client({ connectionString: url });
      await client.connect();
      const { rows } = await client.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename");
      const tables = rows.map((r) => r.tablename).filter((t) => !BACKGROUND_TABLES.has(t));
      // One round trip per database: each table's row count and a digest of its rows.
      const sql = tables
        .map((t) => {
          const digest = COUNT_ONLY_TABLES.has(t) ? "''" : `md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), ''))`;
          return `SELECT '${t}' AS t, count(*)::text || ' ' || ${digest} AS v FROM "${t}" x`;
        })
        .join(' UNION ALL ');
      return { service, client, sql };
    }),
  );
  const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();

  const redisKeys = async (): Promise<string[]> => {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${redisPrefix}:*`, 'COUNT', 1000);
      keys.push(...batch);
      cursor = next;
    } while (cursor !== '0');
    return keys.sort();
  };

  return {
    async snapshot(): Promise<WriteSnapshot> {
      const out: WriteSnapshot = {};
      const [tables, keys] = await Promise.all([Promise.all(dbs.map(async (db) => ({ db, rows: (await db.client.query<{ t: string; v: string }>(db.sql)).rows }))), redisKeys()]);
      for (const { db, rows } of tables) for (const r of rows) out[`${db.service}.${r.t}`] = r.v;
      out['redis keys'] = `${keys.length} ${keys.join(' ')}`;
      out['events published'] = String(eventsSeen());
      return out;
    },
    /** What differs between two snapshots, as `what: before → after` lines. */
    changes(before: WriteSnapshot, after: WriteSnapshot): string[] {
      return [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((k) => before[k] !== after[k]).map((k) => `${k}: ${before[k]} → ${after[k]}`);
    },
    async close(): Promise<void> {
      await Promise.all(dbs.map((d) => d.client.end()));
      redis.disconnect();
    },
  };
}

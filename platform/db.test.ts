import { openDb } from './db';
import { freshDatabase, requireServers, TEST_REDIS_URL } from '../test/support/servers';
import { tcpProxy } from '../test/support/tcp-proxy';
import { connectRedis, isRedisUnavailable } from './redis';
import { eventually } from '../test/support/eventually';
import Redis from 'ioredis';
import { status } from '@grpc/grpc-js';
import { toServiceError } from './grpc/server';
import { createLogger } from './log';

describe('the PostgreSQL pool when the connection breaks', () => {
  beforeAll(() => requireServers('PostgreSQL'));

  it('fails the transaction whose connection broke (no crash), then works again through a fresh connection', async () => {
    const database = await freshDatabase();
    const proxy = await tcpProxy(database.url);
    const url = new URL(database.url);
    url.host = `127.0.0.1:${proxy.port}`;
    const db = await openDb({ databaseUrl: url.toString(), poolSize: 2 });
    const crashes: unknown[] = [];
    const onCrash = (err: unknown) => crashes.push(err);
    process.on('uncaughtException', onCrash);
    try {
      await db.query('CREATE TABLE t (n int)');
      // The transaction is mid-way (a statement running) when the connection is cut under it.
      const running = db.tx(async (q) => {
        await q.query('INSERT INTO t VALUES (1)');
        await q.query('SELECT pg_sleep(2)');
      });
      await new Promise((r) => setTimeout(r, 200));
      await proxy.cut();
      await expect(running).rejects.toBeDefined();
      await proxy.restore();
      await db.tx((q) => q.query('INSERT INTO t VALUES (2)'));
      // The cut transaction left nothing; the next one committed.
      expect((await db.query<{ n: number }>('SELECT n FROM t ORDER BY n')).rows).toEqual([{ n: 2 }]);
      expect(crashes).toEqual([]);
    } finally {
      process.off('uncaughtException', onCrash);
      await db.close();
      await proxy.close();
      await database.drop();
    }
  });
});

describe('the PostgreSQL pool behind a partition (connects never answered)', () => {
  beforeAll(() => requireServers('PostgreSQL'));

  it('gives up on a connect within its timeout, as an outage the gRPC edge answers UNAVAILABLE, and recovers', async () => {
    const database = await freshDatabase();
    const proxy = await tcpProxy(database.url);
    const url = new URL(database.url);
    url.host = `127.0.0.1:${proxy.port}`;
    const db = await openDb({ databaseUrl: url.toString(), poolSize: 2 });
    try {
      await db.query('SELECT 1');
      await proxy.blackhole();
      const started = Date.now();
      const err = await db.tx((q) => q.query('SELECT 1')).catch((e: unknown) => e as Error);
      const waited = Date.now() - started;
      expect(err).toBeInstanceOf(Error);
      expect(toServiceError(err, createLogger('t', 'silent'), '/m').code).toBe(status.UNAVAILABLE);
      // connectionTimeoutMillis is 3 s: not the kernel's TCP timeout (minutes).
      expect(waited).toBeLessThan(6_000);
      await proxy.restore();
      expect((await db.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await db.close();
      await proxy.close();
      await database.drop();
    }
  }, 30_000);
});

describe('isRedisUnavailable', () => {
  it('recognises what ioredis throws while Redis is down (no offline queue), and nothing else', async () => {
    const redis = new Redis('redis://127.0.0.1:1', { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true, retryStrategy: () => null });
    redis.on('error', () => undefined);
    const err = await redis.get('k').catch((e: unknown) => e);
    redis.disconnect();
    expect(isRedisUnavailable(err)).toBe(true);
    expect(isRedisUnavailable(new Error('ERR wrong number of arguments'))).toBe(false);
  });

  it('a Redis that answers nothing (partition) fails a command fast, as unavailable, never hanging to the deadline', async () => {
    await requireServers('Redis');
    const proxy = await tcpProxy(TEST_REDIS_URL);
    const redis = await connectRedis(`redis://127.0.0.1:${proxy.port}`, createLogger('t', 'silent'));
    try {
      await proxy.blackhole();
      // The connection was dropped: wait until the client has reconnected into the black hole.
      await eventually(() => redis.status === 'ready' || redis.status === 'connecting' || redis.status === 'connect', 5_000, 'a reconnect attempt');
      const started = Date.now();
      const err = await redis.get('k').catch((e: unknown) => e);
      expect(isRedisUnavailable(err)).toBe(true);
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      redis.disconnect();
      await proxy.close();
    }
  }, 20_000);
});

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import Redis from 'ioredis';
import { startRedisSentinel, type RedisSentinel } from '../scripts/engines/redis-sentinel';
import { toServiceError } from './grpc/server';
import { createLogger } from './log';
import { connectRedis, isRedisUnavailable, redisTarget } from './redis';

/**
 * ioredis through Sentinel against a real primary, replica and three Sentinels of this file's
 * own (ports 26300-26312): writes reach the primary, what a failover makes Redis answer is
 * UNAVAILABLE at the gRPC edge (never INTERNAL), and the client follows the promotion.
 */
const log = createLogger('redis-sentinel-test', 'silent');
const PASSWORD = `pw-${process.pid}`;

describe('Redis through Sentinel', () => {
  let cluster: RedisSentinel;

  beforeAll(async () => {
    cluster = await startRedisSentinel({ basePort: 26300, dir: mkdtempSync(join(tmpdir(), 'wp-redis-sentinel-')), password: PASSWORD });
  }, 40_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  const target = () =>
    redisTarget({ REDIS_SENTINELS: cluster.sentinels.split(',').map((a) => ({ host: a.split(':')[0]!, port: Number(a.split(':')[1]) })), REDIS_MASTER_NAME: cluster.masterName, REDIS_PASSWORD: PASSWORD });

  it('a write on a replica, plain or in a script, is READONLY: UNAVAILABLE at the gRPC edge, never INTERNAL', async () => {
    const primary = await cluster.primary();
    const replicaPort = cluster.dataPorts.find((_, i) => i !== primary)!;
    const replica = new Redis({ host: '127.0.0.1', port: replicaPort, password: PASSWORD, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    replica.on('error', () => undefined);
    try {
      await replica.connect();
      const plain = await replica.set('k', 'v').catch((e: unknown) => e);
      const script = await replica.eval("return redis.call('SET', KEYS[1], 'v')", 1, 'k').catch((e: unknown) => e);
      for (const err of [plain, script]) {
        expect((err as Error).message).toMatch(/READONLY/);
        expect(isRedisUnavailable(err)).toBe(true);
        expect(toServiceError(err, log, '/test/Method').code).toBe(status.UNAVAILABLE);
      }
      // A reply that is not about the node's role stays what it is.
      const wrong = await replica.call('GET').catch((e: unknown) => e);
      expect(isRedisUnavailable(wrong)).toBe(false);
    } finally {
      replica.disconnect();
    }
  });

  it('follows a failover: while the primary is gone every failure is UNAVAILABLE, and writes resume on the promoted replica', async () => {
    const redis = await connectRedis(target(), log);
    try {
      await redis.set('before', '1');
      await new Promise((r) => setTimeout(r, 200)); // replicated (asynchronously) before the kill
      const failures: unknown[] = [];
      let stop = false;
      let firstOkAfterPromotion: number | undefined;
      let promotedAt = Infinity;
      // One write every 20 ms, as a service would under load, through the kill and the promotion.
      const load = (async () => {
        for (let i = 0; !stop; i++) {
          try {
            await redis.set(`w${i}`, String(i));
            if (Date.now() >= promotedAt && firstOkAfterPromotion === undefined) firstOkAfterPromotion = Date.now();
          } catch (err) {
            failures.push(err);
          }
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      await new Promise((r) => setTimeout(r, 300));
      const failover = await cluster.killPrimary();
      promotedAt = failover.promotedAt;
      const deadline = Date.now() + 10_000;
      while (firstOkAfterPromotion === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      stop = true;
      await load;

      console.log(
        `Redis failover: primary r${failover.killed} SIGKILLed, r${failover.promoted} promoted after ${failover.promotedAt - failover.downAt} ms; ` +
          `first write through Sentinel ${firstOkAfterPromotion! - failover.promotedAt} ms after the promotion; ${failures.length} writes failed meanwhile (${[...new Set(failures.map((e) => (e as Error).message.slice(0, 40)))].join(' | ')})`,
      );
      expect(failover.promoted).not.toBe(failover.killed);
      expect(firstOkAfterPromotion).toBeDefined();
      expect(firstOkAfterPromotion! - failover.promotedAt).toBeLessThan(3_000);
      expect(failures.length).toBeGreaterThan(0);
      expect(failures.filter((e) => !isRedisUnavailable(e)).map((e) => (e as Error).message)).toEqual([]);
      expect(failures.map((e) => toServiceError(e, log, '/test/Method').code).filter((c) => c !== status.UNAVAILABLE)).toEqual([]);
      // The client talks to the promoted node, which kept what was replicated before the kill.
      expect(await redis.get('before')).toBe('1');
      await cluster.restartNode(failover.killed);
      expect(await cluster.waitForAgreement()).toBe(failover.promoted);
    } finally {
      redis.disconnect();
    }
  }, 40_000);
});

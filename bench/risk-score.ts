/**
 * Score throughput and latency over gRPC, next to a plain pipelined Redis round trip on the same
 * machine (the floor under any Redis-backed scorer). Starts risk in this process on port 0 with a
 * throwaway key prefix and subject prefix, and removes both afterwards.
 *
 *   node dist/bench/risk-score.js [--calls 20000] [--concurrency 32] [--accounts 2000]
 */
import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { Channel } from '../gen/wristpay/common/v1/common';
import { RiskServiceClient, type ScoreRequest } from '../gen/wristpay/risk/v1/risk';
import { DEFAULT_REDIS_URL } from '../platform/config';
import { createLogger } from '../platform/log';
import { startRisk } from '../services/risk/src/app';
import { readConfig } from '../services/risk/src/config';
import { benchPrefix, removePrefix, runBench } from './harness';
import { meshPki } from '../test/support/mesh-pki';
import { testClient } from '../test/support/services';
import { arg, counting, run, type LoadResult } from './load';

export interface ScoreLevel {
  concurrency: number;
  score: LoadResult;
  redisGet: LoadResult;
}

/**
 * risk in this process (mTLS, a throwaway prefix), warmed up with 500 calls, then for each of
 * `levels`: `calls` Score calls over `accounts` accounts at `concurrency` in flight, and as many
 * Redis GETs from a client of the same process. Removes the prefix's keys and streams afterwards.
 */
export async function measureScore(options: { levels: Array<{ calls: number; concurrency: number }>; accounts: number; errors?: Map<string, number> }): Promise<ScoreLevel[]> {
  const { levels, accounts } = options;
  const prefix = benchPrefix();
  const config = readConfig({ ...process.env, ...meshPki().env('risk'), RISK_PORT: '0', REDIS_KEY_PREFIX: prefix, NATS_SUBJECT_PREFIX: prefix, RISK_RULES_WATCH: 'false', RISK_CONSUMERS: 'false', LOG_LEVEL: 'warn' });
  const service = await startRisk(config, createLogger('risk', 'warn'));
  const client = testClient(RiskServiceClient, service.port);
  const redis = new Redis(config.REDIS_URL ?? DEFAULT_REDIS_URL);
  const request = (i: number): ScoreRequest => ({
    paymentId: randomUUID(),
    accountId: `${prefix}-a${i % accounts}`,
    deviceId: `${prefix}-d${i % accounts}`,
    tokenId: `${prefix}-t${i % accounts}`,
    merchantId: `m${i % 97}`,
    amount: { amountMinor: BigInt(500 + (i % 3000)), currency: 'EUR' },
    location: { latitude: 48.85 + (i % 10) / 1000, longitude: 2.35 },
    channel: Channel.CHANNEL_BAND_TAP,
    sessionLive: true,
    sessionAgeSeconds: 600n,
    deviceAgeSeconds: 8_000_000n,
    recentCryptogramFailures: 0,
    occurredAt: new Date(),
  });
  try {
    await run(500, Math.max(...levels.map((l) => l.concurrency)), (i) => client.score(request(i))); // warm-up: connections, script cache, JIT
    await redis.set(`${prefix}:bench`, 'x');
    const out: ScoreLevel[] = [];
    for (const { calls, concurrency } of levels) {
      const one = (i: number) => client.score(request(i));
      // With `errors`, a failed call is counted there rather than ending the measurement.
      const score = await run(calls, concurrency, options.errors ? counting(one, options.errors) : one);
      const redisGet = await run(calls, concurrency, () => redis.get(`${prefix}:bench`));
      out.push({ concurrency, score, redisGet });
    }
    return out;
  } finally {
    client.close();
    await service.stop();
    await removePrefix(prefix, redis, config.NATS_URL);
  }
}

async function main(): Promise<void> {
  const calls = arg('calls', 20_000);
  const concurrency = arg('concurrency', 32);
  const accounts = arg('accounts', 2_000);
  const [{ score, redisGet }] = (await measureScore({ levels: [{ calls, concurrency }], accounts })) as [ScoreLevel];
  const line = (name: string, r: LoadResult) =>
    `${name.padEnd(36)} ${Math.round(r.perSecond).toString().padStart(7)}/s   p50 ${r.p50.toFixed(2).padStart(6)} ms   p99 ${r.p99.toFixed(2).padStart(6)} ms   max ${r.max.toFixed(1).padStart(6)} ms`;
  process.stdout.write(
    [
      `${calls} calls, ${concurrency} in flight, ${accounts} accounts/bands, client and server in one process`,
      line('risk.Score over gRPC (3 Lua scripts, then settle)', score),
      line('Redis GET, pipelined (same client)', redisGet),
    ].join('\n') + '\n',
  );
}

if (require.main === module) runBench(main);

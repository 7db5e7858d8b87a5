/**
 * GetSession throughput and latency over gRPC, next to a plain Redis GET from the same process on
 * the same machine (the floor under any Redis-backed session check). Starts the registry in this
 * process on port 0 against a fresh PostgreSQL database, with a throwaway Redis key prefix and
 * NATS subject prefix, onboards bands with live sessions, and removes all of it afterwards.
 * GetSession is one PostgreSQL primary-key read (is the band ACTIVE?) and one Redis HGETALL.
 *
 *   node dist/bench/registry-session.js [--calls 20000] [--concurrency 16] [--bands 200]
 */
import { cpus } from 'node:os';
import Redis from 'ioredis';
import { Client, Pool } from 'pg';
import { DeviceRegistryServiceClient } from '../gen/wristpay/device_registry/v1/device_registry';
import { DEFAULT_REDIS_URL } from '../platform/config';
import { createLogger } from '../platform/log';
import { taggedKey } from '../platform/redis';
import { startDeviceRegistry } from '../services/device-registry/src/app';
import { readConfig } from '../services/device-registry/src/config';
import { pairBand, registerBand, unlock } from '../sim/wallet';
import { ADMIN_URL, benchPrefix, removePrefix, runBench } from './harness';
import { meshPki } from '../test/support/mesh-pki';
import { testClient } from '../test/support/services';
import { arg, formatResult, run, type LoadResult } from './load';

async function main(): Promise<void> {
  const calls = arg('calls', 20_000);
  const concurrency = arg('concurrency', 16);
  const bands = arg('bands', 200);
  const prefix = benchPrefix();
  const admin = new Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${prefix}_registry`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${prefix}_registry`;
  const config = readConfig({ ...process.env, DEVICE_REGISTRY_PORT: '0', DATABASE_URL: url.toString(), ...meshPki().env('device-registry'), REDIS_KEY_PREFIX: prefix, NATS_SUBJECT_PREFIX: prefix, LOG_LEVEL: 'warn' });
  const service = await startDeviceRegistry(config, createLogger('device-registry', 'warn'));
  const client = testClient(DeviceRegistryServiceClient, service.port);
  const redis = new Redis(config.REDIS_URL ?? DEFAULT_REDIS_URL);
  try {
    const deviceIds: string[] = [];
    await run(bands, 8, async (i) => {
      const accountId = `${prefix}-acct${i}`;
      const band = await registerBand(client, accountId);
      await pairBand(client, band, accountId);
      await unlock({ registry: client }, band);
      deviceIds.push(band.deviceId!);
    });
    let notLive = 0;
    const getSession = async (i: number) => {
      const res = await client.getSession({ deviceId: deviceIds[i % deviceIds.length]! });
      if (!res.session?.live) notLive++;
    };
    await run(1_000, concurrency, getSession); // warm-up: connections, pool, JIT
    const grpc = await run(calls, concurrency, getSession);
    const grpcOne = await run(Math.min(calls, 5_000), 1, getSession);
    await redis.set(`${prefix}:bench`, 'x');
    await run(1_000, concurrency, () => redis.get(`${prefix}:bench`));
    const get = await run(calls, concurrency, () => redis.get(`${prefix}:bench`));
    const getOne = await run(Math.min(calls, 5_000), 1, () => redis.get(`${prefix}:bench`));
    // Its two parts alone, from this process: the PostgreSQL read and the Redis HGETALL GetSession makes.
    const pool = new Pool({ connectionString: url.toString(), max: 10 });
    const pgRead = await run(calls, concurrency, (i) => pool.query('SELECT * FROM devices WHERE device_id = $1', [deviceIds[i % deviceIds.length]!]));
    await pool.end();
    const hgetall = await run(calls, concurrency, (i) => redis.hgetall(taggedKey(prefix, 'session', deviceIds[i % deviceIds.length]!)));
    const ratio = (a: LoadResult, b: LoadResult) => `${((100 * a.perSecond) / b.perSecond).toFixed(1)}% of the rate, p99 ×${(a.p99 / b.p99).toFixed(1)}`;
    process.stdout.write(
      [
        `${calls} calls, ${bands} bands with live sessions, client and server in one process (${cpus().length} cores)`,
        formatResult(`GetSession over gRPC, ${concurrency} in flight`, grpc),
        formatResult(`Redis GET, ${concurrency} in flight`, get),
        formatResult('GetSession over gRPC, 1 in flight', grpcOne),
        formatResult('Redis GET, 1 in flight', getOne),
        formatResult(`  its PostgreSQL row read, ${concurrency} in flight`, pgRead),
        formatResult(`  its Redis HGETALL, ${concurrency} in flight`, hgetall),
        `ratio GetSession/GET: ${ratio(grpc, get)} at ${concurrency} in flight; ${ratio(grpcOne, getOne)} at 1 in flight`,
        `answers not live: ${notLive}`,
      ].join('\n') + '\n',
    );
    if (notLive) process.exitCode = 1;
  } finally {
    client.close();
    await service.stop();
    await removePrefix(prefix, redis, config.NATS_URL);
    await admin.query(`DROP DATABASE IF EXISTS ${prefix}_registry WITH (FORCE)`);
    await admin.end();
  }
}

if (require.main === module) runBench(main);

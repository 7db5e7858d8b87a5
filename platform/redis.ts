import Redis, { type RedisOptions } from 'ioredis';
import { DEFAULT_REDIS_URL } from './config';
import type { Logger } from './log';
import { METRIC, observeGauges, recordRedisError } from './telemetry/metrics';

/** Where Redis is, from the service's config (platform/config.ts redisEnv). */
export interface RedisConfig {
  REDIS_URL?: string | undefined;
  REDIS_SENTINELS?: Array<{ host: string; port: number }> | undefined;
  REDIS_MASTER_NAME?: string | undefined;
  REDIS_PASSWORD?: string | undefined;
  REDIS_SENTINEL_PASSWORD?: string | undefined;
}

/** One node by URL, or the primary Sentinel names (config validated by checkRedisEnv). */
export type RedisTarget =
  | { kind: 'url'; url: string }
  | { kind: 'sentinel'; sentinels: Array<{ host: string; port: number }>; name: string; password?: string | undefined; sentinelPassword?: string | undefined };

/** The Redis a service's config points at; REDIS_URL's default when neither form is set. */
export function redisTarget(config: RedisConfig): RedisTarget {
  if (config.REDIS_SENTINELS?.length) {
    return { kind: 'sentinel', sentinels: config.REDIS_SENTINELS, name: config.REDIS_MASTER_NAME!, password: config.REDIS_PASSWORD, sentinelPassword: config.REDIS_SENTINEL_PASSWORD };
  }
  return { kind: 'url', url: config.REDIS_URL ?? DEFAULT_REDIS_URL };
}

/** Which variables name this Redis, for a start-up failure's message (never the values). */
export function redisVariable(config: RedisConfig): string {
  return config.REDIS_SENTINELS?.length ? 'REDIS_SENTINELS/REDIS_MASTER_NAME' : 'REDIS_URL';
}

/**
 * What a primary that lost its role, or a replica, answers to a write: after a failover a client
 * still connected to the old primary (now demoted) gets it until it reconnects through Sentinel.
 * A script that writes gets it wrapped ("ERR Error running script ... -READONLY ...").
 */
const FAILOVER_REPLY = /\b(READONLY|MASTERDOWN|LOADING|TRYAGAIN)\b/;

/**
 * Opens Redis. Commands fail fast while it is down (no offline queue) so callers can fail
 * closed or fall back instead of hanging; the client keeps reconnecting in the background.
 * Through Sentinel the client asks the Sentinels for the primary on every (re)connect, checks
 * the node it reaches is the primary, and follows a failover: a lost connection (the primary
 * died) or a READONLY reply (the node it talks to was demoted) makes it reconnect through the
 * Sentinels; the command that got it fails (UNAVAILABLE at the edge: the caller retries).
 * (ioredis's failoverDetector, which reconnects on Sentinel's +switch-master, is not used: with
 * it a client once stayed disconnected after a failover here, and the two paths above suffice.)
 */
export function openRedis(target: RedisTarget | string, log: Logger): Redis {
  const t: RedisTarget = typeof target === 'string' ? { kind: 'url', url: target } : target;
  // disconnectTimeout: ioredis's disconnect() arms a timer to destroy a socket that does not close,
  // cleared on that socket's 'close'; a socket that already failed (Redis down) never closes again,
  // so the timer alone held a stopping process (and jest's workers) open for its 2 s default.
  // commandTimeout: a Redis behind a partition (or frozen) answers nothing and refuses nothing;
  // a command fails after 1 s (UNAVAILABLE at the edge) instead of holding the call to its
  // deadline. No WristPay command blocks on purpose (no BLPOP/XREAD BLOCK).
  const common: RedisOptions = { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true, connectTimeout: 2_000, disconnectTimeout: 200, commandTimeout: 1_000 };
  const redis =
    t.kind === 'url'
      ? new Redis(t.url, {
          ...common,
          // The default waits up to 2 s between reconnect attempts once an outage has lasted a few
          // seconds, so payments stayed stepped up for seconds after Redis was back (chaos: 7 s).
          retryStrategy: (times) => Math.min(times * 50, 500),
        })
      : new Redis({
          ...common,
          sentinels: t.sentinels,
          name: t.name,
          role: 'master',
          password: t.password,
          sentinelPassword: t.sentinelPassword,
          // The default backs off to 2 s between attempts; during a failover the new primary is
          // usually named within a few seconds, and every attempt asks the Sentinels afresh.
          retryStrategy: (times) => Math.min(times * 100, 1_000),
          sentinelRetryStrategy: (times) => Math.min(times * 100, 1_000),
          reconnectOnError: (err) => (FAILOVER_REPLY.test(err.message) ? 1 : false),
        });
  redis.on('error', (err) => {
    recordRedisError();
    log.warn({ err: err.message }, 'redis error');
  });
  // Whether the client is connected, and the commands sent and not yet answered (a slow or
  // stalled Redis shows here first). Observed until the client ends for good.
  const unobserve = observeGauges(
    [
      { name: METRIC.redisClients, description: 'Redis clients by state (ready, not_ready)', integer: true },
      { name: METRIC.redisPendingCommands, description: 'Redis commands sent and not yet answered', integer: true },
    ],
    (record) => {
      record(METRIC.redisClients, 1, { state: redis.status === 'ready' ? 'ready' : 'not_ready' });
      record(METRIC.redisPendingCommands, (redis as unknown as { commandQueue?: { length: number } }).commandQueue?.length ?? 0);
    },
  );
  redis.once('end', unobserve);
  return redis;
}

/**
 * True for what ioredis throws while Redis is down, reconnecting or failing over (no offline
 * queue: commands fail at once), and for the replies of a node that is not (or no longer) the
 * primary: the caller may retry, so it is UNAVAILABLE at the gRPC edge, never INTERNAL.
 * ioredis gives the client-side ones no error code, only a class name or a fixed message.
 */
export function isRedisUnavailable(err: unknown): boolean {
  const e = err as { name?: unknown; message?: unknown };
  if (e?.name === 'MaxRetriesPerRequestError') return true;
  if (typeof e?.message !== 'string') return false;
  if (e.message.startsWith("Stream isn't writeable") || e.message === 'Connection is closed.' || e.message === 'Command timed out') return true;
  // Server replies: ioredis's ReplyError carries the reply text as its message.
  return e.name === 'ReplyError' && FAILOVER_REPLY.test(e.message);
}

/** Connects and proves the server answers; on failure the client is closed (the caller retries with a new one). */
export async function connectRedis(target: RedisTarget | string, log: Logger): Promise<Redis> {
  const redis = openRedis(target, log);
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  return redis;
}

/**
 * A Redis key whose `{tag}` part is the hash tag: every key of one device, account or token
 * lands in the same Redis Cluster slot, so multi-key scripts stay legal there.
 */
export function taggedKey(prefix: string, kind: string, tag: string, ...rest: string[]): string {
  // A brace inside the tag would move the hash-tag boundary and split one owner across slots.
  if (/[{}]/.test(tag)) throw new Error(`hash tag must not contain braces: ${JSON.stringify(tag)}`);
  return [prefix, kind, `{${tag}}`, ...rest].join(':');
}

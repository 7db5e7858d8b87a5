import Redis from 'ioredis';
import type { Logger } from './log';
import { METRIC, observeGauges, recordRedisError } from './telemetry/metrics';

/**
 * Opens Redis. Commands fail fast while it is down (no offline queue) so callers can fail
 * closed or fall back instead of hanging; the client keeps reconnecting in the background.
 */
export function openRedis(url: string, log: Logger): Redis {
  // disconnectTimeout: ioredis's disconnect() arms a timer to destroy a socket that does not close,
  // cleared on that socket's 'close'; a socket that already failed (Redis down) never closes again,
  // so the timer alone held a stopping process (and jest's workers) open for its 2 s default.
  const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true, connectTimeout: 2_000, disconnectTimeout: 200 });
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
 * True for what ioredis throws while Redis is down or reconnecting (no offline queue: commands
 * fail at once): the caller may retry, so it is UNAVAILABLE at the gRPC edge, never INTERNAL.
 * ioredis gives these no error code, only a class name or a fixed message.
 */
export function isRedisUnavailable(err: unknown): boolean {
  const e = err as { name?: unknown; message?: unknown };
  if (e?.name === 'MaxRetriesPerRequestError') return true;
  return typeof e?.message === 'string' && (e.message.startsWith("Stream isn't writeable") || e.message === 'Connection is closed.');
}

/** Connects and proves the server answers, so a wrong REDIS_URL stops the service at start. */
export async function connectRedis(url: string, log: Logger): Promise<Redis> {
  const redis = openRedis(url, log);
  await redis.connect();
  await redis.ping();
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

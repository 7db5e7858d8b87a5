import Redis from 'ioredis';
import type { Logger } from './log';

/**
 * Opens Redis. Commands fail fast while it is down (no offline queue) so callers can fail
 * closed or fall back instead of hanging; the client keeps reconnecting in the background.
 */
export function openRedis(url: string, log: Logger): Redis {
  // disconnectTimeout: ioredis's disconnect() arms a timer to destroy a socket that does not close,
  // cleared on that socket's 'close'; a socket that already failed (Redis down) never closes again,
  // so the timer alone held a stopping process (and jest's workers) open for its 2 s default.
  // commandTimeout: a Redis behind a partition (or frozen) answers nothing and refuses nothing;
  // a command fails after 1 s (UNAVAILABLE at the edge) instead of holding the call to its
  // deadline. No WristPay command blocks on purpose (no BLPOP/XREAD BLOCK).
  const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true, connectTimeout: 2_000, disconnectTimeout: 200, commandTimeout: 1_000 });
  redis.on('error', (err) => log.warn({ err: err.message }, 'redis error'));
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
  return typeof e?.message === 'string' && (e.message.startsWith("Stream isn't writeable") || e.message === 'Connection is closed.' || e.message === 'Command timed out');
}

/** Connects and proves the server answers; on failure the client is closed (the caller retries with a new one). */
export async function connectRedis(url: string, log: Logger): Promise<Redis> {
  const redis = openRedis(url, log);
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

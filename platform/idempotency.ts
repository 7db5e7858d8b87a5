import { createHash } from 'node:crypto';
import type { Db, Queryable } from './db';
import { IdempotencyKeyReused } from './errors';
import { requireIdempotencyKey } from './validate';

export interface Codec<T> {
  encode(value: T): { finish(): Uint8Array };
  decode(bytes: Uint8Array): T;
}

/**
 * Runs a mutating call at most once per (scope, key). The key row is inserted in the same
 * transaction as the work, so a concurrent retry waits on it and then gets the stored answer;
 * the same key with a different request is refused; a failed call stores nothing, so a retry
 * after an error runs again.
 */
export async function once<Req, Res>(
  db: Db,
  scope: string,
  key: string,
  request: { codec: Codec<Req>; value: Req },
  response: Codec<Res>,
  work: (q: Queryable) => Promise<Res>,
): Promise<Res> {
  requireIdempotencyKey(key);
  const hash = createHash('sha256').update(request.codec.encode(request.value).finish()).digest();
  return db.tx(async (q) => {
    // Twice at most: the row that made the insert conflict may be pruned by retention
    // (platform/retention.ts) before the SELECT sees it; the second insert then succeeds.
    for (let attempt = 0; attempt < 2; attempt++) {
      const inserted = await q.query('INSERT INTO idempotency_keys (scope, key, request_hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [scope, key, hash]);
      if (inserted.rowCount === 1) break;
      const { rows } = await q.query<{ request_hash: Uint8Array; response: Uint8Array | null }>(
        'SELECT request_hash, response FROM idempotency_keys WHERE scope = $1 AND key = $2 FOR UPDATE',
        [scope, key],
      );
      const first = rows[0];
      if (!first) continue;
      if (!Buffer.from(first.request_hash).equals(hash)) throw new IdempotencyKeyReused();
      if (first.response) return response.decode(first.response);
      break;
    }
    const result = await work(q);
    await q.query('UPDATE idempotency_keys SET response = $3 WHERE scope = $1 AND key = $2', [scope, key, Buffer.from(response.encode(result).finish())]);
    return result;
  });
}

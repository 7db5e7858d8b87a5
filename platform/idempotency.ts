import { createHash } from 'node:crypto';
import type { Db, Queryable } from './db';
import { IdempotencyKeyReused } from './errors';
import { requireIdempotencyKey } from './validate';

export interface Codec<T> {
  encode(value: T): { finish(): Uint8Array };
  decode(bytes: Uint8Array): T;
}

/** What a key remembers of its request: the SHA-256 of its protobuf encoding. */
export function requestHash<Req>(request: { codec: Codec<Req>; value: Req }): Buffer {
  return createHash('sha256').update(request.codec.encode(request.value).finish()).digest();
}

/**
 * The committed answer to (scope, key), for a call that writes its key row itself (a single
 * statement doing what `once` does, e.g. settlement's place_hold) and refused before reaching it:
 * the refusal must not hide the first call's answer. undefined when the key has none; the same
 * key with another request is IdempotencyKeyReused, as in `once`.
 */
export async function storedAnswer<Res>(q: Queryable, scope: string, key: string, hash: Uint8Array, response: Codec<Res>): Promise<Res | undefined> {
  const { rows } = await q.query<{ request_hash: Uint8Array; response: Uint8Array | null }>('SELECT request_hash, response FROM idempotency_keys WHERE scope = $1 AND key = $2', [scope, key]);
  const first = rows[0];
  if (!first) return undefined;
  if (!Buffer.from(first.request_hash).equals(hash)) throw new IdempotencyKeyReused();
  return first.response ? response.decode(first.response) : undefined;
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
  const hash = requestHash(request);
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

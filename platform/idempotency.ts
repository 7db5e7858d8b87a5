import { createHash } from 'node:crypto';
import { escapeLiteral } from 'pg';
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
 * the refusal must not hide the first call's answer. A first call still in flight is waited for
 * (migrations/004_idempotency_answer.sql), as `once` waits. undefined when the key has none; the
 * same key with another request is IdempotencyKeyReused, as in `once`.
 */
export async function storedAnswer<Res>(q: Queryable, scope: string, key: string, hash: Uint8Array, response: Codec<Res>): Promise<Res | undefined> {
  const { rows } = await q.query<{ request_hash: Uint8Array; response: Uint8Array | null }>('SELECT request_hash, response FROM idempotency_answer($1, $2)', [scope, key]);
  const first = rows[0];
  if (!first) return undefined;
  if (!Buffer.from(first.request_hash).equals(hash)) throw new IdempotencyKeyReused();
  return first.response ? response.decode(first.response) : undefined;
}

/**
 * Runs a mutating call at most once per (scope, key). The key row is inserted first in the same
 * transaction as the work, so a concurrent retry waits on it and then gets the stored answer;
 * the same key with a different request is refused; a failed call stores nothing, so a retry
 * after an error runs again.
 *
 * Three round trips besides the work's: the key's INSERT travels with BEGIN (Db.tx `first`, so
 * scope and key go as escaped literals; they are identifiers, not secrets), and the request's
 * hash is written with the answer at the end, parameterised, with the row already locked by the
 * insert. A waiting retry never sees the row before that: it is committed with hash and answer
 * together (or not at all). A conflict costs one more statement (reading the first call's row).
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
  // request_hash is NOT NULL: empty until the answer is written (a committed row always has both).
  const claim = `INSERT INTO idempotency_keys (scope, key, request_hash) VALUES (${escapeLiteral(scope)}, ${escapeLiteral(key)}, ''::bytea) ON CONFLICT DO NOTHING RETURNING 1`;
  return db.tx(
    async (q, claimed) => {
      let inserted = claimed!.rowCount === 1;
      // Twice at most: the row that made the insert conflict may be pruned by retention
      // (platform/retention.ts) before the SELECT sees it; the insert after that succeeds.
      for (let attempt = 0; !inserted && attempt < 2; attempt++) {
        const { rows } = await q.query<{ request_hash: Uint8Array; response: Uint8Array | null }>(
          'SELECT request_hash, response FROM idempotency_keys WHERE scope = $1 AND key = $2 FOR UPDATE',
          [scope, key],
        );
        const first = rows[0];
        if (first) {
          if (!Buffer.from(first.request_hash).equals(hash)) throw new IdempotencyKeyReused();
          if (first.response) return response.decode(first.response);
          // Committed without an answer (no version of this code does that): ours now, locked.
          inserted = true;
          break;
        }
        inserted = (await q.query(claim)).rowCount === 1;
      }
      if (!inserted) throw new Error(`idempotency key ${scope}/${key} neither insertable nor found`);
      const result = await work(q);
      await q.query('UPDATE idempotency_keys SET request_hash = $3, response = $4 WHERE scope = $1 AND key = $2', [scope, key, hash, Buffer.from(response.encode(result).finish())]);
      return result;
    },
    { first: claim },
  );
}

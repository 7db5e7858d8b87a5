import { Verification, VerifyResult } from '../../../gen/wristpay/tokenization/v1/tokenization';
import type { Queryable } from '../../../platform/db';
import { IdempotencyKeyReused } from '../../../platform/errors';
import { newEvent } from '../../../platform/events';
import { requestHash, type Codec } from '../../../platform/idempotency';
import { outboxValues } from '../../../platform/outbox';
import { requireIdempotencyKey } from '../../../platform/validate';
import { channelValue, type ChannelName, type VerifyOutcome } from './domain/verification';

/**
 * A verification's write in one round trip: the `record_verification` function
 * (migrations/002_verify_in_one_round_trip.sql, which says why a function and not a CTE). It
 * takes the payment id's idempotency row exactly as platform/idempotency.ts `once` does (same
 * table, columns, scope, key and request hash), moves the replay guard, counts failures, writes
 * the outbox event of whichever outcome happened and stores the answer; the service sends it
 * the outcome of the credential check, never the credential.
 */

const SOURCE = 'tokenization';
/** Failures older than this no longer count as "recent" and are pruned. */
export const FAILURE_WINDOW = '1 hour';

/** The payment id's idempotency record (platform/idempotency.ts's table). */
export interface IdempotencyRecord {
  scope: string;
  key: string;
  requestHash: Buffer;
}

/**
 * The idempotency record of `request` under `scope` and `key` (a payment id, never empty), with
 * `once`'s own request hash, so a record either of them wrote answers the other's retry
 * (test/verification-write.test.ts proves it both ways).
 */
export function idempotencyRecord<T>(scope: string, key: string, request: { codec: Codec<T>; value: T }): IdempotencyRecord {
  return { scope, key: requireIdempotencyKey(key), requestHash: requestHash(request) };
}

/** What a verification reports about the payment it checked (never the credential itself). */
export interface PaymentFacts {
  amountMinor: bigint;
  currency: string;
  merchantId: string;
  atc: bigint;
  channel: ChannelName;
}

/** The token fields a verification needs; undefined for an unknown token number. */
export interface VerifiedToken {
  token_id: string;
  device_id: string;
  account_id: string;
}

/**
 * What decides the outcome: a refusal the service already made (unknown token, status,
 * channel, a wrong cryptogram or code), or the replay guard the statement moves.
 */
export type Decision =
  | { refused: VerifyOutcome }
  | { guard: 'atc'; atc: bigint }
  | { guard: 'code'; step: bigint };

/** The outcomes each guard can end in, in the order the statement looks them up. */
const GUARD_OUTCOMES: Record<'atc' | 'code', VerifyOutcome[]> = {
  atc: ['OK', 'REPLAY', 'TOKEN_SUSPENDED', 'TOKEN_DELETED'],
  code: ['OK', 'CODE_REUSED', 'TOKEN_SUSPENDED', 'TOKEN_DELETED'],
};

export type WriteResult = { verification: Verification; repeated: boolean };

/**
 * Sends the verification's write. With `idempotency`, a retry of the same request gets the
 * first answer back (`repeated`, nothing written), a different request under that key is
 * IdempotencyKeyReused, and a concurrent retry waits on the first's row and then gets its answer,
 * as with `once`. Without it, every call is a new verification.
 */
export async function writeVerification(
  q: Queryable,
  token: VerifiedToken | undefined,
  facts: PaymentFacts,
  decision: Decision,
  idempotency: IdempotencyRecord | undefined,
): Promise<WriteResult> {
  const outcomes = 'refused' in decision ? [decision.refused] : GUARD_OUTCOMES[decision.guard];
  // One event and one answer per possible outcome, built here (the events' encoding and trace
  // context are Node's); the statement keeps the one that happened.
  const events = outcomes.map((outcome) => outboxValues(verificationEvent(outcome, token, facts)));
  const responses = outcomes.map((outcome) => Buffer.from(Verification.encode(verification(outcome, token, 0)).finish()).toString('hex'));
  const { rows } = await q.query<{ verdict: 'done' | 'repeated' | 'reused'; outcome: VerifyOutcome | null; recent_failures: number | null; response: Uint8Array | null }>(
    'SELECT * FROM record_verification($1, $2, $3, $4, $5, $6, $7, $8::interval, $9::text[], $10::text[], $11::uuid[], $12::text[], $13::jsonb)',
    [
      idempotency?.scope ?? null,
      idempotency?.key ?? null,
      idempotency?.requestHash ?? null,
      token?.token_id ?? null,
      'guard' in decision ? decision.guard : null,
      'guard' in decision && decision.guard === 'atc' ? decision.atc : null,
      'guard' in decision && decision.guard === 'code' ? decision.step : null,
      FAILURE_WINDOW,
      outcomes,
      responses,
      events.map(([eventId]) => eventId),
      events.map(([, event]) => event.toString('hex')),
      events[0]![2],
    ],
  );
  const row = rows[0]!;
  if (row.verdict === 'reused') throw new IdempotencyKeyReused();
  if (row.verdict === 'repeated') return { verification: Verification.decode(row.response!), repeated: true };
  return { verification: verification(row.outcome!, token, row.recent_failures!), repeated: false };
}

function verification(outcome: VerifyOutcome, token: VerifiedToken | undefined, recentFailures: number): Verification {
  return {
    result: VerifyResult[`VERIFY_RESULT_${outcome}`],
    tokenId: token?.token_id ?? '',
    deviceId: token?.device_id ?? '',
    accountId: token?.account_id ?? '',
    recentFailures,
  };
}

/** token.payment.verified / token.payment.refused, for risk: as before this write was one statement. */
function verificationEvent(outcome: VerifyOutcome, token: VerifiedToken | undefined, facts: PaymentFacts) {
  return newEvent(outcome === 'OK' ? 'token.payment.verified' : 'token.payment.refused', SOURCE, {
    $case: 'verification',
    value: {
      tokenId: token?.token_id ?? '',
      deviceId: token?.device_id ?? '',
      result: outcome,
      amount: { amountMinor: facts.amountMinor, currency: facts.currency },
      merchantId: facts.merchantId,
      atc: facts.atc,
      channel: channelValue(facts.channel),
    },
  });
}

import { HoldOutcome as HoldOutcomeCode, Hold, PlaceHoldResponse } from '../../../gen/wristpay/settlement/v1/settlement';
import type { Event } from '../../../gen/wristpay/events/v1/events';
import type { Queryable } from '../../../platform/db';
import { AlreadyExists, IdempotencyKeyReused } from '../../../platform/errors';
import { outboxValues } from '../../../platform/outbox';
import type { LimitRefusal } from './domain/limits';
import { toHold } from './hold-wire';
import type { HoldRow } from './store';

export type HoldOutcome = 'PLACED' | 'INSUFFICIENT_FUNDS' | 'ACCOUNT_FROZEN' | LimitRefusal;

/** The idempotency scope PlaceHold's keys live in (as when `once` wrote them: old keys still answer). */
export const PLACE_HOLD_SCOPE = 'PlaceHold';

/** A PlaceHold's idempotency key and the hash of its request (platform/idempotency.ts requestHash). */
export interface HoldIdempotency {
  key: string;
  hash: Buffer;
}

/** What place_hold decided. `replayed`: the key's first answer came back and nothing was done. */
export type PlaceHoldResult =
  | { replayed: true; response: PlaceHoldResponse }
  | { replayed: false; outcome: HoldOutcome; response: PlaceHoldResponse; createdAt: Date | null; expiresAt: Date | null };

/** The voucher changed between its quote and its lock (place_hold's SQLSTATE WP003): price it again. */
export class VoucherChanged extends Error {
  override readonly name = 'VoucherChanged';
}

const OUTCOMES: HoldOutcome[] = ['PLACED', 'INSUFFICIENT_FUNDS', 'ACCOUNT_FROZEN', 'BAND_FROZEN', 'OVER_PAYMENT_LIMIT', 'OVER_DAILY_LIMIT'];
// Each outcome's answer without a hold, encoded once: place_hold stores the one it decides (PLACED's with the hold appended).
const ANSWERS = OUTCOMES.map((outcome) => Buffer.from(PlaceHoldResponse.encode({ outcome: HoldOutcomeCode[`HOLD_OUTCOME_${outcome}`], hold: undefined }).finish()));

/**
 * Runs migrations/006_place_hold.sql's place_hold: one statement, so on `q` outside a transaction
 * one round trip and one implicit transaction for the whole hold (key, voucher use, limits,
 * reservation, outbox row, stored answer). `hold` is the hold to place if the rules allow it
 * (its id chosen here; `createdAt`/`expiresAt` are the database's and ignored), `event` its
 * payment.hold.placed, written only when it is placed.
 */
export async function runPlaceHold(q: Queryable, input: { hold: HoldRow; wallet: string; ttlSeconds: number; event: Event; idempotency?: HoldIdempotency }): Promise<PlaceHoldResult> {
  const { hold, idempotency } = input;
  const [eventId, event, traceContext] = outboxValues(input.event);
  // The answer's hold without expires_at: place_hold appends it from the database clock.
  const answerHold = Buffer.from(Hold.encode({ ...toHold(hold), expiresAt: undefined }).finish());
  let rows: Array<{ outcome: string; answer: Uint8Array; created_at: Date | null; expires_at: Date | null }>;
  try {
    ({ rows } = await q.query(
      `SELECT * FROM place_hold($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`,
      [
        idempotency ? PLACE_HOLD_SCOPE : null,
        idempotency?.key ?? null,
        idempotency?.hash ?? null,
        hold.holdId,
        hold.paymentId,
        hold.accountId,
        input.wallet,
        hold.merchantId,
        hold.deviceId,
        hold.currency,
        hold.amount,
        input.ttlSeconds,
        hold.voucherId,
        hold.discount,
        hold.merchantName,
        eventId,
        event,
        traceContext,
        OUTCOMES,
        ANSWERS,
        answerHold,
      ],
    ));
  } catch (err) {
    throw refusalOf(err, hold.paymentId);
  }
  const row = rows[0]!;
  const response = PlaceHoldResponse.decode(row.answer);
  if (row.outcome === 'REPLAYED') return { replayed: true, response };
  return { replayed: false, outcome: row.outcome as HoldOutcome, response, createdAt: row.created_at, expiresAt: row.expires_at };
}

/** place_hold's own SQLSTATEs as the errors the service answers with; anything else unchanged. */
function refusalOf(err: unknown, paymentId: string): unknown {
  const { code, detail } = err as { code?: string; detail?: string };
  if (code === 'WP001') return new AlreadyExists(detail ? `payment ${paymentId} already has hold ${detail}` : `payment ${paymentId} already has a hold`);
  if (code === 'WP002') return new IdempotencyKeyReused();
  if (code === 'WP003') return new VoucherChanged('the voucher was used up or expired between its quote and its redemption');
  return err;
}

import type { Event } from '../../../gen/wristpay/events/v1/events';
import { DeclineReason, type AuthorizeResponse, type Payment, type PaymentChallenge } from '../../../gen/wristpay/gateway/v1/gateway';
import type { Db, Queryable } from '../../../platform/db';
import { outboxInsertFrom, outboxValues } from '../../../platform/outbox';
import { authorizationStatus, statesBefore, toStatus, type PaymentState } from './domain/payment-state';

/** One row of `payments` (migrations/001_payments.sql). */
export interface PaymentRow {
  payment_id: string;
  merchant_id: string;
  idempotency_key: string;
  request_hash: Uint8Array;
  status: PaymentState;
  decline_reason: string;
  message: string;
  channel: string;
  amount_minor: bigint;
  currency: string;
  discount_minor: bigint;
  charged_minor: bigint;
  voucher_code: string;
  merchant_name: string;
  device_id: string;
  account_id: string;
  hold_id: string;
  risk_score: number;
  risk_reasons: string[];
  challenge_id: string | null;
  challenge_nonce: Uint8Array | null;
  challenge_expires_at: Date | null;
  confirmed_at: Date | null;
  resolved_key: string | null;
  resolved_hash: Uint8Array | null;
  owner: string;
  attempt: number;
  created_at: Date;
  updated_at: Date;
  /** The row's version (its xmin): changes with every write of the row. */
  row_version: string;
}

/** What a new payment is recorded with before anything downstream is called. */
export interface NewPayment {
  paymentId: string;
  merchantId: string;
  idempotencyKey: string;
  requestHash: Buffer;
  /** The Channel name (CHANNEL_BAND_TAP, CHANNEL_BAND_QR). */
  channel: string;
  amountMinor: bigint;
  currency: string;
  voucherCode: string;
  merchantName: string;
  owner: string;
}

/** Columns a transition may set. */
export type PaymentChange = Partial<
  Pick<
    PaymentRow,
    | 'status'
    | 'decline_reason'
    | 'message'
    | 'discount_minor'
    | 'charged_minor'
    | 'device_id'
    | 'account_id'
    | 'hold_id'
    | 'risk_score'
    | 'risk_reasons'
    | 'challenge_id'
    | 'challenge_nonce'
    | 'challenge_expires_at'
    | 'resolved_key'
    | 'resolved_hash'
    | 'owner'
    | 'attempt'
  >
> & { confirmed_at?: 'now' };

/** Only these conditions guard a transition (values are bound, never spliced). */
export interface TransitionGuard {
  /** The states the payment must be in; by default every state that may move to `change.status`. */
  from?: PaymentState[];
  /** The attempt that must still own a RECEIVED payment (fencing against a superseded attempt). */
  attempt?: number;
  /** A CHALLENGED payment's challenge must not have expired. */
  challengeLive?: boolean;
}

const reason = (value: DeclineReason): string => (value === DeclineReason.DECLINE_REASON_UNSPECIFIED ? '' : DeclineReason[value].replace('DECLINE_REASON_', ''));
export const declineReasonName = reason;
const declineReasonOf = (name: string): DeclineReason =>
  name ? ((DeclineReason as unknown as Record<string, DeclineReason>)[`DECLINE_REASON_${name}`] ?? DeclineReason.DECLINE_REASON_UNSPECIFIED) : DeclineReason.DECLINE_REASON_UNSPECIFIED;

function challengeOf(row: PaymentRow): PaymentChallenge | undefined {
  return row.challenge_id ? { challengeId: row.challenge_id, expiresAt: row.challenge_expires_at ?? undefined } : undefined;
}

const money = (amountMinor: bigint, currency: string) => ({ amountMinor: BigInt(amountMinor), currency });

export function toPayment(row: PaymentRow): Payment {
  return {
    paymentId: row.payment_id,
    status: toStatus(row.status),
    declineReason: declineReasonOf(row.decline_reason),
    merchantId: row.merchant_id,
    amount: money(row.amount_minor, row.currency),
    holdId: row.hold_id,
    deviceId: row.device_id,
    accountId: row.account_id,
    riskScore: row.risk_score,
    riskReasons: row.risk_reasons,
    createdAt: row.created_at,
    discount: money(row.discount_minor, row.currency),
    charged: money(row.charged_minor, row.currency),
    merchantName: row.merchant_name,
    voucherCode: row.voucher_code,
    challenge: challengeOf(row),
    updatedAt: row.updated_at,
    message: row.message,
  };
}

/** Authorize's answer for a payment: its authorization decision (payment-state.ts authorizationStatus). */
export function toAuthorizeResponse(row: PaymentRow): AuthorizeResponse {
  const status = authorizationStatus(row.status);
  return {
    paymentId: row.payment_id,
    status,
    declineReason: declineReasonOf(row.decline_reason),
    message: row.message,
    holdId: row.hold_id,
    riskScore: row.risk_score,
    riskReasons: row.risk_reasons,
    discount: money(row.discount_minor, row.currency),
    charged: money(row.charged_minor, row.currency),
    challenge: row.status === 'CHALLENGED' ? challengeOf(row) : undefined,
  };
}

// xmin, the transaction that wrote this version of the row, is its version: what transitionSeen pins.
const COLUMNS = '*, xmin::text AS row_version';

/**
 * The gateway's payments in PostgreSQL. Every transition is one conditional UPDATE (the states
 * it may come from, and for a RECEIVED payment the attempt that owns it) committed with its
 * outbox event, so an event is published exactly once per transition and two racing
 * transitions (a confirmation and the expiry sweep, two attempts) cannot both win.
 */
export class PaymentStore {
  constructor(readonly db: Db) {}

  /**
   * Records a new payment RECEIVED under (merchant, idempotency key), or returns the payment
   * already recorded under them (`fresh` false), whatever its request.
   */
  async claim(p: NewPayment): Promise<{ fresh: boolean; row: PaymentRow }> {
    // A row that made the insert conflict is visible to the next statement; a third pass covers
    // nothing but keeps a pathological race from looping.
    for (let i = 0; i < 3; i++) {
      const inserted = await this.db.query<PaymentRow>(
        `INSERT INTO payments (payment_id, merchant_id, idempotency_key, request_hash, status, channel, amount_minor, currency, charged_minor, voucher_code, merchant_name, owner)
         VALUES ($1, $2, $3, $4, 'RECEIVED', $5, $6, $7, $6, $8, $9, $10)
         ON CONFLICT (merchant_id, idempotency_key) DO NOTHING RETURNING ${COLUMNS}`,
        [p.paymentId, p.merchantId, p.idempotencyKey, p.requestHash, p.channel, p.amountMinor, p.currency, p.voucherCode, p.merchantName, p.owner],
      );
      if (inserted.rows[0]) return { fresh: true, row: inserted.rows[0] };
      const existing = await this.byKey(p.merchantId, p.idempotencyKey);
      if (existing) return { fresh: false, row: existing };
    }
    throw new Error('payment claim found neither a new nor an existing row');
  }

  async get(paymentId: string, q: Queryable = this.db): Promise<PaymentRow | undefined> {
    const { rows } = await q.query<PaymentRow>(`SELECT ${COLUMNS} FROM payments WHERE payment_id = $1`, [paymentId]);
    return rows[0];
  }

  async byKey(merchantId: string, idempotencyKey: string): Promise<PaymentRow | undefined> {
    const { rows } = await this.db.query<PaymentRow>(`SELECT ${COLUMNS} FROM payments WHERE merchant_id = $1 AND idempotency_key = $2`, [merchantId, idempotencyKey]);
    return rows[0];
  }

  /**
   * Makes `owner` the runner of a RECEIVED payment whose attempt is `seenAttempt`, bumping the
   * attempt; undefined when another take-over or a decision came first.
   */
  async takeOver(paymentId: string, seenAttempt: number, owner: string): Promise<PaymentRow | undefined> {
    const { rows } = await this.db.query<PaymentRow>(
      `UPDATE payments SET owner = $3, attempt = attempt + 1, updated_at = now() WHERE payment_id = $1 AND status = 'RECEIVED' AND attempt = $2 RETURNING ${COLUMNS}`,
      [paymentId, seenAttempt, owner],
    );
    return rows[0];
  }

  /** Applies `change` if the guard holds (one conditional UPDATE); the row after, or undefined when it did not hold. */
  async transition(paymentId: string, change: PaymentChange, guard: TransitionGuard = {}): Promise<PaymentRow | undefined> {
    const update = this.update(paymentId, change, guard);
    const { rows } = await this.db.query<PaymentRow>(`${update.sql} RETURNING ${COLUMNS}`, update.params);
    return rows[0];
  }

  /**
   * Applies `change` to the payment as the caller `seen` it, with the event it leads to
   * (`event` of the row after), in ONE statement: the UPDATE and the outbox row are one
   * data-modifying CTE, committed together without a BEGIN/COMMIT round trip each. The event is
   * built before the statement from `seen` plus `change`, so the UPDATE also requires the row to
   * be exactly as seen (its row_version): a row changed meanwhile is not moved (undefined,
   * nothing written), as when the guard does not hold.
   */
  async transitionSeen(seen: PaymentRow, change: PaymentChange, guard: TransitionGuard, event: (row: PaymentRow) => Event | undefined): Promise<PaymentRow | undefined> {
    const { confirmed_at: confirmed, ...columns } = change;
    const e = event({ ...seen, ...columns, ...(confirmed ? { confirmed_at: new Date() } : {}) });
    const update = this.update(seen.payment_id, change, guard);
    update.params.push(seen.row_version);
    const unchanged = `${update.sql} AND xmin = $${update.params.length}::xid`;
    if (!e) {
      const { rows } = await this.db.query<PaymentRow>(`${unchanged} RETURNING ${COLUMNS}`, update.params);
      return rows[0];
    }
    const params = [...update.params, ...outboxValues(e)];
    const { rows } = await this.db.query<PaymentRow>(
      `WITH moved AS (${unchanged} RETURNING ${COLUMNS}), sent AS (${outboxInsertFrom('moved', update.params.length + 1)}) SELECT * FROM moved`,
      params,
    );
    return rows[0];
  }

  /** The conditional UPDATE for `change` under `guard` (no RETURNING); values are bound, never spliced. */
  private update(paymentId: string, change: PaymentChange, guard: TransitionGuard): { sql: string; params: unknown[] } {
    const from = guard.from ?? (change.status ? statesBefore(change.status) : undefined);
    const sets: string[] = ['updated_at = now()'];
    const params: unknown[] = [paymentId];
    for (const [column, value] of Object.entries(change)) {
      if (column === 'confirmed_at') {
        sets.push('confirmed_at = now()');
        continue;
      }
      params.push(value);
      sets.push(`${column} = $${params.length}`);
    }
    const where = ['payment_id = $1'];
    if (from) {
      params.push(from);
      where.push(`status = ANY($${params.length}::text[])`);
    }
    if (guard.attempt !== undefined) {
      params.push(guard.attempt);
      where.push(`attempt = $${params.length}`);
    }
    if (guard.challengeLive) where.push('challenge_expires_at > now()');
    return { sql: `UPDATE payments SET ${sets.join(', ')} WHERE ${where.join(' AND ')}`, params };
  }

  /** Deletes a RECEIVED payment this attempt still owns (refused before anything downstream was spent). */
  async discard(paymentId: string, attempt: number): Promise<void> {
    await this.db.query("DELETE FROM payments WHERE payment_id = $1 AND status = 'RECEIVED' AND attempt = $2", [paymentId, attempt]);
  }

  /** Challenged payments past their expiry, oldest first (the sweeper declines them one by one). */
  async expiredChallenges(limit: number): Promise<string[]> {
    const { rows } = await this.db.query<{ payment_id: string }>(
      `SELECT payment_id FROM payments WHERE status = 'CHALLENGED' AND challenge_expires_at <= now() ORDER BY challenge_expires_at LIMIT $1`,
      [limit],
    );
    return rows.map((r) => r.payment_id);
  }

  /** RECEIVED payments untouched for `olderThanSeconds` whose replica no longer beats. */
  async orphaned(olderThanSeconds: number, staleMs: number, limit: number): Promise<PaymentRow[]> {
    const { rows } = await this.db.query<PaymentRow>(
      `SELECT p.*, p.xmin::text AS row_version FROM payments p LEFT JOIN gateway_instances i ON i.instance_id = p.owner AND i.beat_at > now() - make_interval(secs => $2::double precision / 1000)
        WHERE p.status = 'RECEIVED' AND p.updated_at < now() - make_interval(secs => $1) AND i.instance_id IS NULL
        ORDER BY p.updated_at LIMIT $3`,
      [olderThanSeconds, staleMs, limit],
    );
    return rows;
  }
}

import { randomUUID } from 'node:crypto';
import type { Queryable } from '../../../platform/db';
import { AlreadyExists, InvalidArgument, NotFound, PermissionDenied } from '../../../platform/errors';
import type { Amount } from './domain/money';
import { generateVoucherCode, quote, type VoucherDiscount } from './domain/voucher';
import { REASON } from '../../../platform/reasons';
import { big, type HoldRow } from './store';

export interface VoucherRow {
  voucherId: string;
  merchantId: string;
  code: string;
  discount: VoucherDiscount;
  expiresAt: Date;
  maxUses: number;
  uses: number;
  createdAt: Date;
}

export interface IssueVoucherInput {
  merchantId: string;
  /** Undefined: generate one. */
  code: string | undefined;
  discount: VoucherDiscount;
  expiresAt: Date;
  maxUses: number;
}

export interface Quote {
  voucher: VoucherRow;
  discount: bigint;
  toPay: bigint;
}

/** What PlaceHold needs of its request here; `voucherCode` empty or absent for none. */
export interface VoucherHoldRequest {
  merchantId: string;
  amount: Amount;
  voucherCode?: string;
}

type Raw = Record<string, unknown>;

function toVoucher(r: Raw): VoucherRow {
  const discount: VoucherDiscount =
    r.percent_off === null || r.percent_off === undefined
      ? { kind: 'amount', amount: { minor: big(r.amount_off_minor), currency: r.currency as string } }
      : { kind: 'percent', percent: Number(r.percent_off) };
  return {
    voucherId: r.voucher_id as string,
    merchantId: r.merchant_id as string,
    code: r.code as string,
    discount,
    expiresAt: r.expires_at as Date,
    maxUses: Number(r.max_uses),
    uses: Number(r.uses),
    createdAt: r.created_at as Date,
  };
}

/** Attempts at a generated code before giving up (each ~49 bits: a clash is already unlikely). */
const GENERATE_ATTEMPTS = 5;

/**
 * Merchant vouchers: issue, look up, quote, price a hold, give a use back (see
 * migrations/004_vouchers.sql for the rules; the redemption itself is in place_hold,
 * migrations/006_place_hold.sql). Every method runs in the caller's transaction; time is the
 * database's clock, as for holds.
 */
export class Vouchers {
  async issue(q: Queryable, input: IssueVoucherInput): Promise<VoucherRow> {
    const { rows: clock } = await q.query<{ future: boolean }>('SELECT ($1::timestamptz > now()) AS future', [input.expiresAt]);
    if (!clock[0]!.future) throw new InvalidArgument('expires_at must be in the future');
    const amountOff = input.discount.kind === 'amount' ? input.discount.amount : undefined;
    const percent = input.discount.kind === 'percent' ? input.discount.percent : null;
    for (let attempt = 0; attempt < (input.code ? 1 : GENERATE_ATTEMPTS); attempt++) {
      const code = input.code ?? generateVoucherCode();
      // DO NOTHING covers the case-insensitive unique index: a concurrent issue of the same code
      // waits for the first to commit and then inserts nothing.
      const { rows } = await q.query<Raw>(
        `INSERT INTO vouchers (voucher_id, merchant_id, code, amount_off_minor, currency, percent_off, expires_at, max_uses)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING *`,
        [randomUUID(), input.merchantId, code, amountOff?.minor ?? null, amountOff?.currency ?? null, percent, input.expiresAt, input.maxUses],
      );
      if (rows[0]) return toVoucher(rows[0]);
    }
    if (input.code) throw new AlreadyExists('the voucher code is already taken (codes are unique across merchants, whatever the case)');
    throw new Error(`no free voucher code after ${GENERATE_ATTEMPTS} attempts`);
  }

  /**
   * The voucher `code` names (any case), if `merchantId` issued it: NOT_FOUND when no voucher has
   * the code, PERMISSION_DENIED when another merchant issued it.
   */
  async get(q: Queryable, merchantId: string, code: string): Promise<{ voucher: VoucherRow; now: Date }> {
    const { rows } = await q.query<Raw>('SELECT *, now() AS db_now FROM vouchers WHERE upper(code) = upper($1)', [code]);
    const row = rows[0];
    if (!row) throw new NotFound('no voucher has this code');
    const voucher = toVoucher(row);
    if (voucher.merchantId !== merchantId) throw new PermissionDenied('the voucher was issued by another merchant', REASON.VOUCHER_OF_ANOTHER_MERCHANT);
    return { voucher, now: row.db_now as Date };
  }

  /**
   * What the voucher would take off `amount` now, without redeeming it. With `paymentId`, a
   * standing redemption of this voucher by that payment (its hold was placed by an earlier
   * attempt) is quoted as it was redeemed, even if that took the last use or it has expired since.
   */
  async quote(q: Queryable, merchantId: string, code: string, amount: Amount, paymentId?: string): Promise<Quote> {
    const { voucher, now } = await this.get(q, merchantId, code);
    if (paymentId) {
      const { rows } = await q.query<Raw>(
        'SELECT gross_minor, discount_minor FROM voucher_redemptions WHERE payment_id = $1 AND voucher_id = $2 AND released_at IS NULL',
        [paymentId, voucher.voucherId],
      );
      if (rows[0]) {
        const discount = big(rows[0].discount_minor);
        return { voucher, discount, toPay: big(rows[0].gross_minor) - discount };
      }
    }
    return { voucher, ...quote(voucher, amount, now) };
  }

  /**
   * PlaceHold's first step: with a voucher code, checks it as QuoteVoucher does (a refusal is a
   * DomainError: nothing is placed or redeemed) and returns the request with `amount` net of the
   * discount and the voucher to redeem; without one, the request unchanged. A read without a
   * lock: place_hold (migrations/006_place_hold.sql) locks the voucher in the lock order and
   * refuses (VoucherChanged) if it was used up or expired since; the terms the discount comes from
   * are never updated, so the price stands.
   */
  async price<T extends VoucherHoldRequest>(q: Queryable, request: T): Promise<T & { voucher?: { voucherId: string; discount: bigint } }> {
    if (!request.voucherCode) return request;
    const { voucher, discount, toPay } = await this.quote(q, request.merchantId, request.voucherCode, request.amount);
    return { ...request, amount: { minor: toPay, currency: request.amount.currency }, voucher: { voucherId: voucher.voucherId, discount } };
  }

  /** A voided or expired voucher hold gives its use back, once. Call with the hold locked, before touching accounts. */
  async release(q: Queryable, hold: HoldRow): Promise<void> {
    const { rows } = await q.query<{ voucher_id: string }>(
      'UPDATE voucher_redemptions SET released_at = now() WHERE hold_id = $1 AND released_at IS NULL RETURNING voucher_id',
      [hold.holdId],
    );
    if (!rows[0]) return;
    await q.query('UPDATE vouchers SET uses = uses - 1 WHERE voucher_id = $1', [rows[0].voucher_id]);
  }
}

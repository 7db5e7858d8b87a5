import { randomInt } from 'node:crypto';
import { FailedPrecondition, InvalidArgument } from '../../../../platform/errors';
import { formatMoney, type Amount } from './money';

export { requireVoucherCode } from '../../../../platform/validate';

/** What a voucher takes off: a fixed amount in one currency, or a whole percent (1-99). */
export type VoucherDiscount = { kind: 'amount'; amount: Amount } | { kind: 'percent'; percent: number };

/** The fields of a stored voucher that decide whether and how much it takes off. */
export interface VoucherTerms {
  code: string;
  discount: VoucherDiscount;
  expiresAt: Date;
  maxUses: number;
  uses: number;
}

export const MAX_VOUCHER_USES = 1_000_000;
// No 0/O, 1/I/L: a code read off a receipt or typed on a terminal is not misread.
const ALPHABET = '23456789ABCDEFGHJKMNPQRSTUVWXYZ';
export const GENERATED_CODE_LENGTH = 10;

/** A fresh random code from an unambiguous alphabet (about 49 bits). */
export function generateVoucherCode(): string {
  let code = '';
  for (let i = 0; i < GENERATED_CODE_LENGTH; i++) code += ALPHABET[randomInt(ALPHABET.length)];
  return code;
}

/** max_uses as requested: 0 means single use; at most MAX_VOUCHER_USES. */
export function requireMaxUses(maxUses: number): number {
  if (!Number.isInteger(maxUses) || maxUses < 0 || maxUses > MAX_VOUCHER_USES) throw new InvalidArgument(`max_uses must be 0 (single use) to ${MAX_VOUCHER_USES}`);
  return maxUses === 0 ? 1 : maxUses;
}

export function requirePercent(percent: number): number {
  if (!Number.isInteger(percent) || percent < 1 || percent > 99) throw new InvalidArgument('percent_off must be a whole percent from 1 to 99');
  return percent;
}

/**
 * What `discount` takes off `amount`, before any check: the fixed amount, or the percent of the
 * amount rounded down to the minor unit (integer arithmetic, never a float).
 */
export function discountOf(discount: VoucherDiscount, amount: Amount): bigint {
  return discount.kind === 'amount' ? discount.amount.minor : (amount.minor * BigInt(discount.percent)) / 100n;
}

/**
 * Whether a voucher may be redeemed against `amount` at `now`, and for how much. Refusals are
 * FailedPrecondition with a readable reason: expired (says when), used up (uses/max), an amount
 * off in another currency, or a discount that would leave nothing to pay (a payment must leave
 * something on the wallet) or take nothing off (the use would be wasted).
 */
export function quote(v: VoucherTerms, amount: Amount, now: Date): { discount: bigint; toPay: bigint } {
  if (v.expiresAt.getTime() <= now.getTime()) throw new FailedPrecondition(`the voucher expired at ${v.expiresAt.toISOString()}`);
  if (v.uses >= v.maxUses) throw new FailedPrecondition(`the voucher is used up (${v.uses}/${v.maxUses} uses)`);
  if (v.discount.kind === 'amount' && v.discount.amount.currency !== amount.currency) {
    throw new FailedPrecondition(`the voucher is for ${v.discount.amount.currency}, not ${amount.currency}`);
  }
  const discount = discountOf(v.discount, amount);
  if (discount >= amount.minor) {
    throw new FailedPrecondition(`the voucher takes off ${formatMoney(discount, amount.currency)}, which leaves nothing to pay of ${formatMoney(amount.minor, amount.currency)}`);
  }
  if (discount <= 0n) throw new FailedPrecondition(`the voucher takes nothing off ${formatMoney(amount.minor, amount.currency)}`);
  return { discount, toPay: amount.minor - discount };
}

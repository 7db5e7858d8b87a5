/**
 * Band spending limits (set by the band's owner in settlement, heard as payment.limits.changed)
 * turned into features. Settlement enforces the limits; risk only uses them as a signal: a thief
 * with a stolen band spends up to whatever the band allows, so a payment that takes most of the
 * band's per-payment or daily allowance is worth more suspicion, and a frozen band is flagged.
 * Pure: the stores hand in what they kept.
 */

/** One limit as settlement sent it: minor units in one currency. */
export interface MoneyLimit {
  minor: number;
  currency: string;
}

/** A band's limits in force (the newest version risk has applied). */
export interface BandLimits {
  perPayment: MoneyLimit | undefined;
  perDay: MoneyLimit | undefined;
  frozen: boolean;
}

/** A share of a limit is capped here so a zero limit (nothing allowed) stays a finite feature. */
export const MAX_LIMIT_SHARE = 1000;

const CURRENCY = /^[A-Z]{3}$/;

/** The UTC calendar day of `ms` as YYYY-MM-DD: the day spend is counted under. */
export const utcDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/**
 * A limit from an event's Money: undefined when unset (no limit of that kind). A malformed one
 * (bad currency, negative or non-integer amount) is an error: guessing could invent or drop a limit.
 */
export function limitFromMoney(money: { amountMinor: bigint; currency: string } | undefined, field: string): MoneyLimit | undefined {
  if (!money) return undefined;
  if (!CURRENCY.test(money.currency)) throw new InvalidBandLimits(`${field}.currency must be an ISO 4217 code, got ${JSON.stringify(money.currency.slice(0, 8))}`);
  if (money.amountMinor < 0n || money.amountMinor > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidBandLimits(`${field}.amount_minor is out of range`);
  return { minor: Number(money.amountMinor), currency: money.currency };
}

/** A payment.limits.changed that can never be applied (retrying would not help). */
export class InvalidBandLimits extends Error {
  override readonly name = 'InvalidBandLimits';
}

const round = (x: number, digits = 4) => Math.round(x * 10 ** digits) / 10 ** digits;

/** `amount` as a share of `limit` (0 without a limit, or with one in another currency). */
function share(amount: number, currency: string, limit: MoneyLimit | undefined): number {
  if (!limit || limit.currency !== currency) return 0;
  return round(Math.min(MAX_LIMIT_SHARE, amount / Math.max(limit.minor, 1)));
}

const inCurrency = (limit: MoneyLimit | undefined, currency: string) => (limit && limit.currency === currency ? limit.minor : 0);

export interface LimitFeatures {
  band_frozen: number;
  band_limit_per_payment: number;
  band_limit_per_payment_share: number;
  band_limit_per_day: number;
  band_spend_today: number;
  band_limit_per_day_share: number;
}

/** Features when nothing is known about the band's limits: every rule on them stays quiet. */
export const NO_LIMIT_FEATURES: LimitFeatures = {
  band_frozen: 0,
  band_limit_per_payment: 0,
  band_limit_per_payment_share: 0,
  band_limit_per_day: 0,
  band_spend_today: 0,
  band_limit_per_day_share: 0,
};

/**
 * Limit features for one payment. `spendToday` is what this band had approved today (UTC), in the
 * payment's currency, before this payment. A limit in another currency than the payment's does not
 * apply to it (minor units of two currencies do not compare): its features stay 0.
 */
export function limitFeatures(amountMinor: number, currency: string, limits: BandLimits | undefined, spendToday: number): LimitFeatures {
  return {
    band_frozen: limits?.frozen ? 1 : 0,
    band_limit_per_payment: inCurrency(limits?.perPayment, currency),
    band_limit_per_payment_share: share(amountMinor, currency, limits?.perPayment),
    band_limit_per_day: inCurrency(limits?.perDay, currency),
    band_spend_today: spendToday,
    band_limit_per_day_share: share(spendToday + amountMinor, currency, limits?.perDay),
  };
}

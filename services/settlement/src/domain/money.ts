import type { Money } from '../../../../gen/wristpay/common/v1/common';
import { InvalidArgument } from '../../../../platform/errors';

/** An exact amount: int64 minor units of one ISO 4217 currency. */
export interface Amount {
  minor: bigint;
  currency: string;
}

export const INT64_MAX = 9_223_372_036_854_775_807n;
export const INT64_MIN = -9_223_372_036_854_775_808n;

const CURRENCY = /^[A-Z]{3}$/;

/** Throws InvalidArgument unless `currency` is an upper-case three-letter ISO 4217 code. */
export function requireCurrency(currency: string, field = 'currency'): string {
  if (!CURRENCY.test(currency)) throw new InvalidArgument(`${field} must be an ISO 4217 code of three upper-case letters (e.g. EUR)`);
  return currency;
}

/** A strictly positive amount of money, as every movement must be. */
export function requirePositive(money: Money | undefined, field: string): Amount {
  if (!money) throw new InvalidArgument(`${field} is required`);
  const currency = requireCurrency(money.currency, `${field}.currency`);
  if (typeof money.amountMinor !== 'bigint' || money.amountMinor <= 0n) throw new InvalidArgument(`${field}.amount_minor must be greater than zero`);
  return { minor: money.amountMinor, currency };
}

export const toMoney = (minor: bigint, currency: string): Money => ({ amountMinor: minor, currency });

// ISO 4217 minor-unit exponents that are not 2; only used to print reports, never to compute.
const EXPONENT: Record<string, number> = {
  BIF: 0, CLP: 0, DJF: 0, GNF: 0, ISK: 0, JPY: 0, KMF: 0, KRW: 0, PYG: 0, RWF: 0, UGX: 0, UYI: 0, VND: 0, VUV: 0, XAF: 0, XOF: 0, XPF: 0,
  BHD: 3, IQD: 3, JOD: 3, KWD: 3, LYD: 3, OMR: 3, TND: 3, CLF: 4, UYW: 4,
};

/** Formats minor units for people, e.g. `1999n, 'EUR'` → `19.99 EUR`, with integer arithmetic only. */
export function formatMoney(minor: bigint, currency: string): string {
  const exponent = EXPONENT[currency] ?? 2;
  const sign = minor < 0n ? '-' : '';
  const abs = minor < 0n ? -minor : minor;
  if (exponent === 0) return `${sign}${abs} ${currency}`;
  const unit = 10n ** BigInt(exponent);
  return `${sign}${abs / unit}.${(abs % unit).toString().padStart(exponent, '0')} ${currency}`;
}

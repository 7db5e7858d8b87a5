import type { Money } from '../gen/wristpay/common/v1/common';
import { InvalidArgument } from './errors';

/** A validated amount: positive int64 minor units of an ISO 4217 currency. */
export interface Amount {
  amountMinor: bigint;
  currency: string;
}

const INT64_MAX = 2n ** 63n - 1n;

// ISO 4217 as the runtime's ICU data knows it (kept up to date with Node), not a hand-kept list.
const CURRENCIES: ReadonlySet<string> = new Set(Intl.supportedValuesOf('currency'));

/** True for an ISO 4217 currency code in use (upper case, e.g. EUR). */
export const isCurrency = (code: string): boolean => CURRENCIES.has(code);

/** A currency request field; anything but an ISO 4217 code is INVALID_ARGUMENT naming the field. */
export function requireCurrency(code: string, field = 'currency'): string {
  if (!isCurrency(code)) throw new InvalidArgument(`${field} must be an ISO 4217 currency code such as EUR`);
  return code;
}

/**
 * Checks a Money field from a request. Money is never a float: a missing value, a zero or
 * negative amount, or a currency that is not an ISO 4217 code is INVALID_ARGUMENT.
 */
export function requireAmount(money: Money | undefined, field = 'amount'): Amount {
  if (!money) throw new InvalidArgument(`${field} is required`);
  requireCurrency(money.currency, `${field}.currency`);
  if (money.amountMinor <= 0n || money.amountMinor > INT64_MAX) throw new InvalidArgument(`${field}.amount_minor must be a positive number of minor units`);
  return { amountMinor: money.amountMinor, currency: money.currency };
}

// ISO 4217 minor-unit exponents that are not 2; only used to print amounts, never to compute.
const EXPONENT: Readonly<Record<string, number>> = {
  BIF: 0, CLP: 0, DJF: 0, GNF: 0, ISK: 0, JPY: 0, KMF: 0, KRW: 0, PYG: 0, RWF: 0, UGX: 0, UYI: 0, VND: 0, VUV: 0, XAF: 0, XOF: 0, XPF: 0,
  BHD: 3, IQD: 3, JOD: 3, KWD: 3, LYD: 3, OMR: 3, TND: 3, CLF: 4, UYW: 4,
};

/**
 * Formats minor units for people with the currency's decimals, integer arithmetic only:
 * `1999n EUR` → `19.99 EUR`, `1200n JPY` → `1200 JPY`, `1250n KWD` → `1.250 KWD`.
 */
export function formatAmount(amount: Amount): string {
  const exponent = EXPONENT[amount.currency] ?? 2;
  const sign = amount.amountMinor < 0n ? '-' : '';
  const abs = amount.amountMinor < 0n ? -amount.amountMinor : amount.amountMinor;
  if (exponent === 0) return `${sign}${abs} ${amount.currency}`;
  const unit = 10n ** BigInt(exponent);
  return `${sign}${abs / unit}.${(abs % unit).toString().padStart(exponent, '0')} ${amount.currency}`;
}

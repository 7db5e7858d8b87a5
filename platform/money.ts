import type { Money } from '../gen/wristpay/common/v1/common';
import { InvalidArgument } from './errors';

/** A validated amount: positive int64 minor units of an ISO 4217 currency. */
export interface Amount {
  amountMinor: bigint;
  currency: string;
}

const INT64_MAX = 2n ** 63n - 1n;

/**
 * Checks a Money field from a request. Money is never a float: a missing value, a zero or
 * negative amount, or a currency that is not three upper-case letters is INVALID_ARGUMENT.
 */
export function requireAmount(money: Money | undefined, field = 'amount'): Amount {
  if (!money) throw new InvalidArgument(`${field} is required`);
  if (!/^[A-Z]{3}$/.test(money.currency)) throw new InvalidArgument(`${field}.currency must be an ISO 4217 code such as EUR`);
  if (money.amountMinor <= 0n || money.amountMinor > INT64_MAX) throw new InvalidArgument(`${field}.amount_minor must be a positive number of minor units`);
  return { amountMinor: money.amountMinor, currency: money.currency };
}

/** Formats minor units for people, assuming two decimals (EUR, CNY, USD). */
export function formatAmount(amount: Amount): string {
  const sign = amount.amountMinor < 0n ? '-' : '';
  const abs = amount.amountMinor < 0n ? -amount.amountMinor : amount.amountMinor;
  return `${sign}${abs / 100n}.${(abs % 100n).toString().padStart(2, '0')} ${amount.currency}`;
}

import type { Money } from '../../../../gen/wristpay/common/v1/common';
import { InvalidArgument } from '../../../../platform/errors';
import { formatAmount } from '../../../../platform/money';

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

/** Formats minor units for people, e.g. `1999n, 'EUR'` → `19.99 EUR` (platform/money.ts formatAmount). */
export const formatMoney = (minor: bigint, currency: string): string => formatAmount({ amountMinor: minor, currency });

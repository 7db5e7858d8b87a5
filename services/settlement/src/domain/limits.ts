import type { Money } from '../../../../gen/wristpay/common/v1/common';
import { FailedPrecondition, InvalidArgument } from '../../../../platform/errors';
import { requireCurrency, type Amount } from './money';

/** What a band's owner set on it. A null limit is no limit; `currency` is set exactly when a limit is. */
export interface LimitSettings {
  currency: string | null;
  perPayment: bigint | null;
  perDay: bigint | null;
  frozen: boolean;
}

/** Why PlaceHold refuses a payment because of the band's limits (each is a HoldOutcome; the rules are in place_hold, migrations/006_place_hold.sql). */
export type LimitRefusal = 'BAND_FROZEN' | 'OVER_PAYMENT_LIMIT' | 'OVER_DAILY_LIMIT';

export const NO_LIMITS: LimitSettings = { currency: null, perPayment: null, perDay: null, frozen: false };

export const REASON_MAX = 200;

/** What the band may still spend today; null without a daily limit; never below zero (a lowered limit can leave it overspent). */
export function remainingToday(limits: LimitSettings, spentToday: bigint): bigint | null {
  if (limits.perDay === null) return null;
  const left = limits.perDay - spentToday;
  return left > 0n ? left : 0n;
}

function optionalLimit(money: Money | undefined, field: string): Amount | undefined {
  if (!money) return undefined;
  const currency = requireCurrency(money.currency, `${field}.currency`);
  if (typeof money.amountMinor !== 'bigint' || money.amountMinor <= 0n) {
    throw new InvalidArgument(`${field}.amount_minor must be greater than zero (leave ${field} unset for no limit)`);
  }
  return { minor: money.amountMinor, currency };
}

/** SetBandLimits' settings from the request: each limit unset (none) or positive; both in one currency. */
export function requireSettings(input: { perPayment: Money | undefined; perDay: Money | undefined; frozen: boolean }): LimitSettings {
  const perPayment = optionalLimit(input.perPayment, 'per_payment');
  const perDay = optionalLimit(input.perDay, 'per_day');
  if (perPayment && perDay && perPayment.currency !== perDay.currency) {
    throw new InvalidArgument(`per_payment and per_day must be in one currency (got ${perPayment.currency} and ${perDay.currency})`);
  }
  return { currency: perPayment?.currency ?? perDay?.currency ?? null, perPayment: perPayment?.minor ?? null, perDay: perDay?.minor ?? null, frozen: input.frozen };
}

// Control characters, lone surrogates, private use and unassigned code points, and the bidi
// overrides and isolates that make an audit line read differently from what it stores.
const NOT_PRINTABLE = /[\p{Cc}\p{Cs}\p{Co}\p{Cn}\u202A-\u202E\u2066-\u2069]/u;

/** The audit reason: optional, trimmed, at most REASON_MAX characters, printable. */
export function requireReason(value: string): string {
  const reason = value.trim();
  if ([...reason].length > REASON_MAX) throw new InvalidArgument(`reason must be at most ${REASON_MAX} characters`);
  if (NOT_PRINTABLE.test(reason)) throw new InvalidArgument('reason must be printable text (no control characters)');
  return reason;
}

/** expected_version as a request field: 0 (no check) or a version read before. */
export function requireVersionField(expected: bigint): bigint {
  if (expected < 0n) throw new InvalidArgument('expected_version must be zero (no check) or a version read before');
  return expected;
}

/** Optimistic concurrency: 0 means "whatever is there"; any other value must be the current version. */
export function requireExpectedVersion(expected: bigint, current: bigint): void {
  if (expected !== 0n && expected !== current) {
    throw new FailedPrecondition(`band limits are at version ${current}, not the expected version ${expected}; read them again and retry`);
  }
}

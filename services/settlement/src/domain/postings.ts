import { INT64_MAX, INT64_MIN } from './money';

/** One line of a transfer: a signed amount on one account (credit positive, debit negative). */
export interface Leg {
  account: string;
  currency: string;
  amount: bigint;
}

/** A transfer whose postings do not balance: a bug in this service, never a caller's mistake. */
export class UnbalancedTransfer extends Error {
  override readonly name = 'UnbalancedTransfer';
}

/** `amount` from `from` to `to`: the two legs of a simple transfer. */
export function move(from: string, to: string, currency: string, amount: bigint): Leg[] {
  return [
    { account: from, currency, amount: -amount },
    { account: to, currency, amount },
  ];
}

/**
 * Throws unless the legs form a valid double-entry transfer: at least two legs, none zero, and
 * per currency the amounts sum to zero.
 */
export function assertBalanced(legs: readonly Leg[]): void {
  if (legs.length < 2) throw new UnbalancedTransfer('a transfer needs at least two postings');
  const sums = new Map<string, bigint>();
  for (const leg of legs) {
    if (leg.amount === 0n) throw new UnbalancedTransfer(`zero posting on ${leg.account}`);
    if (leg.amount > INT64_MAX || leg.amount < INT64_MIN) throw new UnbalancedTransfer(`posting on ${leg.account} is outside int64`);
    sums.set(leg.currency, (sums.get(leg.currency) ?? 0n) + leg.amount);
  }
  for (const [currency, sum] of sums) if (sum !== 0n) throw new UnbalancedTransfer(`postings in ${currency} sum to ${sum}, not zero`);
}

/** The net change per (account, currency), in a stable order so row locks are always taken in the same order. */
export function netByAccount(legs: readonly Leg[]): Leg[] {
  const net = new Map<string, Leg>();
  for (const leg of legs) {
    const key = `${leg.account}\u0000${leg.currency}`;
    const seen = net.get(key);
    net.set(key, { account: leg.account, currency: leg.currency, amount: (seen?.amount ?? 0n) + leg.amount });
  }
  return [...net.values()].sort(compareAccounts);
}

/** The one global order in which account rows are locked, so two transfers never deadlock. */
export function compareAccounts(a: { account: string; currency: string }, b: { account: string; currency: string }): number {
  if (a.account !== b.account) return a.account < b.account ? -1 : 1;
  return a.currency < b.currency ? -1 : a.currency > b.currency ? 1 : 0;
}

import { InvalidArgument } from '../../../../platform/errors';
import { ID, requireId } from '../../../../platform/validate';

export { requireId };

/** What an account is for; decides which balance rules apply to it (see 001_ledger.sql). */
export type AccountKind = 'WALLET' | 'ESCROW' | 'PAYABLE' | 'EXTERNAL' | 'VOUCHER';


export const FUNDING = 'external:funding';
export const PAYOUTS = 'external:payouts';
/** The face value of the vouchers buyers redeemed (credited at each voucher capture). */
export const VOUCHERS = 'external:vouchers';
export const walletOf = (accountId: string): string => `wallet:${accountId}`;
export const escrowOf = (merchantId: string): string => `merchant:${merchantId}:escrow`;
export const payableOf = (merchantId: string): string => `merchant:${merchantId}:payable`;
/** What a merchant gave away in vouchers: debited by each captured discount, never positive. */
export const vouchersOf = (merchantId: string): string => `merchant:${merchantId}:vouchers`;

const MERCHANT_KINDS: Record<string, AccountKind> = { escrow: 'ESCROW', payable: 'PAYABLE', vouchers: 'VOUCHER' };

export interface AccountName {
  name: string;
  kind: AccountKind;
  owner: string;
}

/** Parses a ledger account name; undefined when it is not one this ledger uses. */
export function parseAccount(name: string): AccountName | undefined {
  if (name === FUNDING || name === PAYOUTS || name === VOUCHERS) return { name, kind: 'EXTERNAL', owner: '' };
  const wallet = /^wallet:([^:]+)$/.exec(name);
  if (wallet && ID.test(wallet[1]!)) return { name, kind: 'WALLET', owner: wallet[1]! };
  const merchant = /^merchant:([^:]+):(escrow|payable|vouchers)$/.exec(name);
  if (merchant && ID.test(merchant[1]!)) return { name, kind: MERCHANT_KINDS[merchant[2]!]!, owner: merchant[1]! };
  return undefined;
}

/**
 * What GetBalance's account_id names: a bare buyer id means that buyer's wallet; anything with
 * a ':' must be a full ledger account name (`merchant:m-1:payable`, `external:funding`).
 */
export function resolveBalanceAccount(accountId: string): AccountName {
  if (!accountId.includes(':')) return { name: walletOf(requireId(accountId, 'account_id')), kind: 'WALLET', owner: accountId };
  const parsed = parseAccount(accountId);
  if (!parsed) throw new InvalidArgument('account_id must be a buyer id or a ledger account (wallet:<id>, merchant:<id>:escrow, merchant:<id>:payable, merchant:<id>:vouchers, external:funding, external:payouts, external:vouchers)');
  return parsed;
}

import { escrowOf, parseAccount, payableOf, requireId, resolveBalanceAccount, VOUCHERS, vouchersOf, walletOf } from './accounts';

describe('account names', () => {
  it('round-trips every account this ledger writes', () => {
    expect(parseAccount(walletOf('acct-1'))).toEqual({ name: 'wallet:acct-1', kind: 'WALLET', owner: 'acct-1' });
    expect(parseAccount(escrowOf('m.42'))).toEqual({ name: 'merchant:m.42:escrow', kind: 'ESCROW', owner: 'm.42' });
    expect(parseAccount(payableOf('m.42'))).toEqual({ name: 'merchant:m.42:payable', kind: 'PAYABLE', owner: 'm.42' });
    expect(parseAccount(vouchersOf('m.42'))).toEqual({ name: 'merchant:m.42:vouchers', kind: 'VOUCHER', owner: 'm.42' });
    expect(parseAccount('external:funding')?.kind).toBe('EXTERNAL');
    expect(parseAccount(VOUCHERS)).toEqual({ name: 'external:vouchers', kind: 'EXTERNAL', owner: '' });
    expect(parseAccount('merchant:m:other')).toBeUndefined();
    expect(parseAccount('wallet:a:b')).toBeUndefined();
  });

  it('GetBalance reads a bare id as a wallet and a colon name as a ledger account', () => {
    expect(resolveBalanceAccount('alice').name).toBe('wallet:alice');
    expect(resolveBalanceAccount('merchant:m1:payable').kind).toBe('PAYABLE');
    expect(resolveBalanceAccount('merchant:m1:vouchers').kind).toBe('VOUCHER');
    expect(() => resolveBalanceAccount('bank:1')).toThrow(/ledger account/);
    expect(() => resolveBalanceAccount('')).toThrow(/account_id/);
  });

  it('ids have no spaces or colons', () => {
    expect(requireId('2f1e6c1a-0b7e-4a51-9d0c-1f1f1f1f1f1f', 'id')).toBeTruthy();
    for (const bad of ['', ' a', 'a:b', 'a b', 'x'.repeat(129)]) expect(() => requireId(bad, 'merchant_id')).toThrow(/merchant_id/);
  });
});

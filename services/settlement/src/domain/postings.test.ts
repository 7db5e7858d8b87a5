import fc from 'fast-check';
import { assertBalanced, move, netByAccount, UnbalancedTransfer } from './postings';

describe('postings', () => {
  it('a move is two legs that sum to zero', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: 2n ** 62n }), (amount) => {
        const legs = move('external:funding', 'wallet:a', 'EUR', amount);
        expect(() => assertBalanced(legs)).not.toThrow();
        expect(legs.reduce((s, l) => s + l.amount, 0n)).toBe(0n);
      }),
    );
  });

  it('refuses transfers that do not balance per currency, have one leg or a zero leg', () => {
    expect(() => assertBalanced([{ account: 'wallet:a', currency: 'EUR', amount: 5n }])).toThrow(UnbalancedTransfer);
    expect(() => assertBalanced([...move('a', 'b', 'EUR', 5n), { account: 'c', currency: 'EUR', amount: 1n }])).toThrow(/sum to 1/);
    // Balanced in total but not per currency.
    expect(() =>
      assertBalanced([
        { account: 'a', currency: 'EUR', amount: -5n },
        { account: 'b', currency: 'USD', amount: 5n },
      ]),
    ).toThrow(/EUR/);
    expect(() => assertBalanced([...move('a', 'b', 'EUR', 0n)])).toThrow(/zero posting/);
  });

  it('nets legs per account in one global order (the lock order)', () => {
    const net = netByAccount([...move('wallet:z', 'merchant:m:escrow', 'EUR', 5n), ...move('wallet:z', 'merchant:m:escrow', 'EUR', 2n), ...move('external:funding', 'wallet:z', 'USD', 1n)]);
    expect(net.map((n) => [n.account, n.currency, n.amount])).toEqual([
      ['external:funding', 'USD', -1n],
      ['merchant:m:escrow', 'EUR', 7n],
      ['wallet:z', 'EUR', -7n],
      ['wallet:z', 'USD', 1n],
    ]);
  });
});

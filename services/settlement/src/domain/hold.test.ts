import { assertDisputable, assertVoidable, planCapture, planDisputeRefund, planRefund, planRelease, type HoldMoney } from './hold';

const pending: HoldMoney = { status: 'PENDING', escrowStatus: null, currency: 'EUR', amount: 1000n, captured: 0n, escrow: 0n, released: 0n, refunded: 0n, lapsed: false };
const captured = (over: Partial<HoldMoney> = {}): HoldMoney => ({ ...pending, status: 'CAPTURED', escrowStatus: 'HELD', captured: 800n, escrow: 800n, ...over });
const balanced = (h: HoldMoney) => h.captured === h.escrow + h.released + h.refunded;

describe('hold rules', () => {
  it('captures all by default, part when asked, never more than held, never twice, never after expiry', () => {
    expect(planCapture(pending, undefined)).toBe(1000n);
    expect(planCapture(pending, 400n)).toBe(400n);
    expect(() => planCapture(pending, 1001n)).toThrow(/exceeds the held 10.00 EUR/);
    expect(() => planCapture(captured(), undefined)).toThrow(/CAPTURED/);
    expect(() => planCapture({ ...pending, lapsed: true }, undefined)).toThrow(/expired/);
    expect(() => assertVoidable(captured())).toThrow(/CAPTURED/);
    expect(() => assertVoidable({ ...pending, status: 'EXPIRED' })).toThrow(/EXPIRED/);
  });

  it('refunds from escrow, then from the payable after release, never above what was captured', () => {
    const partial = planRefund(captured(), 300n);
    expect(partial).toMatchObject({ escrowStatus: 'HELD', escrow: 500n, refunded: 300n, fromEscrow: 300n, fromPayable: 0n });
    const released = planRelease({ ...captured(), ...partial });
    expect(released).toMatchObject({ escrowStatus: 'RELEASED', escrow: 0n, released: 500n, fromEscrow: 500n });
    const after = { ...captured(), ...released };
    expect(planRefund(after, 500n)).toMatchObject({ released: 0n, refunded: 800n, fromPayable: 500n, fromEscrow: 0n });
    expect(() => planRefund(after, 501n)).toThrow(/exceeds what is refundable \(5.00 EUR of 8.00 EUR captured\)/);
    const all = planRefund(captured(), 800n);
    expect(all.escrowStatus).toBe('REFUNDED');
    expect(() => planRelease({ ...captured(), ...all })).toThrow(/refunded/);
    expect(() => planRefund(pending, 1n)).toThrow(/PENDING/);
    for (const change of [partial, released, all]) expect(balanced({ ...captured(), ...change })).toBe(true);
  });

  it('a dispute freezes held escrow only, and resolves once either way', () => {
    expect(() => assertDisputable(captured())).not.toThrow();
    expect(() => assertDisputable(captured({ escrowStatus: 'RELEASED', escrow: 0n, released: 800n }))).toThrow(/Refund instead/);
    const disputed = captured({ escrowStatus: 'DISPUTED' });
    expect(() => assertDisputable(disputed)).toThrow(/already has an open dispute/);
    expect(() => planRelease(disputed)).toThrow(/frozen/);
    expect(() => planRefund(disputed, 1n)).toThrow(/frozen/);
    expect(planDisputeRefund(disputed)).toMatchObject({ escrowStatus: 'REFUNDED', refunded: 800n, fromEscrow: 800n });
    expect(planRelease(disputed, true)).toMatchObject({ escrowStatus: 'RELEASED', released: 800n });
    expect(() => planDisputeRefund(captured())).toThrow(/not under dispute/);
  });
});

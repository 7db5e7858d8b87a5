import { payoutReport } from './payout-report';

describe('payout report', () => {
  it('lists payouts with totals per currency', () => {
    const report = payoutReport('2024-05-01', new Date('2024-05-02T00:00:00Z'), [
      { payoutId: 'p1', merchantId: 'merchant-42', currency: 'EUR', amount: 12345n, transfers: 3 },
      { payoutId: 'p2', merchantId: 'm2', currency: 'EUR', amount: 5n, transfers: 1 },
      { payoutId: 'p3', merchantId: 'm2', currency: 'JPY', amount: 700n, transfers: 1 },
    ], 1);
    expect(report).toContain('Payouts for 2024-05-01 (UTC), cut-off 2024-05-02T00:00:00.000Z');
    expect(report).toMatch(/merchant-42\s+EUR\s+123.45 EUR\s+3\s+p1/);
    expect(report).toContain('Total 123.50 EUR in 2 payouts');
    expect(report).toContain('Total 700 JPY in 1 payout');
    expect(report).toContain('1 merchant balance not positive after refunds; carried to the next payout.');
  });

  it('says so when there is nothing to pay', () => {
    expect(payoutReport('2024-05-01', new Date('2024-05-02T00:00:00Z'), [], 0)).toMatch(/No merchant has released funds/);
  });
});

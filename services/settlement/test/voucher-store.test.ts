import { inChildProcess, onFreshPostgres } from '../../../test/support/both-databases';
import { runVoucherScenario } from './support/voucher-scenario';

jest.setTimeout(120_000);

/** What the voucher code must do, identically, on PostgreSQL and on embedded PGlite. */
const EXPECTED = {
  taken: 'AlreadyExists: the voucher code is already taken (codes are unique across merchants, whatever the case)',
  generated: true,
  quote: { discount: '249', toPay: '750' },
  foreign: 'PermissionDenied: the voucher was issued by another merchant',
  unknown: 'NotFound: no voucher has this code',
  tooPoor: { outcome: 'INSUFFICIENT_FUNDS' },
  usesAfterTooPoor: 0,
  p1: { outcome: 'PLACED', amount: '2000', gross: '3000', discount: '1000', merchantName: 'Corner Shop' },
  p2: { outcome: 'PLACED', amount: '1500', gross: '2000', discount: '500', merchantName: 'Corner Shop' },
  usedUp: 'FailedPrecondition: the voucher is used up (1/1 uses)',
  usesAfterHolds: [1, 1],
  wallet: '3500',
  usesAfterVoid: 0,
  capture: ['wallet:alice -2000', 'merchant:m1:escrow 2000'],
  balances: { merchantVouchers: '-1000', externalVouchers: '1000', escrow: '2000' },
  expired: 'FailedPrecondition: the voucher expired at <time>',
  check: { ok: true, violations: [] },
};

describe('voucher store code on both databases', () => {
  it('on PostgreSQL', async () => {
    expect(await onFreshPostgres(runVoucherScenario)).toEqual(EXPECTED);
  });

  it('on embedded PGlite (openDb with no DATABASE_URL), in a child process', async () => {
    expect(await inChildProcess('services/settlement/test/support/pglite-voucher-scenario.ts')).toEqual(EXPECTED);
  });
});

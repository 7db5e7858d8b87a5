import { onFreshPostgres, inChildProcess } from '../../../test/support/both-databases';
import { runLedgerScenario } from './support/ledger-scenario';

jest.setTimeout(120_000);

const ERR = (name: string, message: string) => `${name}: ${message}`;

/** What the store code must do, identically, on PostgreSQL and on embedded PGlite. */
const EXPECTED = {
  afterTopUp: { posted: '10000n', held: '0n', available: '10000n' },
  holds: ['PLACED', 'INSUFFICIENT_FUNDS', 'PLACED'],
  duplicatePayment: expect.stringMatching(/^AlreadyExists: payment p1 already has hold [0-9a-f-]{36}$/),
  afterHolds: { posted: '10000n', held: '10000n', available: '0n' },
  capture: {
    status: 'CAPTURED',
    captured: '3000n',
    postings: [
      { account: 'wallet:alice', currency: 'EUR', amount: '-3000n' },
      { account: 'merchant:m1:escrow', currency: 'EUR', amount: '3000n' },
    ],
  },
  captureTwice: ERR('FailedPrecondition', 'hold is CAPTURED; only a PENDING hold can be captured'),
  afterCapture: { posted: '7000n', held: '6000n', available: '1000n' },
  afterVoid: { posted: '7000n', held: '0n', available: '7000n' },
  freeze: [true, false],
  frozenHold: 'ACCOUNT_FROZEN',
  overRefund: ERR('FailedPrecondition', 'refund of 20.00 EUR exceeds what is refundable (15.00 EUR of 30.00 EUR captured)'),
  payableAfterRefunds: { posted: '1500n', held: '0n', available: '1500n' },
  releaseDisputed: ERR('FailedPrecondition', 'escrow is frozen by an open dispute; resolve the dispute instead'),
  disputeRefund: [
    { account: 'merchant:m1:escrow', currency: 'EUR', amount: '-1000n' },
    { account: 'wallet:alice', currency: 'EUR', amount: '1000n' },
  ],
  sweep: { due: [1, 1], expired: [true, false], released: [true, false] },
  afterSweep: { posted: '7700n', held: '0n', available: '7700n' },
  whale: { posted: '9007199254740993n', held: '0n', available: '9007199254740993n' },
  // external:funding sorts first and would pass INT64_MIN before the wallet passes INT64_MAX.
  overflow: ERR('FailedPrecondition', 'the balance of external:funding would overflow int64'),
  payouts: [
    { merchant: 'm1', amount: '1500n', transfers: 2 },
    { merchant: 'm2', amount: '800n', transfers: 1 },
  ],
  payoutAgain: 2,
  payablesAfterPayout: [
    { posted: '0n', held: '0n', available: '0n' },
    { posted: '0n', held: '0n', available: '0n' },
  ],
  getTransfer: 'refund',
  unknownTransfer: expect.stringMatching(/^NotFound: no transfer /),
  // topup ×2, placed ×5, captured+funded ×3, voided, refunded ×3, released ×2, frozen, expired, dispute.resolved
  outboxEvents: 2 + 5 + 6 + 1 + 3 + 2 + 1 + 1 + 1,
  check: { ok: true, violations: [], counts: { accounts: 8, transfers: 12, postings: 24, holds: 5 } },
  brokenRules: ['stored balance equals postings', 'transfer balances', 'wallet held equals pending holds'],
};

describe('ledger store code on both databases', () => {
  it('on PostgreSQL', async () => {
    expect(await onFreshPostgres(runLedgerScenario)).toEqual(EXPECTED);
  });

  it('on embedded PGlite (openDb with no DATABASE_URL), in a child process', async () => {
    expect(await inChildProcess('services/settlement/test/support/pglite-scenario.ts')).toEqual(EXPECTED);
  });
});

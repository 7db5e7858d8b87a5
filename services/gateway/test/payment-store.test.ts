import { inChildProcess, onFreshPostgres } from '../../../test/support/both-databases';
import { runTransitionScenario } from './support/transition-scenario';

jest.setTimeout(120_000);

const APPROVED_EVENT = 'payment.authorized APPROVED hold-1';
const EXPECTED = {
  approved: { status: 'APPROVED', hold: 'hold-1', versionMoved: true },
  // A retry of a committed decision moves nothing and writes no second event.
  retried: undefined,
  eventsAfterApproval: [APPROVED_EVENT],
  stale: undefined,
  staleLeft: 'RECEIVED',
  changedMeanwhile: undefined,
  eventsAfterRefusals: [APPROVED_EVENT],
  takenOverDecides: 'APPROVED',
  eventsAtEnd: 2,
};

describe('PaymentStore: a decision and its event in one statement, only on the row as it was seen', () => {
  it('on PostgreSQL', async () => {
    expect(await onFreshPostgres(runTransitionScenario)).toEqual(EXPECTED);
  });

  it('on embedded PGlite', async () => {
    expect(await inChildProcess('services/gateway/test/support/pglite-transition-scenario.ts')).toEqual(EXPECTED);
  });
});

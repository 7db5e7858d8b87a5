import { inChildProcess, onFreshPostgres } from '../../../test/support/both-databases';
import { runStoreScenario, STEP_UP } from './support/store-scenario';

const oneTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe('alert store on both databases (PostgreSQL and embedded PGlite)', () => {
  const expected = (kind: string) => ({
    kind,
    pruned: { alerts: 5 },
    retained: [...oneTo(21)].slice(5),
    afterPrune: 21,
    duplicates: 1,
    sequences: oneTo(20),
    eventsStored: 20,
    allDrafted: true,
    otherAccount: [1],
    page: [19, 20, 21],
    wrist: { name: 'm', minor: '990', currency: 'EUR' },
    stepUp: { challengeId: STEP_UP.challengeId, nonce: STEP_UP.nonce.toString('hex'), expiresAt: STEP_UP.expiresAt.toISOString() },
    noStepUp: 'none',
  });

  it('PostgreSQL: concurrent alerts of one account take 1..N with no gap; a redelivery takes none; retention prunes the oldest and the feed carries on; a step-up reads back byte for byte', async () => {
    expect(await onFreshPostgres(runStoreScenario)).toEqual(expected('postgres'));
  });

  it('PGlite: the same', async () => {
    expect(await inChildProcess('services/alerts/test/support/store-pglite.ts', {}, 60_000)).toEqual(expected('pglite'));
  }, 70_000);
});

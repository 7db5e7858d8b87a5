import { inChildProcess, onFreshPostgres } from '../../../test/support/both-databases';
import { expectedVerificationWrite, runVerificationWriteScenario } from './support/verification-write-scenario';

// The verification write (src/verification-write.ts, migrations/002_verify_in_one_round_trip.sql)
// on both databases the store runs on: two statements per verification, the answers, the
// stored bytes, the events, the races, and one idempotency record shared with platform `once`.
describe('verification write in one round trip', () => {
  it('on PostgreSQL', async () => {
    expect(await onFreshPostgres(runVerificationWriteScenario)).toEqual(expectedVerificationWrite());
  });

  it('on embedded PGlite', async () => {
    expect(await inChildProcess('services/tokenization/test/support/verification-write-pglite.ts', {}, 90_000)).toEqual(expectedVerificationWrite());
  }, 100_000);
});

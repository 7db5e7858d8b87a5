import { printOnPglite } from '../../../../test/support/both-databases';
import { runVerificationWriteScenario } from './verification-write-scenario';

// Child-process entry for services/tokenization/test/verification-write.test.ts: the scenario on embedded PGlite.
printOnPglite(runVerificationWriteScenario);

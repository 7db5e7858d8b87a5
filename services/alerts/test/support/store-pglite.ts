import { printOnPglite } from '../../../../test/support/both-databases';
import { runStoreScenario } from './store-scenario';

// Child-process entry for services/alerts/test/store.test.ts: the store scenario on embedded PGlite.
printOnPglite(runStoreScenario);

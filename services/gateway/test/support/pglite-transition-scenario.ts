import { printOnPglite } from '../../../../test/support/both-databases';
import { runTransitionScenario } from './transition-scenario';

// Child-process entry for payment-store.test.ts: the transition scenario on embedded PGlite.
printOnPglite(runTransitionScenario);

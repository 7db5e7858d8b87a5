import { printOnPglite } from '../../../../test/support/both-databases';
import { runLimitsScenario } from './limits-scenario';

// Child-process entry for band-limits.test.ts: the band-limits scenario on embedded PGlite.
printOnPglite(runLimitsScenario);

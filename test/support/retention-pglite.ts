import { printOnPglite } from './both-databases';
import { runRetentionScenario } from './retention-scenario';

// Child-process entry for platform/retention.test.ts: the retention scenario on embedded PGlite.
printOnPglite(runRetentionScenario);

import { printOnPglite } from './both-databases';
import { runIdempotencyScenario } from './idempotency-scenario';

// Child-process entry for platform/idempotency.test.ts: the once() scenario on embedded PGlite.
printOnPglite(runIdempotencyScenario);

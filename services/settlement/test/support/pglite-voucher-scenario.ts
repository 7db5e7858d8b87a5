import { printOnPglite } from '../../../../test/support/both-databases';
import { runVoucherScenario } from './voucher-scenario';

// Child-process entry for voucher-store.test.ts: the voucher scenario on embedded PGlite.
printOnPglite(runVoucherScenario);

import { printOnPglite } from '../../../../test/support/both-databases';
import { runLedgerScenario } from './ledger-scenario';

// Child-process entry for ledger-store.test.ts: the ledger scenario on embedded PGlite.
printOnPglite(runLedgerScenario);

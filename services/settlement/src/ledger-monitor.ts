import type { Db } from '../../../platform/db';
import type { Logger } from '../../../platform/log';
import { recordLedgerCheck } from '../../../platform/telemetry/metrics';
import { checkLedger } from './invariants';

/**
 * Runs the ledger check (invariants.ts, the same rules as `npm run ledger:check`) every
 * `intervalSeconds` inside the service, so a broken invariant pages someone
 * (wristpay.ledger.checks{result="violations"}, alert LedgerCheckFailed) instead of waiting for
 * somebody to run the tool. Read-only (one REPEATABLE READ transaction); runs never overlap; 0
 * turns it off. Each replica checks: the result is the same, and a cluster of one still checks.
 */
export class LedgerMonitor {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly intervalSeconds: number,
  ) {}

  start(): void {
    if (!this.intervalSeconds) return;
    this.timer = setInterval(() => void this.runOnce(), this.intervalSeconds * 1000);
    this.timer.unref();
  }

  /** One check, recorded and logged; a check that could not run counts as result="error". */
  runOnce(): Promise<void> {
    this.running ??= checkLedger(this.db)
      .then(
        (result) => {
          recordLedgerCheck(result.ok ? 'ok' : 'violations', result.violations.length);
          if (!result.ok) this.log.error({ violations: result.violations.length, first: result.violations[0] }, 'ledger check found violations');
        },
        (err: Error) => {
          recordLedgerCheck('error', undefined);
          this.log.warn({ err: err.message }, 'ledger check could not run; will retry');
        },
      )
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }
}

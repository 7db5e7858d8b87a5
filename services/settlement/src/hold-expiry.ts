import type { Db } from '../../../platform/db';
import type { Logger } from '../../../platform/log';
import type { Ledger } from './ledger';

/**
 * Ends what time ends: PENDING holds past their expiry (reservation released, EXPIRED) and
 * escrow past the protection window (released to the merchant). One transaction per hold,
 * taken with SKIP LOCKED, so replicas sweeping together and a concurrent Capture or Void never
 * end a hold twice: whoever holds the row decides, the others skip it.
 */
export class HoldSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly db: Db,
    private readonly ledger: Ledger,
    private readonly relay: { kick(): void },
    private readonly log: Logger,
    private readonly intervalMs: number,
    private readonly batch: number,
  ) {}

  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  private tick(): void {
    if (this.running || this.stopped) return;
    this.running = this.sweep()
      .then((swept) => {
        if (swept.expired || swept.released) this.log.info(swept, 'holds swept');
      })
      .catch((err) => this.log.warn({ err }, 'hold sweep failed; will retry'))
      .finally(() => {
        this.running = undefined;
      });
  }

  /** One full pass; resolves with how many holds expired and how many escrows were released. */
  async sweep(): Promise<{ expired: number; released: number }> {
    const expired = await this.pass('expiry', (id) => this.db.tx((q) => this.ledger.expire(q, id)));
    const released = await this.pass('release', (id) => this.db.tx((q) => this.ledger.autoRelease(q, id)));
    if (expired || released) this.relay.kick();
    return { expired, released };
  }

  private async pass(what: 'expiry' | 'release', step: (holdId: string) => Promise<boolean>): Promise<number> {
    let total = 0;
    for (;;) {
      const due = await this.ledger.store.dueHolds(this.db, what, this.batch);
      let done = 0;
      for (const holdId of due) {
        if (this.stopped) return total + done;
        try {
          if (await step(holdId)) done++;
        } catch (err) {
          this.log.error({ err, holdId, what }, 'hold sweep step failed');
        }
      }
      total += done;
      // A short page is the last one; a page where nothing could be done is locked by others.
      if (due.length < this.batch || done === 0) return total;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }
}

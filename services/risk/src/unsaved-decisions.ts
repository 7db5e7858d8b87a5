import type { Logger } from '../../../platform/log';
import { DecisionBacklog, type UnsavedDecision } from './domain/decision-backlog';
import type { DecisionStore } from './decision-store';

const LAST_TRY_EVERY_MS = 100;

export interface UnsavedDecisionsOptions {
  /** Most decisions held in memory (RISK_DECISION_BACKLOG_MAX); the oldest is dropped beyond. */
  max: number;
  log: Logger;
  /** First retry after a failed write, doubled on each failure up to `retryMaxMs`. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** At most one log line per this many ms. */
  logEveryMs?: number;
  /** Writes sent together (pipelined on the one connection, so still in order). */
  batch?: number;
}

/**
 * Decisions Score answered but could not store — every degraded one, and full ones whose save
 * failed or timed out — held in memory until Redis answers again, then written to the decision
 * store oldest first with `saveIfAbsent` (idempotent per payment, never over a full decision,
 * never over a label). Writes are tried on a timer with backoff while entries wait, as soon as
 * the Redis client reports `ready` (`flushSoon`), and after the next save that succeeds.
 *
 * The Score path only calls `keep` and `stored`, which never wait on Redis. Explain answers from
 * `find` while a decision waits, and Feedback (and a dispute label) writes it first with
 * `ensureStored`, so a label has a decision to land on. What this holds is this replica's only:
 * another replica's waiting decisions are not visible here.
 */
export class UnsavedDecisions {
  private readonly backlog: DecisionBacklog;
  private readonly log: Logger;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;
  private readonly logEveryMs: number;
  private readonly batch: number;
  private retryMs: number;
  private timer: NodeJS.Timeout | undefined;
  private logTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<boolean> | undefined;
  private closed = false;
  // Since the last log line.
  private kept = 0;
  private written = 0;
  private dropped = 0;
  private lastDropped: string | undefined;
  private lastError: string | undefined;
  private loggedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly store: Pick<DecisionStore, 'saveIfAbsent'>,
    options: UnsavedDecisionsOptions,
  ) {
    this.backlog = new DecisionBacklog(options.max);
    this.log = options.log;
    this.retryMinMs = options.retryMinMs ?? 250;
    this.retryMaxMs = options.retryMaxMs ?? 10_000;
    this.logEveryMs = options.logEveryMs ?? 10_000;
    this.batch = options.batch ?? 100;
    this.retryMs = this.retryMinMs;
  }

  /** How many decisions wait. */
  get size(): number {
    return this.backlog.size;
  }

  /** Holds a decision that could not be stored; synchronous, so Score never waits on it. */
  keep(paymentId: string, decision: UnsavedDecision): void {
    const { outcome, dropped } = this.backlog.add(paymentId, decision);
    if (outcome === 'added') this.kept++;
    if (dropped !== undefined) {
      this.dropped++;
      this.lastDropped = dropped;
    }
    this.schedule();
    this.report();
  }

  /**
   * Score stored a full decision for `paymentId`: anything waiting for it is superseded (and
   * `saveIfAbsent` would keep the stored one anyway). Redis answers, so write the rest now.
   */
  stored(paymentId: string): void {
    this.backlog.remove(paymentId);
    this.flushSoon();
  }

  /** The decision waiting for `paymentId`, if this replica holds one. */
  find(paymentId: string): UnsavedDecision | undefined {
    return this.backlog.get(paymentId);
  }

  /** Writes the decision waiting for `paymentId`, if any, before something labels it; throws when Redis does. */
  async ensureStored(paymentId: string): Promise<void> {
    const waiting = this.backlog.get(paymentId);
    if (!waiting) return;
    await this.store.saveIfAbsent(paymentId, waiting);
    if (this.backlog.remove(paymentId, waiting)) this.written++;
  }

  /** Starts a write of everything waiting now, not at the next retry (Redis is back). Never throws. */
  flushSoon(): void {
    if (this.backlog.size === 0 || this.flushing) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    void this.flush();
  }

  /**
   * Writes what waits, oldest first, until none is left (true) or a write fails (false; the next
   * try is scheduled with backoff). One flush at a time: a second call joins the running one.
   */
  flush(): Promise<boolean> {
    this.flushing ??= this.drain().then((done) => {
      this.flushing = undefined;
      if (!done) this.schedule();
      return done;
    });
    return this.flushing;
  }

  /**
   * Stops the retry timer and makes last tries, for at most `budgetMs`; what is still waiting is
   * logged as a count. Those decisions are not lost to the rest of the mesh: their risk.scored
   * events on JetStream carry the decision and its reasons (not the features).
   */
  async close(budgetMs: number): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.backlog.size > 0) {
      // Redis may have just come back with the client not reconnected yet (writes fail fast
      // then): keep trying, every LAST_TRY_EVERY_MS whatever the backoff, until the budget is spent.
      const deadline = Date.now() + budgetMs;
      let timer: NodeJS.Timeout | undefined;
      const outOfTime = new Promise<'out of time'>((resolve) => {
        timer = setTimeout(() => resolve('out of time'), Math.max(0, budgetMs));
      });
      const lastTries = async () => {
        while (!(await this.flush()) && Date.now() + LAST_TRY_EVERY_MS < deadline) {
          await new Promise((resolve) => setTimeout(resolve, LAST_TRY_EVERY_MS));
        }
      };
      await Promise.race([lastTries(), outOfTime]).finally(() => clearTimeout(timer));
    }
    clearTimeout(this.logTimer);
    this.logTimer = undefined;
    this.report(true);
    if (this.backlog.size > 0) {
      this.log.warn(
        { notStored: this.backlog.size, droppedTotal: this.backlog.dropped, err: this.lastError },
        'risk decisions not stored at shutdown: Explain will not find them; their risk.scored events on JetStream still carry decision and reasons',
      );
    }
  }

  private async drain(): Promise<boolean> {
    for (;;) {
      const batch = this.backlog.oldest(this.batch);
      if (batch.length === 0) {
        this.retryMs = this.retryMinMs;
        this.report();
        return true;
      }
      const results = await Promise.allSettled(batch.map(([id, decision]) => this.store.saveIfAbsent(id, decision)));
      let failed: Error | undefined;
      results.forEach((result, i) => {
        const [id, decision] = batch[i]!;
        if (result.status === 'fulfilled') {
          if (this.backlog.remove(id, decision)) this.written++;
        } else {
          failed ??= result.reason as Error;
        }
      });
      if (failed) {
        this.lastError = failed.message;
        this.retryMs = Math.min(this.retryMs * 2, this.retryMaxMs);
        this.report();
        return false;
      }
    }
  }

  /** A retry at the current backoff, unless one is pending, a flush runs, or nothing waits. */
  private schedule(): void {
    if (this.closed || this.timer || this.flushing || this.backlog.size === 0) return;
    const delay = this.retryMs;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delay);
    // Waiting decisions do not hold the process open; close() makes the last try.
    this.timer.unref();
  }

  /**
   * At most one line per `logEveryMs`, with counts since the last one and payment ids only. A
   * change inside the interval is reported when it ends.
   */
  private report(force = false): void {
    if (this.kept === 0 && this.written === 0 && this.dropped === 0) return;
    const now = Date.now();
    const wait = this.loggedAt + this.logEveryMs - now;
    if (!force && wait > 0) {
      if (!this.logTimer && !this.closed) {
        this.logTimer = setTimeout(() => {
          this.logTimer = undefined;
          this.report();
        }, wait);
        this.logTimer.unref();
      }
      return;
    }
    const fields = {
      waiting: this.backlog.size,
      kept: this.kept,
      written: this.written,
      dropped: this.dropped,
      droppedTotal: this.backlog.dropped,
      ...(this.lastDropped !== undefined ? { lastDroppedPaymentId: this.lastDropped } : {}),
      ...(this.backlog.size > 0 && this.lastError ? { err: this.lastError } : {}),
    };
    if (this.dropped > 0) this.log.warn(fields, 'decision backlog full: oldest unsaved risk decisions dropped');
    else if (this.backlog.size > 0) this.log.warn(fields, 'risk decisions waiting in memory until Redis answers');
    else this.log.info(fields, 'unsaved risk decisions written to Redis');
    this.loggedAt = now;
    this.kept = 0;
    this.written = 0;
    this.dropped = 0;
    this.lastDropped = undefined;
  }
}

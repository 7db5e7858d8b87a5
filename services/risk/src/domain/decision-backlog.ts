import type { Verdict } from './decision';
import type { Features } from './features';

/** A decision that was answered but not yet written to the decision store. */
export interface UnsavedDecision {
  verdict: Verdict;
  features: Features;
  scoredAt: Date;
  /** Made by the fallback without history; a full decision for the same payment is worth more. */
  degraded: boolean;
}

/** What `add` did: a new entry, a degraded entry upgraded to a full one, or nothing (the first stays). */
export type BacklogAdd = 'added' | 'replaced' | 'already kept';

/**
 * The decisions this process could not store yet, one per payment id, oldest first, at most
 * `max`: when full, the oldest is dropped and counted. Pure (no I/O, no timers) so the bound, the
 * order and the drop count are tested on their own; writing them out is UnsavedDecisions' job.
 *
 * One entry per payment: a rescore of a payment already waiting keeps the first decision (the one
 * the risk.scored event, deduplicated by payment id, carries too), except that a full decision
 * replaces a degraded one, in place, so it keeps its turn.
 */
export class DecisionBacklog {
  // A Map iterates in insertion order, and `set` on an existing key keeps its place: oldest first.
  private readonly entries = new Map<string, UnsavedDecision>();
  private droppedTotal = 0;

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`backlog bound must be a positive integer, got ${max}`);
  }

  get size(): number {
    return this.entries.size;
  }

  /** How many decisions were dropped to keep the bound, since this backlog was made. */
  get dropped(): number {
    return this.droppedTotal;
  }

  /** Keeps `decision` for `paymentId`; `dropped` names the payment pushed out to make room. */
  add(paymentId: string, decision: UnsavedDecision): { outcome: BacklogAdd; dropped?: string } {
    const waiting = this.entries.get(paymentId);
    if (waiting) {
      if (waiting.degraded && !decision.degraded) {
        this.entries.set(paymentId, decision);
        return { outcome: 'replaced' };
      }
      return { outcome: 'already kept' };
    }
    let dropped: string | undefined;
    if (this.entries.size >= this.max) {
      dropped = this.entries.keys().next().value as string;
      this.entries.delete(dropped);
      this.droppedTotal++;
    }
    this.entries.set(paymentId, decision);
    return dropped === undefined ? { outcome: 'added' } : { outcome: 'added', dropped };
  }

  get(paymentId: string): UnsavedDecision | undefined {
    return this.entries.get(paymentId);
  }

  /** Up to `n` entries, oldest first. */
  oldest(n: number): Array<[string, UnsavedDecision]> {
    const out: Array<[string, UnsavedDecision]> = [];
    for (const entry of this.entries) {
      if (out.length >= n) break;
      out.push(entry);
    }
    return out;
  }

  /**
   * Forgets `paymentId`. With `written`, only if that is still the entry waiting: one that
   * replaced it while it was being written (a full decision over a degraded one) stays.
   */
  remove(paymentId: string, written?: UnsavedDecision): boolean {
    if (written && this.entries.get(paymentId) !== written) return false;
    return this.entries.delete(paymentId);
  }
}

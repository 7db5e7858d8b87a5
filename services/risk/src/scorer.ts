import type { Logger } from '../../../platform/log';
import { decide, degrade, type Policy, type Verdict } from './domain/decision';
import { DEFAULT_EVENT_TIME_BOUNDS, eventTime, type EventTimeBounds } from './domain/event-time';
import { degradedFeatures, deriveFeatures, type Features, type ScoreInput } from './domain/features';
import type { LogisticModel } from './domain/model';
import type { RuleSet } from './domain/rules';
import type { DecisionStore } from './decision-store';
import type { RiskEvents } from './events';
import type { FeatureStore } from './feature-store';
import type { RuleBook } from './rulebook';
import type { UnsavedDecisions } from './unsaved-decisions';

export interface ScorerDeps {
  features: FeatureStore;
  decisions: DecisionStore;
  /** Where a decision that could not be stored waits for Redis (never awaited here). */
  unsaved: Pick<UnsavedDecisions, 'keep' | 'stored'>;
  book: RuleBook;
  events: RiskEvents;
  policy: Policy;
  fallbackMaxApproveMinor: number;
  redisTimeoutMs: number;
  /** occurred_at is believed within these bounds of the clock (default: 24 h back, 5 s ahead). */
  eventTime?: EventTimeBounds;
  /** ms since the epoch; injectable so tests can walk windows to their edges. */
  clock: () => number;
  log: Logger;
}

/**
 * The full (not degraded) path for one payment, shared by the service and the backtest so both
 * window a payment at the same event time, read the same history and teach the baselines the
 * same way: record at event time, derive, decide, then settle (an approved payment teaches the
 * account's baselines; a stopped one counts against its merchant).
 */
export async function assess(
  store: Pick<FeatureStore, 'record' | 'settle'>,
  input: ScoreInput,
  clockMs: number,
  bounds: EventTimeBounds,
  book: { rules: RuleSet; model: LogisticModel },
  policy: Policy,
  bounded: <T>(work: Promise<T>) => Promise<T> = (w) => w,
): Promise<{ verdict: Verdict; features: Features; at: number; settled: Promise<void> }> {
  const at = eventTime(input.occurredAtMs, clockMs, bounds);
  const { history } = await bounded(store.record(input, at));
  const features = deriveFeatures(input, history);
  const verdict = decide(features, book.rules, book.model, policy);
  return { verdict, features, at: history.at, settled: store.settle(input, history.at, verdict.decision) };
}

export interface Scored {
  verdict: Verdict;
  features: Features;
  scoredAt: Date;
  degraded: boolean;
}

class StoreTimeout extends Error {
  constructor(ms: number) {
    super(`feature store did not answer within ${ms} ms`);
  }
}

function within<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreTimeout(ms)), ms);
  });
  // A late failure of the abandoned call must not become an unhandled rejection.
  work.catch(() => undefined);
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Scores one payment: record it in the feature store (once per payment id), derive features,
 * apply the rule set and model in force, store the decision for Explain, publish it. When the
 * feature store is unreachable or slow the answer is the degraded fallback, never an error.
 * A decision that cannot be stored (every degraded one, and a full one whose save fails or
 * times out) waits in `unsaved` until Redis answers; the degraded path never waits on Redis.
 */
export class Scorer {
  private degradedCount = 0;
  private degradedLoggedAt = 0;

  constructor(private readonly deps: ScorerDeps) {}

  /** One warning per 10 s while degraded, with how many decisions were, not one per payment. */
  private noteDegraded(err: Error, paymentId: string): void {
    this.degradedCount++;
    const now = Date.now();
    if (now - this.degradedLoggedAt < 10_000) return;
    this.deps.log.warn({ err: err.message, paymentId, degradedDecisions: this.degradedCount }, 'feature store unavailable; degraded decisions');
    this.degradedLoggedAt = now;
    this.degradedCount = 0;
  }

  async score(input: ScoreInput): Promise<Scored> {
    const { features: store, decisions, unsaved, book, events, policy, log } = this.deps;
    const now = this.deps.clock();
    const { rules, model } = book.current();
    let scored: Scored;
    let settled: Promise<void> | undefined;
    try {
      const done = await assess(store, input, now, this.deps.eventTime ?? DEFAULT_EVENT_TIME_BOUNDS, { rules, model }, policy, (w) => within(w, this.deps.redisTimeoutMs));
      // Handled at once: a rejection must not go unhandled while the save below is awaited.
      settled = done.settled.catch((err: Error) => log.debug({ err: err.message, paymentId: input.paymentId }, 'baselines not updated for this payment'));
      scored = { verdict: done.verdict, features: done.features, scoredAt: new Date(done.at), degraded: false };
    } catch (err) {
      this.noteDegraded(err as Error, input.paymentId);
      const features = degradedFeatures(input);
      const verdict = degrade(decide(features, rules, model, policy), features, this.deps.fallbackMaxApproveMinor, policy.maxReasons);
      scored = { verdict, features, scoredAt: new Date(now), degraded: true };
    }
    const decision = { verdict: scored.verdict, features: scored.features, scoredAt: scored.scoredAt, degraded: scored.degraded };
    if (scored.degraded) {
      unsaved.keep(input.paymentId, decision);
    } else {
      // A save that timed out may still land; the later write from the backlog then keeps it.
      await within(decisions.save(input.paymentId, decision), this.deps.redisTimeoutMs).then(
        () => unsaved.stored(input.paymentId),
        (err: Error) => {
          // Per payment at debug: the backlog logs counts once per interval.
          log.debug({ err: err.message, paymentId: input.paymentId }, 'decision not stored yet; kept in memory until Redis answers');
          unsaved.keep(input.paymentId, decision);
        },
      );
    }
    // Learning is not the answer: a failure leaves the baselines a payment short, which the next
    // approved payment barely notices, so it is logged and the decision still goes out.
    if (settled) {
      await within(settled, this.deps.redisTimeoutMs).catch(() => undefined);
    }
    events.publish(input, scored.verdict, scored.scoredAt);
    return scored;
  }

  /** A FRAUD label: the payment's contribution to its account's baselines is taken back out. */
  async unlearn(paymentId: string): Promise<boolean> {
    return this.deps.features.unlearn(paymentId, this.deps.clock());
  }
}

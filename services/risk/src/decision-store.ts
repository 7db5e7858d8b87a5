import type Redis from 'ioredis';
import { IdempotencyKeyReused, NotFound } from '../../../platform/errors';
import { taggedKey } from '../../../platform/redis';
import type { Features } from './domain/features';
import type { Verdict } from './domain/decision';
import type { UnsavedDecision } from './domain/decision-backlog';

export type StoredLabel = 'FRAUD' | 'LEGIT';

/** What a label carried by an event did: applied, a redelivery (nothing changed), nothing to label, or the same event id with another outcome. */
export type LabelFromEvent = 'labelled' | 'already labelled' | 'no decision' | 'conflict';

export interface StoredDecision {
  verdict: Verdict;
  features: Features;
  scoredAt: Date;
  label: StoredLabel | undefined;
  labelSource: string | undefined;
}

/*
 * <p>:risk-decision:{payment}  HASH  verdict (JSON), features (JSON), scored_at (ms),
 *                                    degraded ("1" for a fallback decision; absent or "0" otherwise),
 *                                    label, label_source, labeled_at,
 *                                    fb:<idempotency key> → "label|source"   (Feedback)
 *                                    ev:<event id> → "label|source"          (payment.dispute.resolved)
 * One key per payment, tagged by the payment id, kept RISK_DECISION_TTL_DAYS.
 */

// KEYS: decision. ARGV: request field (fb:<key> or ev:<event id>), label, source, now ms.
// Returns 'missing', 'reused' (same field, other request), 'same' (already applied) or 'ok'.
// A label under a new field replaces the label: the latest outcome wins, whichever way it came (a
// dispute outcome overrules a first report; an analyst's later Feedback overrules the dispute).
// The same field changes nothing, so a retried Feedback or a redelivered event cannot bring back
// an overruled label.
const LABEL = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
local field = ARGV[1]
local request = ARGV[2] .. '|' .. ARGV[3]
local prior = redis.call('HGET', KEYS[1], field)
if prior then
  if prior == request then return 'same' end
  return 'reused'
end
redis.call('HSET', KEYS[1], field, request, 'label', ARGV[2], 'label_source', ARGV[3], 'labeled_at', ARGV[4])
return 'ok'
`;

export class NoDecision extends NotFound {
  constructor(paymentId: string, ttlDays: number) {
    super(`no risk decision is stored for payment ${paymentId} (decisions are kept ${ttlDays} days)`);
  }
}

// KEYS: decision. ARGV: verdict, features, scored_at, degraded ("1"/"0"), ttl ms.
// Returns 'stored' or 'kept'. Writes a decision that waited in memory (UnsavedDecisions) only if
// none is stored, or if the stored one is degraded and this one is not. So a write that is
// repeated (a flush whose reply was lost, a save that timed out but landed) changes nothing, a
// decision made later with history is not replaced by an older fallback, and only the verdict
// fields are touched: a label recorded meanwhile stays.
const SAVE_IF_ABSENT = `
if redis.call('HEXISTS', KEYS[1], 'verdict') == 1 then
  if ARGV[4] == '1' or redis.call('HGET', KEYS[1], 'degraded') ~= '1' then return 'kept' end
end
redis.call('HSET', KEYS[1], 'verdict', ARGV[1], 'features', ARGV[2], 'scored_at', ARGV[3], 'degraded', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 'stored'
`;

interface LabelRedis extends Redis {
  riskLabel(key: string, ...argv: Array<string | number>): Promise<'missing' | 'reused' | 'same' | 'ok'>;
  riskSaveIfAbsent(key: string, ...argv: Array<string | number>): Promise<'stored' | 'kept'>;
}

/** Each decision with its features, for Explain, Feedback and later training. */
export class DecisionStore {
  private readonly redis: LabelRedis;

  constructor(
    redis: Redis,
    private readonly prefix: string,
    private readonly ttlDays: number,
  ) {
    if (!('riskLabel' in redis)) redis.defineCommand('riskLabel', { numberOfKeys: 1, lua: LABEL });
    if (!('riskSaveIfAbsent' in redis)) redis.defineCommand('riskSaveIfAbsent', { numberOfKeys: 1, lua: SAVE_IF_ABSENT });
    this.redis = redis as LabelRedis;
  }

  key = (paymentId: string) => taggedKey(this.prefix, 'risk-decision', paymentId);

  /**
   * Stores (or, on a rescore, replaces) a decision made with history, as Score makes it; a label
   * already recorded is kept.
   */
  async save(paymentId: string, decision: Pick<StoredDecision, 'verdict' | 'features' | 'scoredAt'>): Promise<void> {
    const key = this.key(paymentId);
    await this.redis
      .multi()
      .hset(key, { verdict: JSON.stringify(decision.verdict), features: JSON.stringify(decision.features), scored_at: decision.scoredAt.getTime(), degraded: '0' })
      .pexpire(key, this.ttlDays * 86_400_000)
      .exec()
      .then((replies) => {
        const failed = replies?.find(([err]) => err);
        if (failed) throw failed[0];
      });
  }

  /**
   * Writes a decision that could not be stored when it was made (see SAVE_IF_ABSENT): idempotent
   * per payment id, never over a full decision, never touching a label. 'kept' when the stored
   * one stays.
   */
  async saveIfAbsent(paymentId: string, decision: UnsavedDecision): Promise<'stored' | 'kept'> {
    return this.redis.riskSaveIfAbsent(
      this.key(paymentId),
      JSON.stringify(decision.verdict),
      JSON.stringify(decision.features),
      decision.scoredAt.getTime(),
      decision.degraded ? '1' : '0',
      this.ttlDays * 86_400_000,
    );
  }

  async get(paymentId: string): Promise<StoredDecision> {
    const h = await this.redis.hgetall(this.key(paymentId));
    if (!h.verdict || !h.features) throw new NoDecision(paymentId, this.ttlDays);
    return {
      verdict: JSON.parse(h.verdict) as StoredDecision['verdict'],
      features: JSON.parse(h.features) as Features,
      scoredAt: new Date(Number(h.scored_at)),
      label: h.label === 'FRAUD' || h.label === 'LEGIT' ? h.label : undefined,
      labelSource: h.label_source || undefined,
    };
  }

  /** Records a label on a stored decision, once per idempotency key (Feedback). */
  async label(paymentId: string, idempotencyKey: string, label: StoredLabel, source: string, now: number): Promise<void> {
    const result = await this.redis.riskLabel(this.key(paymentId), `fb:${idempotencyKey}`, label, source, now);
    if (result === 'missing') throw new NoDecision(paymentId, this.ttlDays);
    if (result === 'reused') throw new IdempotencyKeyReused();
  }

  /**
   * Records a label that an event carried (a dispute outcome), once per event id; kept apart
   * from Feedback's idempotency keys. 'missing' when no decision is stored (never scored here,
   * or expired), 'conflict' when this event id already labelled the payment differently.
   */
  async labelFromEvent(paymentId: string, eventId: string, label: StoredLabel, source: string, now: number): Promise<LabelFromEvent> {
    const result = await this.redis.riskLabel(this.key(paymentId), `ev:${eventId}`, label, source, now);
    return ({ ok: 'labelled', same: 'already labelled', missing: 'no decision', reused: 'conflict' } as const)[result];
  }
}

import type { Features } from './features';
import { evaluateModel, type LogisticModel } from './model';
import { firedRules, type Force, type RuleSet } from './rules';

export type DecisionName = 'APPROVE' | 'CHALLENGE' | 'DECLINE';

export interface ReasonOut {
  code: string;
  description: string;
  points: number;
  force?: Force;
}

export interface Verdict {
  decision: DecisionName;
  /** 0-1000: rule points plus model points, capped. */
  score: number;
  /** Most important first: forced DECLINE, forced CHALLENGE, then by points. */
  reasons: ReasonOut[];
  rulesetVersion: string;
  modelVersion: string;
  probability: number;
}

export interface Policy {
  /** Score at or above which the phone must confirm. */
  challengeAt: number;
  /** Score at or above which the payment is refused. */
  declineAt: number;
  /** How many reasons a decision returns. */
  maxReasons: number;
}

/** Below this the model's points still count in the score but are not listed as a reason. */
export const MODEL_REASON_MIN_POINTS = 10;

const RANK: Record<DecisionName, number> = { APPROVE: 0, CHALLENGE: 1, DECLINE: 2 };
const stricter = (a: DecisionName, b: DecisionName): DecisionName => (RANK[a] >= RANK[b] ? a : b);
const forceRank = (r: ReasonOut) => (r.force === 'DECLINE' ? 2 : r.force === 'CHALLENGE' ? 1 : 0);

export const REASON = {
  sessionNotLive: 'SESSION_NOT_LIVE',
  model: 'MODEL_SCORE',
  redisUnavailable: 'REDIS_UNAVAILABLE',
  fallbackAmount: 'FALLBACK_AMOUNT_LIMIT',
} as const;

function sortReasons(reasons: ReasonOut[]): ReasonOut[] {
  // Array.prototype.sort is stable: equal reasons keep rule-file order.
  return [...reasons].sort((a, b) => forceRank(b) - forceRank(a) || b.points - a.points);
}

/**
 * Decides one payment. The score is the fired rules' points plus the model's, capped at 1000
 * (model points under MODEL_REASON_MIN_POINTS count in the score without a reason of their own);
 * the decision is the strictest of what the thresholds say and what any fired rule forces.
 *
 * One policy does not depend on the rule file: a payment without a live band session is never
 * approved silently (the product's promise is "no password only while the band is live"), so a
 * rule file that lost its SESSION_NOT_LIVE rule still cannot approve one.
 */
export function decide(features: Features, rules: RuleSet, model: LogisticModel, policy: Policy): Verdict {
  const reasons: ReasonOut[] = firedRules(rules, features).map((rule) => ({
    code: rule.id,
    description: rule.description,
    points: rule.effect.points,
    ...(rule.effect.force ? { force: rule.effect.force } : {}),
  }));
  const m = evaluateModel(model, features);
  // A few points of model background on every payment are not a reason worth showing.
  if (m.points >= MODEL_REASON_MIN_POINTS) {
    const top = m.contributions.filter((c) => c.logit > 0).slice(0, 2).map((c) => c.feature);
    reasons.push({
      code: REASON.model,
      description: `model fraud probability ${(m.probability * 100).toFixed(1)}%${top.length ? ` (strongest: ${top.join(', ')})` : ''}`,
      points: m.points,
    });
  }
  const score = Math.min(1000, reasons.reduce((sum, r) => sum + (r.code === REASON.model ? 0 : r.points), 0) + m.points);
  let decision: DecisionName = score >= policy.declineAt ? 'DECLINE' : score >= policy.challengeAt ? 'CHALLENGE' : 'APPROVE';
  for (const r of reasons) if (r.force) decision = stricter(decision, r.force);
  if (features.session_live !== 1 && decision === 'APPROVE') {
    decision = 'CHALLENGE';
    if (!reasons.some((r) => r.code === REASON.sessionNotLive)) {
      reasons.push({ code: REASON.sessionNotLive, description: 'no live band session: the phone must confirm', points: 0, force: 'CHALLENGE' });
    }
  }
  return { decision, score, reasons: sortReasons(reasons).slice(0, policy.maxReasons), rulesetVersion: rules.version, modelVersion: model.version, probability: m.probability };
}

/**
 * The conservative answer when the feature store is unreachable: the rules still run on the
 * request's own features (velocity, spikes and travel are unknown and count as quiet), and on
 * top of that nothing above `maxApproveMinor` is approved silently. The first reason says the
 * decision was made without history.
 */
export function degrade(verdict: Verdict, features: Features, maxApproveMinor: number, maxReasons: number): Verdict {
  const reasons: ReasonOut[] = [{ code: REASON.redisUnavailable, description: 'feature store unreachable: conservative fallback without payment history', points: 0 }];
  let decision = verdict.decision;
  if (decision === 'APPROVE' && features.amount_minor > maxApproveMinor) {
    decision = 'CHALLENGE';
    reasons.push({ code: REASON.fallbackAmount, description: `above ${maxApproveMinor} minor units, which is the most approved without history`, points: 0, force: 'CHALLENGE' });
  }
  return { ...verdict, decision, reasons: [...reasons, ...verdict.reasons].slice(0, Math.max(maxReasons, reasons.length)) };
}

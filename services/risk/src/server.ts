import { trace } from '@opentelemetry/api';
import { Channel } from '../../../gen/wristpay/common/v1/common';
import {
  Decision,
  Label,
  RiskServiceService,
  type ExplainResponse,
  type RiskServiceServer,
  type ScoreRequest,
  type ScoreResponse,
} from '../../../gen/wristpay/risk/v1/risk';
import { DomainError, InvalidArgument, Unavailable } from '../../../platform/errors';
import { register, type Handlers } from '../../../platform/grpc/server';
import type { Logger } from '../../../platform/log';
import { ATTR } from '../../../platform/telemetry/attributes';
import { recordRiskDecision } from '../../../platform/telemetry/metrics';
import { requireIdempotencyKey } from '../../../platform/validate';
import { riskPolicy } from './policy';
import type { DecisionName, Verdict } from './domain/decision';
import { RISK_ID } from './ids';
import type { ScoreInput } from './domain/features';
import { type DecisionStore, type StoredDecision, type StoredLabel } from './decision-store';
import type { Scorer } from './scorer';
import type { UnsavedDecisions } from './unsaved-decisions';

export interface RiskDeps {
  scorer: Scorer;
  decisions: DecisionStore;
  unsaved: Pick<UnsavedDecisions, 'find' | 'ensureStored'>;
  clock: () => number;
  log: Logger;
}

const CURRENCY = /^[A-Z]{3}$/;

function requireId(value: string, field: string): string {
  if (!RISK_ID.test(value)) throw new InvalidArgument(`${field} is required: 1-128 letters, digits or . _ : @ + -`);
  return value;
}

function optionalId(value: string, field: string): string {
  return value === '' ? '' : requireId(value, field);
}

function nonNegative(value: bigint | number, field: string): number {
  if (value < 0) throw new InvalidArgument(`${field} must not be negative`);
  return Number(value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : value);
}

/** Validates a ScoreRequest into plain numbers; every problem is INVALID_ARGUMENT naming the field. */
export function toScoreInput(req: ScoreRequest): ScoreInput {
  const paymentId = requireId(req.paymentId, 'payment_id');
  const accountId = requireId(req.accountId, 'account_id');
  const deviceId = requireId(req.deviceId, 'device_id');
  const tokenId = optionalId(req.tokenId, 'token_id');
  const merchantId = optionalId(req.merchantId, 'merchant_id');
  if (!req.amount) throw new InvalidArgument('amount is required');
  if (req.amount.amountMinor <= 0n) throw new InvalidArgument('amount.amount_minor must be positive');
  if (!CURRENCY.test(req.amount.currency)) throw new InvalidArgument('amount.currency must be an ISO 4217 code (three upper-case letters)');
  let location: ScoreInput['location'];
  if (req.location) {
    const { latitude: lat, longitude: lon } = req.location;
    if (!Number.isFinite(lat) || lat < -90 || lat > 90 || !Number.isFinite(lon) || lon < -180 || lon > 180) {
      throw new InvalidArgument('location must have latitude in [-90, 90] and longitude in [-180, 180]');
    }
    location = { lat, lon };
  }
  return {
    paymentId,
    accountId,
    deviceId,
    tokenId,
    merchantId,
    // Money is int64 (the gateway authorizes up to 2^63-1 minor units); the features are floats,
    // to which every amount past 2^53 is the same very large amount: scored, not refused (a
    // refusal here left the payment undecided and the terminal with INTERNAL).
    amountMinor: nonNegative(req.amount.amountMinor, 'amount.amount_minor'),
    currency: req.amount.currency,
    location,
    channelQr: req.channel === Channel.CHANNEL_BAND_QR,
    sessionLive: req.sessionLive,
    sessionAgeSeconds: nonNegative(req.sessionAgeSeconds, 'session_age_seconds'),
    deviceAgeSeconds: nonNegative(req.deviceAgeSeconds, 'device_age_seconds'),
    cryptogramFailures: nonNegative(req.recentCryptogramFailures, 'recent_cryptogram_failures'),
    // Bounded against the clock by the scorer (domain/event-time.ts).
    occurredAtMs: req.occurredAt && Number.isFinite(req.occurredAt.getTime()) ? req.occurredAt.getTime() : undefined,
  };
}

const DECISION: Record<DecisionName, Decision> = {
  APPROVE: Decision.DECISION_APPROVE,
  CHALLENGE: Decision.DECISION_CHALLENGE,
  DECLINE: Decision.DECISION_DECLINE,
};

export function toScoreResponse(v: Verdict): ScoreResponse {
  return {
    decision: DECISION[v.decision],
    score: v.score,
    reasons: v.reasons.map((r) => ({ code: r.code, description: r.description, points: r.points })),
    rulesetVersion: v.rulesetVersion,
    modelVersion: v.modelVersion,
  };
}

const LABEL_IN: Partial<Record<Label, StoredLabel>> = { [Label.LABEL_FRAUD]: 'FRAUD', [Label.LABEL_LEGIT]: 'LEGIT' };
const LABEL_OUT: Record<StoredLabel, Label> = { FRAUD: Label.LABEL_FRAUD, LEGIT: Label.LABEL_LEGIT };

/** Redis errors on Explain/Feedback are UNAVAILABLE (retryable); only Score has a fallback. */
async function guard<T>(op: () => Promise<T>, log: Logger): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (err instanceof DomainError) throw err;
    log.warn({ err: (err as Error).message }, 'decision store call failed');
    throw new Unavailable('risk decision store (Redis) is unavailable; retry later');
  }
}

export function riskService(deps: RiskDeps) {
  const { scorer, decisions, unsaved, clock, log } = deps;

  /**
   * The stored decision; failing that (not stored yet, or Redis down), the one this replica
   * still holds in memory, unlabelled (a label needs the decision in Redis first). Another
   * replica's waiting decisions are not visible here: for those Explain says NOT_FOUND or
   * UNAVAILABLE until that replica has written them.
   */
  async function explained(paymentId: string): Promise<StoredDecision> {
    try {
      return await decisions.get(paymentId);
    } catch (err) {
      const waiting = unsaved.find(paymentId);
      if (!waiting) throw err;
      return { verdict: waiting.verdict, features: waiting.features, scoredAt: waiting.scoredAt, label: undefined, labelSource: undefined };
    }
  }

  const handlers: Handlers<RiskServiceServer> = {
    async score(req) {
      const input = toScoreInput(req);
      const { verdict } = await scorer.score(input);
      trace.getActiveSpan()?.setAttributes({
        [ATTR.paymentId]: input.paymentId,
        [ATTR.riskDecision]: verdict.decision,
        [ATTR.riskScore]: verdict.score,
        [ATTR.riskReasons]: verdict.reasons.map((r) => r.code),
        [ATTR.rulesetVersion]: verdict.rulesetVersion,
        [ATTR.modelVersion]: verdict.modelVersion,
      });
      recordRiskDecision(verdict.decision, verdict.score);
      return toScoreResponse(verdict);
    },

    async explain(req): Promise<ExplainResponse> {
      const paymentId = requireId(req.paymentId, 'payment_id');
      const stored = await guard(() => explained(paymentId), log);
      trace.getActiveSpan()?.setAttribute(ATTR.paymentId, paymentId);
      return {
        decision: toScoreResponse(stored.verdict),
        features: stored.features,
        scoredAt: stored.scoredAt,
        label: stored.label ? LABEL_OUT[stored.label] : Label.LABEL_UNSPECIFIED,
      };
    },

    async feedback(req) {
      const key = requireIdempotencyKey(req.idempotencyKey);
      const paymentId = requireId(req.paymentId, 'payment_id');
      const label = LABEL_IN[req.label];
      if (!label) throw new InvalidArgument('label must be FRAUD or LEGIT');
      if (req.source.length > 64) throw new InvalidArgument('source must be at most 64 characters');
      // A decision still waiting in memory is written first, so the label has one to land on.
      await guard(async () => {
        await unsaved.ensureStored(paymentId);
        await decisions.label(paymentId, key, label, req.source || 'feedback', clock());
      }, log);
      // Fraud must not stay in the account's baselines (amounts, usual area) it taught when approved.
      if (label === 'FRAUD') await guard(() => scorer.unlearn(paymentId), log);
      trace.getActiveSpan()?.setAttribute(ATTR.paymentId, paymentId);
      return {};
    },
  };

  return register<RiskServiceServer>({ definition: RiskServiceService, handlers, allowedCallers: riskPolicy });
}

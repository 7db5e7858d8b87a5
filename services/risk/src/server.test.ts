import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Metadata } from '@grpc/grpc-js';
import { Channel } from '../../../gen/wristpay/common/v1/common';
import { Decision, type ScoreRequest } from '../../../gen/wristpay/risk/v1/risk';
import { InvalidArgument } from '../../../platform/errors';
import type { CallContext, UnaryHandler } from '../../../platform/grpc/server';
import { createLogger } from '../../../platform/log';
import { ATTR } from '../../../platform/telemetry/attributes';
import type { DecisionStore } from './decision-store';
import type { Verdict } from './domain/decision';
import type { Scorer } from './scorer';
import { riskService, toScoreInput } from './server';

const exporter = new InMemorySpanExporter();
beforeAll(() => {
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
});
afterAll(() => {
  trace.disable();
  context.disable();
});

const request = (over: Partial<ScoreRequest> = {}): ScoreRequest => ({
  paymentId: 'pay-1',
  accountId: 'acct-1',
  deviceId: 'dev-1',
  tokenId: '',
  merchantId: '',
  amount: { amountMinor: 4_200n, currency: 'EUR' },
  location: { latitude: 0, longitude: 0 },
  channel: Channel.CHANNEL_BAND_QR,
  sessionLive: true,
  sessionAgeSeconds: 30n,
  deviceAgeSeconds: 10n,
  recentCryptogramFailures: 1,
  occurredAt: undefined,
  ...over,
});

describe('risk gRPC edge', () => {
  it('turns a request into plain numbers (empty merchant allowed, (0,0) is a place)', () => {
    expect(toScoreInput(request())).toEqual({
      paymentId: 'pay-1',
      accountId: 'acct-1',
      deviceId: 'dev-1',
      tokenId: '',
      merchantId: '',
      amountMinor: 4_200,
      currency: 'EUR',
      location: { lat: 0, lon: 0 },
      channelQr: true,
      sessionLive: true,
      sessionAgeSeconds: 30,
      deviceAgeSeconds: 10,
      cryptogramFailures: 1,
    });
    expect(toScoreInput(request({ location: undefined })).location).toBeUndefined();
    expect(() => toScoreInput(request({ amount: { amountMinor: 0n, currency: 'EUR' } }))).toThrow(InvalidArgument);
    // Any int64 amount is scored; past 2^53 the features see the largest amount a float holds exactly.
    expect(toScoreInput(request({ amount: { amountMinor: 2n ** 63n - 1n, currency: 'EUR' } })).amountMinor).toBe(Number.MAX_SAFE_INTEGER);
    expect(() => toScoreInput(request({ merchantId: 'has space' }))).toThrow(/merchant_id/);
  });

  it('scores every id the other services admit: a + in an account or merchant id is no reason to refuse', () => {
    expect(toScoreInput(request({ accountId: 'acct+family', merchantId: 'shop+kiosk' }))).toMatchObject({ accountId: 'acct+family', merchantId: 'shop+kiosk' });
    expect(() => toScoreInput(request({ accountId: '{acct}' }))).toThrow(/account_id/);
  });

  it('puts the decision, score, reason codes and ruleset/model versions on the active span, and nothing else about the payment', async () => {
    const verdict: Verdict = {
      decision: 'CHALLENGE',
      score: 450,
      reasons: [
        { code: 'IMPOSSIBLE_TRAVEL', description: 'fast', points: 450 },
        { code: 'MODEL_SCORE', description: 'model', points: 0 },
      ],
      rulesetVersion: 'r1',
      modelVersion: 'm1',
      probability: 0.01,
    };
    const scorer = { score: async () => ({ verdict, features: {}, scoredAt: new Date(), degraded: false }) } as unknown as Scorer;
    const reg = riskService({ scorer, decisions: {} as DecisionStore, unsaved: { find: () => undefined, ensureStored: async () => undefined }, clock: Date.now, log: createLogger('risk', 'silent') });
    const score = (reg.handlers as Record<string, UnaryHandler<ScoreRequest, unknown>>).score!;
    const ctx: CallContext = { method: '/wristpay.risk.v1.RiskService/Score', caller: null, metadata: new Metadata(), deadline: new Date(Date.now() + 1000), signal: new AbortController().signal };
    const res = await trace.getTracer('test').startActiveSpan('Score', async (span) => {
      try {
        return await score(request(), ctx);
      } finally {
        span.end();
      }
    });
    expect(res).toEqual({ decision: Decision.DECISION_CHALLENGE, score: 450, reasons: verdict.reasons.map(({ code, description, points }) => ({ code, description, points })), rulesetVersion: 'r1', modelVersion: 'm1' });
    const span = exporter.getFinishedSpans().find((s) => s.name === 'Score')!;
    expect(span.attributes).toEqual({
      [ATTR.paymentId]: 'pay-1',
      [ATTR.riskDecision]: 'CHALLENGE',
      [ATTR.riskScore]: 450,
      [ATTR.riskReasons]: ['IMPOSSIBLE_TRAVEL', 'MODEL_SCORE'],
      // Which rules and model decided: an analyst's trace shows them (npm run trace).
      [ATTR.rulesetVersion]: 'r1',
      [ATTR.modelVersion]: 'm1',
    });
  });
});

import { join } from 'node:path';
import { createLogger } from '../../../platform/log';
import type { DecisionStore } from './decision-store';
import { input } from './domain/fixtures';
import type { RiskEvents } from './events';
import type { FeatureStore } from './feature-store';
import { RuleBook } from './rulebook';
import { Scorer, type ScorerDeps } from './scorer';

const log = createLogger('risk', 'silent');
const rulesDir = join(__dirname, '..', 'rules');

describe('scorer fallback', () => {
  let book: RuleBook;
  beforeAll(async () => {
    book = await RuleBook.open({ rules: join(rulesDir, 'default.yaml'), model: join(rulesDir, 'model.yaml') }, log);
  });

  function scorer(features: Partial<FeatureStore>, decisions: Partial<DecisionStore> = { save: async () => undefined }) {
    const published: string[] = [];
    const kept: Array<{ paymentId: string; degraded: boolean; reasons: string[] }> = [];
    const stored: string[] = [];
    const deps: ScorerDeps = {
      features: { settle: async () => undefined, ...features } as FeatureStore,
      decisions: decisions as DecisionStore,
      unsaved: {
        keep: (paymentId, d) => kept.push({ paymentId, degraded: d.degraded, reasons: d.verdict.reasons.map((r) => r.code) }),
        stored: (paymentId) => stored.push(paymentId),
      },
      book,
      events: { publish: (_i: unknown, v: { decision: string }) => published.push(v.decision) } as unknown as RiskEvents,
      policy: { challengeAt: 400, declineAt: 800, maxReasons: 5 },
      fallbackMaxApproveMinor: 5_000,
      redisTimeoutMs: 50,
      clock: () => 1_700_000_000_000,
      log,
    };
    return { scorer: new Scorer(deps), published, kept, stored };
  }

  it('answers degraded when the store hangs, within the timeout, and still publishes', async () => {
    const saves: string[] = [];
    const { scorer: s, published, kept } = scorer({ record: () => new Promise(() => undefined) }, { save: async (id) => void saves.push(id) });
    const started = Date.now();
    const scored = await s.score(input({ amountMinor: 100 }));
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(scored.degraded).toBe(true);
    expect(scored.verdict.decision).toBe('APPROVE');
    expect(scored.verdict.reasons[0]!.code).toBe('REDIS_UNAVAILABLE');
    expect(published).toEqual(['APPROVE']);
    // Kept for a later write, without a save attempt on the degraded path.
    expect(kept).toEqual([{ paymentId: 'p1', degraded: true, reasons: expect.arrayContaining(['REDIS_UNAVAILABLE']) }]);
    expect(saves).toEqual([]);
  });

  it('answers degraded when the store fails; a large amount is challenged', async () => {
    const { scorer: s } = scorer({ record: async () => Promise.reject(new Error('ECONNREFUSED')) });
    const scored = await s.score(input({ amountMinor: 50_000 }));
    expect(scored.verdict.decision).toBe('CHALLENGE');
    expect(scored.features.degraded).toBe(1);
  });

  const history = { at: 1, device: { count1m: 1, count1h: 1, count24h: 1, sum1m: 1, sum1h: 1, sum24h: 1 }, account: { count1m: 1, count1h: 1, count24h: 1, sum1m: 1, sum1h: 1, sum24h: 1 }, merchants1h: 1, merchantFirst: false, amountN: 0, amountMean: 0, amountM2: 0, places: [], deviceBlocked: false, tokenBlocked: false, refusals1h: 0, declines1h: 0 };

  it('a stored full decision is reported as stored, not kept', async () => {
    const { scorer: s, kept, stored } = scorer({ record: async () => ({ history, replayed: false }) });
    await s.score(input());
    expect(stored).toEqual(['p1']);
    expect(kept).toEqual([]);
  });

  it('a full decision whose save hangs is answered within the timeout and kept', async () => {
    const { scorer: s, kept, stored } = scorer({ record: async () => ({ history, replayed: false }) }, { save: () => new Promise(() => undefined) });
    const started = Date.now();
    const scored = await s.score(input());
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(scored.degraded).toBe(false);
    expect(kept).toEqual([{ paymentId: 'p1', degraded: false, reasons: scored.verdict.reasons.map((r) => r.code) }]);
    expect(stored).toEqual([]);
  });

  it('still answers when the decision cannot be stored, and keeps it', async () => {
    const { scorer: s, kept } = scorer({ record: async () => ({ history, replayed: false }) }, { save: async () => Promise.reject(new Error('down')) });
    const scored = await s.score(input());
    expect(scored.degraded).toBe(false);
    expect(scored.verdict.decision).toBe('APPROVE');
    expect(kept).toEqual([{ paymentId: 'p1', degraded: false, reasons: scored.verdict.reasons.map((r) => r.code) }]);
  });
});

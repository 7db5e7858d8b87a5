import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidBandLimits, limitFeatures, limitFromMoney, NO_LIMIT_FEATURES, utcDay, type BandLimits } from './band-limits';
import { decide, type Policy } from './decision';
import { deriveFeatures, type Features } from './features';
import { history, input } from './fixtures';
import { parseModel, parseRuleSet } from './rule-file';
import type { RuleSet } from './rules';

const eur = (minor: number) => ({ minor, currency: 'EUR' });
const limits = (over: Partial<BandLimits> = {}): BandLimits => ({ perPayment: undefined, perDay: undefined, frozen: false, ...over });

const rulesDir = join(__dirname, '..', '..', 'rules');
const shipped = parseRuleSet(readFileSync(join(rulesDir, 'default.yaml'), 'utf8'), 'default.yaml');
const model = parseModel(readFileSync(join(rulesDir, 'model.yaml'), 'utf8'), 'model.yaml');
const policy: Policy = { challengeAt: 400, declineAt: 800, maxReasons: 5 };
const LIMIT_FEATURES = Object.keys(NO_LIMIT_FEATURES);
const fired = (f: Features, set: RuleSet = shipped) => decide(f, set, model, policy).reasons.map((r) => r.code);

describe('band limit features', () => {
  it('share of the per-payment limit, in the payment’s currency only', () => {
    expect(limitFeatures(4_500, 'EUR', limits({ perPayment: eur(5_000) }), 0)).toMatchObject({ band_limit_per_payment: 5_000, band_limit_per_payment_share: 0.9 });
    expect(limitFeatures(6_000, 'EUR', limits({ perPayment: eur(5_000) }), 0).band_limit_per_payment_share).toBe(1.2);
    // A USD limit says nothing about a EUR payment.
    expect(limitFeatures(4_500, 'EUR', limits({ perPayment: { minor: 5_000, currency: 'USD' } }), 0)).toMatchObject({ band_limit_per_payment: 0, band_limit_per_payment_share: 0 });
  });

  it('daily share counts today’s approved spend plus this payment', () => {
    const f = limitFeatures(1_000, 'EUR', limits({ perDay: eur(10_000) }), 8_000);
    expect(f).toMatchObject({ band_limit_per_day: 10_000, band_spend_today: 8_000, band_limit_per_day_share: 0.9 });
    expect(limitFeatures(1_000, 'EUR', limits({ perDay: eur(10_000) }), 7_999).band_limit_per_day_share).toBeLessThan(0.9);
  });

  it('a zero limit (nothing allowed) is a large, finite share; frozen is its own flag', () => {
    expect(limitFeatures(100, 'EUR', limits({ perPayment: eur(0) }), 0).band_limit_per_payment_share).toBe(100);
    expect(limitFeatures(10_000_000, 'EUR', limits({ perPayment: eur(0) }), 0).band_limit_per_payment_share).toBe(1000);
    expect(limitFeatures(100, 'EUR', limits({ frozen: true }), 0)).toEqual({ ...NO_LIMIT_FEATURES, band_frozen: 1 });
  });

  it('no limits: every limit feature is 0 except the spend it reports', () => {
    expect(limitFeatures(100, 'EUR', undefined, 0)).toEqual(NO_LIMIT_FEATURES);
    expect(limitFeatures(100, 'EUR', undefined, 5_000)).toEqual({ ...NO_LIMIT_FEATURES, band_spend_today: 5_000 });
  });

  it('reads limits from event money: unset is none, malformed is refused', () => {
    expect(limitFromMoney(undefined, 'per_day')).toBeUndefined();
    expect(limitFromMoney({ amountMinor: 5_000n, currency: 'EUR' }, 'per_day')).toEqual(eur(5_000));
    expect(() => limitFromMoney({ amountMinor: 5_000n, currency: 'eur' }, 'per_day')).toThrow(InvalidBandLimits);
    expect(() => limitFromMoney({ amountMinor: -1n, currency: 'EUR' }, 'per_payment')).toThrow(/per_payment/);
  });

  it('the UTC day a time falls in', () => {
    expect(utcDay(Date.UTC(2030, 0, 1, 23, 59, 59, 999))).toBe('2030-01-01');
    expect(utcDay(Date.UTC(2030, 0, 2))).toBe('2030-01-02');
  });
});

describe('band limit rules (rules/default.yaml)', () => {
  const score = (amountMinor: number, l: BandLimits | undefined, spendToday = 0) => fired(deriveFeatures(input({ amountMinor }), history({ limits: l, spendToday })));

  it('flags a payment using 90-100% of the per-payment limit, not one well under nor one over it (settlement refuses that)', () => {
    expect(score(4_500, limits({ perPayment: eur(5_000) }))).toContain('BAND_LIMIT_PER_PAYMENT_NEAR');
    expect(score(4_499, limits({ perPayment: eur(5_000) }))).not.toContain('BAND_LIMIT_PER_PAYMENT_NEAR');
    expect(score(1_000, limits({ perPayment: eur(5_000) }))).toEqual([]);
    expect(score(5_000, limits({ perPayment: eur(5_000) }))).toContain('BAND_LIMIT_PER_PAYMENT_NEAR');
    expect(score(5_001, limits({ perPayment: eur(5_000) }))).toEqual([]);
  });

  it('flags spend today plus this payment within 10% of the daily limit', () => {
    expect(score(1_000, limits({ perDay: eur(10_000) }), 8_000)).toContain('BAND_LIMIT_PER_DAY_NEAR');
    expect(score(1_000, limits({ perDay: eur(10_000) }), 2_000)).not.toContain('BAND_LIMIT_PER_DAY_NEAR');
    expect(score(1_000, limits({ perDay: eur(10_000) }), 9_000)).toContain('BAND_LIMIT_PER_DAY_NEAR');
    expect(score(1_000, limits({ perDay: eur(10_000) }), 9_500)).toEqual([]);
  });

  it('near a limit alone is points, not a step-up; a frozen band is flagged and left to settlement to decline', () => {
    const near = decide(deriveFeatures(input({ amountMinor: 4_800 }), history({ limits: limits({ perPayment: eur(5_000), perDay: eur(5_000) }) })), shipped, model, policy);
    expect(near.decision).toBe('APPROVE');
    expect(near.reasons.map((r) => r.code)).toEqual(expect.arrayContaining(['BAND_LIMIT_PER_PAYMENT_NEAR', 'BAND_LIMIT_PER_DAY_NEAR']));
    const frozen = decide(deriveFeatures(input(), history({ limits: limits({ frozen: true }) })), shipped, model, policy);
    expect(frozen.decision).toBe('APPROVE');
    expect(frozen.reasons.map((r) => r.code)).toContain('BAND_FROZEN');
  });

  it('a band without limits scores exactly as with the rule set before limits existed', () => {
    const before: RuleSet = { ...shipped, rules: shipped.rules.filter((r) => !r.id.startsWith('BAND_')) };
    expect(before.rules.length).toBe(shipped.rules.length - 3);
    // The model must not read limit features, or a band's spend today would move its score.
    expect(model.terms.filter((t) => LIMIT_FEATURES.includes(t.feature))).toEqual([]);
    const cases = [
      deriveFeatures(input(), history()),
      deriveFeatures(input({ amountMinor: 90_000 }), history({ amountN: 10, amountMean: 1_000, amountM2: 9 * 100 ** 2, spendToday: 50_000 })),
      deriveFeatures(input({ sessionLive: false, cryptogramFailures: 2 }), history({ device: { count1m: 4, count1h: 4, count24h: 4, sum1m: 4_000, sum1h: 4_000, sum24h: 4_000 } })),
      deriveFeatures(input({ deviceAgeSeconds: 60 }), history({ merchantFirst: true, amountN: 5, amountMean: 1_000, deviceBlocked: true })),
    ];
    for (const f of cases) {
      expect(decide(f, shipped, model, policy)).toEqual({ ...decide(f, before, model, policy), rulesetVersion: shipped.version });
    }
  });
});

import { deriveFeatures } from './features';
import { history, input } from './fixtures';
import { evaluateModel, modelSchema, type LogisticModel } from './model';
import { parseModel, RuleFileInvalid } from './rule-file';

const model = (over: object = {}): LogisticModel =>
  modelSchema.parse({ version: 'm1', bias: -2, max_points: 200, terms: [{ feature: 'cryptogram_failures', weight: 1, clip: [0, 3] }, { feature: 'device_count_1m', weight: 2, transform: 'log1p', clip: [0, 100] }], ...over });

describe('logistic model', () => {
  it('computes sigmoid(bias + Σ w·t(x)) and turns it into points', () => {
    const f = deriveFeatures(input({ cryptogramFailures: 1 }), history());
    const r = evaluateModel(model(), f);
    const z = -2 + 1 + 2 * Math.log1p(1);
    expect(r.probability).toBeCloseTo(1 / (1 + Math.exp(-z)), 12);
    expect(r.points).toBe(Math.round(200 / (1 + Math.exp(-z))));
    expect(r.contributions[0]!.feature).toBe('device_count_1m');
  });

  it("names in contributions what moved the payment away from an ordinary one (ref), not the term's raw size", () => {
    // history n is large for every established account; without a ref it would lead every reason.
    const terms = [{ feature: 'amount_history_n', weight: 0.3, transform: 'log1p', clip: [0, 10_000] }, { feature: 'cryptogram_failures', weight: 1, clip: [0, 3] }];
    const f = deriveFeatures(input({ cryptogramFailures: 1 }), history({ amountN: 500, amountMean: 1_000 }));
    expect(evaluateModel(model({ terms }), f).contributions[0]!.feature).toBe('amount_history_n');
    const withRef = model({ terms: [{ ...terms[0], ref: Math.log1p(500) }, { ...terms[1], ref: 0 }] });
    const r = evaluateModel(withRef, f);
    expect(r.contributions[0]!.feature).toBe('cryptogram_failures');
    expect(r.contributions[1]!.logit).toBeCloseTo(0, 12);
    // The probability does not depend on ref.
    expect(r.probability).toBeCloseTo(evaluateModel(model({ terms }), f).probability, 12);
  });

  it('clips before transforming', () => {
    const f = deriveFeatures(input({ cryptogramFailures: 50 }), history());
    expect(evaluateModel(model(), f).probability).toBeCloseTo(1 / (1 + Math.exp(-(-2 + 3 + 2 * Math.log1p(1)))), 12);
  });

  it('refuses unknown features, log1p without a non-negative clip, and bad points', () => {
    const base = { version: 'm1', bias: 0, max_points: 100, terms: [{ feature: 'amount_minor', weight: 1 }] };
    expect(() => parseModel(JSON.stringify(base), 'm.json')).not.toThrow();
    expect(() => parseModel(JSON.stringify({ ...base, terms: [{ feature: 'nope', weight: 1 }] }), 'm.json')).toThrow(RuleFileInvalid);
    expect(() => parseModel(JSON.stringify({ ...base, terms: [{ feature: 'amount_minor', weight: 1, transform: 'log1p' }] }), 'm.json')).toThrow(/log1p/);
    expect(() => parseModel(JSON.stringify({ ...base, max_points: 5000 }), 'm.json')).toThrow(/max_points/);
  });
});

import { deriveFeatures } from './features';
import { history, input } from './fixtures';
import { firedRules, holds, ruleSetSchema, type Condition } from './rules';
import { parseRuleSet, RuleFileInvalid } from './rule-file';

const f = deriveFeatures(input({ amountMinor: 5_000, cryptogramFailures: 2 }), history());

describe('rule conditions', () => {
  it.each<[Condition, boolean]>([
    [{ feature: 'amount_minor', op: 'gt', value: 4_999 }, true],
    [{ feature: 'amount_minor', op: 'gt', value: 5_000 }, false],
    [{ feature: 'amount_minor', op: 'gte', value: 5_000 }, true],
    [{ feature: 'amount_minor', op: 'lt', value: 5_000 }, false],
    [{ feature: 'amount_minor', op: 'lte', value: 5_000 }, true],
    [{ feature: 'cryptogram_failures', op: 'eq', value: 2 }, true],
    [{ feature: 'cryptogram_failures', op: 'neq', value: 2 }, false],
    [{ all: [{ feature: 'session_live', op: 'eq', value: 1 }, { feature: 'cryptogram_failures', op: 'gte', value: 2 }] }, true],
    [{ all: [{ feature: 'session_live', op: 'eq', value: 0 }, { feature: 'cryptogram_failures', op: 'gte', value: 2 }] }, false],
    [{ any: [{ feature: 'session_live', op: 'eq', value: 0 }, { feature: 'cryptogram_failures', op: 'gte', value: 2 }] }, true],
    [{ not: { feature: 'session_live', op: 'eq', value: 1 } }, false],
  ])('%j → %s', (condition, expected) => {
    expect(holds(condition, f)).toBe(expected);
  });

  it('fires matching rules in file order', () => {
    const set = ruleSetSchema.parse({
      version: 'v1',
      rules: [
        { id: 'B_RULE', description: 'b', when: { feature: 'cryptogram_failures', op: 'gte', value: 1 }, effect: { points: 10 } },
        { id: 'NEVER', description: 'n', when: { feature: 'cryptogram_failures', op: 'gte', value: 9 }, effect: { force: 'DECLINE' } },
        { id: 'A_RULE', description: 'a', when: { feature: 'amount_minor', op: 'gt', value: 1 }, effect: { points: 5, force: 'CHALLENGE' } },
      ],
    });
    expect(firedRules(set, f).map((r) => r.id)).toEqual(['B_RULE', 'A_RULE']);
  });
});

describe('rule files', () => {
  const good = 'version: v1\nrules:\n  - id: X_RULE\n    description: x\n    when: { feature: amount_minor, op: gt, value: 1 }\n    effect: { points: 10 }\n';

  it('parses YAML and JSON and versions them by content', () => {
    const yaml = parseRuleSet(good, 'r.yaml');
    expect(yaml.rules[0]!.effect).toEqual({ points: 10 });
    expect(yaml.version).toMatch(/^v1\+[0-9a-f]{8}$/);
    const json = parseRuleSet(JSON.stringify({ version: 'v1', rules: [{ id: 'X_RULE', description: 'x', when: { feature: 'amount_minor', op: 'gt', value: 1 }, effect: { force: 'DECLINE' } }] }), 'r.json');
    expect(json.rules[0]!.effect).toEqual({ points: 0, force: 'DECLINE' });
    expect(parseRuleSet(good.replace('10', '11'), 'r.yaml').version).not.toBe(yaml.version);
  });

  it.each([
    ['unknown feature', good.replace('amount_minor', 'amount_minr'), /rules\.0\.when.*|amount_minr|known feature|Invalid/],
    ['unknown operator', good.replace('op: gt', 'op: greater'), /when/],
    ['effect without points or force', good.replace('{ points: 10 }', '{ points: 0 }'), /effect/],
    ['bad id', good.replace('X_RULE', 'x rule'), /rules\.0\.id/],
    ['duplicate ids', `${good}  - id: X_RULE\n    description: y\n    when: { feature: amount_minor, op: gt, value: 1 }\n    effect: { points: 1 }\n`, /duplicate rule id X_RULE/],
    ['not YAML', 'version: [unclosed', /not valid YAML/],
    ['extra key', good.replace('effect:', 'typo: 1\n    effect:'), /rules\.0/],
    ['no rules', 'version: v1\nrules: []\n', /rules/],
  ])('refuses %s with a message naming the file', (_what, text, message) => {
    expect(() => parseRuleSet(text, 'r.yaml')).toThrow(RuleFileInvalid);
    expect(() => parseRuleSet(text, 'r.yaml')).toThrow(/^r\.yaml: /);
    expect(() => parseRuleSet(text, 'r.yaml')).toThrow(message);
  });
});

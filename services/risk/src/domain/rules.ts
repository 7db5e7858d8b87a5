import { z } from 'zod';
import { isFeatureName, type FeatureName, type Features } from './features';

/**
 * A declarative rule set: each rule has a condition over named features and an effect (add
 * points, force CHALLENGE, force DECLINE, or points and a force together). Rule sets live in
 * files (services/risk/rules/*.yaml) and are validated here, so a typo in a feature name or an
 * operator refuses the whole file instead of silently never firing.
 */

export const OPS = ['gt', 'gte', 'lt', 'lte', 'eq', 'neq'] as const;
export type Op = (typeof OPS)[number];

export type Condition =
  | { feature: FeatureName; op: Op; value: number }
  | { all: Condition[] }
  | { any: Condition[] }
  | { not: Condition };

export type Force = 'CHALLENGE' | 'DECLINE';

export interface Rule {
  id: string;
  description: string;
  when: Condition;
  effect: { points: number; force?: Force };
}

export interface RuleSet {
  version: string;
  rules: Rule[];
}

const featureName = z.string().refine(isFeatureName, { message: 'is not a known feature' }) as unknown as z.ZodType<FeatureName>;

export const conditionSchema: z.ZodType<Condition> = z.lazy(() =>
  z.union([
    z.strictObject({ feature: featureName, op: z.enum(OPS), value: z.number().finite() }),
    z.strictObject({ all: z.array(conditionSchema).min(1) }),
    z.strictObject({ any: z.array(conditionSchema).min(1) }),
    z.strictObject({ not: conditionSchema }),
  ]),
);

const ruleSchema = z.strictObject({
  id: z.string().regex(/^[A-Z][A-Z0-9_]{1,63}$/, 'must be an upper-case code like VELOCITY_1M'),
  description: z.string().min(1).max(200),
  when: conditionSchema,
  effect: z
    .strictObject({ points: z.number().int().min(0).max(1000).default(0), force: z.enum(['CHALLENGE', 'DECLINE']).optional() })
    .refine((e) => e.points > 0 || e.force, { message: 'must add points or force a decision' }),
});

export const ruleSetSchema = z
  .strictObject({
    version: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1-64 letters, digits, dots, dashes or underscores'),
    rules: z.array(ruleSchema).min(1),
  })
  .superRefine((set, ctx) => {
    const seen = new Set<string>();
    set.rules.forEach((rule, i) => {
      if (seen.has(rule.id)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'id'], message: `duplicate rule id ${rule.id}` });
      seen.add(rule.id);
    });
  }) as unknown as z.ZodType<RuleSet>;

function compare(x: number, op: Op, value: number): boolean {
  switch (op) {
    case 'gt':
      return x > value;
    case 'gte':
      return x >= value;
    case 'lt':
      return x < value;
    case 'lte':
      return x <= value;
    case 'eq':
      return x === value;
    case 'neq':
      return x !== value;
  }
}

export function holds(condition: Condition, features: Features): boolean {
  if ('feature' in condition) return compare(features[condition.feature], condition.op, condition.value);
  if ('all' in condition) return condition.all.every((c) => holds(c, features));
  if ('any' in condition) return condition.any.some((c) => holds(c, features));
  return !holds(condition.not, features);
}

/** The rules of `set` whose condition holds, in file order. */
export function firedRules(set: RuleSet, features: Features): Rule[] {
  return set.rules.filter((rule) => holds(rule.when, features));
}

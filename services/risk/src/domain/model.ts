import { z } from 'zod';
import { isFeatureName, type FeatureName, type Features } from './features';

/**
 * A logistic model whose weights live in configuration: p = σ(bias + Σ wᵢ·tᵢ(xᵢ)), where tᵢ
 * clips the feature and optionally takes log1p. The model contributes round(p × max_points)
 * to the score, so it can tip a borderline payment but the rules stay readable.
 */
export interface ModelTerm {
  feature: FeatureName;
  weight: number;
  transform: 'identity' | 'log1p';
  /** Feature value is clipped into [min, max] before the transform. */
  clip: [number, number] | undefined;
  /**
   * The transformed value of an ordinary (legitimate) payment, e.g. the training set's legitimate
   * mean. Only for explanations: a term's contribution to a reason is weight × (t(x) − ref), what
   * this payment moved the log-odds away from an ordinary one. 0 when not given.
   */
  ref?: number | undefined;
}

export interface LogisticModel {
  version: string;
  bias: number;
  maxPoints: number;
  terms: ModelTerm[];
}

const featureName = z.string().refine(isFeatureName, { message: 'is not a known feature' }) as unknown as z.ZodType<FeatureName>;

export const modelSchema = z
  .strictObject({
    version: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1-64 letters, digits, dots, dashes or underscores'),
    bias: z.number().finite(),
    max_points: z.number().int().min(0).max(1000),
    terms: z
      .array(
        z.strictObject({
          feature: featureName,
          weight: z.number().finite(),
          transform: z.enum(['identity', 'log1p']).default('identity'),
          ref: z.number().finite().optional(),
          clip: z
            .tuple([z.number().finite(), z.number().finite()])
            .refine(([lo, hi]) => lo <= hi, { message: 'must be [min, max] with min <= max' })
            .optional(),
        }),
      )
      .min(1),
  })
  .superRefine((m, ctx) => {
    m.terms.forEach((t, i) => {
      if (t.transform === 'log1p' && (t.clip?.[0] ?? -1) < 0) {
        ctx.addIssue({ code: 'custom', path: ['terms', i, 'clip'], message: 'log1p needs a clip with a non-negative minimum' });
      }
    });
  })
  .transform((m): LogisticModel => ({
    version: m.version,
    bias: m.bias,
    maxPoints: m.max_points,
    terms: m.terms.map((t) => ({ feature: t.feature, weight: t.weight, transform: t.transform, clip: t.clip as [number, number] | undefined, ...(t.ref !== undefined ? { ref: t.ref } : {}) })),
  }));

export interface ModelResult {
  probability: number;
  points: number;
  /** Terms by how much they pushed the log-odds up from an ordinary payment (weight × (t(x) − ref)), largest first (for the reason text). */
  contributions: Array<{ feature: FeatureName; logit: number }>;
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

export function evaluateModel(model: LogisticModel, features: Features): ModelResult {
  let z = model.bias;
  const contributions: ModelResult['contributions'] = [];
  for (const term of model.terms) {
    let x = features[term.feature];
    if (term.clip) x = Math.min(term.clip[1], Math.max(term.clip[0], x));
    if (term.transform === 'log1p') x = Math.log1p(x);
    z += term.weight * x;
    contributions.push({ feature: term.feature, logit: term.weight * (x - (term.ref ?? 0)) });
  }
  const probability = sigmoid(z);
  contributions.sort((a, b) => b.logit - a.logit);
  return { probability, points: Math.round(probability * model.maxPoints), contributions };
}

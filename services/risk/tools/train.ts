/**
 * Fits the logistic model's weights to labelled features (the backtest's --dump output, or any
 * JSONL of {label, features}) and writes a model file the service can load. The terms (which
 * features, clips, transforms) come from an existing model file; only bias and weights are fitted,
 * by L2-regularised logistic regression (full-batch gradient descent on standardised inputs).
 *
 *   node dist/services/risk/tools/train.js --input .data/risk/dump.jsonl \
 *     --terms services/risk/rules/model.yaml --version logit-2 --out candidate-model.yaml
 *
 * Always judge the result with the backtest on traffic it was not trained on (another --seed).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { dump } from 'js-yaml';
import type { Features } from '../src/domain/features';
import type { LogisticModel, ModelTerm } from '../src/domain/model';
import { parseModel } from '../src/domain/rule-file';

function transform(term: ModelTerm, features: Features): number {
  let x = features[term.feature];
  if (term.clip) x = Math.min(term.clip[1], Math.max(term.clip[0], x));
  return term.transform === 'log1p' ? Math.log1p(x) : x;
}

export interface TrainOptions {
  iterations?: number;
  learningRate?: number;
  l2?: number;
}

/** Returns the model with fitted bias and weights (terms unchanged). */
export function fit(base: LogisticModel, rows: Array<{ y: 0 | 1; features: Features }>, options: TrainOptions = {}): LogisticModel {
  const iterations = options.iterations ?? 400;
  const lr = options.learningRate ?? 0.5;
  const l2 = options.l2 ?? 1e-3;
  const k = base.terms.length;
  const xs = rows.map((r) => base.terms.map((t) => transform(t, r.features)));
  const mean = Array.from({ length: k }, (_, j) => xs.reduce((s, x) => s + x[j]!, 0) / xs.length);
  const sd = Array.from({ length: k }, (_, j) => Math.sqrt(xs.reduce((s, x) => s + (x[j]! - mean[j]!) ** 2, 0) / xs.length) || 1);
  const zs = xs.map((x) => x.map((v, j) => (v - mean[j]!) / sd[j]!));
  const w = new Array<number>(k).fill(0);
  let b = Math.log((rows.filter((r) => r.y === 1).length + 1) / (rows.filter((r) => r.y === 0).length + 1));
  for (let it = 0; it < iterations; it++) {
    const gw = new Array<number>(k).fill(0);
    let gb = 0;
    zs.forEach((z, i) => {
      const p = 1 / (1 + Math.exp(-(b + z.reduce((s, v, j) => s + v * w[j]!, 0))));
      const err = p - rows[i]!.y;
      gb += err;
      for (let j = 0; j < k; j++) gw[j]! += err * z[j]!;
    });
    b -= (lr * gb) / rows.length;
    for (let j = 0; j < k; j++) w[j] = w[j]! - lr * (gw[j]! / rows.length + l2 * w[j]!);
  }
  // Back from standardised inputs to the raw (clipped, transformed) feature scale.
  const raw = w.map((wj, j) => wj / sd[j]!);
  const bias = b - raw.reduce((s, wj, j) => s + wj * mean[j]!, 0);
  // Each term's legitimate mean, so a reason names what moved a payment away from an ordinary one.
  const legit = xs.filter((_, i) => rows[i]!.y === 0);
  const ref = Array.from({ length: k }, (_, j) => (legit.length ? legit.reduce((s, x) => s + x[j]!, 0) / legit.length : 0));
  return { ...base, bias, terms: base.terms.map((t, j) => ({ ...t, weight: raw[j]!, ref: ref[j]! })) };
}

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const value = i >= 0 ? process.argv[i + 1] : fallback;
  if (value === undefined) throw new Error(`--${name} is required`);
  return value;
}

function main(): void {
  const termsFile = arg('terms', 'services/risk/rules/model.yaml');
  const base = parseModel(readFileSync(termsFile, 'utf8'), basename(termsFile));
  const rows = readFileSync(arg('input', '.data/risk/dump.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { label: string | null; features: Features })
    // A backtest of recorded payments dumps unlabelled ones too (label null): they are not legit, just unknown.
    .filter((r) => r.label === 'FRAUD' || r.label === 'LEGIT')
    .map((r) => ({ y: (r.label === 'FRAUD' ? 1 : 0) as 0 | 1, features: r.features }));
  const model = fit(base, rows, { iterations: Number(arg('iterations', '400')) });
  const round = (x: number) => Math.round(x * 10_000) / 10_000;
  const doc = {
    version: arg('version', 'logit-trained'),
    bias: round(model.bias),
    max_points: Number(arg('max-points', String(base.maxPoints))),
    terms: model.terms.map((t) => ({ feature: t.feature, weight: round(t.weight), ...(t.transform !== 'identity' ? { transform: t.transform } : {}), ...(t.clip ? { clip: t.clip } : {}), ...(t.ref !== undefined ? { ref: round(t.ref) } : {}) })),
  };
  const header = `# Fitted by services/risk/tools/train.ts on ${rows.length} labelled payments (${rows.filter((r) => r.y === 1).length} fraud).\n`;
  writeFileSync(arg('out', 'candidate-model.yaml'), header + dump(doc, { flowLevel: 2 }));
  process.stdout.write(`wrote ${arg('out', 'candidate-model.yaml')}\n`);
}

if (require.main === module) {
  try {
    main();
  } catch (err) {
    process.stderr.write(`train: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

/**
 * An honest evaluation of the risk engine: trained and tuned on some families of fraud and of
 * legitimate look-alikes (TUNE, seed A), judged on families it never saw (HELD_OUT) and on fresh
 * seeds (B, C). Each payment goes through the real feature scripts in Redis and the same assess()
 * path as the service (see backtest.ts).
 *
 *   node dist/services/risk/tools/evaluate.js --payments 100000 --tune-seed 7 --seeds 8,9 \
 *     [--rules services/risk/rules/default.yaml] [--model services/risk/rules/model.yaml] \
 *     [--train-out candidate-model.yaml --version logit-3]   (fit the model's weights on TUNE first)
 *     [--skip-tune]   (only the fresh seeds, e.g. to measure another rule set/model as it is)
 *     [--seeds none]  (only the TUNE seed: what tuning may look at)
 *
 * Prints, per seed and family: payments, caught (challenged or declined) by count and by money,
 * money approved silently; for legitimate families: declined, and step-ups among payments made
 * with a live band session. Then the targets on the HELD-OUT families.
 */
import { writeFileSync } from 'node:fs';
import { dump } from 'js-yaml';
import Redis from 'ioredis';
import { readConfig } from '../src/config';
import type { Policy } from '../src/domain/decision';
import type { Features } from '../src/domain/features';
import type { LogisticModel } from '../src/domain/model';
import { loadBook, type Book } from '../src/rulebook';
import { fromTraffic, replay, type PatternTally, type Tally } from './backtest';
import { fit } from './train';
import { FRAUD_FAMILIES, LEGIT_FAMILIES, generateTraffic, type TrafficRecord } from './traffic';

export const TARGETS = { fraudStopped: 0.85, fraudMoneyApproved: 0.1, legitDeclined: 0.0005, legitLiveStepUp: 0.02 } as const;

export interface Headline {
  fraud: number;
  fraudStopped: number;
  fraudMoneyApproved: number;
  legit: number;
  legitDeclined: number;
  legitLive: number;
  legitLiveStepUp: number;
}

async function* each<T>(xs: T[]): AsyncIterable<T> {
  yield* xs;
}

export function traffic(payments: number, seed: number, which: 'tune' | 'all', fraudAccountShare?: number): TrafficRecord[] {
  return generateTraffic({
    payments,
    seed,
    ...(fraudAccountShare !== undefined ? { fraudAccountShare } : {}),
    fraud: which === 'tune' ? FRAUD_FAMILIES.tune : [...FRAUD_FAMILIES.tune, ...FRAUD_FAMILIES.heldOut],
    legit: which === 'tune' ? LEGIT_FAMILIES.tune : [...LEGIT_FAMILIES.tune, ...LEGIT_FAMILIES.heldOut],
  });
}

/** Replays records with one book; returns the tally and, when asked, every payment's features. */
export async function run(redis: Redis, records: TrafficRecord[], book: Book, policy: Policy, keepFeatures = false): Promise<{ tally: Tally; rows: Array<{ y: 0 | 1; features: Features }>; seconds: number }> {
  const rows: Array<{ y: 0 | 1; features: Features }> = [];
  const result = await replay(
    each(records.map((r) => fromTraffic({ ...r, episode: r.episode, pattern: r.pattern }))),
    redis,
    { baseline: book, candidate: book },
    policy,
    keepFeatures ? { dump: (line) => { const x = JSON.parse(line) as { label: string; features: Features }; rows.push({ y: x.label === 'FRAUD' ? 1 : 0, features: x.features }); } } : {},
  );
  return { tally: result.candidate, rows, seconds: result.seconds };
}

/** The targets' figures over some families: fraud stopped and money approved, legit declined and stepped up on live sessions. */
export function headline(t: Tally, fraudFamilies: readonly string[], legitFamilies: readonly string[]): Headline {
  const sum = (families: readonly string[], f: (p: PatternTally) => number) => families.reduce((s, name) => s + (t.byPattern.get(name) ? f(t.byPattern.get(name)!) : 0), 0);
  const fraud = sum(fraudFamilies, (p) => p.total);
  const money = sum(fraudFamilies, (p) => p.money);
  const legit = sum(legitFamilies, (p) => p.total);
  const legitLive = sum(legitFamilies, (p) => p.live);
  const ratio = (a: number, b: number) => (b ? a / b : 0);
  return {
    fraud,
    fraudStopped: ratio(sum(fraudFamilies, (p) => p.caught), fraud),
    fraudMoneyApproved: ratio(sum(fraudFamilies, (p) => p.moneyApproved), money),
    legit,
    legitDeclined: ratio(sum(legitFamilies, (p) => p.declined), legit),
    legitLive,
    legitLiveStepUp: ratio(sum(legitFamilies, (p) => p.liveChallenged), legitLive),
  };
}

export const meets = (h: Headline) =>
  h.fraudStopped >= TARGETS.fraudStopped && h.fraudMoneyApproved <= TARGETS.fraudMoneyApproved && h.legitDeclined <= TARGETS.legitDeclined && h.legitLiveStepUp <= TARGETS.legitLiveStepUp;

const pct = (x: number, d = 1) => `${(100 * x).toFixed(d)}%`;
const eur = (minor: number) => `€${(minor / 100).toFixed(0)}`;

export function familyTable(t: Tally): string {
  const rows: string[][] = [['family', 'set', 'payments', 'caught', 'caught €', 'approved silently €', 'declined', 'live step-up']];
  const set = (name: string) => ((FRAUD_FAMILIES.heldOut as readonly string[]).includes(name) || (LEGIT_FAMILIES.heldOut as readonly string[]).includes(name) ? 'HELD-OUT' : 'tune');
  const fraud = [...FRAUD_FAMILIES.tune, ...FRAUD_FAMILIES.heldOut];
  const legit = [...LEGIT_FAMILIES.tune, ...LEGIT_FAMILIES.heldOut];
  for (const name of [...fraud, ...legit]) {
    const p = t.byPattern.get(name);
    if (!p) continue;
    const isFraud = (fraud as string[]).includes(name);
    rows.push([
      `${isFraud ? 'fraud' : 'legit'} ${name}`,
      set(name),
      String(p.total),
      pct(p.caught / p.total),
      isFraud ? pct(p.moneyCaught / Math.max(1, p.money)) : '',
      isFraud ? `${eur(p.moneyApproved)} of ${eur(p.money)}` : '',
      `${pct(p.declined / p.total, isFraud ? 1 : 3)} (${p.declined})`,
      p.live ? `${pct(p.liveChallenged / p.live, 2)} (${p.liveChallenged}/${p.live})` : '',
    ]);
  }
  const widths = rows[0]!.map((_, j) => Math.max(...rows.map((r) => r[j]!.length)));
  return rows.map((r) => r.map((c, j) => (j < 2 ? c.padEnd(widths[j]!) : c.padStart(widths[j]!))).join('  ')).join('\n');
}

export function headlineLine(name: string, h: Headline): string {
  const ok = (b: boolean) => (b ? 'ok' : 'MISSED');
  return `${name}: fraud stopped ${pct(h.fraudStopped)} of ${h.fraud} (${ok(h.fraudStopped >= TARGETS.fraudStopped)}), fraud money approved silently ${pct(h.fraudMoneyApproved)} (${ok(h.fraudMoneyApproved <= TARGETS.fraudMoneyApproved)}), legit declined ${pct(h.legitDeclined, 3)} of ${h.legit} (${ok(h.legitDeclined <= TARGETS.legitDeclined)}), legit live-session step-up ${pct(h.legitLiveStepUp, 2)} of ${h.legitLive} (${ok(h.legitLiveStepUp <= TARGETS.legitLiveStepUp)})`;
}

function arg(name: string, fallback?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

/** Writes a model file the service loads (as train.ts does). */
export function modelYaml(model: LogisticModel, header: string): string {
  const round = (x: number) => Math.round(x * 10_000) / 10_000;
  const doc = {
    version: model.version,
    bias: round(model.bias),
    max_points: model.maxPoints,
    terms: model.terms.map((t) => ({ feature: t.feature, weight: round(t.weight), ...(t.transform !== 'identity' ? { transform: t.transform } : {}), ...(t.clip ? { clip: t.clip } : {}), ...(t.ref !== undefined ? { ref: round(t.ref) } : {}) })),
  };
  return header + dump(doc, { flowLevel: 2 });
}

async function main(): Promise<void> {
  const config = readConfig();
  const payments = Number(arg('payments', '100000'));
  const tuneSeed = Number(arg('tune-seed', '7'));
  // `--seeds none`: the TUNE seed alone (tuning must not look at fresh seeds or held-out families).
  const seedsArg = arg('seeds', '8,9')!;
  const seeds = seedsArg === 'none' ? [] : seedsArg.split(',').map(Number);
  const policy: Policy = { challengeAt: config.RISK_CHALLENGE_THRESHOLD, declineAt: config.RISK_DECLINE_THRESHOLD, maxReasons: config.RISK_MAX_REASONS };
  let book = await loadBook(arg('rules', config.RISK_RULES_FILE)!, arg('model', config.RISK_MODEL_FILE)!);
  // A plain connection to one Redis (the evaluation's throwaway prefix); REDIS_URL or the local default.
  const redis = new Redis(config.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 });
  const out = (s: string) => process.stdout.write(`${s}\n`);
  try {
    out(`held-out fraud families: ${FRAUD_FAMILIES.heldOut.join(', ')}; held-out legitimate families: ${LEGIT_FAMILIES.heldOut.join(', ')}`);
    const trainOut = arg('train-out');
    const skipTune = process.argv.includes('--skip-tune') && !trainOut;
    const tune = skipTune ? [] : traffic(payments, tuneSeed, 'tune');
    const tuned = await run(redis, tune, book, policy, Boolean(trainOut));
    if (trainOut) {
      const fitted = { ...fit(book.model, tuned.rows, { iterations: Number(arg('iterations', '600')), l2: Number(arg('l2', '0.001')) }), version: arg('version', 'logit-trained')! };
      writeFileSync(trainOut, modelYaml(fitted, `# Fitted by services/risk/tools/evaluate.ts --train-out on seed ${tuneSeed}, TUNE families only (${tuned.rows.length} payments, ${tuned.rows.filter((r) => r.y === 1).length} fraud).\n`));
      out(`wrote ${trainOut}`);
      book = await loadBook(arg('rules', config.RISK_RULES_FILE)!, trainOut);
    }
    out(`\nrules / model ${book.rules.version} / ${book.model.version}\n`);
    if (!skipTune) {
      const tuneTally = trainOut ? (await run(redis, tune, book, policy)).tally : tuned.tally;
      out(`TUNE, seed ${tuneSeed} (in-sample: trained and tuned on it), ${tune.length} payments`);
      out(familyTable(tuneTally));
      out(headlineLine('  in-sample', headline(tuneTally, FRAUD_FAMILIES.tune, LEGIT_FAMILIES.tune)));
    }
    for (const seed of seeds) {
      const records = traffic(payments, seed, 'all');
      const { tally, seconds } = await run(redis, records, book, policy);
      out(`\nfresh seed ${seed}, every family, ${records.length} payments (${seconds.toFixed(1)} s)`);
      out(familyTable(tally));
      out(headlineLine('  HELD-OUT families', headline(tally, FRAUD_FAMILIES.heldOut, [...LEGIT_FAMILIES.tune, ...LEGIT_FAMILIES.heldOut])));
      out(headlineLine('  HELD-OUT fraud vs HELD-OUT legit', headline(tally, FRAUD_FAMILIES.heldOut, LEGIT_FAMILIES.heldOut)));
      out(headlineLine('  tune families, fresh seed', headline(tally, FRAUD_FAMILIES.tune, LEGIT_FAMILIES.tune)));
      out(headlineLine('  all families', headline(tally, [...FRAUD_FAMILIES.tune, ...FRAUD_FAMILIES.heldOut], [...LEGIT_FAMILIES.tune, ...LEGIT_FAMILIES.heldOut])));
    }
  } finally {
    redis.disconnect();
  }
}

if (require.main === module) {
  main().catch((err: Error) => {
    process.stderr.write(`evaluate: ${err.message}\n`);
    process.exit(1);
  });
}

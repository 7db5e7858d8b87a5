/**
 * Replays labelled payments against the rule set and model in force (baseline) and a candidate,
 * and prints fraud caught (recall), precision, the false-decline rate, friction on legitimate
 * payments, and how many decisions the candidate would change.
 *
 * Features are computed by the real feature store scripts on a throwaway key prefix in Redis
 * (REDIS_URL), with each payment's own time as the clock, so the backtest sees exactly what the
 * service would have seen; the prefix is deleted afterwards.
 *
 *   node dist/services/risk/src/backtest.js --input .data/risk/traffic.jsonl \
 *     [--rules candidate.yaml] [--model candidate-model.yaml] \
 *     [--baseline-rules services/risk/rules/default.yaml] [--baseline-model services/risk/rules/model.yaml] \
 *     [--dump features.jsonl]   (every payment's features, label and both decisions, for tuning)
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import Redis from 'ioredis';
import { z } from 'zod';
import { readConfig } from './config';
import { decide, type Policy, type Verdict } from './domain/decision';
import { deriveFeatures, type ScoreInput } from './domain/features';
import { FeatureStore } from './feature-store';
import { loadBook, type Book } from './rulebook';

const recordSchema = z.object({
  payment_id: z.string().min(1),
  account_id: z.string().min(1),
  device_id: z.string().min(1),
  merchant_id: z.string(),
  amount_minor: z.number().int().positive(),
  currency: z.string().regex(/^[A-Z]{3}$/),
  lat: z.number().nullable(),
  lon: z.number().nullable(),
  channel: z.enum(['TAP', 'QR']),
  session_live: z.boolean(),
  session_age_seconds: z.number().nonnegative(),
  device_age_seconds: z.number().nonnegative(),
  recent_cryptogram_failures: z.number().int().nonnegative(),
  occurred_at_ms: z.number().int(),
  label: z.enum(['FRAUD', 'LEGIT']),
  pattern: z.string().default('unknown'),
  episode: z.string().optional(),
});
type Rec = z.infer<typeof recordSchema>;

const toInput = (x: Rec): ScoreInput => ({
  paymentId: x.payment_id,
  accountId: x.account_id,
  deviceId: x.device_id,
  tokenId: '',
  merchantId: x.merchant_id,
  amountMinor: x.amount_minor,
  currency: x.currency,
  location: x.lat !== null && x.lon !== null ? { lat: x.lat, lon: x.lon } : undefined,
  channelQr: x.channel === 'QR',
  sessionLive: x.session_live,
  sessionAgeSeconds: x.session_age_seconds,
  deviceAgeSeconds: x.device_age_seconds,
  cryptogramFailures: x.recent_cryptogram_failures,
});

/** Tallies for one rule set over the replay. */
export class Tally {
  readonly byLabel = { FRAUD: { APPROVE: 0, CHALLENGE: 0, DECLINE: 0 }, LEGIT: { APPROVE: 0, CHALLENGE: 0, DECLINE: 0 } };
  readonly byPattern = new Map<string, { total: number; caught: number; declined: number }>();
  readonly reasons = new Map<string, number>();
  /** Per fraud episode: payments that went through silently before the first stop, and whether one came. */
  readonly episodes = new Map<string, { leaked: number; stopped: boolean }>();

  add(label: 'FRAUD' | 'LEGIT', pattern: string, v: Verdict, episode?: string): void {
    if (episode) {
      const e = this.episodes.get(episode) ?? { leaked: 0, stopped: false };
      if (v.decision !== 'APPROVE') e.stopped = true;
      else if (!e.stopped) e.leaked++;
      this.episodes.set(episode, e);
    }
    this.byLabel[label][v.decision]++;
    const p = this.byPattern.get(pattern) ?? { total: 0, caught: 0, declined: 0 };
    p.total++;
    if (v.decision !== 'APPROVE') p.caught++;
    if (v.decision === 'DECLINE') p.declined++;
    this.byPattern.set(pattern, p);
    for (const r of v.reasons) this.reasons.set(r.code, (this.reasons.get(r.code) ?? 0) + 1);
  }

  metrics() {
    const f = this.byLabel.FRAUD;
    const l = this.byLabel.LEGIT;
    const fraud = f.APPROVE + f.CHALLENGE + f.DECLINE;
    const legit = l.APPROVE + l.CHALLENGE + l.DECLINE;
    const ratio = (a: number, b: number) => (b === 0 ? 0 : a / b);
    const episodes = [...this.episodes.values()];
    const leaks = episodes.map((e) => e.leaked).sort((x, y) => x - y);
    return {
      fraud,
      legit,
      /** Fraud stopped from going through silently (challenged or declined). */
      recall: ratio(f.CHALLENGE + f.DECLINE, fraud),
      declineRecall: ratio(f.DECLINE, fraud),
      /** Of everything not approved silently, how much was fraud. */
      precision: ratio(f.CHALLENGE + f.DECLINE, f.CHALLENGE + f.DECLINE + l.CHALLENGE + l.DECLINE),
      declinePrecision: ratio(f.DECLINE, f.DECLINE + l.DECLINE),
      falseDeclineRate: ratio(l.DECLINE, legit),
      legitChallengeRate: ratio(l.CHALLENGE, legit),
      episodes: episodes.length,
      /** Attacks challenged or declined at some point. */
      episodesStopped: ratio(episodes.filter((e) => e.stopped).length, episodes.length),
      /** Fraud payments approved silently before the first stop, median over attacks. */
      medianLeak: leaks.length ? leaks[Math.floor(leaks.length / 2)]! : 0,
    };
  }
}

export interface BacktestResult {
  payments: number;
  baseline: Tally;
  candidate: Tally;
  changed: Map<string, number>;
  versions: { baseline: string; candidate: string };
  seconds: number;
}

/** Replays `records` (in time order) through the feature store and both books. */
export async function backtest(
  records: AsyncIterable<Rec>,
  redis: Redis,
  books: { baseline: Book; candidate: Book },
  policy: Policy,
  options: { chunk?: number; dump?: (line: string) => void; prefix?: string } = {},
): Promise<BacktestResult> {
  const chunk = options.chunk ?? 500;
  const prefix = options.prefix ?? `bt${randomBytes(4).toString('hex')}`;
  const store = new FeatureStore(redis, prefix, { dedupeMs: 2 * 86_400_000, maxEvents: 2_000, merchantMemoryMs: 180 * 86_400_000, profileMs: 365 * 86_400_000 });
  const result: BacktestResult = {
    payments: 0,
    baseline: new Tally(),
    candidate: new Tally(),
    changed: new Map(),
    versions: { baseline: `${books.baseline.rules.version} / ${books.baseline.model.version}`, candidate: `${books.candidate.rules.version} / ${books.candidate.model.version}` },
    seconds: 0,
  };
  const started = Date.now();
  let batch: Rec[] = [];
  const flush = async () => {
    // Issued in order on one connection, so Redis runs them in order: the same sequence a live service would see.
    const histories = await Promise.all(batch.map((x) => store.record(toInput(x), x.occurred_at_ms)));
    batch.forEach((x, i) => {
      const features = deriveFeatures(toInput(x), histories[i]!.history);
      const a = decide(features, books.baseline.rules, books.baseline.model, policy);
      const b = decide(features, books.candidate.rules, books.candidate.model, policy);
      options.dump?.(JSON.stringify({ payment_id: x.payment_id, label: x.label, pattern: x.pattern, baseline: a.decision, candidate: b.decision, reasons: b.reasons.map((r) => r.code), features }));
      result.baseline.add(x.label, x.pattern, a, x.episode);
      result.candidate.add(x.label, x.pattern, b, x.episode);
      if (a.decision !== b.decision) {
        const key = `${a.decision} → ${b.decision} (${x.label})`;
        result.changed.set(key, (result.changed.get(key) ?? 0) + 1);
      }
    });
    result.payments += batch.length;
    batch = [];
  };
  try {
    let lastAt = -Infinity;
    for await (const x of records) {
      if (x.occurred_at_ms < lastAt) throw new Error(`payments must be in time order (payment ${x.payment_id} goes back in time)`);
      lastAt = x.occurred_at_ms;
      batch.push(x);
      if (batch.length >= chunk) await flush();
    }
    await flush();
  } finally {
    await dropPrefix(redis, prefix);
  }
  result.seconds = (Date.now() - started) / 1000;
  return result;
}

async function dropPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
}

async function* readRecords(path: string): AsyncIterable<Rec> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (!line.trim()) continue;
    const parsed = recordSchema.safeParse(JSON.parse(line));
    if (!parsed.success) throw new Error(`${path}:${n}: ${parsed.error.issues[0]!.path.join('.')}: ${parsed.error.issues[0]!.message}`);
    yield parsed.data;
  }
}

const pct = (x: number, digits = 2) => `${(x * 100).toFixed(digits)}%`;

export function report(r: BacktestResult): string {
  const a = r.baseline.metrics();
  const b = r.candidate.metrics();
  const rows: Array<[string, string, string]> = [
    ['rules / model', r.versions.baseline, r.versions.candidate],
    ['fraud caught (challenge or decline) = recall', pct(a.recall), pct(b.recall)],
    ['fraud declined', pct(a.declineRecall), pct(b.declineRecall)],
    ['precision (fraud among non-approved)', pct(a.precision), pct(b.precision)],
    ['precision of declines', pct(a.declinePrecision), pct(b.declinePrecision)],
    ['false-decline rate (legit declined)', `${pct(a.falseDeclineRate, 3)} (${r.baseline.byLabel.LEGIT.DECLINE})`, `${pct(b.falseDeclineRate, 3)} (${r.candidate.byLabel.LEGIT.DECLINE})`],
    ['legit challenged (step-up friction)', `${pct(a.legitChallengeRate)} (${r.baseline.byLabel.LEGIT.CHALLENGE})`, `${pct(b.legitChallengeRate)} (${r.candidate.byLabel.LEGIT.CHALLENGE})`],
    [`fraud attacks stopped at some payment (${a.episodes})`, pct(a.episodesStopped), pct(b.episodesStopped)],
    ['fraud payments through before the stop (median)', String(a.medianLeak), String(b.medianLeak)],
  ];
  const patterns = [...new Set([...r.baseline.byPattern.keys(), ...r.candidate.byPattern.keys()])].sort();
  for (const p of patterns) {
    const x = r.baseline.byPattern.get(p)!;
    const y = r.candidate.byPattern.get(p)!;
    rows.push([`  ${p} (${x.total}) caught`, pct(x.caught / x.total), pct(y.caught / y.total)]);
  }
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.map((x) => x[1].length), 'baseline'.length);
  const line = (x: [string, string, string]) => `${x[0].padEnd(w0)}  ${x[1].padStart(w1)}  ${x[2].padStart(w1)}`;
  const changedTotal = [...r.changed.values()].reduce((s, n) => s + n, 0);
  return [
    `${r.payments} payments (${a.fraud} fraud, ${a.legit} legit) replayed in ${r.seconds.toFixed(1)} s (${Math.round(r.payments / Math.max(r.seconds, 0.001))}/s)`,
    '',
    line(['', 'baseline', 'candidate']),
    ...rows.map(line),
    '',
    `decisions the candidate changes: ${changedTotal}${changedTotal ? '' : ' (same rules?)'}`,
    ...[...r.changed.entries()].sort((x, y) => y[1] - x[1]).map(([k, n]) => `  ${k}: ${n}`),
    '',
    'reasons most often given (candidate):',
    ...[...r.candidate.reasons.entries()].sort((x, y) => y[1] - x[1]).slice(0, 12).map(([k, n]) => `  ${k}: ${n}`),
  ].join('\n');
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const config = readConfig();
  const input = arg('input') ?? '.data/risk/traffic.jsonl';
  const baseline = await loadBook(arg('baseline-rules') ?? config.RISK_RULES_FILE, arg('baseline-model') ?? config.RISK_MODEL_FILE);
  const candidate = await loadBook(arg('rules') ?? config.RISK_RULES_FILE, arg('model') ?? config.RISK_MODEL_FILE);
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 1 });
  const dumpPath = arg('dump');
  const dump = dumpPath ? createWriteStream(dumpPath) : undefined;
  try {
    const policy = { challengeAt: config.RISK_CHALLENGE_THRESHOLD, declineAt: config.RISK_DECLINE_THRESHOLD, maxReasons: config.RISK_MAX_REASONS };
    const result = await backtest(readRecords(input), redis, { baseline, candidate }, policy, { ...(dump ? { dump: (line: string) => dump.write(`${line}\n`) } : {}) });
    process.stdout.write(`${report(result)}\n`);
  } finally {
    redis.disconnect();
    if (dump) await new Promise<void>((res) => dump.end(() => res()));
  }
}

if (require.main === module) {
  main().catch((err: Error) => {
    process.stderr.write(`backtest: ${err.message}\n`);
    process.exit(1);
  });
}

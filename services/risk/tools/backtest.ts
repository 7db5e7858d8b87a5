/**
 * Replays labelled payments against the rule set and model in force (baseline) and a candidate,
 * and prints fraud caught (recall), precision, the false-decline rate, friction on legitimate
 * payments, and how many decisions the candidate would change.
 *
 * The payments come from the traffic generator's file (--input), or from what production actually
 * scored (--stream): the risk.scored events on the RISK stream, which carry each payment's score
 * input and the time it was scored. Recorded payments are labelled from the decision store (the
 * latest of Feedback and dispute outcomes) or, for decisions no longer stored, from the
 * payment.dispute.resolved events on the PAYMENT stream; payments without a label are counted
 * apart, not in recall or precision, but still in the decisions the candidate changes.
 *
 * Features are computed by the real feature store scripts on a throwaway key prefix in Redis
 * (REDIS_URL), with each payment's own time as the clock, so the backtest sees exactly what the
 * service would have seen; the prefix is deleted afterwards.
 *
 *   node dist/services/risk/tools/backtest.js --input .data/risk/traffic.jsonl \
 *     [--rules candidate.yaml] [--model candidate-model.yaml] \
 *     [--baseline-rules services/risk/rules/default.yaml] [--baseline-model services/risk/rules/model.yaml] \
 *     [--dump features.jsonl]   (every payment's features, label and both decisions, for tuning;
 *                                unlabelled recorded payments have label null, and train.ts skips them)
 *
 *   node dist/services/risk/tools/backtest.js --stream [--since 2026-11-01T00:00:00Z] [the same options]
 *     (NATS_URL, NATS_SUBJECT_PREFIX, REDIS_URL and REDIS_KEY_PREFIX as the risk service has them)
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type Redis from 'ioredis';
import pino from 'pino';
import { z } from 'zod';
import { createLogger } from '../../../platform/log';
import { EventBus } from '../../../platform/nats';
import { openRedis, redisTarget } from '../../../platform/redis';
import { readConfig } from '../src/config';
import { DISPUTE_LABEL, DISPUTE_RESOLVED, DISPUTE_SOURCE } from '../src/consumers';
import { DecisionStore, NoDecision, type StoredLabel } from '../src/decision-store';
import { decide, type DecisionName, type Policy, type Verdict } from '../src/domain/decision';
import { DEFAULT_EVENT_TIME_BOUNDS, type EventTimeBounds } from '../src/domain/event-time';
import type { ScoreInput } from '../src/domain/features';
import { assess } from '../src/scorer';
import { fromScoredEvent } from '../src/events';
import { FeatureStore } from '../src/feature-store';
import { loadBook, type Book } from '../src/rulebook';

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
  /** When it reached risk (an offline tap uploaded later); absent: when it occurred. */
  arrived_at_ms: z.number().int().optional(),
  token_id: z.string().optional(),
  label: z.enum(['FRAUD', 'LEGIT']),
  pattern: z.string().default('unknown'),
  episode: z.string().optional(),
});
type Rec = z.infer<typeof recordSchema>;

/** One payment to replay: its score input (with occurred_at), the time it reached risk (the replay's clock) and its label, when known. */
export interface ReplayPayment {
  input: ScoreInput;
  at: number;
  label: StoredLabel | undefined;
  /** Groups the report's "caught" rows: the generator's fraud pattern, or where a recorded payment's label came from. */
  pattern: string;
  episode?: string | undefined;
}

/** A generator record as a payment to replay (without a token id, token features stay neutral). */
export const fromTraffic = (x: Rec): ReplayPayment => ({
  input: {
    paymentId: x.payment_id,
    accountId: x.account_id,
    deviceId: x.device_id,
    tokenId: x.token_id ?? '',
    merchantId: x.merchant_id,
    amountMinor: x.amount_minor,
    currency: x.currency,
    location: x.lat !== null && x.lon !== null ? { lat: x.lat, lon: x.lon } : undefined,
    channelQr: x.channel === 'QR',
    sessionLive: x.session_live,
    sessionAgeSeconds: x.session_age_seconds,
    deviceAgeSeconds: x.device_age_seconds,
    cryptogramFailures: x.recent_cryptogram_failures,
    occurredAtMs: x.occurred_at_ms,
  },
  at: x.arrived_at_ms ?? x.occurred_at_ms,
  label: x.label,
  pattern: x.pattern,
  episode: x.episode,
});

/** Per pattern (family): payments and money, what was stopped, and friction on live-session payments. */
export interface PatternTally {
  total: number;
  caught: number;
  declined: number;
  money: number;
  moneyCaught: number;
  /** Money approved silently. */
  moneyApproved: number;
  live: number;
  liveChallenged: number;
}

/** Tallies for one rule set over the replay. */
export class Tally {
  readonly byLabel = { FRAUD: { APPROVE: 0, CHALLENGE: 0, DECLINE: 0 }, LEGIT: { APPROVE: 0, CHALLENGE: 0, DECLINE: 0 } };
  readonly byPattern = new Map<string, PatternTally>();
  readonly reasons = new Map<string, number>();
  /** Per fraud episode: payments that went through silently before the first stop, and whether one came. */
  readonly episodes = new Map<string, { leaked: number; stopped: boolean }>();
  /** Money by label (amounts summed as minor units, whatever the currency: the generator pays in EUR). */
  readonly money = { FRAUD: { total: 0, approved: 0 }, LEGIT: { total: 0, approved: 0 } };
  /** Legitimate payments with a live band session, and how many of them were stepped up. */
  readonly legitLive = { total: 0, challenged: 0 };

  add(label: 'FRAUD' | 'LEGIT', pattern: string, v: Verdict, episode?: string, input?: Pick<ScoreInput, 'amountMinor' | 'sessionLive'>): void {
    if (episode) {
      const e = this.episodes.get(episode) ?? { leaked: 0, stopped: false };
      if (v.decision !== 'APPROVE') e.stopped = true;
      else if (!e.stopped) e.leaked++;
      this.episodes.set(episode, e);
    }
    this.byLabel[label][v.decision]++;
    const amount = input?.amountMinor ?? 0;
    const p = this.byPattern.get(pattern) ?? { total: 0, caught: 0, declined: 0, money: 0, moneyCaught: 0, moneyApproved: 0, live: 0, liveChallenged: 0 };
    p.total++;
    p.money += amount;
    if (v.decision !== 'APPROVE') {
      p.caught++;
      p.moneyCaught += amount;
    } else p.moneyApproved += amount;
    if (v.decision === 'DECLINE') p.declined++;
    if (input?.sessionLive) {
      p.live++;
      if (v.decision === 'CHALLENGE') p.liveChallenged++;
    }
    this.byPattern.set(pattern, p);
    this.money[label].total += amount;
    if (v.decision === 'APPROVE') this.money[label].approved += amount;
    if (label === 'LEGIT' && input?.sessionLive) {
      this.legitLive.total++;
      if (v.decision === 'CHALLENGE') this.legitLive.challenged++;
    }
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
      /** Step-ups among legitimate payments made with a live band session (the friction that hurts). */
      legitLiveChallengeRate: ratio(this.legitLive.challenged, this.legitLive.total),
      /** Share of fraud money approved silently. */
      fraudMoneyApproved: ratio(this.money.FRAUD.approved, this.money.FRAUD.total),
      episodes: episodes.length,
      /** Attacks challenged or declined at some point. */
      episodesStopped: ratio(episodes.filter((e) => e.stopped).length, episodes.length),
      /** Fraud payments approved silently before the first stop, median over attacks. */
      medianLeak: leaks.length ? leaks[Math.floor(leaks.length / 2)]! : 0,
    };
  }
}

const noDecisions = (): Record<DecisionName, number> => ({ APPROVE: 0, CHALLENGE: 0, DECLINE: 0 });

export interface BacktestResult {
  /** Every payment replayed, labelled or not. */
  payments: number;
  /** Labelled payments only: recall, precision and the false-decline rate come from these. */
  baseline: Tally;
  candidate: Tally;
  /** Payments without a label: counted, and their decisions, but not in recall or precision. */
  unlabelled: { payments: number; baseline: Record<DecisionName, number>; candidate: Record<DecisionName, number> };
  /** "APPROVE → DECLINE (LEGIT)" → how many; unlabelled payments under "(unlabelled)". */
  changed: Map<string, number>;
  versions: { baseline: string; candidate: string };
  seconds: number;
}

/** Replays generator records (in time order) through the feature store and both books. */
export function backtest(
  records: AsyncIterable<Rec>,
  redis: Redis,
  books: { baseline: Book; candidate: Book },
  policy: Policy,
  options: ReplayOptions = {},
): Promise<BacktestResult> {
  return replay(mapAsync(records, fromTraffic), redis, books, policy, options);
}

export interface ReplayOptions {
  chunk?: number;
  /** occurred_at bounds, as the service has them (RISK_EVENT_MAX_PAST_SECONDS / _FUTURE_SECONDS). */
  eventTime?: EventTimeBounds;
  dump?: (line: string) => void;
  prefix?: string;
}

async function* mapAsync<A, B>(xs: AsyncIterable<A>, f: (x: A) => B): AsyncIterable<B> {
  for await (const x of xs) yield f(x);
}

/** Replays `payments` (in time order) through the feature store and both books: the file and stream modes share this. */
export async function replay(
  payments: AsyncIterable<ReplayPayment>,
  redis: Redis,
  books: { baseline: Book; candidate: Book },
  policy: Policy,
  options: ReplayOptions = {},
): Promise<BacktestResult> {
  const chunk = options.chunk ?? 500;
  const prefix = options.prefix ?? `bt${randomBytes(4).toString('hex')}`;
  const store = new FeatureStore(redis, prefix, { dedupeMs: 2 * 86_400_000, maxEvents: 2_000, merchantMemoryMs: 180 * 86_400_000, profileMs: 365 * 86_400_000 });
  const result: BacktestResult = {
    payments: 0,
    baseline: new Tally(),
    candidate: new Tally(),
    unlabelled: { payments: 0, baseline: noDecisions(), candidate: noDecisions() },
    changed: new Map(),
    versions: { baseline: `${books.baseline.rules.version} / ${books.baseline.model.version}`, candidate: `${books.candidate.rules.version} / ${books.candidate.model.version}` },
    seconds: 0,
  };
  const started = Date.now();
  const bounds = options.eventTime ?? DEFAULT_EVENT_TIME_BOUNDS;
  let batch: ReplayPayment[] = [];
  // A batch never holds two payments of one band, account or merchant, so running it at once
  // (recording, deciding, then settling each) reads and writes exactly what one-by-one scoring
  // would: the replay and the live service see the same history.
  const keys = new Set<string>();
  const keysOf = (x: ReplayPayment) => [`d:${x.input.deviceId}`, `a:${x.input.accountId}`, ...(x.input.merchantId ? [`m:${x.input.merchantId}`] : [])];
  const flush = async () => {
    // The candidate's decision teaches the baselines (it is the one whose outcome is measured);
    // the baseline book is judged on the same features.
    const done = await Promise.all(batch.map((x) => assess(store, x.input, x.at, bounds, books.candidate, policy)));
    await Promise.all(done.map((d) => d.settled));
    batch.forEach((x, i) => {
      const { features, verdict: b } = done[i]!;
      const a = decide(features, books.baseline.rules, books.baseline.model, policy);
      options.dump?.(JSON.stringify({ payment_id: x.input.paymentId, label: x.label ?? null, pattern: x.pattern, amount_minor: x.input.amountMinor, session_live: x.input.sessionLive, baseline: a.decision, candidate: b.decision, reasons: b.reasons.map((r) => r.code), features }));
      if (x.label) {
        result.baseline.add(x.label, x.pattern, a, x.episode, x.input);
        result.candidate.add(x.label, x.pattern, b, x.episode, x.input);
      } else {
        result.unlabelled.payments++;
        result.unlabelled.baseline[a.decision]++;
        result.unlabelled.candidate[b.decision]++;
      }
      if (a.decision !== b.decision) {
        const key = `${a.decision} → ${b.decision} (${x.label ?? 'unlabelled'})`;
        result.changed.set(key, (result.changed.get(key) ?? 0) + 1);
      }
    });
    result.payments += batch.length;
    batch = [];
    keys.clear();
  };
  try {
    let lastAt = -Infinity;
    for await (const x of payments) {
      if (x.at < lastAt) throw new Error(`payments must be in time order (payment ${x.input.paymentId} goes back in time)`);
      lastAt = x.at;
      if (batch.length >= chunk || keysOf(x).some((k) => keys.has(k))) await flush();
      batch.push(x);
      for (const k of keysOf(x)) keys.add(k);
    }
    await flush();
  } finally {
    await dropPrefix(redis, prefix);
  }
  result.seconds = (Date.now() - started) / 1000;
  return result;
}

/** What reading the recorded payments found, besides the payments themselves. */
export interface StreamRead {
  stream: string;
  subject: string;
  since: Date | undefined;
  /** risk.scored events read (scored at or after `since`, when given). */
  events: number;
  /** Events without the payment (published before risk.scored carried it): not replayable. */
  notReplayable: number;
  /** The same payment again (a rescore published after JetStream's duplicate window): replayed once. */
  duplicates: number;
  /** Where the labels came from: the decision store (Feedback, disputes) or payment.dispute.resolved events. */
  labels: { store: number; disputeEvents: number };
}

/** Where the recorded payments' labels come from. */
export interface LabelSources {
  decisions: DecisionStore;
  /** Read payment.dispute.resolved from the PAYMENT stream for payments the store has no label for (default true). */
  disputeEvents?: boolean;
}

/**
 * Reads the payments production scored (risk.scored on the RISK stream, from `since` if given),
 * each once, labels them, and orders them by the time they were scored (in memory: the stream is
 * in publish order, which concurrent scoring and several replicas can shuffle). A label in the decision
 * store wins (it is the latest of Feedback and dispute outcomes); a payment.dispute.resolved event
 * labels a payment whose decision is no longer stored (expired) or never got the label.
 */
export async function readRecordedPayments(bus: EventBus, labels: LabelSources, options: { since?: Date } = {}): Promise<{ payments: ReplayPayment[]; read: StreamRead }> {
  const since = options.since;
  const read: StreamRead = { stream: bus.streamName('risk'), subject: bus.subject('risk.scored'), since, events: 0, notReplayable: 0, duplicates: 0, labels: { store: 0, disputeEvents: 0 } };
  const byId = new Map<string, { input: ScoreInput; at: number; seq: number }>();
  for await (const { event, seq } of bus.history('risk', 'risk.scored', since ? { since } : {})) {
    // JetStream's start time is when it stored the event, just after the scoring: keep only what was scored since.
    if (since && event.occurredAt && event.occurredAt < since) continue;
    read.events++;
    const x = fromScoredEvent(event);
    if (!x) {
      read.notReplayable++;
      continue;
    }
    if (byId.has(x.input.paymentId)) {
      read.duplicates++;
      continue;
    }
    byId.set(x.input.paymentId, { input: x.input, at: x.scoredAt, seq });
  }
  const disputes = new Map<string, StoredLabel>();
  if (labels.disputeEvents ?? true) {
    // Later events overrule earlier ones, as in the decision store.
    for await (const { event } of bus.history('payment', DISPUTE_RESOLVED, since ? { since } : {})) {
      const p = event.payload;
      if (p?.$case === 'dispute' && Object.hasOwn(DISPUTE_LABEL, p.value.outcome)) disputes.set(p.value.paymentId, DISPUTE_LABEL[p.value.outcome]!);
    }
  }
  const recorded = [...byId.values()].sort((x, y) => x.at - y.at || x.seq - y.seq);
  const payments: ReplayPayment[] = [];
  for (let i = 0; i < recorded.length; i += 500) {
    const slice = recorded.slice(i, i + 500);
    const stored = await Promise.all(slice.map((x) => labels.decisions.get(x.input.paymentId).catch((err: Error) => (err instanceof NoDecision ? undefined : Promise.reject(err)))));
    slice.forEach((x, j) => {
      const s = stored[j];
      let label: StoredLabel | undefined;
      let source = '';
      if (s?.label) {
        label = s.label;
        source = s.labelSource ?? 'feedback';
        read.labels.store++;
      } else if (disputes.has(x.input.paymentId)) {
        label = disputes.get(x.input.paymentId)!;
        source = DISPUTE_SOURCE;
        read.labels.disputeEvents++;
      }
      payments.push({ input: x.input, at: x.at, label, pattern: label ? `${label.toLowerCase()}, labelled by ${source}` : 'unlabelled' });
    });
  }
  return { payments, read };
}

/** Backtests what production scored: {@link readRecordedPayments}, then the same replay as the file mode. */
export async function backtestStream(
  bus: EventBus,
  redis: Redis,
  labels: LabelSources,
  books: { baseline: Book; candidate: Book },
  policy: Policy,
  options: ReplayOptions & { since?: Date } = {},
): Promise<{ result: BacktestResult; read: StreamRead }> {
  const { since, ...replayOptions } = options;
  const { payments, read } = await readRecordedPayments(bus, labels, since ? { since } : {});
  const result = await replay(each(payments), redis, books, policy, replayOptions);
  return { result, read };
}

async function* each<T>(xs: T[]): AsyncIterable<T> {
  yield* xs;
}

/** One paragraph on what the stream held, printed before the report. */
export function streamReport(r: StreamRead): string {
  return [
    `${r.events} risk.scored events read from stream ${r.stream} (subject ${r.subject})${r.since ? ` since ${r.since.toISOString()}` : ''}${r.events ? '' : ' (none: is NATS_SUBJECT_PREFIX the one risk publishes under?)'}`,
    ...(r.notReplayable ? [`  ${r.notReplayable} without the payment (published before risk.scored carried it): not replayed`] : []),
    ...(r.duplicates ? [`  ${r.duplicates} rescored duplicates: replayed once`] : []),
    `labels: ${r.labels.store} from the decision store (Feedback, disputes), ${r.labels.disputeEvents} from ${DISPUTE_RESOLVED} events`,
  ].join('\n');
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
    ['legit live-session payments stepped up', `${pct(a.legitLiveChallengeRate)} (${r.baseline.legitLive.challenged})`, `${pct(b.legitLiveChallengeRate)} (${r.candidate.legitLive.challenged})`],
    ['fraud money approved silently', pct(a.fraudMoneyApproved), pct(b.fraudMoneyApproved)],
    // Recorded payments have no attack episodes (only the generator knows them).
    ...(a.episodes || b.episodes
      ? ([
          [`fraud attacks stopped at some payment (${a.episodes})`, pct(a.episodesStopped), pct(b.episodesStopped)],
          ['fraud payments through before the stop (median)', String(a.medianLeak), String(b.medianLeak)],
        ] as Array<[string, string, string]>)
      : []),
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
  const u = r.unlabelled;
  const spread = (d: Record<DecisionName, number>) => `${d.APPROVE} approve, ${d.CHALLENGE} challenge, ${d.DECLINE} decline`;
  return [
    `${r.payments} payments (${a.fraud} fraud, ${a.legit} legit${u.payments ? `, ${u.payments} unlabelled` : ''}) replayed in ${r.seconds.toFixed(1)} s (${Math.round(r.payments / Math.max(r.seconds, 0.001))}/s)`,
    '',
    line(['', 'baseline', 'candidate']),
    ...rows.map(line),
    ...(u.payments ? ['', `unlabelled: ${u.payments}, not scored for recall/precision (baseline ${spread(u.baseline)}; candidate ${spread(u.candidate)})`] : []),
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
  const stream = process.argv.includes('--stream');
  if (stream && arg('input')) throw new Error('--stream and --input are two sources: give one');
  const sinceArg = arg('since');
  if (sinceArg && !stream) throw new Error('--since goes with --stream');
  const since = sinceArg ? new Date(sinceArg) : undefined;
  if (since && Number.isNaN(since.getTime())) throw new Error(`--since ${sinceArg}: not an ISO time (e.g. 2026-11-01T00:00:00Z)`);
  const input = arg('input') ?? '.data/risk/traffic.jsonl';
  const baseline = await loadBook(arg('baseline-rules') ?? config.RISK_RULES_FILE, arg('baseline-model') ?? config.RISK_MODEL_FILE);
  const candidate = await loadBook(arg('rules') ?? config.RISK_RULES_FILE, arg('model') ?? config.RISK_MODEL_FILE);
  const redis = openRedis(redisTarget(config), createLogger('risk-backtest', process.env.LOG_LEVEL ?? 'warn', pino.destination(2)));
  await redis.connect();
  const dumpPath = arg('dump');
  const dump = dumpPath ? createWriteStream(dumpPath) : undefined;
  let bus: EventBus | undefined;
  try {
    const policy = { challengeAt: config.RISK_CHALLENGE_THRESHOLD, declineAt: config.RISK_DECLINE_THRESHOLD, maxReasons: config.RISK_MAX_REASONS };
    const options = { ...(dump ? { dump: (line: string) => dump.write(`${line}\n`) } : {}) };
    if (stream) {
      const log = createLogger('risk-backtest', process.env.LOG_LEVEL ?? 'warn', pino.destination(2));
      bus = await EventBus.connect({ url: config.NATS_URL, prefix: config.NATS_SUBJECT_PREFIX, source: 'risk-backtest', log });
      const decisions = new DecisionStore(redis, config.REDIS_KEY_PREFIX, config.RISK_DECISION_TTL_DAYS);
      const { result, read } = await backtestStream(bus, redis, { decisions }, { baseline, candidate }, policy, { ...options, ...(since ? { since } : {}) });
      process.stdout.write(`${streamReport(read)}\n\n${report(result)}\n`);
    } else {
      const result = await backtest(readRecords(input), redis, { baseline, candidate }, policy, options);
      process.stdout.write(`${report(result)}\n`);
    }
  } finally {
    await bus?.close();
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

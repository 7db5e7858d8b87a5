/**
 * The suite's arithmetic, kept apart from its measuring so it can be tested: the result file's
 * shape, the floor sum of the payment path, the ratios against issue 16's targets, and the
 * comparison of two result files.
 */
import type { FloorName, FloorResult, Summary } from './floors';
import type { PathCounts } from './path-counts';

/** Latency quantiles of a set of durations (ms) that are not a LoadResult (ReportLost → first decline). */
export interface Quantiles {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export function quantiles(xs: number[]): Quantiles {
  const sorted = [...xs].sort((a, b) => a - b);
  const q = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! : NaN);
  return { n: sorted.length, p50: q(0.5), p99: q(0.99), max: sorted.length ? sorted[sorted.length - 1]! : NaN };
}

/** One `npm run bench` run, as written to its JSON file. */
export interface SuiteResult {
  version: 1;
  startedAt: string;
  finishedAt: string;
  command: string;
  quick: boolean;
  machine: { cores: number; loadAverageStart: number; loadAverageEnd: number };
  floors: Record<FloorName, FloorResult>;
  synchronousCommit: string;
  /** Concurrency of the "wide" measurements (the floors, Authorize, Score); PlaceHold's is `holdWide`. */
  wide: number;
  holdWide: number;
  authorize: { one: Summary; wide: Summary; outcomes: Record<string, number> };
  score: { one: Summary; wide: Summary; errors: Record<string, number> };
  placeHold: { one: Summary; wide: Summary; outcomes: Record<string, number> };
  reportLost: { cutOff: Quantiles; call: Quantiles; notDeclinedAfter: number };
  /** CPU per payment over the timed Authorize run at `wide` in flight (ms). */
  cpu: {
    payments: number;
    /** Each service process, and postgres, nats-server, redis-server. */
    perProcessMs: Record<string, number>;
    /** The processes above together: the target's figure. */
    sumMs: number;
    /** The bench client (this process). */
    clientMs: number;
    /** The whole machine's busy time (/proc/stat), whatever else ran on it. */
    machineMs: number;
  };
  rssMiB: Record<string, number>;
  path: {
    /** Counted from traces of a small run at 1 in flight (see bench/path-counts.ts). */
    perPayment: PathCounts;
    payments: number;
    missing: number;
    /** Server-side counters over the same run, all work (after the answer too): PostgreSQL transactions of the mesh's databases, Redis commands (the whole server), JetStream messages of the mesh's streams. */
    server: { transactions: number; redisCommands: number; events: number };
  };
  floorSum: FloorSum;
  ratios: Ratio[];
  /** Seconds each part of the run took. */
  timings: Record<string, number>;
}

export interface FloorSum {
  total: number;
  parts: { hops: number; commits: number; statements: number; redisRoundTrips: number; publishes: number };
}

/**
 * The path's own floor: each thing a payment waits for, times its floor's p50 at 1 in flight.
 * hops × echo + commits × INSERT+COMMIT + other statements × SELECT + Redis round trips × GET +
 * awaited publishes × publish. NaN when the path was not counted (no payment's trace found).
 */
export function floorSum(counts: PathCounts, floors: Record<FloorName, { one: { p50: number } }>, counted = true): FloorSum {
  const parts = {
    hops: counts.hops * floors.echo.one.p50,
    commits: counts.commits * floors.insertCommit.one.p50,
    statements: counts.statements * floors.select.one.p50,
    redisRoundTrips: counts.redisRoundTrips * floors.redisGet.one.p50,
    publishes: counts.publishes * floors.publish.one.p50,
  };
  const total = counted && counts.hops > 0 ? Object.values(parts).reduce((a, b) => a + b, 0) : NaN;
  return { total, parts };
}

export interface Ratio {
  label: string;
  value: number;
  /** How to print the value: a ratio (×), a percentage, milliseconds or MiB. */
  unit: 'x' | '%' | 'ms' | 'MiB';
  target?: { op: '>=' | '<='; bound: number };
  /** Whether the target is met; undefined without a target or without a value (NaN: not measured). */
  met?: boolean;
}

export function meets(value: number, target: Ratio['target']): boolean | undefined {
  if (!target || !Number.isFinite(value)) return undefined;
  return target.op === '>=' ? value >= target.bound : value <= target.bound;
}

const ratio = (label: string, value: number, unit: Ratio['unit'], target?: Ratio['target']): Ratio => ({ label, value, unit, ...(target ? { target, met: meets(value, target) } : {}) });

/** The ratios the suite prints: issue 16's targets first (with met/missed), then the others. */
export function ratios(r: Omit<SuiteResult, 'ratios'>): Ratio[] {
  const w = r.wide;
  const rss = Object.values(r.rssMiB);
  return [
    ratio(`Authorize @${w} rate / echo @${w} rate`, r.authorize.wide.perSecond / r.floors.echo.wide.perSecond, '%', { op: '>=', bound: 0.1 }),
    ratio('Authorize p50 @1 / echo p50 @1', r.authorize.one.p50 / r.floors.echo.one.p50, 'x', { op: '<=', bound: 12 }),
    ratio('Authorize p50 @1 / floor sum of its path', r.authorize.one.p50 / r.floorSum.total, 'x', { op: '<=', bound: 1.5 }),
    ratio('CPU per payment, whole mesh (services + postgres + nats + redis)', r.cpu.sumMs, 'ms', { op: '<=', bound: 10 }),
    ratio('largest service RSS after the load', rss.length ? Math.max(...rss) : NaN, 'MiB', { op: '<=', bound: 150 }),
    ratio('ReportLost → first decline p99', r.reportLost.cutOff.p99, 'ms', { op: '<=', bound: 250 }),
    ratio(`Score @${w} rate / echo @${w} rate`, r.score.wide.perSecond / r.floors.echo.wide.perSecond, '%'),
    ratio('Score p50 @1 / echo p50 @1', r.score.one.p50 / r.floors.echo.one.p50, 'x'),
    ratio(`PlaceHold @${r.holdWide} rate / INSERT+COMMIT rate (both on 16 connections)`, r.placeHold.wide.perSecond / r.floors.insertCommit.wide.perSecond, '%'),
    ratio('PlaceHold p50 @1 / INSERT+COMMIT p50 @1', r.placeHold.one.p50 / r.floors.insertCommit.one.p50, 'x'),
    ratio('machine CPU per payment (/proc/stat, bench client and neighbours included)', r.cpu.machineMs, 'ms'),
  ];
}

export function formatValue(value: number, unit: Ratio['unit']): string {
  if (!Number.isFinite(value)) return 'not measured';
  if (unit === '%') return `${(100 * value).toFixed(1)}%`;
  if (unit === 'x') return `${value.toFixed(2)}×`;
  return `${value.toFixed(unit === 'MiB' ? 1 : 2)} ${unit}`;
}

export const formatTarget = (r: Ratio): string => (r.target ? `${r.target.op === '>=' ? '≥' : '≤'} ${formatValue(r.target.bound, r.unit)}` : '');

/** The figures two runs are compared on, by name: latencies and rates, CPU, memory, counts, the ratios. */
export function figures(r: SuiteResult): Map<string, number> {
  const out = new Map<string, number>();
  const summary = (name: string, s: Summary) => {
    out.set(`${name} p50 (ms)`, s.p50);
    out.set(`${name} p99 (ms)`, s.p99);
    out.set(`${name} rate (/s)`, s.perSecond);
  };
  for (const [name, f] of Object.entries(r.floors)) {
    summary(`floor ${name} @1`, f.one);
    summary(`floor ${name} @${r.wide}`, f.wide);
  }
  for (const part of ['authorize', 'score', 'placeHold'] as const) {
    summary(`${part} @1`, r[part].one);
    summary(`${part} @${part === 'placeHold' ? r.holdWide : r.wide}`, r[part].wide);
  }
  out.set('ReportLost → first decline p50 (ms)', r.reportLost.cutOff.p50);
  out.set('ReportLost → first decline p99 (ms)', r.reportLost.cutOff.p99);
  for (const [name, ms] of Object.entries(r.cpu.perProcessMs)) out.set(`CPU per payment ${name} (ms)`, ms);
  out.set('CPU per payment, whole mesh (ms)', r.cpu.sumMs);
  out.set('CPU per payment, machine (ms)', r.cpu.machineMs);
  for (const [name, mib] of Object.entries(r.rssMiB)) out.set(`RSS ${name} (MiB)`, mib);
  for (const [name, n] of Object.entries(r.path.perPayment)) out.set(`per payment: ${name}`, n);
  out.set('floor sum of the path (ms)', r.floorSum.total);
  for (const x of r.ratios) out.set(`ratio: ${x.label}`, x.value);
  return out;
}

export interface Change {
  figure: string;
  before: number | undefined;
  after: number | undefined;
  /** after / before − 1; undefined when either side is missing or not a number, or before is 0. */
  change: number | undefined;
}

/** Each figure of either run, in the newer run's order (figures only the older had, after). */
export function compare(before: SuiteResult, after: SuiteResult): Change[] {
  const [b, a] = [figures(before), figures(after)];
  const names = [...new Set([...a.keys(), ...b.keys()])];
  return names.map((figure) => {
    const [x, y] = [b.get(figure), a.get(figure)];
    const ok = (v: number | undefined): v is number => v !== undefined && Number.isFinite(v);
    return { figure, before: x, after: y, change: ok(x) && ok(y) && x !== 0 ? y / x - 1 : undefined };
  });
}

/**
 * `npm run bench`: the floors and the product measured back to back in one run on this machine,
 * the ratios against issue 16's targets printed as a table, and the whole result written as JSON
 * to compare runs. bench/README.md explains each part.
 *
 *   npm run bench [-- --quick] [-- --json FILE] [-- --compare OLD.json]
 *   node dist/bench/suite.js --compare-only OLD.json NEW.json    (no measuring: print the changes)
 *
 * Parts, in order, each on fresh processes and databases (and cleaned up after): the floors
 * (bench/floors.ts); risk.Score (bench/risk-score.ts); settlement.PlaceHold (bench/settlement-hold.ts);
 * the counting run (bench/count-run.ts); Authorize at 1 and at 64 in flight on one mesh, with CPU
 * per payment per process over the 64-in-flight run and RSS after it (bench/authorize.ts,
 * bench/mesh-cpu.ts); ReportLost → first decline (bench/registry-lost.ts).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname } from 'node:path';
import cliProgress from 'cli-progress';
import Table from 'cli-table3';
import { repoPath } from '../platform/paths';
import { onboardBands, payEach } from './authorize';
import { countRun } from './count-run';
import { measureFloors, summarize, FLOORS, type Summary } from './floors';
import { BENCH_MERCHANTS, runBench, startBenchMesh } from './harness';
import { counting, run } from './load';
import { rssMiB } from './machine';
import { cpuPerPayment, cpuSnapshot } from './mesh-cpu';
import { LOST_MERCHANTS, measureReportLost } from './registry-lost';
import { measureScore } from './risk-score';
import { startHoldBench } from './settlement-hold';
import { compare, floorSum, formatTarget, formatValue, quantiles, ratios, type SuiteResult } from './targets';

const REDIS_URL = 'redis://127.0.0.1:6379';
const NATS_URL = 'nats://127.0.0.1:4222';
const WIDE = 64;
/** PlaceHold's "wide": its 16 connections' worth (see measure). */
const HOLD_WIDE = 16;

/** How much of each part a run measures: the default (≤ 6 min on this machine) and --quick (≤ 90 s, to check the suite works). */
const SIZES = {
  default: { floorOne: 1_000, floorWide: 5_000, scoreOne: 500, scoreWide: 5_000, accounts: 2_000, wallets: 500, holdOne: 500, holdWide: 5_000, countPayments: 20, countWarm: 10, authorizeOne: 100, authorizeWide: 600, lostBands: 50 },
  quick: { floorOne: 100, floorWide: 500, scoreOne: 100, scoreWide: 1_000, accounts: 200, wallets: 100, holdOne: 50, holdWide: 500, countPayments: 5, countWarm: 2, authorizeOne: 10, authorizeWide: 64, lostBands: 5 },
};
type Sizes = (typeof SIZES)['default'];

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const value = process.argv[i + 1];
  if (!value || value.startsWith('--')) throw new Error(`--${name} needs a value`);
  return value;
}

/** Progress on stderr when it is a terminal; nothing otherwise (logs, CI). */
function progress(steps: number): { step(what: string): void; stop(): void } {
  if (!process.stderr.isTTY) return { step: () => undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar({ stream: process.stderr, format: 'bench [{bar}] {value}/{total} {what} ({duration_formatted})', hideCursor: true }, cliProgress.Presets.shades_classic);
  bar.start(steps, 0, { what: 'floors' });
  return { step: (what) => bar.increment(1, { what }), stop: () => bar.stop() };
}

const STEPS = 14;

/** Seconds each part took (in the result file: where a slow run spent its time). */
const timings: Record<string, number> = {};

/** Runs one part of the suite, timing it; an error says which part it came from. */
async function part<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  try {
    return await fn();
  } catch (err) {
    const done = Object.entries(timings).map(([k, v]) => `${k} ${v.toFixed(0)} s`);
    throw new Error(`${name} (after ${((Date.now() - t0) / 1000).toFixed(0)} s${done.length ? `; before it: ${done.join(', ')}` : ''}): ${(err as Error).message}`);
  } finally {
    timings[name] = (Date.now() - t0) / 1000;
  }
}

async function measure(sizes: Sizes, step: (what: string) => void): Promise<Omit<SuiteResult, 'version' | 'ratios' | 'floorSum' | 'startedAt' | 'finishedAt' | 'command' | 'quick' | 'machine'>> {
  const floors = await part('floors', () => measureFloors({ callsOne: sizes.floorOne, callsWide: sizes.floorWide, wide: WIDE, redisUrl: REDIS_URL, natsUrl: NATS_URL, onFloor: (name) => step(`floor ${name} done`) }));

  const scoreErrors = new Map<string, number>();
  const [scoreOne, scoreWide] = await part('risk.Score', () =>
    measureScore({ levels: [{ calls: sizes.scoreOne, concurrency: 1 }, { calls: sizes.scoreWide, concurrency: WIDE }], accounts: sizes.accounts, errors: scoreErrors }),
  );
  step('risk.Score done');

  // PlaceHold on 16 connections at 16 in flight (as bench/settlement-hold.ts), beside the INSERT+COMMIT
  // floor on 16 connections: more in flight would only queue for a connection, past the client's 5 s deadline on a busy machine.
  const placeHold = await part('settlement.PlaceHold', async (): Promise<SuiteResult['placeHold']> => {
    const hold = await startHoldBench({ poolSize: 16, wallets: sizes.wallets });
    try {
      const errors = new Map<string, number>();
      const placeOne = counting((i: number) => hold.placeHold(hold.holdRequest(hold.wallet(i), i)), errors);
      await run(Math.max(50, sizes.holdOne), HOLD_WIDE, placeOne); // warm-up
      hold.outcomes.clear();
      errors.clear();
      const one = await run(sizes.holdOne, 1, placeOne);
      const wide = await run(sizes.holdWide, HOLD_WIDE, placeOne);
      return { one: summarize(one), wide: summarize(wide), outcomes: { ...Object.fromEntries(hold.outcomes), ...Object.fromEntries([...errors].map(([k, v]) => [`error: ${k}`, v])) } };
    } finally {
      await hold.stop();
    }
  });
  step('settlement.PlaceHold done');

  const path = await part('counting run', () => countRun({ payments: sizes.countPayments, warm: sizes.countWarm, natsUrl: NATS_URL, redisUrl: REDIS_URL, onStep: step }));
  step('counting run done');

  const rss: Record<string, number> = {};
  const { authorize, cpu } = await part('Authorize', async (): Promise<Pick<SuiteResult, 'authorize' | 'cpu'>> => {
    const mesh = await startBenchMesh({ merchants: BENCH_MERCHANTS, label: 'authorize' });
    try {
      const warm = BENCH_MERCHANTS.length;
      const first = await onboardBands(mesh, warm + sizes.authorizeOne, 8);
      // Each terminal's connection (a TLS handshake each: 8 at a time, not all 50 at once), the JIT.
      await payEach(mesh, first.bands.slice(sizes.authorizeOne), 8);
      const one = await payEach(mesh, first.bands.slice(0, sizes.authorizeOne), 1, { countErrors: true });
      step('Authorize @1 done; onboarding');
      // Fresh bands for the wide run, onboarded just before it: a band's session lapses 300 s after its unlock.
      const { bands } = await onboardBands(mesh, sizes.authorizeWide, 8);
      step(`Authorize @${WIDE}`);
      const before = await cpuSnapshot(mesh);
      const wide = await payEach(mesh, bands, WIDE, { countErrors: true });
      const after = await cpuSnapshot(mesh);
      for (const p of mesh.processes) rss[p.name] = rssMiB(p.pid);
      const outcomes: Record<string, number> = {};
      for (const m of [one.outcomes, wide.outcomes]) for (const [k, v] of m) outcomes[k] = (outcomes[k] ?? 0) + v;
      return { authorize: { one: summarize(one.result), wide: summarize(wide.result), outcomes }, cpu: { payments: bands.length, ...cpuPerPayment(before, after, bands.length) } };
    } finally {
      await mesh.stop();
    }
  });
  step('Authorize done');

  const reportLost = await part('ReportLost', async (): Promise<SuiteResult['reportLost']> => {
    const lostMesh = await startBenchMesh({ merchants: LOST_MERCHANTS, label: 'lost' });
    try {
      const lost = await measureReportLost(lostMesh, { bands: sizes.lostBands, concurrency: 1 });
      return { cutOff: quantiles(lost.cutOffMs), call: quantiles(lost.reportLostMs), notDeclinedAfter: lost.laterApproved.length };
    } finally {
      await lostMesh.stop();
    }
  });
  step('ReportLost done');

  const { synchronousCommit, ...floorResults } = floors;
  return {
    floors: floorResults,
    synchronousCommit,
    wide: WIDE,
    holdWide: HOLD_WIDE,
    authorize,
    score: { one: summarize(scoreOne!.score), wide: summarize(scoreWide!.score), errors: Object.fromEntries(scoreErrors) },
    placeHold,
    reportLost,
    cpu,
    rssMiB: rss,
    path,
    timings,
  };
}

/** Tables without colours when stdout is not a terminal (a file, a pipe, the README). */
const table = (head: string[]) =>
  new Table({ head, chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' }, ...(process.stdout.isTTY ? {} : { style: { head: [], border: [] } }) });

const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '—');
const rate = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : '—');

function printResult(r: SuiteResult): void {
  const w = r.wide;
  console.log(`npm run bench${r.quick ? ' --quick' : ''}: ${r.startedAt} → ${r.finishedAt}, ${r.machine.cores} cores, load average ${r.machine.loadAverageStart.toFixed(2)} → ${r.machine.loadAverageEnd.toFixed(2)}; PostgreSQL synchronous_commit=${r.synchronousCommit}`);
  const measured = table(['measured', 'p50 @1 (ms)', 'p99 @1 (ms)', `rate @${w} (/s)`, `p50 @${w} (ms)`]);
  const names: Record<(typeof FLOORS)[number], string> = {
    echo: 'floor: gRPC unary echo, mTLS',
    insertCommit: 'floor: PostgreSQL INSERT + COMMIT (16 conns)',
    select: 'floor: PostgreSQL SELECT 1 (16 conns)',
    redisGet: 'floor: Redis GET',
    publish: 'floor: JetStream publish, ack awaited',
  };
  const row = (label: string, one: Summary, wide: Summary) => measured.push([label, ms(one.p50), ms(one.p99), rate(wide.perSecond), ms(wide.p50)]);
  for (const f of FLOORS) row(names[f], r.floors[f].one, r.floors[f].wide);
  row('gateway.Authorize (full approved path)', r.authorize.one, r.authorize.wide);
  row('risk.Score (client in the same process)', r.score.one, r.score.wide);
  row(`settlement.PlaceHold (16 conns, same process; @${r.holdWide ?? 16})`, r.placeHold.one, r.placeHold.wide);
  measured.push(['ReportLost → first decline', ms(r.reportLost.cutOff.p50), ms(r.reportLost.cutOff.p99), '', '']);
  console.log(measured.toString());
  console.log(`outcomes: Score errors ${Object.entries(r.score.errors).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}; Authorize ${Object.entries(r.authorize.outcomes).map(([k, v]) => `${k} ${v}`).join(', ')}; PlaceHold ${Object.entries(r.placeHold.outcomes).map(([k, v]) => `${k.replace('HOLD_OUTCOME_', '')} ${v}`).join(', ')}; ReportLost: ${r.reportLost.cutOff.n} bands, not declined after the call answered: ${r.reportLost.notDeclinedAfter}`);

  const p = r.path.perPayment;
  const path = table(['per payment, answer path', 'count', 'floor p50 (ms)', 'floor (ms)']);
  path.push(
    ['gRPC hops (terminal → gateway included)', p.hops.toFixed(2), ms(r.floors.echo.one.p50), ms(r.floorSum.parts.hops)],
    ['PostgreSQL commits (COMMIT, autocommit writes)', p.commits.toFixed(2), ms(r.floors.insertCommit.one.p50), ms(r.floorSum.parts.commits)],
    ['PostgreSQL other statements', p.statements.toFixed(2), ms(r.floors.select.one.p50), ms(r.floorSum.parts.statements)],
    ['Redis round trips', p.redisRoundTrips.toFixed(2), ms(r.floors.redisGet.one.p50), ms(r.floorSum.parts.redisRoundTrips)],
    ['JetStream publishes, ack awaited', p.publishes.toFixed(2), ms(r.floors.publish.one.p50), ms(r.floorSum.parts.publishes)],
    ['floor sum of the path', '', '', ms(r.floorSum.total)],
  );
  console.log(path.toString());
  console.log(
    `counted from the traces of ${r.path.payments} payments at 1 in flight (${r.path.missing} not found), ${p.spans.toFixed(1)} spans per payment; ` +
      `server-side, all work per payment (after the answer too): ${ms(r.path.server.transactions)} PostgreSQL writing transactions, ${ms(r.path.server.redisCommands)} Redis commands (both on servers shared with other work: — when it swamped ours), ${ms(r.path.server.events)} JetStream messages`,
  );

  const cpu = table([`CPU ms per payment @${w} (${r.cpu.payments} payments)`, 'ms', 'RSS after (MiB)']);
  for (const [name, v] of Object.entries(r.cpu.perProcessMs)) cpu.push([name, ms(v), r.rssMiB[name] === undefined ? '' : r.rssMiB[name]!.toFixed(0)]);
  cpu.push(['whole mesh (the sum above)', ms(r.cpu.sumMs), ''], ['bench client (this process)', ms(r.cpu.clientMs), ''], ['machine (/proc/stat: all of the above, neighbours too)', ms(r.cpu.machineMs), '']);
  console.log(cpu.toString());

  const targets = table(['ratio', 'measured', 'target (issue 16)', 'met']);
  for (const x of r.ratios) targets.push([x.label, formatValue(x.value, x.unit), formatTarget(x), x.met === undefined ? (x.target ? 'not measured' : '') : x.met ? 'met' : 'missed']);
  console.log(targets.toString());
}

function printComparison(before: SuiteResult, after: SuiteResult, beforeName: string): void {
  console.log(`compared with ${beforeName} (${before.startedAt}, load average ${before.machine.loadAverageStart.toFixed(2)} → ${before.machine.loadAverageEnd.toFixed(2)}${before.quick ? ', --quick' : ''}):`);
  const t = table(['figure', 'before', 'now', 'change']);
  const show = (v: number | null | undefined) => (v === undefined || v === null || !Number.isFinite(v) ? '—' : Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(3));
  for (const c of compare(before, after)) t.push([c.figure, show(c.before), show(c.after), c.change === undefined ? '' : `${c.change >= 0 ? '+' : ''}${(100 * c.change).toFixed(1)}%`]);
  console.log(t.toString());
}

const readResult = (file: string): SuiteResult => JSON.parse(readFileSync(file, 'utf8')) as SuiteResult;

async function main(): Promise<void> {
  const onlyAt = process.argv.indexOf('--compare-only');
  if (onlyAt >= 0) {
    const [oldFile, newFile] = process.argv.slice(onlyAt + 1, onlyAt + 3);
    if (!oldFile || !newFile) throw new Error('--compare-only OLD.json NEW.json');
    printComparison(readResult(oldFile), readResult(newFile), oldFile);
    return;
  }
  const quick = process.argv.includes('--quick');
  const compareWith = option('compare');
  // Read before measuring: a wrong path fails now, not after six minutes.
  const old = compareWith ? readResult(compareWith) : undefined;
  const startedAt = new Date();
  const file = option('json') ?? repoPath('.data', 'bench', `${startedAt.toISOString().replace(/:/g, '-')}${quick ? '-quick' : ''}.json`);
  const loadAverageStart = loadavg()[0]!;
  const bar = progress(STEPS);
  let measured: Awaited<ReturnType<typeof measure>>;
  try {
    measured = await measure(quick ? SIZES.quick : SIZES.default, bar.step);
  } finally {
    bar.stop();
  }
  const partial = {
    version: 1 as const,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    command: ['npm run bench', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '),
    quick,
    machine: { cores: cpus().length, loadAverageStart, loadAverageEnd: loadavg()[0]! },
    ...measured,
    floorSum: floorSum(measured.path.perPayment, measured.floors, measured.path.payments > 0),
  };
  const result: SuiteResult = { ...partial, ratios: ratios(partial) };
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  printResult(result);
  console.log(`parts took ${Object.entries(result.timings).map(([k, v]) => `${k} ${v.toFixed(0)} s`).join(', ')}; written to ${file}`);
  if (old && compareWith) printComparison(old, result, compareWith);
  const unexpected = [
    ...Object.keys(result.authorize.outcomes).filter((k) => k !== 'APPROVED'),
    ...Object.keys(result.placeHold.outcomes).filter((k) => k !== 'HOLD_OUTCOME_PLACED'),
    ...Object.keys(result.score.errors),
  ];
  if (unexpected.length || result.reportLost.notDeclinedAfter > 0) {
    console.log('not every payment took the path measured (see the outcomes): the figures are not comparable');
    process.exitCode = 1;
  }
}

if (require.main === module) runBench(main);


/**
 * gateway.Authorize before and after a change, in one run on one machine: the mesh of a baseline
 * commit (built in a temporary git worktree) and the mesh of this tree, both up at once and
 * started the same way (bench/harness.ts: every service a process from its tree's dist/ with
 * mTLS and its tree's dev certificates, a fresh PostgreSQL database for each service that owns
 * one, throwaway Redis/NATS prefixes, the same settings), and paid through by the same client
 * code: fresh bands, each paying once, over 50 merchants, each merchant's terminal with its own
 * identity `merchant.<id>` (the baseline gateway took any identity of its CA; this one wants the
 * merchant registered, so here it is onboarded first). Each side first makes one untimed payment
 * per merchant (every terminal connected, the JIT warm). Stages alternate between the sides at
 * each concurrency, the order flipping every round (ABBA), so drift in the machine's load falls
 * on both.
 *
 * Beside them, in the same rotation and on the same PostgreSQL server (a database of its own),
 * the floor a durable record stands on: a single-row INSERT autocommitted (INSERT and COMMIT in
 * one round trip) and a SELECT 1, from a pg Pool at the same concurrency. At 1 in flight the
 * gateway's own spans of the timed payments (its trace file) show where each Authorize's time
 * went on either side.
 *
 *   node dist/bench/authorize-before-after.js [--baseline 3e7da73] [--bands 200] [--concurrency 1,16] [--rounds 2] [--floor-calls 500]
 *
 * `--bands` payments per side per stage. The worktree (`git worktree add --detach`, node_modules
 * linked from this tree, built with tsc) is removed at the end, and on Ctrl-C.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'pg';
import { PaymentStatus } from '../gen/wristpay/gateway/v1/gateway';
import { repoPath, repoRoot } from '../platform/paths';
import type { SpanRecord } from '../platform/telemetry/file-exporter';
import type { Band } from '../sim/band';
import { onboardBand } from '../sim/wallet';
import { BENCH_MERCHANTS, benchDatabase, benchPayment, benchPrefix, runBench, startBenchMesh, type BenchMesh } from './harness';
import { arg, formatResult, listArg, pooled, processCpuSeconds, run, stringArg, type LoadResult } from './load';

const git = (...args: string[]) => execFileSync('git', args, { cwd: repoRoot(), stdio: 'pipe' }).toString().trim();

/** `commit` checked out in a temporary worktree and built with this tree's node_modules; `remove()` deletes it. */
function checkoutBaseline(commit: string): { root: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'wp-baseline-'));
  const root = join(dir, 'tree');
  let removed = false;
  const remove = () => {
    if (removed) return;
    removed = true;
    process.removeListener('exit', remove);
    // The link first, so nothing that removes the tree can follow it into this tree's node_modules.
    try {
      unlinkSync(join(root, 'node_modules'));
    } catch {
      // not linked yet
    }
    try {
      git('worktree', 'remove', '--force', root);
    } catch {
      git('worktree', 'prune');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // Synchronous, so it also runs when the process ends without reaching its cleanup.
  process.once('exit', remove);
  try {
    git('worktree', 'add', '--detach', root, commit);
    symlinkSync(repoPath('node_modules'), join(root, 'node_modules'));
    execFileSync('npx', ['tsc', '-p', join(root, 'tsconfig.json')], { cwd: root, stdio: 'pipe' });
  } catch (err) {
    remove();
    throw err;
  }
  return { root, remove };
}

interface Side {
  label: string;
  mesh: BenchMesh;
  outcomes: Map<string, number>;
  /** Trace ids of the payments timed at 1 in flight. */
  traced: Set<string>;
  results: Map<number, LoadResult[]>;
}

/**
 * `count` bands onboarded on one side (not timed; 8 at a time keeps ProvisionToken's registry
 * call within its deadline on two busy cores). Each stage gets its own, onboarded just before:
 * a band's session lives SESSION_TTL_SECONDS (300 s) after its unlock, and risk steps up a tap
 * without a live session, so bands left waiting longer would take another path.
 */
async function onboard(side: Side, count: number): Promise<Band[]> {
  const bands: Band[] = [];
  await run(count, 8, async () => {
    bands.push(await onboardBand(side.mesh.clients, `acct-${randomUUID()}`, 100_000n));
  });
  return bands;
}

/** One side's stage: each band pays once, `concurrency` at a time; a timed stage at 1 in flight keeps its trace ids. Its outcomes, as `APPROVED 200`. */
async function payStage(side: Side, bands: Band[], concurrency: number, timed = true): Promise<{ result: LoadResult; outcomes: string }> {
  const outcomes = new Map<string, number>();
  const result = await run(bands.length, concurrency, async (i) => {
    const { response, traceId } = await benchPayment(side.mesh, bands[i]!, i);
    const status = PaymentStatus[response.status].replace('PAYMENT_STATUS_', '');
    outcomes.set(status, (outcomes.get(status) ?? 0) + 1);
    side.outcomes.set(status, (side.outcomes.get(status) ?? 0) + 1);
    if (timed && concurrency === 1) side.traced.add(traceId);
  });
  return { result, outcomes: [...outcomes].map(([k, v]) => `${k} ${v}`).join(', ') };
}

/** What a span of the gateway is, as `<what>: <which>`: a downstream call, a PostgreSQL statement (its leading words), a NATS publish, a Redis command. */
function spanLabel(span: SpanRecord): string {
  if (span.name.startsWith('grpc.')) return `gRPC: ${span.name.replace(/^grpc\.wristpay\.\w+\.v1\./, '')}`;
  if (span.name.startsWith('pg')) {
    const sql = span.attributes['db.statement'] ?? span.attributes['db.query.text'];
    if (sql === undefined) return `PostgreSQL: ${span.name}`;
    const text = String(sql).replace(/\s+/g, ' ');
    return `PostgreSQL: ${/^(SELECT .*? FROM \w+|INSERT INTO \w+|UPDATE \w+|DELETE FROM \w+|\w+)/.exec(text)?.[1] ?? text}`;
  }
  if (span.name.endsWith(' publish')) return `NATS: ${span.name}`;
  if ([span.attributes['db.system'], span.attributes['db.system.name']].includes('redis')) return `Redis: ${span.name}`;
  return `other: ${span.name}`;
}

interface Share {
  /** Each span's duration (ms). */
  durations: number[];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const ms = (n: number) => `${n.toFixed(2)} ms`;

interface Breakdown {
  /** Each Authorize server span's duration, and the same minus its downstream gRPC calls (the gateway's own part), in ms. */
  authorize: number[];
  own: number[];
  answerPath: Map<string, Share>;
  afterAnswer: Map<string, Share>;
}

/**
 * The gateway's spans of the payments `traceIds` (timed at 1 in flight, so payments do not
 * overlap): each Authorize server span, and its direct children by label, split into those that
 * started before the answer and those that ran after it under the same trace (the outbox relay's
 * read, publish and mark). Span start times are whole milliseconds (durations are finer), so a
 * span that starts in the answer's last millisecond may fall on either side: a fraction of a
 * call per Authorize on the other side is that.
 */
function spanBreakdown(file: string, traceIds: Set<string>): Breakdown {
  const spans = readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as SpanRecord)
    .filter((span) => traceIds.has(span.traceId));
  const servers = new Map(spans.filter((span) => span.kind === 1 && span.name.endsWith('GatewayService/Authorize')).map((span) => [span.spanId, span]));
  const downstreamMs = new Map<string, number>();
  const t: Breakdown = { authorize: [], own: [], answerPath: new Map(), afterAnswer: new Map() };
  for (const span of spans) {
    const server = span.parentSpanId ? servers.get(span.parentSpanId) : undefined;
    if (!server) continue;
    const label = spanLabel(span);
    const before = span.startUs < server.startUs + server.durationUs;
    const into = before ? t.answerPath : t.afterAnswer;
    into.set(label, { durations: [...(into.get(label)?.durations ?? []), span.durationUs / 1000] });
    if (before && label.startsWith('gRPC:')) downstreamMs.set(server.spanId, (downstreamMs.get(server.spanId) ?? 0) + span.durationUs / 1000);
  }
  for (const server of servers.values()) {
    t.authorize.push(server.durationUs / 1000);
    t.own.push(server.durationUs / 1000 - (downstreamMs.get(server.spanId) ?? 0));
  }
  return t;
}

/** Prints one side's breakdown: mean ms per Authorize by kind (gRPC, PostgreSQL, ...), then each label with its calls per Authorize and its spans' p50. */
function printBreakdown(label: string, t: Breakdown): void {
  const n = t.authorize.length || 1;
  const perAuthorize = (share: Share) => sum(share.durations) / n;
  const byKind = (m: Map<string, Share>) => {
    const kinds = new Map<string, number>();
    for (const [name, share] of m) kinds.set(name.split(':')[0]!, (kinds.get(name.split(':')[0]!) ?? 0) + perAuthorize(share));
    return [...kinds].map(([k, v]) => `${k} ${ms(v)}`).join(', ');
  };
  const lines = (m: Map<string, Share>, indent: string) => {
    for (const [name, share] of [...m].sort((x, y) => perAuthorize(y[1]) - perAuthorize(x[1]))) {
      console.log(`${indent}${name.padEnd(64 - indent.length)} ${ms(perAuthorize(share)).padStart(10)}  ×${(share.durations.length / n).toFixed(2)}   p50 ${ms(median(share.durations))}`);
    }
  };
  const inChildren = sum([...t.answerPath.values()].map(perAuthorize));
  console.log(
    `${label}, ${t.authorize.length} Authorize spans: server span mean ${ms(sum(t.authorize) / n)} (p50 ${ms(median(t.authorize))}) = ${byKind(t.answerPath)}, ` +
      `outside child spans ${ms(sum(t.authorize) / n - inChildren)} (a Redis MULTI's spans overlap)`,
  );
  console.log(`  the gateway's own part (server span minus its downstream calls): mean ${ms(sum(t.own) / n)}, p50 ${ms(median(t.own))}`);
  lines(t.answerPath, '  ');
  if (t.afterAnswer.size) {
    console.log(`  after the answer, same trace: ${byKind(t.afterAnswer)}`);
    lines(t.afterAnswer, '    ');
  }
}

async function main(): Promise<void> {
  const commit = stringArg('baseline', '3e7da73');
  const bands = arg('bands', 200);
  const levels = listArg('concurrency', [1, 16]);
  const rounds = arg('rounds', 2);
  const floorCalls = arg('floor-calls', 500);
  const warm = BENCH_MERCHANTS.length;
  const baselineHash = git('rev-parse', '--short', `${commit}^{commit}`);
  const currentHash = git('rev-parse', '--short', 'HEAD');
  const builtIn = Date.now();
  const baseline = checkoutBaseline(commit);
  const cleanup: Array<() => unknown> = [baseline.remove];
  const onSignal = () => {
    baseline.remove();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    console.log(`baseline ${baselineHash} built in a temporary worktree (${((Date.now() - builtIn) / 1000).toFixed(0)} s); current: this tree (HEAD ${currentHash})`);
    const sides: Side[] = [];
    for (const [label, options] of [
      [`baseline ${baselineHash}`, { root: baseline.root, statelessGateway: true }],
      [`current ${currentHash}`, {}],
    ] as const) {
      const mesh = await startBenchMesh({ ...options, merchants: BENCH_MERCHANTS, label });
      cleanup.push(() => mesh.stop());
      sides.push({ label, mesh, outcomes: new Map(), traced: new Set(), results: new Map() });
    }
    const floorDb = await benchDatabase(`${benchPrefix()}_floor`);
    cleanup.push(() => floorDb.drop());
    // Its connections are opened once, before anything is timed, and kept: the server's max_connections is shared
    // with both meshes (and whatever else runs here), and a connection refused mid-run would end the run.
    const pool = new Pool({ connectionString: floorDb.url, max: Math.max(...levels), idleTimeoutMillis: 0 });
    let poolEnded = false;
    cleanup.push(() => ((poolEnded = true), pool.end()));
    // An idle connection ended from outside (a restart, pg_terminate_backend) must not end the run: the pool opens another.
    // (pool.end() resolves before its connections have closed, so dropping the database right after ends them too.)
    pool.on('error', (err) => poolEnded || process.stderr.write(`bench: floor connection lost: ${err.message}\n`));
    await pool.query('CREATE TABLE bench_insert (payment_id uuid PRIMARY KEY, amount_minor bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now())');
    const setting = async (name: string) => (await pool.query(`SHOW ${name}`)).rows[0]![name] as string;
    const floor = {
      'INSERT + COMMIT, one row (autocommit)': (i: number) => pool.query('INSERT INTO bench_insert (payment_id, amount_minor) VALUES ($1, $2)', [randomUUID(), 1_000 + (i % 500)]),
      'SELECT 1 round trip': () => pool.query('SELECT 1'),
    };
    const floorResults = new Map<string, LoadResult[]>();

    for (const side of sides) await payStage(side, await onboard(side, warm), Math.max(...levels), false);
    await Promise.all(Array.from({ length: Math.max(...levels) }, () => pool.query('SELECT pg_sleep(0.05)')));
    await run(floorCalls, Math.max(...levels), floor['SELECT 1 round trip']);
    console.log(
      `${bands} payments per side per stage (fresh bands, onboarded for the stage), ${rounds} round(s) at ${levels.join(', ')} in flight, ${warm} merchants; ` +
        `6 services per side as processes with mTLS, both meshes up throughout; PostgreSQL (synchronous_commit=${await setting('synchronous_commit')}, fsync=${await setting('fsync')}), Redis, NATS on this machine (${cpus().length} cores)`,
    );

    const width = 58;
    for (let round = 1; round <= rounds; round++) {
      for (const c of levels) {
        const order = round % 2 === 1 ? sides : [...sides].reverse();
        const stageBands = new Map<Side, Band[]>();
        for (const side of order) stageBands.set(side, await onboard(side, bands));
        for (const side of order) {
          const load = loadavg()[0]!;
          const idle = sides.find((other) => other !== side)!;
          const cpu = (mesh: BenchMesh) => mesh.processes.map((p) => processCpuSeconds(p.pid));
          const [mine, other] = [cpu(side.mesh), sum(cpu(idle.mesh))];
          const { result: r, outcomes } = await payStage(side, stageBands.get(side)!, c);
          const perCall = cpu(side.mesh).map((v, k) => ((v - mine[k]!) / bands) * 1000);
          side.results.set(c, [...(side.results.get(c) ?? []), r]);
          console.log(`${formatResult(`round ${round}, ${c} in flight, ${side.label}`.padEnd(width), r)}   ${outcomes} (load average ${load.toFixed(2)})`);
          console.log(
            `  CPU ms per call: ${side.mesh.processes.map((p, k) => `${p.name} ${perCall[k]!.toFixed(2)}`).join(', ')}; all ${sum(perCall).toFixed(2)}` +
              `   (the other mesh, idle: ${((sum(cpu(idle.mesh)) - other) / r.seconds).toFixed(2)} cores)`,
          );
        }
        for (const [label, one] of Object.entries(floor)) {
          const r = await run(floorCalls, c, one);
          floorResults.set(`${label}@${c}`, [...(floorResults.get(`${label}@${c}`) ?? []), r]);
          console.log(formatResult(`round ${round}, ${c} in flight, ${label}`.padEnd(width), r));
        }
      }
    }

    const [before, after] = sides as [Side, Side];
    const insert1 = levels.includes(1) ? pooled(floorResults.get('INSERT + COMMIT, one row (autocommit)@1')!) : undefined;
    console.log(`\nall rounds pooled (every call's latency together; rate over the stages' summed time):`);
    console.log(`${''.padEnd(16)}${before.label.padEnd(42)}${after.label.padEnd(42)}after / before`);
    for (const c of levels) {
      const [b, a] = [pooled(before.results.get(c)!), pooled(after.results.get(c)!)];
      const cell = (r: LoadResult) => `${r.perSecond.toFixed(1)}/s  p50 ${ms(r.p50)}  p99 ${ms(r.p99)}`.padEnd(42);
      console.log(
        `${`${c} in flight`.padEnd(16)}${cell(b)}${cell(a)}rate ${(a.perSecond / b.perSecond).toFixed(2)}×, p50 ${a.p50 >= b.p50 ? '+' : ''}${ms(a.p50 - b.p50)}, p99 ${a.p99 >= b.p99 ? '+' : ''}${ms(a.p99 - b.p99)}`,
      );
    }
    for (const c of levels) {
      const rounds = before.results.get(c)!.map((b, i) => {
        const a = after.results.get(c)![i]!;
        return `rate ${(a.perSecond / b.perSecond).toFixed(2)}× p50 ${a.p50 >= b.p50 ? '+' : ''}${ms(a.p50 - b.p50)}`;
      });
      console.log(`${`${c} in flight`.padEnd(16)}by round: ${rounds.join('; ')}`);
    }
    for (const label of Object.keys(floor)) {
      console.log(levels.map((c) => formatResult(`${label}, ${c} in flight`.padEnd(width), pooled(floorResults.get(`${label}@${c}`)!))).join('\n'));
    }
    if (insert1) {
      const [b, a] = [pooled(before.results.get(1)!), pooled(after.results.get(1)!)];
      console.log(`added p50 at 1 in flight: ${ms(a.p50 - b.p50)} = ${((a.p50 - b.p50) / insert1.p50).toFixed(1)} × one INSERT + COMMIT (p50 ${ms(insert1.p50)})`);
    }
    for (const side of sides) console.log(`outcomes, ${side.label}: ${[...side.outcomes].map(([k, v]) => `${k} ${v}`).join(', ')} (warm-up included)`);

    if (levels.includes(1)) {
      // The batch span processor exports every 200 ms.
      await new Promise((r) => setTimeout(r, 1_000));
      console.log(`\nwhere an Authorize's time goes at 1 in flight (the gateway's own spans; mean ms per Authorize, and calls per Authorize):`);
      for (const side of sides) printBreakdown(side.label, spanBreakdown(side.mesh.traceFile('gateway'), side.traced));
    }
    if (sides.some((s) => [...s.outcomes.keys()].some((k) => k !== 'APPROVED'))) {
      console.log('not every payment was APPROVED: the two sides did not run the same path');
      process.exitCode = 1;
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    for (const step of cleanup.reverse()) {
      try {
        await step();
      } catch (err) {
        process.stderr.write(`bench: cleanup: ${(err as Error).message}\n`);
      }
    }
  }
}

if (require.main === module) runBench(main);

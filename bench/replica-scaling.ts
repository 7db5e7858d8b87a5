/**
 * How throughput changes with the number of replicas of a stateless service, each replica a
 * separate process (compiled service, telemetry preload, mTLS) on its own port. One load client
 * process spreads calls over the replicas with the channel's round_robin policy
 * (`ipv4:127.0.0.1:p1,127.0.0.1:p2`), at a fixed concurrency.
 *
 * --service risk (default): risk.Score on N risk replicas sharing one Redis key prefix, as replicas
 * in the cluster share one Redis; nothing else runs. --service gateway: the whole mesh
 * (bench/harness.ts) with N gateway replicas and one of every downstream service; bands are
 * onboarded first, then each pays once through gateway.Authorize. --service mesh: the same with N
 * gateway AND N risk replicas (every gateway spreads its Score calls over every risk: RISK_ADDR an
 * `ipv4:` list, round robin), and each process's CPU per payment, PostgreSQL's
 * included (bench/mesh-cpu.ts), for the model in bench/README.md.
 *
 * Beside throughput and latency it reports where the CPU went during each timed run: each process
 * of ours and the client (/proc/<pid>/stat, process.cpuUsage), Redis (INFO cpu), nats-server, and
 * the whole machine (/proc/stat), so the limit is visible: on a small machine the replicas, the
 * client and the servers share the same cores. Each replica count starts fresh processes;
 * `--rounds` repeats the list so the counts alternate in time, and every stage uses its own
 * accounts (risk) or bands (gateway), so feature windows start empty each time.
 *
 *   node dist/bench/replica-scaling.js [--service risk] [--replicas 1,2,3] [--rounds 2] [--calls 20000] [--concurrency 64] [--accounts 2000]
 *   node dist/bench/replica-scaling.js --service gateway [--replicas 1,2] [--rounds 2] [--bands 600] [--concurrency 32]
 *   node dist/bench/replica-scaling.js --service mesh [--replicas 1,2] [--rounds 2] [--bands 600] [--concurrency 32]
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';
import Redis from 'ioredis';
import { Channel } from '../gen/wristpay/common/v1/common';
import { PaymentStatus } from '../gen/wristpay/gateway/v1/gateway';
import { Decision, RiskServiceClient, type ScoreRequest } from '../gen/wristpay/risk/v1/risk';
import { createClient } from '../platform/grpc/client';
import { repoPath } from '../platform/paths';
import { certPaths, freePort, startService, type ServiceProcess } from '../scripts/mesh';
import type { Band } from '../sim/band';
import { onboardBand } from '../sim/wallet';
import { BENCH_MERCHANTS, benchPayment, benchPrefix, removePrefix, runBench, startBenchMesh } from './harness';
import { arg, formatResult, listArg, processCpuSeconds, run, type LoadResult } from './load';
import { machineJiffies, pidsByComm } from './machine';
import { cpuPerPayment, cpuSnapshot, type CpuSnapshot } from './mesh-cpu';

const REDIS_URL = 'redis://127.0.0.1:6379';
const NATS_URL = 'nats://127.0.0.1:4222';
const CORES = cpus().length;


/** The one nats-server process on this machine, if there is exactly one (its CPU is reported beside Redis's). */
function natsServerPid(): number | undefined {
  const pids = pidsByComm('nats-server');
  return pids.length === 1 ? pids[0] : undefined;
}

async function redisInfo(redis: Redis): Promise<Map<string, string>> {
  const text = await redis.info();
  return new Map(text.split('\r\n').filter((l) => l.includes(':')).map((l) => l.split(':', 2) as [string, string]));
}

interface Snapshot {
  processes: number[];
  client: number;
  redisCpu: number;
  redisCommands: number;
  nats: number | undefined;
  machine: { busy: number; total: number };
}

interface Proc {
  name: string;
  pid: number;
}

async function snapshot(processes: Proc[], redis: Redis, natsPid: number | undefined): Promise<Snapshot> {
  const info = await redisInfo(redis);
  const usage = process.cpuUsage();
  return {
    processes: processes.map((p) => processCpuSeconds(p.pid)),
    client: (usage.user + usage.system) / 1e6,
    redisCpu: Number(info.get('used_cpu_user')) + Number(info.get('used_cpu_sys')),
    redisCommands: Number(info.get('total_commands_processed')),
    nats: natsPid === undefined ? undefined : processCpuSeconds(natsPid),
    machine: machineJiffies(),
  };
}

interface Measured {
  load: number;
  result: LoadResult;
  /** Cores each process of ours kept busy on average over the timed run, in the order given. */
  processes: number[];
  client: number;
  redis: number;
  nats: number | undefined;
  machine: number;
  redisCommandsPerSecond: number;
  redisInstantaneous: number[];
  /** Redis and the machine over 2 s with nothing of ours in flight, just before the run: the other work sharing them. */
  idle: { redisCommandsPerSecond: number; redisCores: number; machineCores: number };
}

/**
 * Waits 2 s with nothing in flight (to see what else loads the machine), then times `calls` and the
 * CPU everyone used meanwhile; `around` runs just before and just after the timed calls.
 */
async function measured(
  processes: Proc[],
  redis: Redis,
  natsPid: number | undefined,
  calls: number,
  concurrency: number,
  one: (i: number) => Promise<unknown>,
  around?: { before(): Promise<void>; after(): Promise<void> },
): Promise<Measured> {
  const quiet = await snapshot(processes, redis, natsPid);
  await new Promise((r) => setTimeout(r, 2_000));
  const load = loadavg()[0]!;
  await around?.before();
  const before = await snapshot(processes, redis, natsPid);
  const instantaneous: number[] = [];
  const sampler = setInterval(() => {
    void redisInfo(redis).then((info) => instantaneous.push(Number(info.get('instantaneous_ops_per_sec'))));
  }, 1_000);
  const started = process.hrtime.bigint();
  const result = await run(calls, concurrency, one);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const after = await snapshot(processes, redis, natsPid);
  await around?.after();
  clearInterval(sampler);
  const busy = (a: number, b: number) => (b - a) / seconds;
  const cores = (a: Snapshot['machine'], b: Snapshot['machine']) => ((b.busy - a.busy) / (b.total - a.total)) * CORES;
  return {
    load,
    result,
    processes: after.processes.map((v, i) => busy(before.processes[i]!, v)),
    client: busy(before.client, after.client),
    redis: busy(before.redisCpu, after.redisCpu),
    nats: before.nats === undefined || after.nats === undefined ? undefined : busy(before.nats, after.nats),
    machine: cores(before.machine, after.machine),
    // The bench's own INFO calls are a handful per second; they are in this count.
    redisCommandsPerSecond: (after.redisCommands - before.redisCommands) / seconds,
    redisInstantaneous: instantaneous,
    idle: {
      redisCommandsPerSecond: (before.redisCommands - quiet.redisCommands) / 2,
      redisCores: (before.redisCpu - quiet.redisCpu) / 2,
      machineCores: cores(quiet.machine, before.machine),
    },
  };
}

interface Stage extends Measured {
  round: number;
  replicas: number;
  /** Names of `processes`; the first `scaled` are the scaled services' replicas. */
  names: string[];
  scaled: number;
  /** CPU ms per payment of each process, PostgreSQL, nats-server and redis-server included (--service mesh). */
  perPaymentMs?: Record<string, number>;
  outcomes: Map<string, number>;
  /** Answers that were the degraded fallback (risk: feature store late or down). */
  degraded: number | undefined;
}

const f2 = (n: number) => n.toFixed(2);
const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]! : NaN);
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const perCallMs = (cores: number, s: Stage) => (cores / s.result.perSecond) * 1_000;

function print(s: Stage, method: string, concurrency: number): void {
  const replicaCores = s.processes.slice(0, s.scaled);
  const fixed = s.processes.slice(s.scaled);
  const known = sum(s.processes) + s.client + s.redis + (s.nats ?? 0);
  const label = `${method}, ${s.replicas} replica${s.replicas > 1 ? 's' : ''}, ${concurrency} in flight`;
  console.log(`${formatResult(label, s.result)}   (load average ${f2(s.load)})`);
  console.log(
    `  CPU (cores busy): replicas ${replicaCores.map(f2).join(' + ')} = ${f2(sum(replicaCores))}` +
      `${fixed.length ? ` | ${s.names.slice(s.scaled).map((n, i) => `${n} ${f2(fixed[i]!)}`).join(', ')}` : ''}` +
      ` | client ${f2(s.client)} | Redis ${f2(s.redis)}${s.nats === undefined ? '' : ` | nats-server ${f2(s.nats)}`}` +
      ` | machine ${f2(s.machine)} of ${CORES} (other processes${fixed.length ? ', PostgreSQL among them,' : ''} ${f2(Math.max(0, s.machine - known))})`,
  );
  console.log(
    `  CPU per call: replicas ${perCallMs(sum(replicaCores), s).toFixed(3)} ms${fixed.length ? ` | rest of the mesh ${perCallMs(sum(fixed), s).toFixed(3)} ms` : ''}` +
      ` | client ${perCallMs(s.client, s).toFixed(3)} ms | Redis ${perCallMs(s.redis, s).toFixed(3)} ms` +
      `   Redis ${Math.round(s.redisCommandsPerSecond)} commands/s (instantaneous_ops_per_sec median ${median(s.redisInstantaneous)})`,
  );
  console.log(
    `  idle 2 s just before (nothing of ours in flight): Redis ${Math.round(s.idle.redisCommandsPerSecond)} commands/s, ${f2(s.idle.redisCores)} cores; machine ${f2(s.idle.machineCores)} of ${CORES} cores busy`,
  );
  if (s.perPaymentMs) {
    const ms = Object.entries(s.perPaymentMs);
    console.log(`  CPU ms per payment: ${ms.map(([n, v]) => `${n} ${v.toFixed(2)}`).join(', ')}; all ${sum(ms.map(([, v]) => v)).toFixed(2)}`);
  }
  console.log(`  outcomes: ${[...s.outcomes].map(([k, v]) => `${k} ${v}`).join(', ')}${s.degraded === undefined ? '' : `; degraded (REDIS_UNAVAILABLE) ${s.degraded}`}`);
}

function summary(stages: Stage[], rounds: number): void {
  for (let round = 1; round <= rounds; round++) {
    const one = stages.find((s) => s.round === round && s.replicas === 1);
    if (!one) continue;
    const others = stages.filter((s) => s.round === round && s.replicas > 1);
    console.log(`scaling, round ${round} (1 replica = ${Math.round(one.result.perSecond)}/s): ${others.map((s) => `${s.replicas} replicas ${(s.result.perSecond / one.result.perSecond).toFixed(2)}×`).join(', ')}`);
  }
  // Per service (replicas summed) from the per-process CPU per payment: what one core would carry of each, by replica count.
  for (const count of [...new Set(stages.filter((s) => s.perPaymentMs).map((s) => s.replicas))]) {
    const byService = new Map<string, number[]>();
    for (const s of stages.filter((x) => x.replicas === count && x.perPaymentMs)) {
      const total = new Map<string, number>();
      for (const [name, ms] of Object.entries(s.perPaymentMs!)) total.set(name.split('#')[0]!, (total.get(name.split('#')[0]!) ?? 0) + ms);
      for (const [name, ms] of total) byService.set(name, [...(byService.get(name) ?? []), ms]);
    }
    console.log(
      `CPU ms per payment by service (replicas summed; median of ${count} replica stages) → payments/s one core would carry: ` +
        [...byService].map(([name, xs]) => `${name} ${median(xs).toFixed(2)} ms → ${Math.round(1_000 / median(xs))}/s`).join(', '),
    );
  }
  // From the measured CPU per call: what one core would carry for each part alone. An extrapolation, printed as one.
  const ones = stages.filter((s) => s.replicas === 1);
  if (ones.length) {
    const replicaMs = median(ones.map((s) => perCallMs(s.processes[0]!, s)));
    const redisMs = median(stages.map((s) => perCallMs(s.redis, s)));
    const clientMs = median(stages.map((s) => perCallMs(s.client, s)));
    console.log(
      `CPU per call (median): one replica ${replicaMs.toFixed(3)} ms, client ${clientMs.toFixed(3)} ms, Redis ${redisMs.toFixed(3)} ms → ` +
        `calls/s one full core would carry: a replica ~${Math.round(1_000 / replicaMs)}, Redis ~${Math.round(1_000 / redisMs)} (extrapolated from CPU time, not measured)`,
    );
  }
}

/** risk.Score on `count` risk replicas and nothing else. */
async function riskStage(ctx: Context, round: number, count: number, stage: number): Promise<Stage> {
  const { work, creds, redis, natsPid, prefix, calls, concurrency, accounts } = ctx;
  const request = (i: number): ScoreRequest => ({
    paymentId: randomUUID(),
    accountId: `${prefix}-s${stage}-a${i % accounts}`,
    deviceId: `${prefix}-s${stage}-d${i % accounts}`,
    tokenId: `${prefix}-s${stage}-t${i % accounts}`,
    merchantId: `m${i % 97}`,
    amount: { amountMinor: BigInt(500 + (i % 3000)), currency: 'EUR' },
    location: { latitude: 48.85 + (i % 10) / 1000, longitude: 2.35 },
    channel: Channel.CHANNEL_BAND_TAP,
    sessionLive: true,
    sessionAgeSeconds: 600n,
    deviceAgeSeconds: 8_000_000n,
    recentCryptogramFailures: 0,
    occurredAt: new Date(),
  });
  const replicas: ServiceProcess[] = [];
  try {
    for (let r = 0; r < count; r++) {
      const env = {
        GRPC_TLS: 'mtls',
        ...certPaths(join(work, 'certs'), 'risk'),
        REDIS_KEY_PREFIX: prefix,
        NATS_SUBJECT_PREFIX: prefix,
        LOG_LEVEL: 'warn',
        WRISTPAY_TRACE_FILE: join(work, `risk-s${stage}-r${r}.jsonl`),
      };
      replicas.push(await startService('risk', await freePort(), env, { credentials: creds, onLine: (line) => process.stderr.write(`[risk#${r + 1}] ${line}\n`) }));
    }
    const target = `ipv4:${replicas.map((r) => `127.0.0.1:${r.port}`).join(',')}`;
    const client = createClient(RiskServiceClient, target, { credentials: creds, deadlineMs: 10_000, retryable: [], serverName: 'risk' });
    try {
      // Warm-up: a TLS connection to every replica, the Lua script cache, the JIT in fresh processes.
      await run(1_000, concurrency, (i) => client.score(request(1_000_000 + i)));
      const outcomes = new Map<string, number>();
      let degraded = 0;
      const procs = replicas.map((r, i) => ({ name: `risk#${i + 1}`, pid: r.pid }));
      const m = await measured(procs, redis, natsPid, calls, concurrency, async (i) => {
        const res = await client.score(request(i));
        const name = Decision[res.decision].replace('DECISION_', '');
        outcomes.set(name, (outcomes.get(name) ?? 0) + 1);
        if (res.reasons.some((r) => r.code === 'REDIS_UNAVAILABLE')) degraded++;
      });
      return { ...m, round, replicas: count, names: procs.map((p) => p.name), scaled: count, outcomes, degraded };
    } finally {
      client.close();
    }
  } finally {
    await Promise.all(replicas.map((r) => r.stop()));
  }
}

/** gateway.Authorize on the mesh with `count` gateway replicas (and as many risk replicas with `withRisk`); each of `bands` fresh bands pays once. */
async function gatewayStage(ctx: Context, round: number, count: number, withRisk = false): Promise<Stage> {
  const { redis, natsPid, concurrency, bands } = ctx;
  const warmBands = BENCH_MERCHANTS.length;
  const mesh = await startBenchMesh({ gatewayReplicas: count, riskReplicas: withRisk ? count : 1, merchants: BENCH_MERCHANTS });
  try {
    const wallet: Band[] = [];
    // Onboarding is not what is measured; at 32 in flight on two busy cores ProvisionToken's call to the registry can time out.
    await run(bands + warmBands, Math.min(concurrency, 8), async () => {
      wallet.push(await onboardBand(mesh.clients, `acct-${randomUUID()}`, 100_000n));
    });
    // Warm-up: each merchant's terminal connects (TLS) to every gateway replica, and the JIT on the payment path.
    await run(warmBands, concurrency, (i) => benchPayment(mesh, wallet[bands + i]!, i));
    const outcomes = new Map<string, number>();
    const isScaled = (p: Proc) => p.name.startsWith('gateway') || (withRisk && p.name.startsWith('risk'));
    const procs = [...mesh.processes.filter(isScaled), ...mesh.processes.filter((p) => !isScaled(p))];
    let cpuBefore: CpuSnapshot | undefined;
    let perPaymentMs: Record<string, number> | undefined;
    const around = withRisk
      ? {
          before: async () => void (cpuBefore = await cpuSnapshot(mesh)),
          after: async () => void (perPaymentMs = cpuPerPayment(cpuBefore!, await cpuSnapshot(mesh), bands).perProcessMs),
        }
      : undefined;
    const m = await measured(
      procs,
      redis,
      natsPid,
      bands,
      concurrency,
      async (i) => {
        const { response } = await benchPayment(mesh, wallet[i]!, i);
        const status = PaymentStatus[response.status].replace('PAYMENT_STATUS_', '');
        outcomes.set(status, (outcomes.get(status) ?? 0) + 1);
      },
      around,
    );
    return { ...m, round, replicas: count, names: procs.map((p) => p.name), scaled: procs.filter(isScaled).length, perPaymentMs, outcomes, degraded: undefined };
  } finally {
    await mesh.stop();
  }
}

interface Context {
  work: string;
  creds: ChannelCredentials;
  redis: Redis;
  natsPid: number | undefined;
  prefix: string;
  calls: number;
  concurrency: number;
  accounts: number;
  bands: number;
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--service');
  const service = i >= 0 ? process.argv[i + 1] : 'risk';
  if (service !== 'risk' && service !== 'gateway' && service !== 'mesh') throw new Error(`--service must be risk, gateway or mesh, not ${service}`);
  const replicaCounts = listArg('replicas', service === 'risk' ? [1, 2, 3] : [1, 2]);
  const rounds = arg('rounds', 2);
  const concurrency = arg('concurrency', service === 'risk' ? 64 : 32);
  const work = mkdtempSync(join(tmpdir(), 'wp-bench-'));
  execFileSync('bash', [repoPath('scripts', 'dev-certs.sh'), join(work, 'certs')], { stdio: 'pipe' });
  const ctx: Context = {
    work,
    // The bench calls risk as the gateway does in the cluster: its certificate, mTLS, the name `risk` checked.
    creds: credentials.createSsl(readFileSync(join(work, 'certs', 'ca.crt')), readFileSync(join(work, 'certs', 'gateway.key')), readFileSync(join(work, 'certs', 'gateway.crt'))),
    redis: new Redis(REDIS_URL),
    natsPid: natsServerPid(),
    prefix: benchPrefix(),
    calls: arg('calls', 20_000),
    concurrency,
    accounts: arg('accounts', 2_000),
    bands: arg('bands', 600),
  };
  if (service === 'risk') {
    console.log(
      `${ctx.calls} calls per stage after 1000 warm-up, ${concurrency} in flight, ${ctx.accounts} accounts per stage; risk replicas as separate processes (mTLS, telemetry to a file), ` +
        `one load client process (round_robin over the replicas); Redis and NATS on this machine (${CORES} cores)`,
    );
  } else {
    console.log(
      `${ctx.bands} bands per stage (each pays once) after 50 warm-up payments, ${concurrency} in flight; ${service === 'mesh' ? 'gateway and risk replicas (every gateway round robin over every risk)' : 'gateway replicas'} plus one of each other service as processes with mTLS, ` +
        `one load client process (round_robin over the gateways); PostgreSQL, Redis and NATS on this machine (${CORES} cores)`,
    );
  }
  const stages: Stage[] = [];
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const count of replicaCounts) {
        const s = service === 'risk' ? await riskStage(ctx, round, count, stages.length + 1) : await gatewayStage(ctx, round, count, service === 'mesh');
        stages.push(s);
        print(s, service === 'risk' ? 'risk.Score' : service === 'mesh' ? 'Authorize, gateway+risk' : 'gateway.Authorize', concurrency);
      }
    }
    summary(stages, rounds);
  } finally {
    await removePrefix(ctx.prefix, ctx.redis, NATS_URL);
    rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) runBench(main);

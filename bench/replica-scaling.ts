/**
 * How risk.Score throughput changes with the number of risk replicas, each a separate process
 * (compiled service, telemetry preload, mTLS) on its own port, all sharing one Redis key prefix as
 * replicas in the cluster share one Redis. One load client process spreads calls over the replicas
 * with the channel's round_robin policy (`ipv4:127.0.0.1:p1,127.0.0.1:p2`), at a fixed concurrency.
 *
 * Beside throughput and latency it reports where the CPU went during each timed run: each replica
 * and the client (/proc/<pid>/stat, process.cpuUsage), Redis (INFO cpu) and nats-server, and the
 * whole machine (/proc/stat), so the limit is visible: on a small machine the replicas, the client
 * and Redis share the same cores. Each replica count starts fresh processes; `--rounds` repeats the
 * list so the counts alternate in time, and every stage scores its own accounts so the feature
 * windows start empty each time.
 *
 *   node dist/bench/replica-scaling.js [--replicas 1,2,3] [--rounds 2] [--calls 20000] [--concurrency 64] [--accounts 2000]
 */
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import Redis from 'ioredis';
import { Channel } from '../gen/wristpay/common/v1/common';
import { Decision, RiskServiceClient, type ScoreRequest } from '../gen/wristpay/risk/v1/risk';
import { createClient } from '../platform/grpc/client';
import { repoPath } from '../platform/paths';
import { certPaths, freePort, startService, type ServiceProcess } from '../scripts/mesh';
import { removePrefix, runBench } from './harness';
import { arg, formatResult, run, type LoadResult } from './load';

const REDIS_URL = 'redis://127.0.0.1:6379';
const NATS_URL = 'nats://127.0.0.1:4222';
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
const CORES = cpus().length;

/** `--name 1,2,3` as numbers. */
function listArg(name: string, fallback: number[]): number[] {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]!.split(',').map(Number) : fallback;
}

/** CPU seconds (user + system) a process has used so far: fields 14 and 15 of /proc/<pid>/stat. */
function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; the fields after its closing parenthesis start at field 3.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** All cores' busy and total jiffies since boot (first line of /proc/stat; idle and iowait count as not busy). */
function machineJiffies(): { busy: number; total: number } {
  const [, ...values] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = values.map(Number) as number[];
  const total = user! + nice! + system! + idle! + iowait! + irq! + softirq! + steal!;
  return { busy: total - idle! - iowait!, total };
}

/** The one nats-server process on this machine, if there is exactly one (its CPU is reported beside Redis's). */
function natsServerPid(): number | undefined {
  const pids = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'nats-server';
      } catch {
        return false;
      }
    });
  return pids.length === 1 ? Number(pids[0]) : undefined;
}

async function redisInfo(redis: Redis): Promise<Map<string, string>> {
  const text = await redis.info();
  return new Map(text.split('\r\n').filter((l) => l.includes(':')).map((l) => l.split(':', 2) as [string, string]));
}

interface Snapshot {
  replicas: number[];
  client: number;
  redisCpu: number;
  redisCommands: number;
  nats: number | undefined;
  machine: { busy: number; total: number };
}

async function snapshot(replicas: ServiceProcess[], redis: Redis, natsPid: number | undefined): Promise<Snapshot> {
  const info = await redisInfo(redis);
  const usage = process.cpuUsage();
  return {
    replicas: replicas.map((r) => processCpuSeconds(r.pid)),
    client: (usage.user + usage.system) / 1e6,
    redisCpu: Number(info.get('used_cpu_user')) + Number(info.get('used_cpu_sys')),
    redisCommands: Number(info.get('total_commands_processed')),
    nats: natsPid === undefined ? undefined : processCpuSeconds(natsPid),
    machine: machineJiffies(),
  };
}

interface Stage {
  round: number;
  replicas: number;
  load: number;
  result: LoadResult;
  calls: number;
  /** Cores each part kept busy on average over the timed run. */
  cores: { replicas: number[]; client: number; redis: number; nats: number | undefined; machine: number };
  redisCommandsPerSecond: number;
  redisInstantaneous: number[];
  /** Redis and the machine over 2 s with nothing of ours in flight, just before the run: the other work sharing them. */
  idle: { redisCommandsPerSecond: number; redisCores: number; machineCores: number };
  decisions: Map<string, number>;
  degraded: number;
}

async function main(): Promise<void> {
  const replicaCounts = listArg('replicas', [1, 2, 3]);
  const rounds = arg('rounds', 2);
  const calls = arg('calls', 20_000);
  const concurrency = arg('concurrency', 64);
  const accounts = arg('accounts', 2_000);
  const prefix = `bench${randomBytes(4).toString('hex')}`;
  const work = mkdtempSync(join(tmpdir(), 'wp-bench-'));
  execFileSync('bash', [repoPath('scripts', 'dev-certs.sh'), join(work, 'certs')], { stdio: 'pipe' });
  // The bench calls risk as the gateway does in the cluster: its certificate, mTLS, the name `risk` checked.
  const creds = credentials.createSsl(readFileSync(join(work, 'certs', 'ca.crt')), readFileSync(join(work, 'certs', 'gateway.key')), readFileSync(join(work, 'certs', 'gateway.crt')));
  const redis = new Redis(REDIS_URL);
  const natsPid = natsServerPid();
  const stages: Stage[] = [];
  let stageNo = 0;

  const request = (stage: number, i: number): ScoreRequest => ({
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

  async function measure(round: number, count: number): Promise<Stage> {
    const stage = ++stageNo;
    const replicas: ServiceProcess[] = [];
    try {
      for (let r = 0; r < count; r++) {
        const port = await freePort();
        const env = {
          GRPC_TLS: 'mtls',
          ...certPaths(join(work, 'certs'), 'risk'),
          REDIS_KEY_PREFIX: prefix,
          NATS_SUBJECT_PREFIX: prefix,
          LOG_LEVEL: 'warn',
          WRISTPAY_TRACE_FILE: join(work, `risk-s${stage}-r${r}.jsonl`),
        };
        replicas.push(await startService('risk', port, env, { credentials: creds, onLine: (line) => process.stderr.write(`[risk#${r + 1}] ${line}\n`) }));
      }
      const target = `ipv4:${replicas.map((r) => `127.0.0.1:${r.port}`).join(',')}`;
      const client = createClient(RiskServiceClient, target, { credentials: creds, deadlineMs: 10_000, retryable: [], serverName: 'risk' });
      try {
        // Warm-up: a TLS connection to every replica, the Lua script cache, the JIT in fresh processes.
        await run(1_000, concurrency, (i) => client.score(request(stage, 1_000_000 + i)));
        const decisions = new Map<string, number>();
        let degraded = 0;
        const instantaneous: number[] = [];
        const sampler = setInterval(() => {
          void redisInfo(redis).then((info) => instantaneous.push(Number(info.get('instantaneous_ops_per_sec'))));
        }, 1_000);
        const quiet = await snapshot(replicas, redis, natsPid);
        await new Promise((r) => setTimeout(r, 2_000));
        const load = loadavg()[0]!;
        const before = await snapshot(replicas, redis, natsPid);
        const idle = {
          redisCommandsPerSecond: (before.redisCommands - quiet.redisCommands) / 2,
          redisCores: (before.redisCpu - quiet.redisCpu) / 2,
          machineCores: ((before.machine.busy - quiet.machine.busy) / (before.machine.total - quiet.machine.total)) * CORES,
        };
        const started = process.hrtime.bigint();
        const result = await run(calls, concurrency, async (i) => {
          const res = await client.score(request(stage, i));
          const name = Decision[res.decision].replace('DECISION_', '');
          decisions.set(name, (decisions.get(name) ?? 0) + 1);
          if (res.reasons.some((r) => r.code === 'REDIS_UNAVAILABLE')) degraded++;
        });
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const after = await snapshot(replicas, redis, natsPid);
        clearInterval(sampler);
        const busy = (a: number, b: number) => (b - a) / seconds;
        const machine = ((after.machine.busy - before.machine.busy) / (after.machine.total - before.machine.total)) * CORES;
        return {
          round,
          replicas: count,
          load,
          result,
          calls,
          cores: {
            replicas: after.replicas.map((v, r) => busy(before.replicas[r]!, v)),
            client: busy(before.client, after.client),
            redis: busy(before.redisCpu, after.redisCpu),
            nats: before.nats === undefined || after.nats === undefined ? undefined : busy(before.nats, after.nats),
            machine,
          },
          // The bench's own INFO calls are a handful per second; they are in this count.
          redisCommandsPerSecond: (after.redisCommands - before.redisCommands) / seconds,
          redisInstantaneous: instantaneous,
          idle,
          decisions,
          degraded,
        };
      } finally {
        client.close();
      }
    } finally {
      await Promise.all(replicas.map((r) => r.stop()));
    }
  }

  const f2 = (n: number) => n.toFixed(2);
  const perCallMs = (cores: number, s: Stage) => (cores / s.result.perSecond) * 1_000;
  const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]! : NaN);
  function print(s: Stage): void {
    const replicaCores = s.cores.replicas.reduce((a, b) => a + b, 0);
    const known = replicaCores + s.cores.client + s.cores.redis + (s.cores.nats ?? 0);
    const label = `risk.Score, ${s.replicas} replica${s.replicas > 1 ? 's' : ''}, ${concurrency} in flight`;
    console.log(`${formatResult(label, s.result)}   (load average ${f2(s.load)})`);
    console.log(
      `  CPU (cores busy): replicas ${s.cores.replicas.map(f2).join(' + ')} = ${f2(replicaCores)} | client ${f2(s.cores.client)} | Redis ${f2(s.cores.redis)}` +
        `${s.cores.nats === undefined ? '' : ` | nats-server ${f2(s.cores.nats)}`} | machine ${f2(s.cores.machine)} of ${CORES} (other processes ${f2(Math.max(0, s.cores.machine - known))})`,
    );
    console.log(
      `  CPU per call: replicas ${perCallMs(replicaCores, s).toFixed(3)} ms | client ${perCallMs(s.cores.client, s).toFixed(3)} ms | Redis ${perCallMs(s.cores.redis, s).toFixed(3)} ms` +
        `   Redis ${Math.round(s.redisCommandsPerSecond)} commands/s (instantaneous_ops_per_sec median ${median(s.redisInstantaneous)})`,
    );
    console.log(
      `  idle 2 s just before (nothing of ours in flight): Redis ${Math.round(s.idle.redisCommandsPerSecond)} commands/s, ${f2(s.idle.redisCores)} cores; machine ${f2(s.idle.machineCores)} of ${CORES} cores busy`,
    );
    console.log(`  decisions: ${[...s.decisions].map(([k, v]) => `${k} ${v}`).join(', ')}; degraded (REDIS_UNAVAILABLE) ${s.degraded}`);
  }

  console.log(
    `${calls} calls per stage after 1000 warm-up, ${concurrency} in flight, ${accounts} accounts per stage; risk replicas as separate processes (mTLS, telemetry to a file), ` +
      `one load client process (round_robin over the replicas); Redis and NATS on this machine (${CORES} cores)`,
  );
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const count of replicaCounts) {
        const s = await measure(round, count);
        stages.push(s);
        print(s);
      }
    }
    const base = (round: number) => stages.find((s) => s.round === round && s.replicas === 1);
    for (let round = 1; round <= rounds; round++) {
      const one = base(round);
      if (!one) continue;
      const others = stages.filter((s) => s.round === round && s.replicas > 1);
      console.log(`scaling, round ${round} (1 replica = ${Math.round(one.result.perSecond)}/s): ${others.map((s) => `${s.replicas} replicas ${(s.result.perSecond / one.result.perSecond).toFixed(2)}×`).join(', ')}`);
    }
    // From the measured CPU per call: what one core would carry for each part alone. An extrapolation, printed as one.
    const ones = stages.filter((s) => s.replicas === 1);
    if (ones.length) {
      const replicaMs = median(ones.map((s) => perCallMs(s.cores.replicas[0]!, s)));
      const redisMs = median(stages.map((s) => perCallMs(s.cores.redis, s)));
      const clientMs = median(stages.map((s) => perCallMs(s.cores.client, s)));
      console.log(
        `CPU per call (median): one replica ${replicaMs.toFixed(3)} ms, client ${clientMs.toFixed(3)} ms, Redis ${redisMs.toFixed(3)} ms → ` +
          `calls/s one full core would carry: a replica ~${Math.round(1_000 / replicaMs)}, Redis ~${Math.round(1_000 / redisMs)} (extrapolated from CPU time, not measured)`,
      );
    }
  } finally {
    await removePrefix(prefix, redis, NATS_URL);
    rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) runBench(main);

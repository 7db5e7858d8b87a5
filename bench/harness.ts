/**
 * What the benchmarks share: a throwaway prefix, removing what a prefix left in Redis and NATS,
 * and starting the mesh (as separate processes with mTLS) on fresh PostgreSQL databases, with
 * the bench's merchants onboarded in the gateway.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import Redis from 'ioredis';
import { Client } from 'pg';
import { GatewayServiceClient, MerchantAdminServiceClient } from '../gen/wristpay/gateway/v1/gateway';
import { DEAD_LETTER_AREA } from '../platform/dead-letters';
import { STREAM_AREAS } from '../platform/events';
import { createClient } from '../platform/grpc/client';
import { repoRoot } from '../platform/paths';
import { ADDR_ENV, certPaths, DATABASES, freePort, SERVICES, startMesh, startService, type ServiceName, type ServiceProcess } from '../scripts/mesh';
import type { Band } from '../sim/band';
import { meshClients, type MeshClients } from '../sim/clients';
import { pay } from '../sim/wallet';
import { merchantIdentity } from '../services/gateway/src/merchants';
import { clientCredentials, issueCertificate } from '../test/support/pki';

/** The PostgreSQL server the mesh benchmarks create their databases on. */
export const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** The Redis and NATS the mesh's services connect to (their config defaults: the mesh passes no URLs). */
const MESH_REDIS_URL = 'redis://127.0.0.1:6379';
const MESH_NATS_URL = 'nats://127.0.0.1:4222';

/** A fresh, empty database `name` on ADMIN_URL's server: its URL, and drop() (which ends any connection left on it). */
export async function benchDatabase(name: string): Promise<{ url: string; drop(): Promise<void> }> {
  const admin = async (sql: string) => {
    const c = new Client({ connectionString: ADMIN_URL });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

/** A throwaway Redis key prefix / NATS subject prefix (and database name stem) for one run. */
export function benchPrefix(): string {
  return `bench${randomBytes(4).toString('hex')}`;
}

/** Unlinks every Redis key under `prefix:` (SCAN, so the server never blocks on KEYS). */
async function removeRedisKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = nextCursor;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
}

/**
 * Deletes the JetStream streams the services created under `prefix`, the dead-letter stream
 * included (missing ones are fine). Each stream reserves its max_bytes of the server's JetStream
 * storage: one left behind per run soon leaves none, and then no service starts.
 */
export async function removeStreams(natsUrl: string, prefix: string): Promise<void> {
  const nc = await connect({ servers: natsUrl });
  const jsm = await jetstreamManager(nc);
  for (const area of [...STREAM_AREAS, DEAD_LETTER_AREA]) await jsm.streams.delete(`${prefix.toUpperCase()}_${area.toUpperCase()}`).catch(() => undefined);
  await nc.close();
}

/**
 * Removes the prefix's Redis keys and then its NATS streams. `redis` is a connection, which it
 * disconnects when done, or a URL to open one of its own.
 */
export async function removePrefix(prefix: string, redis: Redis | string, natsUrl: string): Promise<void> {
  const conn = typeof redis === 'string' ? new Redis(redis) : redis;
  await removeRedisKeys(conn, prefix);
  conn.disconnect();
  await removeStreams(natsUrl, prefix);
}

/** Runs a benchmark's main as a command: exit code `process.exitCode` (0 if unset), or 1 with `bench: <message>` on stderr if it throws. */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => process.exit(process.exitCode ?? 0),
    (err: Error) => {
      process.stderr.write(`bench: ${err.message}\n`);
      process.exit(1);
    },
  );
}

/** The merchants the gateway benchmarks pay: payment i goes to `m-bench-<i mod 50>`. */
export const BENCH_MERCHANTS = Array.from({ length: 50 }, (_, k) => `m-bench-${k}`);

/** Payment `i` of a gateway benchmark: `band` pays merchant `BENCH_MERCHANTS[i mod 50]` (an amount that varies with i) at that merchant's terminal. */
export function benchPayment(mesh: Pick<BenchMesh, 'terminal'>, band: Band, i: number): ReturnType<typeof pay> {
  const merchantId = BENCH_MERCHANTS[i % BENCH_MERCHANTS.length]!;
  return pay(mesh.terminal(merchantId), band, { merchantId, amountMinor: 1_000n + BigInt(i % 500) });
}


export interface BenchMesh {
  /** Registry, tokenization and settlement (to onboard bands) and the gateway, all as the phone-facing `wallet`. */
  clients: MeshClients;
  /** The terminal of one of the merchants startBenchMesh onboarded: the gateway as `merchant.<id>`, the rest as `clients` (stop() closes them). */
  terminal(merchantId: string): MeshClients;
  /** Every service process, extra gateway and risk replicas included, as `gateway#2` (for CPU accounting). */
  processes: { name: string; pid: number }[];
  /** The PostgreSQL databases the services own (their names on ADMIN_URL's server: for pg_stat_database). */
  databaseNames: string[];
  /** The Redis key prefix and NATS subject prefix of this mesh (its streams are `<PREFIX>_<AREA>`). */
  prefix: string;
  /** The JSON-lines trace file a service writes its spans to (platform/telemetry/file-exporter.ts); the first gateway's for `gateway`. */
  traceFile(service: ServiceName): string;
  /** Every service process's trace file, replicas' included (those written so far). */
  traceFiles(): string[];
  /** Each service's METRICS_PORT when started with `metrics`; empty otherwise. */
  metricsPorts: Partial<Record<ServiceName, number>>;
  /** Closes the clients, stops the services, drops the databases, removes the prefix's Redis keys and NATS streams and the work folder. */
  stop(): Promise<void>;
}

export interface BenchMeshOptions {
  gatewayReplicas?: number;
  /** Risk processes: every gateway spreads its Score calls over all of them (RISK_ADDR an `ipv4:` list, round robin). */
  riskReplicas?: number;
  /** More environment for every service process (e.g. WRISTPAY_TRACE_STATEMENTS=1). */
  env?: Record<string, string>;
  /** Merchant ids to onboard, each with its own terminal. */
  merchants?: readonly string[];
  /** A built tree to run instead of this one (scripts/mesh.ts `root`): its dist/ and its scripts/dev-certs.sh. */
  root?: string;
  /**
   * The tree's gateway keeps no database and has no merchant registry (before 290b1d2; any
   * identity of the mesh CA could Authorize): it gets no database, and the merchants get their
   * certificates and terminals but are not onboarded.
   */
  statelessGateway?: boolean;
  /** Printed before each service's error lines on stderr (to tell two meshes apart). */
  label?: string;
  /** Serve metrics: METRICS_PORT on a free port per service (BenchMesh.metricsPorts); off, no meter provider at all. */
  metrics?: boolean;
}

/** A service's line worth showing while a bench runs: an error or fatal log line, or anything not JSON (a crash). */
function errorLine(line: string): boolean {
  try {
    return ['error', 'fatal'].includes((JSON.parse(line) as { level?: string }).level ?? '');
  } catch {
    return true;
  }
}

/**
 * The services as separate processes with mTLS (certificates from the tree's scripts/dev-certs.sh, plus
 * `backoffice` and `merchant.<id>` for each of `merchants`, issued by the same CA), a fresh
 * PostgreSQL database for each service that owns one, throwaway tokenization keys, and one
 * throwaway prefix for Redis keys and NATS subjects. The merchants are onboarded through
 * MerchantAdminService as `backoffice` (settling in EUR), and each gets its own gateway client
 * (`terminal(id)`), since a merchant may only pay as itself. With `gatewayReplicas` > 1, more
 * gateway processes with the same configuration, and the gateway clients spread calls over all
 * of them (round robin over an `ipv4:` address list). With `riskReplicas` > 1, more risk
 * processes, and every gateway spreads its calls over all of them the same way.
 */
export async function startBenchMesh(options: BenchMeshOptions = {}): Promise<BenchMesh> {
  const root = options.root ?? repoRoot();
  const tag = benchPrefix();
  const work = mkdtempSync(join(tmpdir(), 'wp-bench-'));
  const certs = join(work, 'certs');
  const merchants = options.merchants ?? [];
  const databases: Array<{ drop(): Promise<void> }> = [];
  const databaseNames: string[] = [];
  execFileSync('bash', [join(root, 'scripts', 'dev-certs.sh'), certs], { stdio: 'pipe' });
  for (const name of ['backoffice', ...merchants.map(merchantIdentity)]) issueCertificate(certs, name);
  const ports = {} as Record<ServiceName, number>;
  const perService: Partial<Record<ServiceName, Record<string, string>>> = {};
  const metricsPorts: Partial<Record<ServiceName, number>> = {};
  for (const s of SERVICES) {
    ports[s] = await freePort();
    perService[s] = { ...certPaths(certs, s), WRISTPAY_TRACE_FILE: join(work, `${s}.jsonl`) };
    if (options.metrics) {
      metricsPorts[s] = await freePort();
      perService[s]!.METRICS_PORT = String(metricsPorts[s]);
    }
    if (DATABASES[s] && !(s === 'gateway' && options.statelessGateway)) {
      const name = `${tag}_${s.replace('-', '_')}`;
      const db = await benchDatabase(name);
      databases.push(db);
      databaseNames.push(name);
      perService[s]!.DATABASE_URL = db.url;
    }
  }
  perService.tokenization = { ...perService.tokenization, TOKEN_MASTER_KEY: randomBytes(32).toString('base64'), VAULT_KEKS: `1:${randomBytes(32).toString('base64')}` };
  // Extra risk replicas' ports are known before the mesh starts, so every gateway gets them all;
  // the channel connects to each as it comes up (it starts after the mesh, below).
  const extraRiskPorts: number[] = [];
  for (let r = 2; r <= (options.riskReplicas ?? 1); r++) extraRiskPorts.push(await freePort());
  if (extraRiskPorts.length) {
    perService.gateway!.RISK_ADDR = `ipv4:${[ports.risk, ...extraRiskPorts].map((p) => `127.0.0.1:${p}`).join(',')}`;
  }
  const creds = clientCredentials(certs, 'wallet');
  const env = { GRPC_TLS: 'mtls', REDIS_KEY_PREFIX: tag, NATS_SUBJECT_PREFIX: tag, LOG_LEVEL: 'warn', ...options.env };
  const onLine = (service: ServiceName, line: string) => {
    if (errorLine(line)) process.stderr.write(`[${options.label ? `${options.label} ` : ''}${service}] ${line}\n`);
  };
  let mesh: Awaited<ReturnType<typeof startMesh>>;
  try {
    mesh = await startMesh({ root, ports, env, perService, credentials: creds, onLine });
  } catch (err) {
    // startMesh has stopped what it started; what this function made is this function's to remove.
    for (const db of databases) await db.drop().catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
    await removePrefix(tag, MESH_REDIS_URL, MESH_NATS_URL).catch(() => undefined);
    throw err;
  }
  const at = (s: ServiceName) => `localhost:${ports[s]}`;
  const extraGateways: ServiceProcess[] = [];
  const extraRisks: ServiceProcess[] = [];
  const closers: Array<{ close(): void }> = [];
  // If this process ends without stop() (a crash, a closed stdout), its services must not outlive it.
  const killServices = () => {
    for (const pid of [...Object.values(mesh.pids), ...extraGateways.map((g) => g.pid), ...extraRisks.map((r) => r.pid)]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  process.once('exit', killServices);
  const stop = async () => {
    process.removeListener('exit', killServices);
    for (const c of closers) c.close();
    await Promise.all([...extraGateways, ...extraRisks].map((p) => p.stop()));
    await mesh.stop();
    for (const db of databases) await db.drop();
    rmSync(work, { recursive: true, force: true });
    await removePrefix(tag, MESH_REDIS_URL, MESH_NATS_URL);
  };
  try {
    const addressEnv = Object.fromEntries(SERVICES.map((s) => [ADDR_ENV[s], at(s)]));
    for (const [i, port] of extraRiskPorts.entries()) {
      const riskEnv = { ...addressEnv, ...env, ...perService.risk, WRISTPAY_TRACE_FILE: join(work, `risk-${i + 2}.jsonl`) };
      extraRisks.push(await startService('risk', port, riskEnv, { credentials: creds, root, onLine: (line) => onLine('risk', line) }));
    }
    for (let r = 2; r <= (options.gatewayReplicas ?? 1); r++) {
      const gatewayEnv = { ...addressEnv, ...env, ...perService.gateway, WRISTPAY_TRACE_FILE: join(work, `gateway-${r}.jsonl`) };
      extraGateways.push(await startService('gateway', await freePort(), gatewayEnv, { credentials: creds, root, onLine: (line) => onLine('gateway', line) }));
    }
    const gateway = extraGateways.length ? `ipv4:${[ports.gateway, ...extraGateways.map((g) => g.port)].map((p) => `127.0.0.1:${p}`).join(',')}` : at('gateway');
    const serverName = extraGateways.length ? 'gateway' : undefined;
    const addresses = { gateway, registry: at('device-registry'), tokenization: at('tokenization'), settlement: at('settlement') };
    const clients = meshClients(addresses, creds, serverName);
    closers.push(clients);
    // The gateway as another identity, with meshClients' call options.
    const as = (identity: string) => ({ credentials: clientCredentials(certs, identity), deadlineMs: 10_000, retryable: [], serverName });
    const backoffice = createClient(MerchantAdminServiceClient, gateway, as('backoffice'));
    closers.push(backoffice);
    const terminals = new Map<string, MeshClients>();
    for (const merchantId of merchants) {
      if (!options.statelessGateway) await backoffice.createMerchant({ idempotencyKey: randomUUID(), merchantId, displayName: `Bench shop ${merchantId}`, mcc: '5812', country: 'CN', settlementCurrency: 'EUR' });
      const terminal = createClient(GatewayServiceClient, gateway, as(merchantIdentity(merchantId)));
      closers.push(terminal);
      terminals.set(merchantId, { ...clients, gateway: terminal });
    }
    return {
      clients,
      terminal: (merchantId) => {
        const t = terminals.get(merchantId);
        if (!t) throw new Error(`merchant ${merchantId} was not onboarded: pass it in startBenchMesh's merchants`);
        return t;
      },
      traceFile: (service) => join(work, `${service}.jsonl`),
      traceFiles: () => readdirSync(work).filter((f) => f.endsWith('.jsonl')).map((f) => join(work, f)),
      metricsPorts,
      processes: [
        ...SERVICES.map((s) => ({ name: (s === 'gateway' && extraGateways.length) || (s === 'risk' && extraRisks.length) ? `${s}#1` : s, pid: mesh.pids[s] })),
        ...extraGateways.map((g, i) => ({ name: `gateway#${i + 2}`, pid: g.pid })),
        ...extraRisks.map((p, i) => ({ name: `risk#${i + 2}`, pid: p.pid })),
      ],
      databaseNames,
      prefix: tag,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

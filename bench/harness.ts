/**
 * What the benchmarks share: a throwaway prefix, removing what a prefix left in Redis and NATS,
 * and starting the five-service mesh (as separate processes with mTLS) on fresh PostgreSQL
 * databases.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import Redis from 'ioredis';
import { Client } from 'pg';
import { STREAM_AREAS } from '../platform/events';
import { repoPath } from '../platform/paths';
import { ADDR_ENV, certPaths, DATABASES, freePort, SERVICES, startMesh, startService, type ServiceName, type ServiceProcess } from '../scripts/mesh';
import { meshClients, type MeshClients } from '../sim/clients';

/** The PostgreSQL server the mesh benchmarks create their databases on. */
export const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** The Redis and NATS the mesh's services connect to (their config defaults: the mesh passes no URLs). */
const MESH_REDIS_URL = 'redis://127.0.0.1:6379';
const MESH_NATS_URL = 'nats://127.0.0.1:4222';

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

/** Deletes the JetStream streams the services created under `prefix` (missing ones are fine). */
export async function removeStreams(natsUrl: string, prefix: string): Promise<void> {
  const nc = await connect({ servers: natsUrl });
  const jsm = await jetstreamManager(nc);
  for (const area of STREAM_AREAS) await jsm.streams.delete(`${prefix.toUpperCase()}_${area.toUpperCase()}`).catch(() => undefined);
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

export interface BenchMesh {
  clients: MeshClients;
  /** Every service process, extra gateway replicas included, as `gateway#2` (for CPU accounting). */
  processes: { name: string; pid: number }[];
  /** Closes the clients, stops the services, drops the databases, removes the prefix's Redis keys and NATS streams and the work folder. */
  stop(): Promise<void>;
}

/**
 * The services as separate processes with mTLS (certificates from scripts/dev-certs.sh), a
 * fresh PostgreSQL database for each service that owns one, throwaway tokenization keys, and one
 * throwaway prefix for Redis keys and NATS subjects. With `gatewayReplicas` > 1, more gateway
 * processes with the same configuration (so the same database), and the gateway client spreads
 * calls over all of them (round robin over an `ipv4:` address list).
 */
export async function startBenchMesh(options: { gatewayReplicas?: number } = {}): Promise<BenchMesh> {
  const tag = benchPrefix();
  const work = mkdtempSync(join(tmpdir(), 'wp-bench-'));
  const admin = new Client({ connectionString: ADMIN_URL });
  await admin.connect();
  const databases: string[] = [];
  execFileSync('bash', [repoPath('scripts', 'dev-certs.sh'), join(work, 'certs')], { stdio: 'pipe' });
  const ports = {} as Record<ServiceName, number>;
  const perService: Partial<Record<ServiceName, Record<string, string>>> = {};
  for (const s of SERVICES) {
    ports[s] = await freePort();
    perService[s] = { ...certPaths(join(work, 'certs'), s), WRISTPAY_TRACE_FILE: join(work, `${s}.jsonl`) };
    if (DATABASES[s]) {
      const db = `${tag}_${s.replace('-', '_')}`;
      await admin.query(`CREATE DATABASE ${db}`);
      databases.push(db);
      const url = new URL(ADMIN_URL);
      url.pathname = `/${db}`;
      perService[s]!.DATABASE_URL = url.toString();
    }
  }
  perService.tokenization = { ...perService.tokenization, TOKEN_MASTER_KEY: randomBytes(32).toString('base64'), VAULT_KEKS: `1:${randomBytes(32).toString('base64')}` };
  const creds = credentials.createSsl(readFileSync(join(work, 'certs', 'ca.crt')), readFileSync(join(work, 'certs', 'demo.key')), readFileSync(join(work, 'certs', 'demo.crt')));
  const env = { GRPC_TLS: 'mtls', REDIS_KEY_PREFIX: tag, NATS_SUBJECT_PREFIX: tag, LOG_LEVEL: 'warn' };
  const mesh = await startMesh({ ports, env, perService, credentials: creds });
  const at = (s: ServiceName) => `localhost:${ports[s]}`;
  const extraGateways: ServiceProcess[] = [];
  try {
    for (let r = 2; r <= (options.gatewayReplicas ?? 1); r++) {
      const gatewayEnv = { ...Object.fromEntries(SERVICES.map((s) => [ADDR_ENV[s], at(s)])), ...env, ...perService.gateway, WRISTPAY_TRACE_FILE: join(work, `gateway-${r}.jsonl`) };
      extraGateways.push(await startService('gateway', await freePort(), gatewayEnv, { credentials: creds }));
    }
  } catch (err) {
    await Promise.all(extraGateways.map((g) => g.stop()));
    await mesh.stop();
    throw err;
  }
  const gateway = extraGateways.length ? `ipv4:${[ports.gateway, ...extraGateways.map((g) => g.port)].map((p) => `127.0.0.1:${p}`).join(',')}` : at('gateway');
  const clients = meshClients({ gateway, registry: at('device-registry'), tokenization: at('tokenization'), settlement: at('settlement') }, creds, extraGateways.length ? 'gateway' : undefined);
  return {
    clients,
    processes: [
      ...SERVICES.map((s) => ({ name: s === 'gateway' && extraGateways.length ? 'gateway#1' : s, pid: mesh.pids[s] })),
      ...extraGateways.map((g, i) => ({ name: `gateway#${i + 2}`, pid: g.pid })),
    ],
    stop: async () => {
      clients.close();
      await Promise.all(extraGateways.map((g) => g.stop()));
      await mesh.stop();
      for (const db of databases) await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      await admin.end();
      rmSync(work, { recursive: true, force: true });
      await removePrefix(tag, MESH_REDIS_URL, MESH_NATS_URL);
    },
  };
}

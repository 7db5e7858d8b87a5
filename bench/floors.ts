/**
 * The floors under a payment, each measured on this machine in the run that measures the product:
 * what one of its parts costs with nothing of ours around it, all on loopback.
 *
 * - `echo`: a grpc-js unary echo with mTLS (bench/echo-server.ts, its own process; the services'
 *   server credentials and createClient, the client the services use), a 256-byte payload (about
 *   an AuthorizeRequest): the floor under every gRPC hop.
 * - `insertCommit`: a single-row INSERT autocommitted (INSERT and COMMIT in one round trip) into a
 *   throwaway table, the server's synchronous_commit as it is (on): the floor under a durable commit.
 * - `select`: `SELECT 1`, one round trip: the floor under any other statement.
 * - `redisGet`: a Redis GET of one key: the floor under a Redis round trip.
 * - `publish`: a JetStream publish, awaiting its ack, to a throwaway file stream (as the services'
 *   streams): the floor under an awaited publish.
 *
 * Each at 1 in flight (its p50 enters the floor sum of the path) and at `wide` in flight (its rate);
 * PostgreSQL's at `wide` share 16 connections, so the floors leave the server's connections to others.
 */
import { fork } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { makeGenericClientConstructor } from '@grpc/grpc-js';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import Redis from 'ioredis';
import { Pool } from 'pg';
import { createClient } from '../platform/grpc/client';
import { channelCredentials } from '../platform/grpc/credentials';
import { repoPath } from '../platform/paths';
import { certPaths } from '../scripts/mesh';
import { ECHO_SERVICE } from './echo-server';
import { benchDatabase, benchPrefix } from './harness';
import { run, type LoadResult } from './load';

export const FLOORS = ['echo', 'insertCommit', 'select', 'redisGet', 'publish'] as const;
export type FloorName = (typeof FLOORS)[number];

/** A LoadResult without its latencies: what a result file keeps. */
export type Summary = Omit<LoadResult, 'latencies'> & { calls: number };
export const summarize = (r: LoadResult): Summary => ({ perSecond: r.perSecond, p50: r.p50, p99: r.p99, max: r.max, seconds: r.seconds, calls: r.latencies.length });

export interface FloorResult {
  one: Summary;
  wide: Summary;
}

export interface FloorOptions {
  /** Calls timed at 1 in flight, and at `wide` in flight, per floor (each after a warm-up of a fifth as many). */
  callsOne: number;
  callsWide: number;
  wide: number;
  redisUrl: string;
  natsUrl: string;
  /** Called after each floor, to show progress. */
  onFloor?: (name: FloorName) => void;
}

/** One floor: warm-up, then timed at 1 and at `wide` in flight. */
async function measure(options: FloorOptions, one: (i: number) => Promise<unknown>): Promise<FloorResult> {
  await run(Math.max(20, Math.ceil(options.callsOne / 5)), options.wide, one);
  const at1 = await run(options.callsOne, 1, one);
  const wide = await run(options.callsWide, options.wide, one);
  return { one: summarize(at1), wide: summarize(wide) };
}

/** The echo server in a process of its own, and a client of it presenting the gateway's certificate. */
async function echoFloor(options: FloorOptions): Promise<FloorResult> {
  const certs = mkdtempSync(join(tmpdir(), 'wp-bench-echo-'));
  execFileSync('bash', [repoPath('scripts', 'dev-certs.sh'), certs], { stdio: 'pipe' });
  const child = fork(join(__dirname, 'echo-server.js'), [], { env: { ...process.env, ...certPaths(certs, 'risk') }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (m: { port: number }) => resolve(m.port));
      child.once('exit', (code) => reject(new Error(`echo server exited (${code}) before listening`)));
    });
    const Echo = makeGenericClientConstructor(ECHO_SERVICE, 'Echo');
    const client = createClient(Echo as never, `localhost:${port}`, { credentials: channelCredentials({ GRPC_TLS: 'mtls', ...certPaths(certs, 'gateway') }), deadlineMs: 10_000, retryable: [] }) as unknown as {
      echo(request: Buffer): Promise<Buffer>;
      close(): void;
    };
    const payload = randomBytes(256);
    try {
      return await measure(options, async () => {
        const answer = await client.echo(payload);
        if (answer.length !== payload.length) throw new Error('echo answered another payload');
      });
    } finally {
      client.close();
    }
  } finally {
    child.disconnect();
    child.kill();
    rmSync(certs, { recursive: true, force: true });
  }
}

async function postgresFloors(options: FloorOptions, prefix: string): Promise<{ insertCommit: FloorResult; select: FloorResult; synchronousCommit: string }> {
  const db = await benchDatabase(`${prefix}_floor`);
  const pool = new Pool({ connectionString: db.url, max: Math.min(options.wide, 16), idleTimeoutMillis: 0 });
  let ended = false;
  pool.on('error', (err) => ended || process.stderr.write(`bench: floor connection lost: ${err.message}\n`));
  try {
    await pool.query('CREATE TABLE bench_insert (payment_id uuid PRIMARY KEY, amount_minor bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now())');
    const synchronousCommit = (await pool.query<{ synchronous_commit: string }>('SHOW synchronous_commit')).rows[0]!.synchronous_commit;
    const insertCommit = await measure(options, (i) => pool.query('INSERT INTO bench_insert (payment_id, amount_minor) VALUES ($1, $2)', [randomUUID(), 1_000 + (i % 500)]));
    options.onFloor?.('insertCommit');
    const select = await measure(options, () => pool.query('SELECT 1'));
    options.onFloor?.('select');
    return { insertCommit, select, synchronousCommit };
  } finally {
    ended = true;
    await pool.end();
    await db.drop();
  }
}

async function redisFloor(options: FloorOptions, prefix: string): Promise<FloorResult> {
  const redis = new Redis(options.redisUrl);
  const key = `${prefix}:floor`;
  try {
    await redis.set(key, randomBytes(64).toString('hex'));
    return await measure(options, () => redis.get(key));
  } finally {
    await redis.del(key);
    redis.disconnect();
  }
}

async function publishFloor(options: FloorOptions, prefix: string): Promise<FloorResult> {
  const nc = await connect({ servers: options.natsUrl });
  const jsm = await jetstreamManager(nc);
  const stream = `${prefix.toUpperCase()}_FLOOR`;
  try {
    await jsm.streams.add({ name: stream, subjects: [`${prefix}.floor.>`] });
    const js = jetstream(nc);
    const payload = randomBytes(256);
    return await measure(options, () => js.publish(`${prefix}.floor.event`, payload, { msgID: randomUUID() }));
  } finally {
    await jsm.streams.delete(stream).catch(() => undefined);
    await nc.close();
  }
}

/** Every floor, one after the other, each cleaning up what it made (database, key, stream, certificates, echo process). */
export async function measureFloors(options: FloorOptions): Promise<Record<FloorName, FloorResult> & { synchronousCommit: string }> {
  const prefix = benchPrefix();
  const echo = await echoFloor(options);
  options.onFloor?.('echo');
  const pg = await postgresFloors(options, prefix);
  const redisGet = await redisFloor(options, prefix);
  options.onFloor?.('redisGet');
  const publish = await publishFloor(options, prefix);
  options.onFloor?.('publish');
  return { echo, insertCommit: pg.insertCommit, select: pg.select, redisGet, publish, synchronousCommit: pg.synchronousCommit };
}

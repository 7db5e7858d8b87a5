/**
 * The counting run of the suite: a few payments at 1 in flight on a mesh of their own with every
 * statement traced (WRISTPAY_TRACE_STATEMENTS=1, in case statement spans are off by default), and
 * what each payment does on its answer path counted from the traces (bench/path-counts.ts).
 * Beside it, server-side counters over the same payments, which count all the work the payments
 * caused (after the answer too: relays, consumers) and need no span at all: PostgreSQL writing
 * transactions (the server's transaction id counter, which only writing transactions advance),
 * Redis commands (total_commands_processed) and the JetStream messages in the mesh's streams.
 * PostgreSQL and Redis are shared with other work, so each counter's rate over a quiet window just
 * before (nothing of ours in flight) is subtracted.
 */
import { readFileSync } from 'node:fs';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import Redis from 'ioredis';
import { Client } from 'pg';
import type { SpanRecord } from '../platform/telemetry/file-exporter';
import { onboardBands, payEach } from './authorize';
import { ADMIN_URL, BENCH_MERCHANTS, startBenchMesh } from './harness';
import { countPayments, type PathCounts } from './path-counts';

interface Counters {
  xid: number;
  redisCommands: number;
  events: number;
  at: number;
}

async function counters(pg: Client, redis: Redis, natsUrl: string, prefix: string): Promise<Counters> {
  // pg_current_snapshot()'s xmax is the next transaction id: it moves only when a transaction writes (and reading it assigns none).
  const { rows } = await pg.query<{ xmax: string }>('SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS xmax');
  const info = await redis.info('stats');
  const redisCommands = Number(/total_commands_processed:(\d+)/.exec(info)?.[1]);
  const nc = await connect({ servers: natsUrl });
  let events = 0;
  try {
    const jsm = await jetstreamManager(nc);
    for await (const s of jsm.streams.list()) if (s.config.name.startsWith(`${prefix.toUpperCase()}_`)) events += s.state.messages;
  } finally {
    await nc.close();
  }
  return { xid: Number(rows[0]!.xmax), redisCommands, events, at: Date.now() };
}

export interface CountRun {
  perPayment: PathCounts;
  payments: number;
  missing: number;
  server: { transactions: number; redisCommands: number; events: number };
}

/** `payments` payments at 1 in flight after `warm` untimed ones, counted (see the file's comment). */
export async function countRun(options: { payments: number; warm: number; natsUrl: string; redisUrl: string; onStep?: (what: string) => void }): Promise<CountRun> {
  const { payments, warm } = options;
  const mesh = await startBenchMesh({ merchants: BENCH_MERCHANTS, env: { WRISTPAY_TRACE_STATEMENTS: '1' }, label: 'count' });
  const pg = new Client({ connectionString: ADMIN_URL });
  const redis = new Redis(options.redisUrl);
  try {
    await pg.connect();
    options.onStep?.('counting run: onboarding');
    const { bands } = await onboardBands(mesh, payments + warm, 8);
    await payEach(mesh, bands.slice(payments), 1);
    options.onStep?.('counting run: payments');
    // Quiet window: the other work's rate on the shared servers, with nothing of ours in flight.
    const quiet = await counters(pg, redis, options.natsUrl, mesh.prefix);
    await new Promise((r) => setTimeout(r, 2_000));
    const before = await counters(pg, redis, options.natsUrl, mesh.prefix);
    const { traceIds } = await payEach(mesh, bands.slice(0, payments), 1);
    // The outbox relays publish just after the answer; the batch span processor exports every 200 ms.
    await new Promise((r) => setTimeout(r, 1_500));
    const after = await counters(pg, redis, options.natsUrl, mesh.prefix);
    // Less than nothing once the other work's estimated share is taken off: that work swamped ours, so no figure (NaN).
    const ours = (k: 'xid' | 'redisCommands') => {
      const n = after[k] - before[k] - ((before[k] - quiet[k]) / (before.at - quiet.at)) * (after.at - before.at);
      return n >= 0 ? n / payments : NaN;
    };
    const spans = mesh.traceFiles().flatMap((f) =>
      readFileSync(f, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as SpanRecord),
    );
    const counted = countPayments(spans, traceIds);
    return {
      ...counted,
      server: {
        transactions: ours('xid'),
        redisCommands: ours('redisCommands'),
        events: (after.events - before.events) / payments,
      },
    };
  } finally {
    await pg.end();
    redis.disconnect();
    await mesh.stop();
  }
}

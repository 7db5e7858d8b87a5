/**
 * The alerts feed end to end: payment events published on JetStream → the alerts consumer stores
 * each as an alert with the account's next sequence → the alert arrives on the account's open
 * StreamAlerts call. Alerts runs as its own process(es) (the compiled service with the telemetry
 * preload, as bench/harness.ts starts the mesh), over mTLS with certificates from
 * scripts/dev-certs.sh; the bench calls it as `wallet`, the only identity StreamAlerts answers.
 * It gets a fresh PostgreSQL database and a throwaway NATS subject prefix; the prefix's streams
 * (and with them the durable `alerts` consumers) and the database are removed at the end.
 *
 *   node dist/bench/alerts-feed.js [--accounts 50] [--events 5000] [--rate 0] [--concurrency 16] [--replicas 1] [--poll-ms 1000]
 *
 * --rate 0 publishes as fast as `--concurrency` publishers in a closed loop get JetStream acks
 * (a backlog builds: the latency then includes the wait in it); --rate R publishes R events a
 * second on a schedule (open loop). With --replicas 2 both replicas consume the same durable
 * consumer and every stream is opened on the second one, so alerts the first stores reach their
 * stream only through the core NATS wake-up (or the --poll-ms poll).
 *
 * Fails (exit 1, "FAILED" lines) unless every stream got exactly its own alerts, with sequences
 * 1..n in order, no gap and no duplicate, and the database holds exactly --events alerts.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { credentials } from '@grpc/grpc-js';
import { Client } from 'pg';
import { AlertsServiceClient } from '../gen/wristpay/alerts/v1/alerts';
import type { Event } from '../gen/wristpay/events/v1/events';
import { newEvent } from '../platform/events';
import { createClient, type PromiseClient } from '../platform/grpc/client';
import { createLogger } from '../platform/log';
import { EventBus } from '../platform/nats';
import { repoPath } from '../platform/paths';
import { certPaths, freePort, startService, type ServiceProcess } from '../scripts/mesh';
import { ADMIN_URL, benchPrefix, removeStreams, runBench } from './harness';
import { arg, processCpuSeconds, run } from './load';

const NATS_URL = 'nats://127.0.0.1:4222';

const TYPES = ['payment.authorized', 'payment.authorized', 'payment.challenged', 'payment.declined'] as const;

/** What the gateway publishes for a payment's outcome (as services/alerts/test builds it). */
function paymentEvent(i: number, accountId: string): Event {
  const type = TYPES[i % TYPES.length]!;
  const paymentId = randomUUID();
  const status = { 'payment.authorized': 'APPROVED', 'payment.challenged': 'CHALLENGE_REQUIRED', 'payment.declined': 'DECLINED' }[type];
  return newEvent(
    type,
    'gateway',
    {
      $case: 'payment',
      value: {
        paymentId,
        status,
        declineReason: type === 'payment.declined' ? 'INSUFFICIENT_FUNDS' : '',
        amount: { amountMinor: BigInt(100 + (i % 2_900)), currency: 'EUR' },
        merchantId: `m${i % 97}`,
        accountId,
        deviceId: `${accountId}-band`,
        holdId: '',
        merchantName: 'Corner Café',
        discount: undefined,
        stepUp: undefined,
      },
    },
    `${type}.${paymentId}`,
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quantile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
const ms = (n: number) => `${n.toFixed(2).padStart(7)} ms`;

interface Received {
  sequence: number;
  eventId: string;
  accountId: string;
}

async function main(): Promise<void> {
  const accounts = arg('accounts', 50);
  const events = arg('events', 5_000);
  const rate = arg('rate', 0);
  const concurrency = arg('concurrency', 16);
  const replicas = arg('replicas', 1);
  const pollMs = arg('poll-ms', 1_000);
  const drainTimeoutMs = arg('drain-timeout-ms', 120_000);
  if (replicas !== 1 && replicas !== 2) throw new Error('--replicas must be 1 or 2');

  const prefix = benchPrefix();
  const work = mkdtempSync(join(tmpdir(), 'wp-bench-alerts-'));
  const certs = join(work, 'certs');
  execFileSync('bash', [repoPath('scripts', 'dev-certs.sh'), certs], { stdio: 'pipe' });
  const ca = readFileSync(join(certs, 'ca.crt'));
  const asWallet = credentials.createSsl(ca, readFileSync(join(certs, 'wallet.key')), readFileSync(join(certs, 'wallet.crt')));
  const admin = new Client({ connectionString: ADMIN_URL });
  await admin.connect();
  const database = `${prefix}_alerts`;
  await admin.query(`CREATE DATABASE ${database}`);
  const dbUrl = new URL(ADMIN_URL);
  dbUrl.pathname = `/${database}`;

  const procs: ServiceProcess[] = [];
  let bus: EventBus | undefined;
  let db: Client | undefined;
  let wallet: PromiseClient<AlertsServiceClient> | undefined;
  const aborts: AbortController[] = [];
  try {
    // One after the other: the first applies the migrations on the empty database.
    for (let r = 1; r <= replicas; r++) {
      const env = {
        ...certPaths(certs, 'alerts'),
        GRPC_TLS: 'mtls',
        DATABASE_URL: dbUrl.toString(),
        NATS_URL,
        NATS_SUBJECT_PREFIX: prefix,
        ALERTS_POLL_MS: String(pollMs),
        LOG_LEVEL: 'warn',
        WRISTPAY_TRACE_FILE: join(work, `alerts-${r}.jsonl`),
      };
      procs.push(await startService('alerts', await freePort(), env, { credentials: asWallet, onLine: (line, stream) => stream === 'stderr' && process.stderr.write(`alerts#${r}: ${line}\n`) }));
    }
    // Streams on the last replica; with two, the first one's stored alerts reach them only by the cross-replica wake-up.
    const streamReplica = procs[procs.length - 1]!;
    wallet = createClient(AlertsServiceClient, `localhost:${streamReplica.port}`, { credentials: asWallet, deadlineMs: 10_000, retryable: [] });
    bus = await EventBus.connect({ url: NATS_URL, prefix, source: 'gateway', log: createLogger('gateway', 'warn') });
    db = new Client({ connectionString: dbUrl.toString() });
    await db.connect();

    const accountOf = (i: number) => `${prefix}-acct${i % accounts}`;
    const published = new Map<string, number>(); // eventId → performance.now() just before publish
    const expected = new Map<string, Set<string>>(); // accountId → its event ids
    const got = new Map<string, Received[]>();
    const latencies: number[] = [];
    let total = 0;
    let lastArrival = 0;
    const stray: string[] = [];
    let allIn!: () => void;
    const allArrived = new Promise<void>((r) => (allIn = r));

    const readers = Array.from({ length: accounts }, (_, a) => {
      const accountId = accountOf(a);
      got.set(accountId, []);
      expected.set(accountId, new Set());
      const abort = new AbortController();
      aborts.push(abort);
      return (async () => {
        try {
          for await (const m of wallet!.streamAlerts({ accountId, afterSequence: 0n }, { signal: abort.signal })) {
            const now = performance.now();
            const alert = m.alert!;
            const sent = published.get(alert.eventId);
            if (sent === undefined || alert.accountId !== accountId) stray.push(`${accountId} got ${alert.accountId}/${alert.sequence} (${alert.eventId})`);
            else latencies.push(now - sent);
            got.get(accountId)!.push({ sequence: Number(alert.sequence), eventId: alert.eventId, accountId: alert.accountId });
            lastArrival = now;
            if (++total === events) allIn();
          }
        } catch (err) {
          if (!abort.signal.aborted) stray.push(`${accountId}: stream failed: ${(err as Error).message}`);
        }
      })();
    });
    // Each stream reads its (empty) first page and then waits; give the calls time to get there.
    await sleep(1_000);
    if (stray.length) throw new Error(`streams failed before publishing: ${stray.slice(0, 3).join('; ')}`);

    const cpuBefore = procs.map((p) => processCpuSeconds(p.pid));
    const clientCpuBefore = process.cpuUsage();
    const publishWallStart = new Date();
    const started = performance.now();
    const publishOne = async (i: number) => {
      const accountId = accountOf(i);
      const event = paymentEvent(i, accountId);
      expected.get(accountId)!.add(event.eventId);
      published.set(event.eventId, performance.now());
      const ack = await bus!.publish(event);
      if (ack.duplicate) throw new Error(`JetStream called fresh event ${event.eventId} a duplicate`);
    };
    if (rate > 0) {
      const inFlight: Promise<void>[] = [];
      for (let i = 0; i < events; i++) {
        const due = started + (i * 1_000) / rate;
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait);
        inFlight.push(publishOne(i));
      }
      await Promise.all(inFlight);
    } else {
      await run(events, concurrency, publishOne);
    }
    const publishSeconds = (performance.now() - started) / 1_000;

    const timedOut = await Promise.race([allArrived.then(() => false), sleep(drainTimeoutMs).then(() => true)]);
    const deliverSeconds = ((timedOut ? performance.now() : lastArrival) - started) / 1_000;
    const cpu = procs.map((p, i) => processCpuSeconds(p.pid) - cpuBefore[i]!);
    const clientCpu = process.cpuUsage(clientCpuBefore);
    // Anything extra (a duplicate delivered late) would come now.
    await sleep(500);
    for (const a of aborts) a.abort();
    await Promise.all(readers);

    const { rows } = await db.query<{ n: string; first: Date; last: Date; feeds: string; top: string }>(
      `SELECT count(*)::text AS n, min(created_at) AS first, max(created_at) AS last,
              (SELECT count(*)::text FROM alert_feeds) AS feeds, (SELECT coalesce(sum(last_sequence), 0)::text FROM alert_feeds) AS top FROM alerts`,
    );
    const stored = rows[0]!;
    const storedCount = Number(stored.n);
    const storeSeconds = stored.last ? (stored.last.getTime() - publishWallStart.getTime()) / 1_000 : NaN;
    const firstToLast = stored.last && stored.first ? (stored.last.getTime() - stored.first.getTime()) / 1_000 : NaN;

    // (c) every stream: exactly its own alerts, sequences 1..n in order, each event once.
    const failures: string[] = [...stray];
    if (timedOut) failures.push(`only ${total} of ${events} alerts arrived within ${drainTimeoutMs} ms after the last publish`);
    for (const [accountId, list] of got) {
      const want = expected.get(accountId)!;
      const gap = list.findIndex((r, i) => r.sequence !== i + 1);
      if (gap >= 0) failures.push(`${accountId}: alert #${gap + 1} has sequence ${list[gap]!.sequence} (sequences ${list.slice(Math.max(0, gap - 2), gap + 3).map((r) => r.sequence).join(',')})`);
      const ids = new Set(list.map((r) => r.eventId));
      if (ids.size !== list.length) failures.push(`${accountId}: ${list.length - ids.size} duplicate event(s) delivered`);
      const missing = [...want].filter((id) => !ids.has(id)).length;
      const foreign = [...ids].filter((id) => !want.has(id)).length;
      if (missing || foreign || list.length !== want.size) failures.push(`${accountId}: got ${list.length} alerts for ${want.size} events (${missing} missing, ${foreign} not its own)`);
    }
    if (storedCount !== events || Number(stored.top) !== events) failures.push(`database holds ${storedCount} alerts and feeds up to ${stored.top} in all, for ${events} events`);

    latencies.sort((a, b) => a - b);
    const perAccount = [...expected.values()].map((ids) => ids.size);
    const mode = replicas === 2 ? '2 replicas consuming the durable consumer, streams on replica #2' : '1 replica';
    const lines = [
      `${events} payment events over ${accounts} accounts (${Math.min(...perAccount)}-${Math.max(...perAccount)} each), ${rate > 0 ? `published at ${rate}/s (open loop)` : `published as fast as ${concurrency} publishers get JetStream acks`}; alerts: ${mode}, mTLS, ALERTS_POLL_MS=${pollMs}; PostgreSQL, NATS on this machine (2 cores)`,
      `published                         ${(events / publishSeconds).toFixed(0).padStart(6)}/s   (${publishSeconds.toFixed(2)} s)`,
      `alerts stored (consumer)          ${(storedCount / storeSeconds).toFixed(0).padStart(6)}/s   (first publish → last commit ${storeSeconds.toFixed(2)} s; first → last commit ${(storedCount / firstToLast).toFixed(0)}/s)`,
      `alerts delivered on the streams   ${(total / deliverSeconds).toFixed(0).padStart(6)}/s   (first publish → last arrival ${deliverSeconds.toFixed(2)} s)`,
      `publish → alert on the stream     p50 ${ms(quantile(latencies, 0.5))}   p99 ${ms(quantile(latencies, 0.99))}   max ${ms(latencies[latencies.length - 1] ?? NaN)}   (${latencies.length} alerts)`,
      `CPU (s, first publish → last arrival): ${procs.map((_, i) => `alerts#${i + 1} ${cpu[i]!.toFixed(2)}`).join(', ')}, bench client ${((clientCpu.user + clientCpu.system) / 1e6).toFixed(2)}   (load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`,
      failures.length
        ? `FAILED: ${failures.length} problem(s):\n${failures.slice(0, 20).map((f) => `  ${f}`).join('\n')}`
        : `check: ${accounts} streams, each got exactly its own alerts with sequences 1..n in order (no gap, no duplicate); database: ${storedCount} alerts, ${stored.feeds} feeds`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
    if (failures.length) process.exitCode = 1;
  } finally {
    for (const a of aborts) a.abort();
    wallet?.close();
    await bus?.close();
    await db?.end();
    await Promise.all(procs.map((p) => p.stop()));
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
    await removeStreams(NATS_URL, prefix);
    rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) runBench(main);

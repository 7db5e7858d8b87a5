/**
 * PlaceHold throughput and latency over gRPC, next to a plain single-row INSERT-and-COMMIT on
 * the same PostgreSQL at the same concurrency (the floor under any ledger that commits each
 * hold durably). Starts settlement in this process on port 0 against a fresh PostgreSQL database
 * and a throwaway NATS prefix; runs once across many topped-up wallets and once on ONE hot
 * wallet (every hold takes the same row lock); runs the ledger invariant checker on the database
 * afterwards; then drops the database and the streams.
 *
 * Band limits: the same spread run on bands that have limits (per payment and per day, so each
 * hold locks the band's band_limits row and sums the band's holds today), and one band used by
 * holds from all the wallets, once without limits (no band lock) and once with a daily limit
 * (every hold queues on that band's row lock; the sum covers every hold the band made today).
 * Limits are set through SetBandLimits as `wallet` on a second, mTLS replica (certificates from
 * scripts/dev-certs.sh) that is stopped before anything is timed; the timed calls all go to the
 * plaintext one. `--rounds 2` repeats the with/without pairs, alternating, to see the drift.
 *
 *   node dist/bench/settlement-hold.js [--calls 10000] [--hot-calls 3000] [--concurrency 16] [--wallets 2000] [--rounds 1]
 *
 * The service's pool and the baseline's pool both get `--concurrency` connections
 * (DATABASE_POOL_SIZE), so neither waits for a connection the other would have had.
 * Database server: TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, status as grpcStatus } from '@grpc/grpc-js';
import { Client, Pool } from 'pg';
import type { Money } from '../gen/wristpay/common/v1/common';
import { HoldOutcome, SettlementServiceClient, type PlaceHoldRequest } from '../gen/wristpay/settlement/v1/settlement';
import { openDb } from '../platform/db';
import { createClient } from '../platform/grpc/client';
import { createLogger } from '../platform/log';
import { repoPath } from '../platform/paths';
import { certPaths } from '../scripts/mesh';
import { startSettlement } from '../services/settlement/src/app';
import { readConfig } from '../services/settlement/src/config';
import { checkLedger } from '../services/settlement/src/invariants';
import { freshDatabase } from '../test/support/servers';
import { benchPrefix, removeStreams, runBench } from './harness';
import { meshPki } from '../test/support/mesh-pki';
import { testClient } from '../test/support/services';
import { arg, formatResult, processCpuSeconds, run, type LoadResult } from './load';

/**
 * Counts the statements this process sends to PostgreSQL (each pg Client.query is one round
 * trip: BEGIN and COMMIT included), so a stage can say how many one PlaceHold costs. Counts the
 * service's pool (the RPCs and its outbox relay) and nothing else during the timed stages.
 */
function countStatements(): { count(): number } {
  let n = 0;
  const original = Client.prototype.query;
  Client.prototype.query = function (this: Client, ...args: unknown[]) {
    n++;
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof Client.prototype.query;
  return { count: () => n };
}

/** CPU seconds of the PostgreSQL backends serving `database` now, by pid (read from /proc: same machine). */
async function backendCpu(pool: Pool, database: string): Promise<Map<number, number>> {
  const { rows } = await pool.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [database]);
  const cpu = new Map<number, number>();
  for (const { pid } of rows) {
    try {
      cpu.set(pid, processCpuSeconds(pid));
    } catch {
      // The backend ended between the query and the read.
    }
  }
  return cpu;
}

const eur = (minor: number) => ({ amountMinor: BigInt(minor), currency: 'EUR' });

/** settlement in this process on a fresh database, its client, and the requests the bench sends it. */
export interface HoldBench {
  prefix: string;
  databaseUrl: string;
  /** The environment of the service (database, port 0, NATS prefix), for a second replica on the same database. */
  baseEnv: Record<string, string>;
  /** Wallet i mod `wallets`, topped up far beyond what its holds take, so every hold is PLACED. */
  wallet(i: number): string;
  topUp(accountId: string, minor: number): Promise<unknown>;
  holdRequest(accountId: string, i: number): PlaceHoldRequest;
  /** PlaceHold, its outcome counted in `outcomes` (`HOLD_OUTCOME_PLACED`). */
  placeHold(request: PlaceHoldRequest): Promise<void>;
  outcomes: Map<string, number>;
  /** Closes the client and stops the service (once; the database stays). */
  stopService(): Promise<void>;
  /** stopService, then drops the database and removes the prefix's streams. */
  stop(): Promise<void>;
}

/**
 * Starts settlement in this process (mTLS, DATABASE_POOL_SIZE `poolSize`) on a fresh database with
 * a throwaway NATS prefix, and tops up `wallets` wallets, `poolSize` at a time.
 */
export async function startHoldBench(options: { poolSize: number; wallets: number }): Promise<HoldBench> {
  const { poolSize, wallets } = options;
  const prefix = benchPrefix();
  const database = await freshDatabase();
  const baseEnv = { DATABASE_URL: database.url, SETTLEMENT_PORT: '0', NATS_SUBJECT_PREFIX: prefix, LOG_LEVEL: 'warn' };
  const config = readConfig({ ...process.env, ...baseEnv, ...meshPki().env('settlement'), DATABASE_POOL_SIZE: String(poolSize) });
  const service = await startSettlement(config, createLogger('settlement', 'warn'));
  // PlaceHold as the gateway, TopUp as the wallet backend: each method as an identity its policy admits.
  const client = testClient(SettlementServiceClient, service.port);
  let stopped: Promise<void> | undefined;
  const stopService = () =>
    (stopped ??= (async () => {
      client.close();
      await service.stop();
    })());
  const stop = async () => {
    await stopService();
    await database.drop();
    await removeStreams(config.NATS_URL, prefix);
  };
  try {
    const wallet = (i: number) => `${prefix}-w${i % wallets}`;
    // One idempotency key per top-up, so a call that ran out of its deadline on a busy machine is retried as the same top-up.
    const topUp = async (accountId: string, minor: number) => {
      const request = { idempotencyKey: randomUUID(), accountId, amount: eur(minor), sourceReference: `bench-${randomUUID()}` };
      for (let attempt = 1; ; attempt++) {
        try {
          return await client.topUp(request);
        } catch (err) {
          if (attempt >= 3 || (err as { code?: number }).code !== grpcStatus.DEADLINE_EXCEEDED) throw err;
        }
      }
    };
    await run(wallets, poolSize, (i) => topUp(wallet(i), 100_000_000));
    const outcomes = new Map<string, number>();
    return {
      prefix,
      databaseUrl: database.url,
      baseEnv,
      wallet,
      topUp,
      holdRequest: (accountId, i) => ({
        idempotencyKey: randomUUID(),
        paymentId: randomUUID(),
        accountId,
        merchantId: `m${i % 97}`,
        amount: eur(100 + (i % 2_900)),
        ttlSeconds: 0n,
        voucherCode: '', merchantName: '', deviceId: `${prefix}-d${i % wallets}`,
      }),
      placeHold: async (req) => {
        const res = await client.placeHold(req);
        const name = HoldOutcome[res.outcome] ?? String(res.outcome);
        outcomes.set(name, (outcomes.get(name) ?? 0) + 1);
      },
      outcomes,
      stopService,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function main(): Promise<void> {
  const calls = arg('calls', 10_000);
  const hotCalls = arg('hot-calls', 3_000);
  const concurrency = arg('concurrency', 16);
  const wallets = arg('wallets', 2_000);
  const rounds = arg('rounds', 1);
  const bench = await startHoldBench({ poolSize: concurrency, wallets });
  const { prefix, baseEnv, wallet, topUp, holdRequest, placeHold, outcomes } = bench;
  const pool = new Pool({ connectionString: bench.databaseUrl, max: concurrency });
  const databaseName = new URL(bench.databaseUrl).pathname.slice(1);
  const statements = countStatements();
  try {
    const hot = `${prefix}-hot`;
    await topUp(hot, 100_000_000);

    /**
     * SetBandLimits on `bands` as `wallet`: only an mTLS caller has an identity, so through a
     * second replica on the same database listening with mTLS, stopped again before any timing.
     */
    const setLimits = async (bands: Array<{ deviceId: string; accountId: string }>, inFlight: number, limits: { perPayment: Money; perDay: Money }) => {
      const certs = mkdtempSync(join(tmpdir(), 'wp-bench-certs-'));
      execFileSync('bash', [repoPath('scripts', 'dev-certs.sh'), certs], { stdio: 'pipe' });
      const replica = await startSettlement(readConfig({ ...process.env, ...baseEnv, ...certPaths(certs, 'settlement'), GRPC_TLS: 'mtls', DATABASE_POOL_SIZE: '4' }), createLogger('settlement', 'warn'));
      const asWallet = credentials.createSsl(readFileSync(join(certs, 'ca.crt')), readFileSync(join(certs, 'wallet.key')), readFileSync(join(certs, 'wallet.crt')));
      const limitsClient = createClient(SettlementServiceClient, `localhost:${replica.port}`, { credentials: asWallet, deadlineMs: 10_000, retryable: [] });
      try {
        await run(bands.length, inFlight, (i) =>
          limitsClient.setBandLimits({ idempotencyKey: randomUUID(), ...bands[i]!, ...limits, frozen: false, reason: 'bench', expectedVersion: 0n }),
        );
      } finally {
        limitsClient.close();
        await replica.stop();
        rmSync(certs, { recursive: true, force: true });
      }
    };

    // Band limits, set as the wallet backend would: far above what the bench holds, so every hold
    // is PLACED, but both set, so each hold takes the band row lock and runs the daily sum.
    const limitedBand = (i: number) => `${prefix}-ld${i % wallets}`;
    const hotBandFree = `${prefix}-hotband-nolimits`;
    const hotBandLimited = `${prefix}-hotband-limits`;
    await setLimits(
      [...Array.from({ length: wallets }, (_, i) => ({ deviceId: limitedBand(i), accountId: wallet(i) })), { deviceId: hotBandLimited, accountId: wallet(0) }],
      concurrency,
      { perPayment: eur(5_000), perDay: eur(1_000_000_000) },
    );
    const limitedRequest = (i: number) => ({ ...holdRequest(wallet(i), i), deviceId: limitedBand(i) });
    const onBand = (deviceId: string) => (i: number) => ({ ...holdRequest(wallet(i), i), deviceId });

    await run(500, concurrency, (i) => placeHold(holdRequest(wallet(i + 7), i))); // warm-up: connections, JIT, plan cache
    await run(500, concurrency, (i) => placeHold(limitedRequest(i + 7))); // and the limits' statements
    outcomes.clear();
    const byLabel = new Map<string, Map<string, number>>();
    // Per call: this process's CPU (the gRPC client and the service: they share it), the CPU of
    // the database's backends (a backend that ended mid-stage is not counted), and the statements
    // the service sent (the hold's transaction and the relay's share).
    const costs = new Map<string, { processMs: number; postgresMs: number; statements: number }>();
    const stage = async (label: string, n: number, request: (i: number) => PlaceHoldRequest, offset = 0) => {
      outcomes.clear();
      const pgBefore = await backendCpu(pool, databaseName);
      const cpuBefore = processCpuSeconds(process.pid);
      const sentBefore = statements.count();
      const result = await run(n, concurrency, (i) => placeHold(request(i + offset)));
      const sent = statements.count() - sentBefore;
      const cpu = processCpuSeconds(process.pid) - cpuBefore;
      const pgAfter = await backendCpu(pool, databaseName);
      let pgCpu = 0;
      for (const [pid, seconds] of pgAfter) pgCpu += seconds - (pgBefore.get(pid) ?? 0);
      costs.set(label, { processMs: (cpu * 1000) / n, postgresMs: (pgCpu * 1000) / n, statements: sent / n });
      byLabel.set(label, new Map(outcomes));
      return { label, result, n };
    };
    const results: Array<Awaited<ReturnType<typeof stage>>> = [];
    for (let r = 1; r <= rounds; r++) {
      const tag = rounds > 1 ? `, round ${r}` : '';
      results.push(await stage(`PlaceHold, ${wallets} wallets, no limits${tag}`, calls, (i) => holdRequest(wallet(i), i), r * calls));
      results.push(await stage(`PlaceHold, ${wallets} wallets, limits${tag}`, calls, limitedRequest, r * calls));
    }
    for (let r = 1; r <= rounds; r++) {
      const tag = rounds > 1 ? `, round ${r}` : '';
      const half = Math.floor(hotCalls / 2);
      // The limited band keeps its holds across rounds: its daily sum covers all of them, so number them from its first.
      const before = (r - 1) * hotCalls;
      results.push(await stage(`PlaceHold, one band, no limits${tag}`, hotCalls, onBand(hotBandFree)));
      results.push(await stage(`PlaceHold, one band, limits, holds ${before + 1}-${before + half}`, half, onBand(hotBandLimited)));
      results.push(await stage(`PlaceHold, one band, limits, holds ${before + half + 1}-${before + hotCalls}`, hotCalls - half, onBand(hotBandLimited), half));
    }
    const hotRun = (await stage('PlaceHold over gRPC, one hot wallet', hotCalls, (i) => holdRequest(hot, i))).result;

    await pool.query('CREATE TABLE bench_insert (id bigserial PRIMARY KEY, account_id text NOT NULL, amount_minor bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now())');
    await run(500, concurrency, (i) => pool.query('INSERT INTO bench_insert (account_id, amount_minor) VALUES ($1, $2)', [wallet(i), 100 + (i % 2_900)]));
    const insert = await run(calls, concurrency, (i) => pool.query('INSERT INTO bench_insert (account_id, amount_minor) VALUES ($1, $2)', [wallet(i), 100 + (i % 2_900)]));

    await bench.stopService();
    const ledgerDb = await openDb({ databaseUrl: bench.databaseUrl, poolSize: 2 });
    const verdict = await checkLedger(ledgerDb).finally(() => ledgerDb.close());

    const show = (m: Map<string, number>) => [...m].map(([k, v]) => `${k.replace('HOLD_OUTCOME_', '')} ${v}`).join(', ');
    const ratio = (r: LoadResult) => `${((100 * r.perSecond) / insert.perSecond).toFixed(0)}%`;
    const spread = results[0]!.result;
    const pct = (a: LoadResult, b: LoadResult) => `${((100 * a.perSecond) / b.perSecond).toFixed(0)}%`;
    const width = Math.max(...results.map((s) => s.label.length));
    const pairs: string[] = [];
    for (let r = 0; r < rounds; r++) {
      const [free, limited] = [results[2 * r]!.result, results[2 * r + 1]!.result];
      pairs.push(`limits on the band${rounds > 1 ? `, round ${r + 1}` : ''}: ${wallets} bands ${pct(limited, free)} of the rate without (p50 ${free.p50.toFixed(1)} → ${limited.p50.toFixed(1)} ms)`);
    }
    for (let r = 0; r < rounds; r++) {
      const base = 2 * rounds + 3 * r;
      const [free, first, second] = [results[base]!.result, results[base + 1]!.result, results[base + 2]!.result];
      pairs.push(`one band with limits${rounds > 1 ? `, round ${r + 1}` : ''}: ${pct(first, free)} (first half) and ${pct(second, free)} (second half) of the rate on one band without (serial: ${(1_000 / first.perSecond).toFixed(1)} and ${(1_000 / second.perSecond).toFixed(1)} ms per hold)`);
    }
    const settings = (await pool.query<{ sc: string; fsync: string }>("SELECT current_setting('synchronous_commit') AS sc, current_setting('fsync') AS fsync")).rows[0]!;
    process.stdout.write(
      [
        `load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at the end`,
        `${concurrency} in flight, ${concurrency} PostgreSQL connections each, client and server in one process (synchronous_commit=${settings.sc}, fsync=${settings.fsync})`,
        ...results.map((s) => formatResult(s.label.padEnd(width), s.result)),
        formatResult('PlaceHold over gRPC, one hot wallet'.padEnd(width), hotRun),
        ...[...costs].map(
          ([label, c]) => `${label.padEnd(width)} per call: process CPU ${c.processMs.toFixed(2)} ms (client + service), PostgreSQL backends ${c.postgresMs.toFixed(2)} ms, ${c.statements.toFixed(2)} statements`,
        ),
        formatResult('INSERT + COMMIT, one row (pg Pool)'.padEnd(width), insert),
        `outcomes: ${[...byLabel].map(([label, m]) => `${label.replace(/^PlaceHold( over gRPC)?, /, '')}: ${show(m)}`).join('; ')}`,
        `ratio: PlaceHold runs at ${ratio(spread)} (${wallets} wallets) and ${ratio(hotRun)} (one wallet) of a single-row INSERT-and-COMMIT's rate`,
        ...pairs,
        `ledger check: ${verdict.ok ? 'sound' : 'VIOLATIONS'} (${verdict.counts.accounts} accounts, ${verdict.counts.transfers} transfers, ${verdict.counts.postings} postings, ${verdict.counts.holds} holds)`,
        ...verdict.violations.map((v) => `  ${v}`),
      ].join('\n') + '\n',
    );
    const placedAll = (m: Map<string, number>, n: number) => m.get('HOLD_OUTCOME_PLACED') === n;
    const allPlaced = results.every((s) => placedAll(byLabel.get(s.label)!, s.n)) && placedAll(byLabel.get('PlaceHold over gRPC, one hot wallet')!, hotCalls);
    if (!verdict.ok || !allPlaced) process.exitCode = 1;
  } finally {
    await pool.end();
    await bench.stop();
  }
}

if (require.main === module) runBench(main);

/**
 * PlaceHold throughput and latency over gRPC, next to a plain single-row INSERT-and-COMMIT on
 * the same PostgreSQL at the same concurrency (the floor under any ledger that commits each
 * hold durably). Starts settlement in this process on port 0 against a fresh PostgreSQL database
 * and a throwaway NATS prefix; runs once across many topped-up wallets and once on ONE hot
 * wallet (every hold takes the same row lock); runs the ledger invariant checker on the database
 * afterwards; then drops the database and the streams.
 *
 *   node dist/bench/settlement-hold.js [--calls 10000] [--hot-calls 3000] [--concurrency 16] [--wallets 2000]
 *
 * The service's pool and the baseline's pool both get `--concurrency` connections
 * (DATABASE_POOL_SIZE), so neither waits for a connection the other would have had.
 * Database server: TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
 */
import { randomUUID } from 'node:crypto';
import { credentials } from '@grpc/grpc-js';
import { Pool } from 'pg';
import { HoldOutcome, SettlementServiceClient, type PlaceHoldRequest } from '../gen/wristpay/settlement/v1/settlement';
import { openDb } from '../platform/db';
import { createClient } from '../platform/grpc/client';
import { createLogger } from '../platform/log';
import { startSettlement } from '../services/settlement/src/app';
import { readConfig } from '../services/settlement/src/config';
import { checkLedger } from '../services/settlement/src/invariants';
import { freshDatabase } from '../test/support/servers';
import { benchPrefix, removeStreams, runBench } from './harness';
import { arg, formatResult, run, type LoadResult } from './load';

async function main(): Promise<void> {
  const calls = arg('calls', 10_000);
  const hotCalls = arg('hot-calls', 3_000);
  const concurrency = arg('concurrency', 16);
  const wallets = arg('wallets', 2_000);
  const prefix = benchPrefix();
  const database = await freshDatabase();
  const config = readConfig({
    ...process.env,
    DATABASE_URL: database.url,
    DATABASE_POOL_SIZE: String(concurrency),
    SETTLEMENT_PORT: '0',
    NATS_SUBJECT_PREFIX: prefix,
    GRPC_TLS: 'off',
    LOG_LEVEL: 'warn',
  });
  const service = await startSettlement(config, createLogger('settlement', 'warn'));
  const client = createClient(SettlementServiceClient, `127.0.0.1:${service.port}`, { credentials: credentials.createInsecure(), deadlineMs: 10_000, retryable: [] });
  const pool = new Pool({ connectionString: database.url, max: concurrency });
  let stopped = false;
  try {
    const wallet = (i: number) => `${prefix}-w${i % wallets}`;
    const hot = `${prefix}-hot`;
    const eur = (minor: number) => ({ amountMinor: BigInt(minor), currency: 'EUR' });
    const topUp = (accountId: string, minor: number) => client.topUp({ idempotencyKey: randomUUID(), accountId, amount: eur(minor), sourceReference: `bench-${randomUUID()}` });
    // Each wallet gets far more than its share of holds can take, so every hold is PLACED.
    await run(wallets, concurrency, (i) => topUp(wallet(i), 100_000_000));
    await topUp(hot, 100_000_000);
    const holdRequest = (accountId: string, i: number): PlaceHoldRequest => ({
      idempotencyKey: randomUUID(),
      paymentId: randomUUID(),
      accountId,
      merchantId: `m${i % 97}`,
      amount: eur(100 + (i % 2_900)),
      ttlSeconds: 0n,
      voucherCode: '', merchantName: '', deviceId: `${prefix}-d${i % wallets}`,
    });
    const outcomes = new Map<string, number>();
    const placeHold = async (req: PlaceHoldRequest) => {
      const res = await client.placeHold(req);
      const name = HoldOutcome[res.outcome] ?? String(res.outcome);
      outcomes.set(name, (outcomes.get(name) ?? 0) + 1);
    };

    await run(500, concurrency, (i) => placeHold(holdRequest(wallet(i + 7), i))); // warm-up: connections, JIT, plan cache
    outcomes.clear();
    const spread = await run(calls, concurrency, (i) => placeHold(holdRequest(wallet(i), i)));
    const spreadOutcomes = new Map(outcomes);
    outcomes.clear();
    const hotRun = await run(hotCalls, concurrency, (i) => placeHold(holdRequest(hot, i)));
    const hotOutcomes = new Map(outcomes);

    await pool.query('CREATE TABLE bench_insert (id bigserial PRIMARY KEY, account_id text NOT NULL, amount_minor bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now())');
    await run(500, concurrency, (i) => pool.query('INSERT INTO bench_insert (account_id, amount_minor) VALUES ($1, $2)', [wallet(i), 100 + (i % 2_900)]));
    const insert = await run(calls, concurrency, (i) => pool.query('INSERT INTO bench_insert (account_id, amount_minor) VALUES ($1, $2)', [wallet(i), 100 + (i % 2_900)]));

    client.close();
    await service.stop();
    stopped = true;
    const ledgerDb = await openDb({ databaseUrl: database.url, poolSize: 2 });
    const verdict = await checkLedger(ledgerDb).finally(() => ledgerDb.close());

    const show = (m: Map<string, number>) => [...m].map(([k, v]) => `${k.replace('HOLD_OUTCOME_', '')} ${v}`).join(', ');
    const ratio = (r: LoadResult) => `${((100 * r.perSecond) / insert.perSecond).toFixed(0)}%`;
    const settings = (await pool.query<{ sc: string; fsync: string }>("SELECT current_setting('synchronous_commit') AS sc, current_setting('fsync') AS fsync")).rows[0]!;
    process.stdout.write(
      [
        `${concurrency} in flight, ${concurrency} PostgreSQL connections each, client and server in one process (synchronous_commit=${settings.sc}, fsync=${settings.fsync})`,
        formatResult(`PlaceHold over gRPC, ${wallets} wallets`, spread),
        formatResult('PlaceHold over gRPC, one hot wallet', hotRun),
        formatResult('INSERT + COMMIT, one row (pg Pool)', insert),
        `outcomes: ${wallets} wallets: ${show(spreadOutcomes)}; hot wallet: ${show(hotOutcomes)}`,
        `ratio: PlaceHold runs at ${ratio(spread)} (${wallets} wallets) and ${ratio(hotRun)} (one wallet) of a single-row INSERT-and-COMMIT's rate`,
        `ledger check: ${verdict.ok ? 'sound' : 'VIOLATIONS'} (${verdict.counts.accounts} accounts, ${verdict.counts.transfers} transfers, ${verdict.counts.postings} postings, ${verdict.counts.holds} holds)`,
        ...verdict.violations.map((v) => `  ${v}`),
      ].join('\n') + '\n',
    );
    const placedAll = (m: Map<string, number>, n: number) => m.get('HOLD_OUTCOME_PLACED') === n;
    if (!verdict.ok || !placedAll(spreadOutcomes, calls) || !placedAll(hotOutcomes, hotCalls)) process.exitCode = 1;
  } finally {
    if (!stopped) {
      client.close();
      await service.stop();
    }
    await pool.end();
    await database.drop();
    await removeStreams(config.NATS_URL, prefix);
  }
}

if (require.main === module) runBench(main);

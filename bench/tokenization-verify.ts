/**
 * VerifyPayment throughput and latency over gRPC, next to the floor under it on the same
 * PostgreSQL: the same conditional `UPDATE ... SET atc_high` that guards replays, as one
 * autocommitted statement, and a bare `SELECT 1` round trip. Starts device-registry (needed by
 * ProvisionToken) in this process and tokenization as its own process (the compiled service with
 * the telemetry preload, spans to a file, as the image runs it), against fresh PostgreSQL
 * databases, a throwaway Redis key prefix and NATS prefix; provisions `--tokens` bands, then every
 * call is a fresh tap (next ATC, real cryptogram) from a simulated band, so every verification is
 * a real OK. Beside the rate: tokenization's CPU per call (/proc/<pid>/stat over the timed run,
 * statement spans off as in production) and its PostgreSQL statements per VerifyPayment, counted
 * from the pg spans of `--count-calls` more calls to a second tokenization process that records
 * them (WRISTPAY_TRACE_STATEMENTS=1); each statement is one round trip (the pg driver sends one
 * at a time per connection), split into the verification's own and the outbox relay's. Drops the
 * databases, keys and streams afterwards.
 *
 *   node dist/bench/tokenization-verify.js [--calls 10000] [--concurrency 16] [--tokens 1000] [--count-calls 1000] [--root <built tree>]
 *
 * `--tokens` should be well above `--concurrency`: two taps of one band in flight at once may
 * commit out of ATC order, and the later-committing lower ATC is then (rightly) a REPLAY.
 * Database server: TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'pg';
import { Channel } from '../gen/wristpay/common/v1/common';
import { DeviceRegistryServiceClient } from '../gen/wristpay/device_registry/v1/device_registry';
import { TokenizationServiceClient, VerifyResult, type VerifyPaymentRequest } from '../gen/wristpay/tokenization/v1/tokenization';
import { DEFAULT_REDIS_URL } from '../platform/config';
import { createLogger } from '../platform/log';
import { startDeviceRegistry } from '../services/device-registry/src/app';
import { readConfig as readRegistryConfig } from '../services/device-registry/src/config';
import type { SpanRecord } from '../platform/telemetry/file-exporter';
import { freePort, startService } from '../scripts/mesh';
import { bandWithToken } from '../services/tokenization/test/support/bands';
import type { Band } from '../sim/band';
import { freshDatabase } from '../test/support/servers';
import { benchPrefix, removePrefix, runBench } from './harness';
import { meshPki } from '../test/support/mesh-pki';
import { testClient } from '../test/support/services';
import { arg, formatResult, processCpuSeconds, run, stringArg, type LoadResult } from './load';

/** The tokenization service's PostgreSQL pool (platform/db default); the baseline gets the same. */
const SERVICE_POOL_SIZE = 10;

async function main(): Promise<void> {
  const calls = arg('calls', 10_000);
  const concurrency = arg('concurrency', 16);
  const tokens = arg('tokens', 1_000);
  const countCalls = arg('count-calls', 1_000);
  // Another built tree's tokenization (an export of an earlier commit, built) to compare before/after.
  const root = stringArg('root', '');
  const prefix = benchPrefix();
  const [registryDb, vaultDb] = await Promise.all([freshDatabase(), freshDatabase()]);
  // mTLS as in production: every method refuses a caller without an identity it lists.
  const common = { ...process.env, REDIS_KEY_PREFIX: prefix, NATS_SUBJECT_PREFIX: prefix, LOG_LEVEL: 'warn' };
  const registryConfig = readRegistryConfig({ ...common, ...meshPki().env('device-registry'), DATABASE_URL: registryDb.url, DEVICE_REGISTRY_PORT: '0' });
  const registry = await startDeviceRegistry(registryConfig, createLogger('device-registry', 'warn'));
  // Tokenization as its own process, so its CPU is its own. The timed run is as production runs
  // it (no statement spans: platform/telemetry/register.ts); a second process on the same vault
  // then records them (WRISTPAY_TRACE_STATEMENTS=1) for a short run that counts the statements.
  const work = mkdtempSync(join(tmpdir(), 'wp-bench-token-'));
  const traceFile = join(work, 'tokenization.jsonl');
  const serviceEnv = {
    ...common,
    ...meshPki().env('tokenization'),
    DATABASE_URL: vaultDb.url,
    DEVICE_REGISTRY_ADDR: `localhost:${registry.port}`,
    // Throwaway keys: nothing provisioned here outlives the run.
    TOKEN_MASTER_KEY: randomBytes(32).toString('base64'),
    VAULT_KEKS: `1:${randomBytes(32).toString('base64')}`,
    VAULT_ACTIVE_KEY_VERSION: '1',
    WRISTPAY_TRACE_FILE: traceFile,
  };
  const startVault = async (traceStatements: boolean) =>
    startService('tokenization', await freePort(), { ...serviceEnv, WRISTPAY_TRACE_STATEMENTS: traceStatements ? '1' : '0' }, {
      credentials: meshPki().client('gateway'),
      ...(root ? { root } : {}),
      onLine: (line, stream) => (stream === 'stderr' || process.env.BENCH_VERBOSE) && process.stderr.write(`[tokenization] ${line}\n`),
    });
  let service = await startVault(false);
  // Each method called as an identity its policy admits (wallet provisions, the gateway verifies).
  const registryClient = testClient(DeviceRegistryServiceClient, registry.port);
  let client = testClient(TokenizationServiceClient, service.port);
  const pool = new Pool({ connectionString: vaultDb.url, max: SERVICE_POOL_SIZE });
  // An idle client is terminated when its database is dropped at the end; that is not a failure.
  pool.on('error', () => undefined);
  try {
    // Onboarding as the phone does it: register and pair the band, provision, install the wrapped key.
    const bands: Band[] = [];
    const provisionStarted = Date.now();
    await run(tokens, concurrency, async (i) => {
      const accountId = `${prefix}-a${i}`;
      bands[i] = (await bandWithToken(registryClient, client, accountId, { source: { $case: 'walletAccountId', value: `${prefix}-wallet${i}` } }, [Channel.CHANNEL_BAND_TAP])).band;
    });
    const provisionSeconds = (Date.now() - provisionStarted) / 1000;

    const results = new Map<string, number>();
    const tap = (i: number): VerifyPaymentRequest => {
      const amountMinor = BigInt(100 + (i % 2_900));
      const merchantId = `m${i % 97}`;
      const p = bands[i % tokens]!.tap({ amountMinor, currency: 'EUR', merchantId, terminalNonce: randomBytes(4) });
      // A fresh payment id per call, as the gateway sends: every verification runs through `once`.
      return { tokenNumber: p.tokenNumber, atc: p.atc, amount: { amountMinor, currency: 'EUR' }, merchantId, terminalNonce: p.terminalNonce, cryptogram: p.cryptogram, channel: Channel.CHANNEL_BAND_TAP, paymentId: randomUUID() };
    };
    const verify = async (i: number) => {
      const { verification } = await client.verifyPayment(tap(i));
      const name = (VerifyResult[verification!.result] ?? String(verification!.result)).replace('VERIFY_RESULT_', '');
      results.set(name, (results.get(name) ?? 0) + 1);
    };
    await run(500, concurrency, verify); // warm-up: connections, JIT, plan cache
    results.clear();
    const cpuBefore = processCpuSeconds(service.pid);
    const verified = await run(calls, concurrency, (i) => verify(i + 500));
    const serviceCpuMs = ((processCpuSeconds(service.pid) - cpuBefore) * 1000) / calls;
    const verifiedResults = new Map(results);

    // Statements per call, counted: a fresh process recording statement spans, on the same vault and bands.
    client.close();
    await service.stop();
    service = await startVault(true);
    client = testClient(TokenizationServiceClient, service.port);
    const spansBefore = readSpans(traceFile).length;
    await run(countCalls, concurrency, (i) => verify(calls + 500 + i));
    await service.stop(); // SIGTERM drains and exports the last spans
    const statementsLine = countStatements(readSpans(traceFile).slice(spansBefore));

    // The floor: the replay guard alone (one conditional UPDATE, autocommitted) on its own table in the vault's database.
    await pool.query('CREATE TABLE bench_atc (token_id uuid PRIMARY KEY, atc_high bigint NOT NULL)');
    const ids = Array.from({ length: tokens }, () => randomUUID());
    await pool.query('INSERT INTO bench_atc SELECT unnest($1::uuid[]), 0', [ids]);
    let atc = 0;
    const update = (i: number) => pool.query('UPDATE bench_atc SET atc_high = $2 WHERE token_id = $1 AND atc_high < $2', [ids[i % tokens], ++atc]);
    await run(500, concurrency, update);
    const updated = await run(calls, concurrency, update);
    const roundTrip = await run(calls, concurrency, () => pool.query('SELECT 1'));

    const ratio = (r: LoadResult) => `${((100 * verified.perSecond) / r.perSecond).toFixed(0)}%`;
    process.stdout.write(
      [
        `${calls} calls, ${concurrency} in flight, ${tokens} tokens (provisioned in ${provisionSeconds.toFixed(1)} s), ${SERVICE_POOL_SIZE} PostgreSQL connections each, device-registry and the load client in this process, tokenization in its own${root ? ` (built tree ${root})` : ''}`,
        formatResult('VerifyPayment over gRPC (fresh ATC each)', verified),
        formatResult('UPDATE ... SET atc_high, autocommit', updated),
        formatResult('SELECT 1 round trip (pg Pool)', roundTrip),
        `results: ${[...verifiedResults].map(([k, v]) => `${k} ${v}`).join(', ')}`,
        `tokenization CPU per VerifyPayment: ${serviceCpuMs.toFixed(3)} ms (its own process, over the timed run)`,
        statementsLine,
        `ratio: VerifyPayment runs at ${ratio(updated)} of the bare atc_high UPDATE's rate and ${ratio(roundTrip)} of a SELECT 1 round trip's`,
      ].join('\n') + '\n',
    );
    if (verifiedResults.get('OK') !== calls) process.exitCode = 1;
  } finally {
    client.close();
    registryClient.close();
    await service.stop();
    rmSync(work, { recursive: true, force: true });
    await registry.stop();
    await pool.end();
    await Promise.all([registryDb.drop(), vaultDb.drop()]);
    await removePrefix(prefix, registryConfig.REDIS_URL ?? DEFAULT_REDIS_URL, registryConfig.NATS_URL);
  }
}

function readSpans(file: string): SpanRecord[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as SpanRecord);
}

/** The outbox relay's statements (platform/outbox.ts), told apart from the verification's by their text. */
const RELAY = /FROM outbox WHERE published_at IS NULL|UPDATE outbox SET published_at/;

/**
 * PostgreSQL statements per VerifyPayment: the pg spans (one per statement sent, BEGIN and COMMIT
 * included) in the traces that hold a VerifyPayment server span, split by what sent them.
 */
function countStatements(spans: SpanRecord[]): string {
  const verifyTraces = new Set(spans.filter((s) => s.kind === 1 && s.name.endsWith('/VerifyPayment')).map((s) => s.traceId));
  const statement = (s: SpanRecord) => String(s.attributes['db.statement'] ?? s.attributes['db.query.text'] ?? '');
  const pg = spans.filter((s) => verifyTraces.has(s.traceId) && s.name.startsWith('pg.query'));
  const relay = pg.filter((s) => RELAY.test(statement(s))).length;
  const n = verifyTraces.size || 1;
  const own = new Map<string, number>();
  for (const s of pg) if (!RELAY.test(statement(s))) own.set(statement(s).replace(/\s+/g, ' ').slice(0, 48), (own.get(statement(s).replace(/\s+/g, ' ').slice(0, 48)) ?? 0) + 1);
  const shares = [...own].sort((a, b) => b[1] - a[1]).map(([sql, k]) => `${(k / n).toFixed(2)} × ${sql}`);
  // Per trace too: a span the exporter's queue dropped under load would skew the mean, not the most common count.
  const perTrace = new Map<string, number>();
  for (const s of pg) if (!RELAY.test(statement(s))) perTrace.set(s.traceId, (perTrace.get(s.traceId) ?? 0) + 1);
  const histogram = new Map<number, number>();
  for (const traceId of verifyTraces) histogram.set(perTrace.get(traceId) ?? 0, (histogram.get(perTrace.get(traceId) ?? 0) ?? 0) + 1);
  const byCount = [...histogram].sort((a, b) => b[1] - a[1]).map(([k, m]) => `${k} statements: ${m} calls`);
  return [
    `PostgreSQL statements per VerifyPayment (pg spans of ${verifyTraces.size} calls, a separate run with statement spans on): ${((pg.length - relay) / n).toFixed(2)} by the verification, ${(relay / n).toFixed(2)} by the outbox relay in its trace`,
    `  per call: ${byCount.join(', ')}`,
    ...shares.map((line) => `  ${line}`),
  ].join('\n');
}

if (require.main === module) runBench(main);

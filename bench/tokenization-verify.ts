/**
 * VerifyPayment throughput and latency over gRPC, next to the floor under it on the same
 * PostgreSQL: the same conditional `UPDATE ... SET atc_high` that guards replays, as one
 * autocommitted statement, and a bare `SELECT 1` round trip. Starts device-registry (needed by
 * ProvisionToken) and tokenization in this process on port 0 against fresh PostgreSQL databases,
 * a throwaway Redis key prefix and NATS prefix; provisions `--tokens` bands, then every call is a
 * fresh tap (next ATC, real cryptogram) from a simulated band, so every verification is a real OK.
 * Drops the databases, keys and streams afterwards.
 *
 *   node dist/bench/tokenization-verify.js [--calls 10000] [--concurrency 16] [--tokens 1000]
 *
 * `--tokens` should be well above `--concurrency`: two taps of one band in flight at once may
 * commit out of ATC order, and the later-committing lower ATC is then (rightly) a REPLAY.
 * Database server: TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Pool } from 'pg';
import { Channel } from '../gen/wristpay/common/v1/common';
import { DeviceRegistryServiceClient } from '../gen/wristpay/device_registry/v1/device_registry';
import { TokenizationServiceClient, VerifyResult, type VerifyPaymentRequest } from '../gen/wristpay/tokenization/v1/tokenization';
import { DEFAULT_REDIS_URL } from '../platform/config';
import { createLogger } from '../platform/log';
import { startDeviceRegistry } from '../services/device-registry/src/app';
import { readConfig as readRegistryConfig } from '../services/device-registry/src/config';
import { startTokenization } from '../services/tokenization/src/app';
import { readConfig } from '../services/tokenization/src/config';
import { bandWithToken } from '../services/tokenization/test/support/bands';
import type { Band } from '../sim/band';
import { freshDatabase } from '../test/support/servers';
import { benchPrefix, removePrefix, runBench } from './harness';
import { meshPki } from '../test/support/mesh-pki';
import { testClient } from '../test/support/services';
import { arg, formatResult, run, type LoadResult } from './load';

/** The tokenization service's PostgreSQL pool (platform/db default); the baseline gets the same. */
const SERVICE_POOL_SIZE = 10;

async function main(): Promise<void> {
  const calls = arg('calls', 10_000);
  const concurrency = arg('concurrency', 16);
  const tokens = arg('tokens', 1_000);
  const prefix = benchPrefix();
  const [registryDb, vaultDb] = await Promise.all([freshDatabase(), freshDatabase()]);
  // mTLS as in production: every method refuses a caller without an identity it lists.
  const common = { ...process.env, REDIS_KEY_PREFIX: prefix, NATS_SUBJECT_PREFIX: prefix, LOG_LEVEL: 'warn' };
  const registryConfig = readRegistryConfig({ ...common, ...meshPki().env('device-registry'), DATABASE_URL: registryDb.url, DEVICE_REGISTRY_PORT: '0' });
  const registry = await startDeviceRegistry(registryConfig, createLogger('device-registry', 'warn'));
  const config = readConfig({
    ...common,
    ...meshPki().env('tokenization'),
    DATABASE_URL: vaultDb.url,
    TOKENIZATION_PORT: '0',
    DEVICE_REGISTRY_ADDR: `localhost:${registry.port}`,
    // Throwaway keys: nothing provisioned here outlives the run.
    TOKEN_MASTER_KEY: randomBytes(32).toString('base64'),
    VAULT_KEKS: `1:${randomBytes(32).toString('base64')}`,
    VAULT_ACTIVE_KEY_VERSION: '1',
  });
  const service = await startTokenization(config, createLogger('tokenization', 'warn'));
  // Each method called as an identity its policy admits (wallet provisions, the gateway verifies).
  const registryClient = testClient(DeviceRegistryServiceClient, registry.port);
  const client = testClient(TokenizationServiceClient, service.port);
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
    const verified = await run(calls, concurrency, (i) => verify(i + 500));
    const verifiedResults = new Map(results);

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
        `${calls} calls, ${concurrency} in flight, ${tokens} tokens (provisioned in ${provisionSeconds.toFixed(1)} s), ${SERVICE_POOL_SIZE} PostgreSQL connections each, client and servers in one process`,
        formatResult('VerifyPayment over gRPC (fresh ATC each)', verified),
        formatResult('UPDATE ... SET atc_high, autocommit', updated),
        formatResult('SELECT 1 round trip (pg Pool)', roundTrip),
        `results: ${[...verifiedResults].map(([k, v]) => `${k} ${v}`).join(', ')}`,
        `ratio: VerifyPayment runs at ${ratio(updated)} of the bare atc_high UPDATE's rate and ${ratio(roundTrip)} of a SELECT 1 round trip's`,
      ].join('\n') + '\n',
    );
    if (verifiedResults.get('OK') !== calls) process.exitCode = 1;
  } finally {
    client.close();
    registryClient.close();
    await service.stop();
    await registry.stop();
    await pool.end();
    await Promise.all([registryDb.drop(), vaultDb.drop()]);
    await removePrefix(prefix, registryConfig.REDIS_URL ?? DEFAULT_REDIS_URL, config.NATS_URL);
  }
}

if (require.main === module) runBench(main);

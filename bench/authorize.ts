/**
 * End-to-end Authorize through the gateway: the five services as separate processes with mTLS,
 * on real PostgreSQL (a fresh database per owning service), Redis and NATS JetStream, as in
 * production minus the network. Each band pays once, so every payment takes the full approved
 * path (verify → session → risk → hold); a band paying again within a minute would be stepped up.
 *
 *   node dist/bench/authorize.js [--bands 400] [--concurrency 16]
 */
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { Client } from 'pg';
import { PaymentStatus } from '../gen/wristpay/gateway/v1/gateway';
import { repoPath } from '../platform/paths';
import { certPaths, freePort, SERVICES, startMesh, type ServiceName } from '../scripts/mesh';
import type { Band } from '../sim/band';
import { meshClients } from '../sim/clients';
import { onboardBand, pay } from '../sim/wallet';
import { arg, formatResult, run } from './load';

const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function main(): Promise<void> {
  const bands = arg('bands', 400);
  const concurrency = arg('concurrency', 16);
  const tag = `bench${randomBytes(4).toString('hex')}`;
  const work = mkdtempSync(join(tmpdir(), 'wp-bench-'));
  const admin = new Client({ connectionString: ADMIN_URL });
  await admin.connect();
  const databases: string[] = [];
  const mesh = await (async () => {
    execFileSync('bash', [repoPath('scripts', 'dev-certs.sh'), join(work, 'certs')], { stdio: 'pipe' });
    const ports = {} as Record<ServiceName, number>;
    const perService: Partial<Record<ServiceName, Record<string, string>>> = {};
    for (const s of SERVICES) {
      ports[s] = await freePort();
      perService[s] = { ...certPaths(join(work, 'certs'), s), WRISTPAY_TRACE_FILE: join(work, `${s}.jsonl`) };
      if (s === 'device-registry' || s === 'tokenization' || s === 'settlement') {
        const name = `${tag}_${s.replace('-', '_')}`;
        await admin.query(`CREATE DATABASE ${name}`);
        databases.push(name);
        const url = new URL(ADMIN_URL);
        url.pathname = `/${name}`;
        perService[s]!.DATABASE_URL = url.toString();
      }
    }
    perService.tokenization = { ...perService.tokenization, TOKEN_MASTER_KEY: randomBytes(32).toString('base64'), VAULT_KEKS: `1:${randomBytes(32).toString('base64')}` };
    const creds = credentials.createSsl(readFileSync(join(work, 'certs', 'ca.crt')), readFileSync(join(work, 'certs', 'demo.key')), readFileSync(join(work, 'certs', 'demo.crt')));
    const started = await startMesh({
      ports,
      env: { GRPC_TLS: 'mtls', REDIS_KEY_PREFIX: tag, NATS_SUBJECT_PREFIX: tag, LOG_LEVEL: 'warn' },
      perService,
      credentials: creds,
    });
    return { started, creds, ports };
  })();
  const at = (s: ServiceName) => `localhost:${mesh.ports[s]}`;
  const clients = meshClients({ gateway: at('gateway'), registry: at('device-registry'), tokenization: at('tokenization'), settlement: at('settlement') }, mesh.creds);
  try {
    const wallet: Band[] = [];
    const onboarded = await run(bands, concurrency, async () => {
      wallet.push(await onboardBand(clients, `acct-${randomUUID()}`, 100_000n));
    });
    const outcomes = new Map<string, number>();
    const authorized = await run(bands, concurrency, async (i) => {
      const { response } = await pay(clients, wallet[i]!, { merchantId: `m-bench-${i % 50}`, amountMinor: 1_000n + BigInt(i % 500) });
      const status = PaymentStatus[response.status].replace('PAYMENT_STATUS_', '');
      outcomes.set(status, (outcomes.get(status) ?? 0) + 1);
    });
    console.log(`${bands} bands, ${concurrency} in flight; 5 services as processes with mTLS; PostgreSQL, Redis, NATS on this machine (${require('node:os').cpus().length} cores)`);
    console.log(formatResult('onboard (register, pair, unlock, token, top-up)', onboarded));
    console.log(formatResult('gateway.Authorize end to end', authorized));
    console.log(`outcomes: ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  } finally {
    clients.close();
    await mesh.started.stop();
    for (const name of databases) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

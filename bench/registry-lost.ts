/**
 * ReportLost → first declined payment with that band, through the gateway, on the full mesh: the
 * five services as separate processes with mTLS, fresh PostgreSQL databases, Redis and NATS
 * JetStream (as bench/authorize.ts starts them). Each band is onboarded live (register, pair,
 * unlock, token, top-up); then ReportLost is sent and, without waiting for its answer, the band
 * taps and the terminal calls Authorize again and again until a payment is declined: by the gateway
 * (DEVICE_INACTIVE, from GetSession), by tokenization (TOKEN_INACTIVE, once it has heard
 * device.lost) or by risk (DEVICE_BLOCKED, the same event) — whichever the race reaches first. The
 * time measured runs from the start of the ReportLost call to that declined response; one more tap
 * after ReportLost has answered must be declined too.
 *
 *   node dist/bench/registry-lost.js [--bands 50] [--concurrency 1]
 */
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { Client } from 'pg';
import { DeclineReason, PaymentStatus } from '../gen/wristpay/gateway/v1/gateway';
import { repoPath } from '../platform/paths';
import { certPaths, freePort, SERVICES, startMesh, type ServiceName } from '../scripts/mesh';
import type { Band } from '../sim/band';
import { meshClients } from '../sim/clients';
import { onboardBand, pay } from '../sim/wallet';
import { arg, run } from './load';

const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const name = (r: DeclineReason) => DeclineReason[r].replace('DECLINE_REASON_', '');

async function main(): Promise<void> {
  const bands = arg('bands', 50);
  const concurrency = arg('concurrency', 1);
  const tag = `bench${randomBytes(4).toString('hex')}`;
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
    if (s === 'device-registry' || s === 'tokenization' || s === 'settlement') {
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
  const mesh = await startMesh({ ports, env: { GRPC_TLS: 'mtls', REDIS_KEY_PREFIX: tag, NATS_SUBJECT_PREFIX: tag, LOG_LEVEL: 'warn' }, perService, credentials: creds });
  const at = (s: ServiceName) => `localhost:${ports[s]}`;
  const clients = meshClients({ gateway: at('gateway'), registry: at('device-registry'), tokenization: at('tokenization'), settlement: at('settlement') }, creds);
  try {
    const wallet: Band[] = [];
    await run(bands, 8, async () => {
      wallet.push(await onboardBand(clients, `acct-${randomUUID()}`, 100_000n));
    });

    const cutOffMs: number[] = [];
    const reportLostMs: number[] = [];
    const attempts: number[] = [];
    const approvedAfterReport: number[] = [];
    const reasons = new Map<string, number>();
    const laterApproved: string[] = [];
    const before = new Map<string, number>();
    await run(bands, concurrency, async (i) => {
      const band = wallet[i]!;
      const merchantId = `m-lost-${i % 20}`;
      const t0 = process.hrtime.bigint();
      const reported = clients.registry.reportLost({ idempotencyKey: randomUUID(), deviceId: band.deviceId! }).then(() => reportLostMs.push(Number(process.hrtime.bigint() - t0) / 1e6));
      let tries = 0;
      let approved = 0;
      for (;;) {
        tries++;
        const { response } = await pay(clients, band, { merchantId, amountMinor: 500n + BigInt(tries) });
        if (response.status === PaymentStatus.PAYMENT_STATUS_APPROVED) approved++;
        const cutOff = response.status === PaymentStatus.PAYMENT_STATUS_DECLINED;
        if (!cutOff) {
          const what = `${PaymentStatus[response.status].replace('PAYMENT_STATUS_', '')}${response.declineReason ? ` ${name(response.declineReason)}` : ''}${response.riskReasons.length ? ` (${response.riskReasons.join(', ')})` : ''}`;
          before.set(what, (before.get(what) ?? 0) + 1);
        }
        if (cutOff) {
          cutOffMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
          const why = `${name(response.declineReason)}${response.declineReason === DeclineReason.DECLINE_REASON_RISK ? ` (${response.riskReasons.join(', ')})` : ''}`;
          reasons.set(why, (reasons.get(why) ?? 0) + 1);
          break;
        }
        if (tries > 1_000) throw new Error(`band ${band.deviceId} still not declined after 1000 payments`);
      }
      attempts.push(tries);
      approvedAfterReport.push(approved);
      await reported;
      // Once cut off, it stays cut off: one more tap after ReportLost has answered.
      const after = await pay(clients, band, { merchantId, amountMinor: 777n });
      if (after.response.status !== PaymentStatus.PAYMENT_STATUS_DECLINED) laterApproved.push(band.deviceId!);
    });

    const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
    const line = (label: string, xs: number[]) =>
      `${label.padEnd(44)} p50 ${q(xs, 0.5).toFixed(2).padStart(7)} ms   p99 ${q(xs, 0.99).toFixed(2).padStart(7)} ms   max ${Math.max(...xs).toFixed(1).padStart(7)} ms`;
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    console.log(`${bands} bands, ${concurrency} reported lost at a time; 5 services as processes with mTLS; PostgreSQL, Redis, NATS on this machine (${cpus().length} cores)`);
    console.log(line('ReportLost start → first declined Authorize', cutOffMs));
    console.log(line('ReportLost call itself', reportLostMs));
    console.log(`Authorize calls until the decline: ${sum(attempts)} for ${bands} bands (max ${Math.max(...attempts)}); approved after ReportLost was sent: ${sum(approvedAfterReport)}`);
    console.log(`outcomes before the first decline (taps that raced the ReportLost commit): ${[...before].map(([k, v]) => `${k} ×${v}`).join('; ') || 'none'}`);
    console.log(`first decline reasons: ${[...reasons].map(([k, v]) => `${k} ×${v}`).join('; ')}; not declined on the tap after ReportLost answered: ${laterApproved.length}`);
    if (laterApproved.length) process.exitCode = 1;
  } finally {
    clients.close();
    await mesh.stop();
    for (const db of databases) await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await admin.end();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

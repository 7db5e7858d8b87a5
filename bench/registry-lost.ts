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
import { randomUUID } from 'node:crypto';
import { cpus } from 'node:os';
import { DeclineReason, PaymentStatus } from '../gen/wristpay/gateway/v1/gateway';
import type { Band } from '../sim/band';
import { onboardBand, pay } from '../sim/wallet';
import { startBenchMesh, type BenchMesh } from './harness';
import { arg, run } from './load';

const name = (r: DeclineReason) => DeclineReason[r].replace('DECLINE_REASON_', '');

/** The merchants registry-lost pays: pass them to startBenchMesh. */
export const LOST_MERCHANTS = Array.from({ length: 20 }, (_, k) => `m-lost-${k}`);

export interface LostResult {
  /** From the start of each ReportLost call to the first declined Authorize with that band (ms). */
  cutOffMs: number[];
  /** Each ReportLost call itself (ms). */
  reportLostMs: number[];
  /** Authorize calls until the decline, and those approved after ReportLost was sent, per band. */
  attempts: number[];
  approvedAfterReport: number[];
  /** First decline reasons, and the outcomes of taps before it. */
  reasons: Map<string, number>;
  before: Map<string, number>;
  /** Bands not declined on the tap after ReportLost answered (must be none). */
  laterApproved: string[];
}

/**
 * On a mesh started with LOST_MERCHANTS: `bands` bands onboarded (8 at a time), then each is
 * reported lost, `concurrency` at a time, and pays until declined (see the file's comment).
 */
export async function measureReportLost(mesh: Pick<BenchMesh, 'clients' | 'terminal'>, options: { bands: number; concurrency: number }): Promise<LostResult> {
  const { bands, concurrency } = options;
  const { clients, terminal } = mesh;
  const merchants = LOST_MERCHANTS;
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
    const merchantId = merchants[i % merchants.length]!;
    const t0 = process.hrtime.bigint();
    const reported = clients.registry.reportLost({ idempotencyKey: randomUUID(), deviceId: band.deviceId! }).then(() => reportLostMs.push(Number(process.hrtime.bigint() - t0) / 1e6));
    let tries = 0;
    let approved = 0;
    for (;;) {
      tries++;
      const { response } = await pay(terminal(merchantId), band, { merchantId, amountMinor: 500n + BigInt(tries) });
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
    const after = await pay(terminal(merchantId), band, { merchantId, amountMinor: 777n });
    if (after.response.status !== PaymentStatus.PAYMENT_STATUS_DECLINED) laterApproved.push(band.deviceId!);
  });

  return { cutOffMs, reportLostMs, attempts, approvedAfterReport, reasons, before, laterApproved };
}

async function main(): Promise<void> {
  const bands = arg('bands', 50);
  const concurrency = arg('concurrency', 1);
  const mesh = await startBenchMesh({ merchants: LOST_MERCHANTS });
  try {
    const { cutOffMs, reportLostMs, attempts, approvedAfterReport, reasons, before, laterApproved } = await measureReportLost(mesh, { bands, concurrency });
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
    await mesh.stop();
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

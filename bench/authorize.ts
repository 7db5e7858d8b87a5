/**
 * End-to-end Authorize through the gateway: the five services as separate processes with mTLS,
 * on real PostgreSQL (a fresh database per owning service), Redis and NATS JetStream, as in
 * production minus the network. Each band pays once, so every payment takes the full approved
 * path (verify → session → risk → hold); a band paying again within a minute would be stepped up.
 * The 50 merchants are onboarded in the gateway, each paying through its own terminal (its mTLS
 * identity `merchant.<id>`); one untimed payment per merchant first opens every terminal's
 * connection.
 *
 *   node dist/bench/authorize.js [--bands 400] [--concurrency 16]
 */
import { randomUUID } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { PaymentStatus } from '../gen/wristpay/gateway/v1/gateway';
import type { Band } from '../sim/band';
import { onboardBand } from '../sim/wallet';
import { BENCH_MERCHANTS, benchPayment, startBenchMesh } from './harness';
import { arg, formatResult, run } from './load';

async function main(): Promise<void> {
  const bands = arg('bands', 400);
  const concurrency = arg('concurrency', 16);
  const warm = BENCH_MERCHANTS.length;
  const mesh = await startBenchMesh({ merchants: BENCH_MERCHANTS });
  try {
    const wallet: Band[] = [];
    const onboarded = await run(bands + warm, concurrency, async () => {
      wallet.push(await onboardBand(mesh.clients, `acct-${randomUUID()}`, 100_000n));
    });
    await run(warm, concurrency, (i) => benchPayment(mesh, wallet[bands + i]!, i));
    const outcomes = new Map<string, number>();
    const authorized = await run(bands, concurrency, async (i) => {
      const { response } = await benchPayment(mesh, wallet[i]!, i);
      const status = PaymentStatus[response.status].replace('PAYMENT_STATUS_', '');
      outcomes.set(status, (outcomes.get(status) ?? 0) + 1);
    });
    console.log(
      `${bands} bands, ${concurrency} in flight, ${warm} merchants (after one untimed payment each); 6 services as processes with mTLS; PostgreSQL, Redis, NATS on this machine (${cpus().length} cores, load average ${loadavg()[0]!.toFixed(2)})`,
    );
    console.log(formatResult('onboard (register, pair, unlock, token, top-up)', onboarded));
    console.log(formatResult('gateway.Authorize end to end', authorized));
    console.log(`outcomes: ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  } finally {
    await mesh.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

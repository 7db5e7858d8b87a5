/**
 * End-to-end Authorize through the gateway: the five services as separate processes with mTLS,
 * on real PostgreSQL (a fresh database per owning service), Redis and NATS JetStream, as in
 * production minus the network. Each band pays once, so every payment takes the full approved
 * path (verify → session → risk → hold); a band paying again within a minute would be stepped up.
 *
 *   node dist/bench/authorize.js [--bands 400] [--concurrency 16]
 */
import { randomUUID } from 'node:crypto';
import { PaymentStatus } from '../gen/wristpay/gateway/v1/gateway';
import type { Band } from '../sim/band';
import { onboardBand, pay } from '../sim/wallet';
import { startBenchMesh } from './harness';
import { arg, formatResult, run } from './load';

async function main(): Promise<void> {
  const bands = arg('bands', 400);
  const concurrency = arg('concurrency', 16);
  const { clients, stop } = await startBenchMesh();
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
    await stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

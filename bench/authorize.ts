/**
 * End-to-end Authorize through the gateway: the five services as separate processes with mTLS,
 * on real PostgreSQL (a fresh database per owning service), Redis and NATS JetStream, as in
 * production minus the network. Each band pays once, so every payment takes the full approved
 * path (verify → session → risk → hold); a band paying again within a minute would be stepped up.
 * The 50 merchants are onboarded in the gateway, each paying through its own terminal (its mTLS
 * identity `merchant.<id>`); one untimed payment per merchant first opens every terminal's
 * connection.
 *
 *   node dist/bench/authorize.js [--bands 400] [--concurrency 16] [--metrics off|on|both] [--rounds 1] [--scrape-ms 5000]
 *
 * --metrics on: every service serves METRICS_PORT and the bench scrapes each /metrics every 5 s
 * (as Prometheus would, three times as often as the prod PodMonitor); off (the default): no
 * meter provider at all. both: a mesh without metrics then one with, `--rounds` times, in one run,
 * to measure what metrics cost (bench/README.md).
 */
import { randomUUID } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { PaymentStatus } from '../gen/wristpay/gateway/v1/gateway';
import type { Band } from '../sim/band';
import { onboardBand } from '../sim/wallet';
import { BENCH_MERCHANTS, benchPayment, startBenchMesh, type BenchMesh } from './harness';
import { arg, counting, formatResult, processCpuSeconds, run, type LoadResult } from './load';

/** `count` fresh bands onboarded on the mesh (register, pair, unlock, token, top-up), `concurrency` at a time. */
export async function onboardBands(mesh: Pick<BenchMesh, 'clients'>, count: number, concurrency: number): Promise<{ bands: Band[]; result: LoadResult }> {
  const bands: Band[] = [];
  const result = await run(count, concurrency, async () => {
    bands.push(await onboardBand(mesh.clients, `acct-${randomUUID()}`, 100_000n));
  });
  return { bands, result };
}

/**
 * Each of `bands` pays once through gateway.Authorize, `concurrency` at a time (payment i to
 * merchant i mod 50, benchPayment): the outcomes by status (`APPROVED`), and each payment's trace id.
 * A call that fails throws, unless `countErrors`: then it is an outcome too (`error: DEADLINE_EXCEEDED`),
 * so one late call on a busy machine does not void a long run (its caller decides what it means).
 */
export async function payEach(
  mesh: Pick<BenchMesh, 'terminal'>,
  bands: Band[],
  concurrency: number,
  options: { countErrors?: boolean } = {},
): Promise<{ result: LoadResult; outcomes: Map<string, number>; traceIds: string[] }> {
  const outcomes = new Map<string, number>();
  const traceIds: string[] = [];
  const one = async (i: number) => {
    const { response, traceId } = await benchPayment(mesh, bands[i]!, i);
    const status = PaymentStatus[response.status].replace('PAYMENT_STATUS_', '');
    outcomes.set(status, (outcomes.get(status) ?? 0) + 1);
    traceIds.push(traceId);
  };
  const errors = new Map<string, number>();
  const result = await run(bands.length, concurrency, options.countErrors ? counting(one, errors) : one);
  for (const [what, n] of errors) outcomes.set(`error: ${what}`, n);
  return { result, outcomes, traceIds };
}

function metricsMode(): Array<'off' | 'on'> {
  const i = process.argv.indexOf('--metrics');
  const mode = i >= 0 ? process.argv[i + 1] : 'off';
  if (mode !== 'off' && mode !== 'on' && mode !== 'both') throw new Error('--metrics must be off, on or both');
  const rounds = arg('rounds', 1);
  return mode === 'both' ? Array.from({ length: rounds }, () => ['off', 'on'] as const).flat() : [mode];
}

/** Scrapes every metrics endpoint every `everyMs` until stopped; counts scrapes and bytes. */
function scraper(ports: number[], everyMs: number): { stop(): { scrapes: number; bytes: number } } {
  let scrapes = 0;
  let bytes = 0;
  const timer = setInterval(() => {
    for (const port of ports) {
      void fetch(`http://127.0.0.1:${port}/metrics`)
        .then((r) => r.text())
        .then((t) => {
          scrapes++;
          bytes += t.length;
        }, () => undefined);
    }
  }, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      return { scrapes, bytes };
    },
  };
}

async function main(): Promise<void> {
  for (const metrics of metricsMode()) await once(metrics);
}

async function once(metrics: 'off' | 'on'): Promise<void> {
  const bands = arg('bands', 400);
  const concurrency = arg('concurrency', 16);
  const warm = BENCH_MERCHANTS.length;
  const mesh = await startBenchMesh({ merchants: BENCH_MERCHANTS, metrics: metrics === 'on' });
  // --scrape-ms 0: metrics recorded but never read, to tell the cost per payment from the cost per scrape.
  const scrapeMs = arg('scrape-ms', 5_000);
  const scraping = scrapeMs > 0 ? scraper(Object.values(mesh.metricsPorts), scrapeMs) : scraper([], 60_000);
  try {
    const { bands: wallet, result: onboarded } = await onboardBands(mesh, bands + warm, concurrency);
    await payEach(mesh, wallet.slice(bands), concurrency);
    // CPU of each service process over the timed payments only: less swayed by a busy machine
    // than the rate, so it is what shows the cost of metrics (or of anything else) per payment.
    const cpuBefore = mesh.processes.map((p) => processCpuSeconds(p.pid));
    const { result: authorized, outcomes } = await payEach(mesh, wallet.slice(0, bands), concurrency);
    const cpuMs = mesh.processes.map((p, k) => ({ name: p.name, ms: ((processCpuSeconds(p.pid) - cpuBefore[k]!) * 1000) / bands }));
    const scraped = scraping.stop();
    console.log(
      `${bands} bands, ${concurrency} in flight, ${warm} merchants (after one untimed payment each); 6 services as processes with mTLS; PostgreSQL, Redis, NATS on this machine (${cpus().length} cores, load average ${loadavg()[0]!.toFixed(2)}); metrics ${metrics}${metrics === 'on' ? ` (${scraped.scrapes} scrapes, ${Math.round(scraped.bytes / Math.max(1, scraped.scrapes) / 1024)} KiB each)` : ''}`,
    );
    console.log(formatResult('onboard (register, pair, unlock, token, top-up)', onboarded));
    console.log(formatResult('gateway.Authorize end to end', authorized));
    console.log(`outcomes: ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ')}`);
    console.log(`service CPU per payment: ${cpuMs.map((c) => `${c.name} ${c.ms.toFixed(2)} ms`).join(', ')}; six services ${cpuMs.reduce((t, c) => t + c.ms, 0).toFixed(2)} ms`);
  } finally {
    scraping.stop();
    await mesh.stop();
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

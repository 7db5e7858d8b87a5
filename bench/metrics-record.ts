/**
 * What recording costs on the hot path, in one process: the calls an Authorize makes into
 * platform/telemetry/metrics.ts (one rpc.server.duration per RPC it causes across the mesh, five
 * with the gateway's own, and one payment decision), with the SDK's meter provider and the views
 * register.ts installs, against the no-op API (METRICS_PORT unset). CPU time per call, the
 * median of `--rounds` rounds, so a busy machine disturbs it less than an end-to-end run.
 *
 *   node dist/bench/metrics-record.js [--calls 200000] [--rounds 7]
 */
import { metrics } from '@opentelemetry/api';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { METRIC_VIEWS } from '../platform/telemetry/metrics-reader';
import { arg } from './load';

type Recorders = Pick<typeof import('../platform/telemetry/metrics'), 'recordRpc' | 'recordPayment'>;
/** The module afresh: its instruments are made on first use, from the provider installed then. */
const recorders = (): Recorders => {
  delete require.cache[require.resolve('../platform/telemetry/metrics')];
  return require('../platform/telemetry/metrics') as Recorders;
};

const METHODS = ['/wristpay.gateway.v1.GatewayService/Authorize', '/wristpay.tokenization.v1.TokenizationService/VerifyPayment', '/wristpay.device_registry.v1.DeviceRegistryService/GetSession', '/wristpay.risk.v1.RiskService/Score', '/wristpay.settlement.v1.SettlementService/PlaceHold'];

/** CPU microseconds per simulated Authorize (5 RPC records + 1 payment), median of the rounds. */
function measure({ recordRpc, recordPayment }: Recorders, calls: number, rounds: number): number {
  const perCall: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = process.cpuUsage();
    for (let i = 0; i < calls; i++) {
      for (const m of METHODS) recordRpc(m, i % 50 === 0 ? 14 : 0, 0.001 * (i % 300));
      recordPayment(i % 7 === 0 ? 'DECLINED' : 'APPROVED', i % 7 === 0 ? 'INSUFFICIENT_FUNDS' : '');
    }
    const used = process.cpuUsage(start);
    perCall.push((used.user + used.system) / calls);
  }
  return perCall.sort((a, b) => a - b)[Math.floor(rounds / 2)]!;
}

async function main(): Promise<void> {
  const calls = arg('calls', 200_000);
  const rounds = arg('rounds', 7);
  const off = measure(recorders(), calls, rounds);
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ readers: [exporter], views: METRIC_VIEWS });
  metrics.setGlobalMeterProvider(provider);
  const on = measure(recorders(), calls, rounds);
  const scrapeStart = process.cpuUsage();
  const { resourceMetrics } = await exporter.collect();
  const scrapeUs = process.cpuUsage(scrapeStart);
  console.log(`${calls} simulated Authorizes x ${rounds} rounds (5 rpc.server.duration records + 1 payment each), CPU time, median round:`);
  console.log(`  metrics off (no-op API):          ${off.toFixed(2)} µs per Authorize`);
  console.log(`  metrics on (SDK, views, reader):  ${on.toFixed(2)} µs per Authorize`);
  console.log(`  one collection of those series:   ${((scrapeUs.user + scrapeUs.system) / 1000).toFixed(2)} ms (${resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).length} instruments)`);
  await provider.shutdown();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

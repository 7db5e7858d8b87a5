import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { AggregationType, type MetricReader, type ViewOptions } from '@opentelemetry/sdk-metrics';
import { env } from '../config';

/**
 * The port of a service's Prometheus endpoint: METRICS_PORT, 0 or unset meaning none. Read here
 * (register.ts runs before the service's config) with the same rule serverEnv applies to it.
 */
export function metricsPortFrom(environment: NodeJS.ProcessEnv): number {
  const raw = environment.METRICS_PORT;
  if (raw === undefined || raw === '') return 0;
  const parsed = env.port.safeParse(raw);
  if (!parsed.success) throw new Error('invalid configuration: METRICS_PORT: must be a port number (0-65535)');
  return parsed.data;
}

/**
 * A Prometheus pull endpoint (`GET /metrics` on `port`, all interfaces) per service rather than
 * OTLP to the collector: Prometheus pulls, so there is one hop fewer, a dead service shows as a
 * failed scrape (`up == 0`), and the collector stays traces-only. No reader at all for port 0.
 */
export function metricReaders(port: number, host?: string): MetricReader[] {
  if (!port) return [];
  // service.name becomes a `service_name` label on every series, so a query needs no relabelling.
  return [new PrometheusExporter({ port, ...(host ? { host } : {}), withResourceConstantLabels: /^service\.name$/, withoutScopeInfo: true })];
}

const drop = { type: AggregationType.DROP } as const;

/**
 * Instruments nobody reads, dropped before they are aggregated: the pg instrumentation's per-query
 * histograms and pool counters (WristPay records the pool itself, platform/db.ts, and per-RPC
 * latency in rpc.server.duration), anything the gRPC instrumentation might record next to our
 * rpc.server.duration, and the runtime instrumentation's event-loop percentiles other than p99
 * and its per-heap-space breakdowns (v8js.memory.heap.used, by space, stays).
 */
export const METRIC_VIEWS: ViewOptions[] = [
  { meterName: '@opentelemetry/instrumentation-pg', aggregation: drop },
  { meterName: '@opentelemetry/instrumentation-grpc', aggregation: drop },
  { meterName: '@opentelemetry/instrumentation-ioredis', aggregation: drop },
  ...['min', 'max', 'mean', 'stddev', 'p50', 'p90'].map((s) => ({ instrumentName: `nodejs.eventloop.delay.${s}`, aggregation: drop })),
  ...['available_size', 'physical_size', 'size'].map((s) => ({ instrumentName: `v8js.memory.heap.space.${s}`, aggregation: drop })),
  { instrumentName: 'nodejs.eventloop.time', aggregation: drop },
];

/**
 * Telemetry bootstrap. Load it before anything else (`node --require
 * dist/platform/telemetry/register.js ...`) so the gRPC, ioredis and pg instrumentations patch
 * those modules before the service requires them. Business code uses only @opentelemetry/api.
 *
 * Traces: to OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, else JSON lines in
 * WRISTPAY_TRACE_FILE (default .data/traces/<service>.jsonl).
 * Metrics: a Prometheus /metrics endpoint on METRICS_PORT (metrics-reader.ts); none at all when
 * it is unset or 0, so nothing is recorded that nobody reads.
 * Statement spans: one span per PostgreSQL statement and Redis command only with
 * WRISTPAY_TRACE_STATEMENTS=1. They were two thirds of a payment's spans (BEGIN and COMMIT
 * included) and a tenth of each service's CPU, while an analyst reads the hops, the consumers
 * and the attributes on them; turn them on to look inside one slow store call.
 */
import { metrics } from '@opentelemetry/api';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { RuntimeNodeInstrumentation } from '@opentelemetry/instrumentation-runtime-node';
import { detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { repoPath } from '../paths';
import { FileSpanExporter } from './file-exporter';
import { metricsPortFrom, metricReaders, METRIC_VIEWS } from './metrics-reader';
import { TELEMETRY_KEY } from './shutdown';

const service = process.env.OTEL_SERVICE_NAME ?? 'wristpay';
const metricsPort = (() => {
  try {
    return metricsPortFrom(process.env);
  } catch (err) {
    // As runService reports a configuration error: one line naming the variable, exit 78.
    process.stderr.write(`${service}: ${(err as Error).message}\n`);
    process.exit(78);
  }
})();
const traceStatements = process.env.WRISTPAY_TRACE_STATEMENTS === '1';

/**
 * The OTLP exporter is loaded only when a collector is configured: loading every exporter it
 * might use is what made NodeSDK (@opentelemetry/sdk-node) cost 31 MiB of RSS per process. The
 * parts here are the ones NodeSDK composes (sdk-trace-node, sdk-metrics, instrumentation), set
 * up the same way: W3C trace context and baggage, AsyncLocalStorage context, OTEL_* env.
 */
function spanExporter(): SpanExporter {
  if (!process.env.OTEL_EXPORTER_OTLP_ENDPOINT) return new FileSpanExporter(process.env.WRISTPAY_TRACE_FILE ?? repoPath('.data', 'traces', `${service}.jsonl`));
  const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-grpc') as typeof import('@opentelemetry/exporter-trace-otlp-grpc');
  return new OTLPTraceExporter();
}

// OTEL_RESOURCE_ATTRIBUTES (service.namespace in the cluster) under the service's name.
const resource = detectResources({ detectors: [envDetector] }).merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: service }));
const tracerProvider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(spanExporter(), { scheduledDelayMillis: 200 })] });
tracerProvider.register();
// Only with a port: no meter provider at all otherwise, so the API's no-op meters record nothing nobody reads.
const meterProvider = metricsPort ? new MeterProvider({ resource, readers: metricReaders(metricsPort), views: METRIC_VIEWS }) : undefined;
if (meterProvider) metrics.setGlobalMeterProvider(meterProvider);
registerInstrumentations({
  tracerProvider,
  meterProvider,
  instrumentations: [
    // Health checks and reflection are noise in a payment trace.
    new GrpcInstrumentation({ ignoreGrpcMethods: [/^Check$/, /^Watch$/, /ServerReflectionInfo/] }),
    ...(traceStatements ? [new IORedisInstrumentation({ requireParentSpan: true }), new PgInstrumentation({ requireParentSpan: true })] : []),
    // Event-loop delay and heap; it only records when a meter provider is installed.
    ...(meterProvider ? [new RuntimeNodeInstrumentation({ monitoringPrecision: 50 })] : []),
  ],
});
(globalThis as Record<symbol, unknown>)[TELEMETRY_KEY] = {
  shutdown: async () => void (await Promise.all([tracerProvider.shutdown(), meterProvider?.shutdown()])),
};

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
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { RuntimeNodeInstrumentation } from '@opentelemetry/instrumentation-runtime-node';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { repoPath } from '../paths';
import { FileSpanExporter } from './file-exporter';
import { metricsPortFrom, metricReaders, METRIC_VIEWS } from './metrics-reader';
import { TELEMETRY_KEY } from './shutdown';

const service = process.env.OTEL_SERVICE_NAME ?? 'wristpay';
const exporter = process.env.OTEL_EXPORTER_OTLP_ENDPOINT
  ? new OTLPTraceExporter()
  : new FileSpanExporter(process.env.WRISTPAY_TRACE_FILE ?? repoPath('.data', 'traces', `${service}.jsonl`));
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

const sdk = new NodeSDK({
  resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: service }),
  spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 200 })],
  // Always an explicit list: without one NodeSDK falls back to OTEL_METRICS_EXPORTER, whose
  // default is an OTLP exporter pushing to a collector that is not there (every call then
  // recorded histograms that went nowhere).
  metricReaders: metricReaders(metricsPort),
  views: METRIC_VIEWS,
  instrumentations: [
    // Health checks and reflection are noise in a payment trace.
    new GrpcInstrumentation({ ignoreGrpcMethods: [/^Check$/, /^Watch$/, /ServerReflectionInfo/] }),
    ...(traceStatements ? [new IORedisInstrumentation({ requireParentSpan: true }), new PgInstrumentation({ requireParentSpan: true })] : []),
    // Event-loop delay and heap; it only records when a meter provider is installed.
    ...(metricsPort ? [new RuntimeNodeInstrumentation({ monitoringPrecision: 50 })] : []),
  ],
});
sdk.start();
(globalThis as Record<symbol, unknown>)[TELEMETRY_KEY] = sdk;

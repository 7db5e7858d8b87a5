/**
 * Telemetry bootstrap. Load it before anything else (`node --require
 * dist/platform/telemetry/register.js ...`) so the gRPC, ioredis and pg instrumentations patch
 * those modules before the service requires them. Business code uses only @opentelemetry/api.
 *
 * Exports to OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, else appends JSON lines to
 * WRISTPAY_TRACE_FILE (default .data/traces/<service>.jsonl).
 */
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { repoPath } from '../paths';
import { FileSpanExporter } from './file-exporter';
import { TELEMETRY_KEY } from './shutdown';

const service = process.env.OTEL_SERVICE_NAME ?? 'wristpay';
const exporter = process.env.OTEL_EXPORTER_OTLP_ENDPOINT
  ? new OTLPTraceExporter()
  : new FileSpanExporter(process.env.WRISTPAY_TRACE_FILE ?? repoPath('.data', 'traces', `${service}.jsonl`));

const sdk = new NodeSDK({
  resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: service }),
  spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 200 })],
  instrumentations: [
    // Health checks and reflection are noise in a payment trace.
    new GrpcInstrumentation({ ignoreGrpcMethods: [/^Check$/, /^Watch$/, /ServerReflectionInfo/] }),
    new IORedisInstrumentation({ requireParentSpan: true }),
    new PgInstrumentation({ requireParentSpan: true }),
  ],
});
sdk.start();
(globalThis as Record<symbol, unknown>)[TELEMETRY_KEY] = sdk;

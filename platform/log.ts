import { trace } from '@opentelemetry/api';
import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * Field names whose values are secrets wherever they appear in a log object. Pino replaces
 * them before serialising, so a careless `log.info({ req })` still cannot leak them.
 */
export const REDACTED_FIELDS = [
  'cardNumber',
  'card_number',
  'pan',
  'cryptogram',
  'tokenKey',
  'token_key',
  'masterKey',
  'kek',
  'keks',
  'signature',
  'tokenNumber',
  'token_number',
  'offlineCode',
  'offline_code',
  'password',
  'authorization',
  // PostgreSQL errors echo the offending row ("Key (col)=(value)"), which may be a secret.
  'detail',
  'where',
];

/**
 * JSON logger for one service. Every line carries `service` and, inside a span, `trace_id` and
 * `span_id`, so a log line can be joined to its trace.
 */
export function createLogger(service: string, level = process.env.LOG_LEVEL ?? 'info', destination?: pino.DestinationStream): Logger {
  const paths = REDACTED_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`]);
  return pino(
    {
      level,
      base: { service },
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths, censor: '[redacted]' },
      mixin() {
        const ctx = trace.getActiveSpan()?.spanContext();
        return ctx ? { trace_id: ctx.traceId, span_id: ctx.spanId } : {};
      },
    },
    destination,
  );
}

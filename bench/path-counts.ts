/**
 * What one payment does on its answer path, counted from its spans (the services' trace files,
 * platform/telemetry/file-exporter.ts): gRPC hops, PostgreSQL commits and other statements, Redis
 * round trips and awaited JetStream publishes. These counts, times the floors measured in the
 * same run, give the floor sum of the path (bench/targets.ts floorSum).
 *
 * "On the answer path" is read from the trace tree: a span counts when it ended before the gRPC
 * server span it runs under (its nearest ancestor that is one) answered. So the outbox relays'
 * reads, publishes and marks, the consumers of the events, and a publish sent without waiting for
 * its ack (it ends after the answer) are not counted; they cost CPU, not latency. Span start
 * times are whole milliseconds (durations are finer), so a span ending within a millisecond of
 * its server's answer may fall on either side.
 */
import type { SpanRecord } from '../platform/telemetry/file-exporter';

export interface PathCounts {
  /** gRPC server spans answered within the payment's answer (the terminal's call to the gateway included). */
  hops: number;
  /** Durable commits: COMMIT, and INSERT/UPDATE/DELETE outside a transaction (autocommit). */
  commits: number;
  /** Every other statement round trip (BEGIN, SELECT, writes inside a transaction, ROLLBACK). */
  statements: number;
  /** Redis round trips: commands sent before any reply of the ones before them came back (a pipeline, a MULTI) count once. */
  redisRoundTrips: number;
  /** JetStream publishes whose ack was awaited before the answer. */
  publishes: number;
  /** Every span of the payment's trace, answer path or not. */
  spans: number;
}

const SERVER = 1;
const PRODUCER = 3;

const isGrpcServer = (s: SpanRecord) => s.kind === SERVER && s.name.startsWith('grpc.');
const isPg = (s: SpanRecord) => s.name.startsWith('pg.query');
const isRedis = (s: SpanRecord) => [s.attributes['db.system'], s.attributes['db.system.name']].includes('redis');
const isPublish = (s: SpanRecord) => s.kind === PRODUCER && s.name.endsWith(' publish');
const end = (s: SpanRecord) => s.startUs + s.durationUs;

/** A statement's leading keyword: from its text when recorded, else from the span name (`pg.query:COMMIT db`). */
export function statementVerb(span: SpanRecord): string {
  const text = span.attributes['db.statement'] ?? span.attributes['db.query.text'];
  const source = typeof text === 'string' ? text : span.name.replace(/^pg\.query:?/, '');
  return (/^\s*(\w+)/.exec(source)?.[1] ?? '').toUpperCase();
}

/** Counts one payment's trace: `spans` are every span of the trace, from every service. */
export function countPayment(spans: SpanRecord[]): PathCounts {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const serverOf = (s: SpanRecord): SpanRecord | undefined => {
    for (let p = s.parentSpanId ? byId.get(s.parentSpanId) : undefined; p; p = p.parentSpanId ? byId.get(p.parentSpanId) : undefined) {
      if (isGrpcServer(p)) return p;
    }
    return undefined;
  };
  // The payment's root: the gateway's Authorize server span (the one gRPC server span under no other).
  const root = spans.find((s) => isGrpcServer(s) && !serverOf(s));
  const onPath = (s: SpanRecord): boolean => {
    if (s === root) return true;
    const server = serverOf(s);
    return server !== undefined && end(s) <= end(server) && onPath(server);
  };
  const counts: PathCounts = { hops: 0, commits: 0, statements: 0, redisRoundTrips: 0, publishes: 0, spans: spans.length };
  if (!root) return counts;
  const path = spans.filter((s) => s === root || onPath(s)).sort((a, b) => a.startUs - b.startUs || end(a) - end(b));
  counts.hops = path.filter(isGrpcServer).length;
  counts.publishes = path.filter(isPublish).length;
  // Statements in time order per service: BEGIN opens a transaction, COMMIT/ROLLBACK ends it.
  const inTransaction = new Map<string, boolean>();
  for (const s of path.filter(isPg)) {
    const verb = statementVerb(s);
    const open = inTransaction.get(s.service) ?? false;
    if (verb === 'BEGIN' || verb === 'START') inTransaction.set(s.service, true);
    if (verb === 'COMMIT' || verb === 'END' || verb === 'ROLLBACK') inTransaction.set(s.service, false);
    const write = ['INSERT', 'UPDATE', 'DELETE', 'WITH'].includes(verb);
    if (verb === 'COMMIT' || verb === 'END' || (write && !open)) counts.commits++;
    else counts.statements++;
  }
  // Redis: a command sent while the service still waits on an earlier one's reply shares its round trip.
  const redisByService = new Map<string, SpanRecord[]>();
  for (const s of path.filter(isRedis)) redisByService.set(s.service, [...(redisByService.get(s.service) ?? []), s]);
  for (const commands of redisByService.values()) {
    let firstReply = -Infinity;
    for (const c of commands) {
      if (c.startUs >= firstReply) {
        counts.redisRoundTrips++;
        firstReply = end(c);
      } else firstReply = Math.min(firstReply, end(c));
    }
  }
  return counts;
}

/** The mean counts per payment over the traces `traceIds` (a trace with no gRPC server span counts as missing, not as zero). */
export function countPayments(spans: SpanRecord[], traceIds: Iterable<string>): { perPayment: PathCounts; payments: number; missing: number } {
  const byTrace = new Map<string, SpanRecord[]>();
  for (const s of spans) byTrace.set(s.traceId, [...(byTrace.get(s.traceId) ?? []), s]);
  const sum: PathCounts = { hops: 0, commits: 0, statements: 0, redisRoundTrips: 0, publishes: 0, spans: 0 };
  let payments = 0;
  let missing = 0;
  for (const id of traceIds) {
    const c = countPayment(byTrace.get(id) ?? []);
    if (!c.hops) {
      missing++;
      continue;
    }
    payments++;
    for (const k of Object.keys(sum) as Array<keyof PathCounts>) sum[k] += c[k];
  }
  const perPayment = Object.fromEntries(Object.entries(sum).map(([k, v]) => [k, payments ? v / payments : 0])) as unknown as PathCounts;
  return { perPayment, payments, missing };
}

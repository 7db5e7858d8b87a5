import type { SpanRecord } from '../platform/telemetry/file-exporter';
import { countPayment, countPayments, statementVerb } from './path-counts';

let nextId = 0;
/** A span of trace `t` starting at `start` ms for `ms` ms. */
function span(name: string, start: number, ms: number, more: Partial<SpanRecord> = {}): SpanRecord {
  return { traceId: 't', spanId: `s${nextId++}`, name, kind: 2, service: 'gateway', startUs: start * 1000, durationUs: ms * 1000, status: 0, attributes: {}, ...more };
}
const pg = (sql: string, start: number, ms: number, parent: SpanRecord, service = parent.service) =>
  span(`pg.query:${sql.split(' ')[0]} db`, start, ms, { parentSpanId: parent.spanId, service, attributes: { 'db.statement': sql } });
const redis = (cmd: string, start: number, ms: number, parent: SpanRecord) => span(cmd, start, ms, { parentSpanId: parent.spanId, service: parent.service, attributes: { 'db.system.name': 'redis' } });

/** A payment like the mesh's: Authorize → VerifyPayment (a transaction) → Score (Redis) → PlaceHold, then the gateway's commit; and work after the answer. */
function payment(): SpanRecord[] {
  const authorize = span('grpc.wristpay.gateway.v1.GatewayService/Authorize', 0, 100, { kind: 1 });
  const verifyCall = span('grpc.wristpay.tokenization.v1.TokenizationService/VerifyPayment', 5, 20, { parentSpanId: authorize.spanId });
  const verify = span('grpc.wristpay.tokenization.v1.TokenizationService/VerifyPayment', 6, 18, { kind: 1, service: 'tokenization', parentSpanId: verifyCall.spanId });
  const scoreCall = span('grpc.wristpay.risk.v1.RiskService/Score', 30, 30, { parentSpanId: authorize.spanId });
  const score = span('grpc.wristpay.risk.v1.RiskService/Score', 31, 28, { kind: 1, service: 'risk', parentSpanId: scoreCall.spanId });
  const fromVerify = (sql: string, start: number) => pg(sql, start, 1, verify);
  const relayPublish = span('token.payment.verified publish', 26, 3, { kind: 3, service: 'tokenization', parentSpanId: verify.spanId });
  return [
    authorize,
    pg('SELECT * FROM merchants WHERE merchant_id = $1', 1, 1, authorize),
    pg('INSERT INTO payments (payment_id) VALUES ($1)', 2, 2, authorize), // autocommit: a commit
    verifyCall,
    verify,
    fromVerify('BEGIN', 7),
    fromVerify('INSERT INTO idempotency_keys (scope, key) VALUES ($1, $2)', 9), // inside the transaction
    fromVerify('UPDATE tokens SET atc_high = $2', 11),
    fromVerify('COMMIT', 13),
    relayPublish, // after VerifyPayment answered: not on the path
    pg('UPDATE outbox SET published_at = now()', 27, 1, verify), // the relay's autocommit, after the answer
    span('token.payment.verified process', 28, 1, { kind: 4, service: 'risk', parentSpanId: relayPublish.spanId }),
    scoreCall,
    score,
    redis('evalsha', 32, 5, score), // three sent together: one round trip
    redis('evalsha', 32, 5, score),
    redis('evalsha', 32, 6, score),
    redis('multi', 40, 4, score), // then a MULTI/EXEC pipeline: another
    redis('hset', 40, 4, score),
    redis('exec', 40, 4, score),
    span('risk.scored publish', 55, 10, { kind: 3, service: 'risk', parentSpanId: score.spanId }), // ack after the answer: not awaited
    span('risk.alert publish', 45, 2, { kind: 3, service: 'risk', parentSpanId: score.spanId }), // awaited
    pg('BEGIN', 90, 1, authorize),
    pg('UPDATE payments SET status = $2', 92, 1, authorize),
    pg('COMMIT', 95, 2, authorize),
    pg('SELECT seq FROM outbox WHERE published_at IS NULL', 101, 1, authorize), // after the answer
  ];
}

describe('countPayment', () => {
  it('counts the answer path: hops, commits (COMMIT and autocommit writes), statements, Redis round trips, awaited publishes', () => {
    expect(countPayment(payment())).toEqual({ hops: 3, commits: 3, statements: 6, redisRoundTrips: 2, publishes: 1, spans: 26 });
  });

  it('leaves out a span ending after its server answered, even when its server is on the path', () => {
    const spans = payment();
    const late = spans.find((s) => s.name === 'risk.alert publish')!;
    late.durationUs = 20_000; // 45 + 20 ms: after Score answered at 59 ms
    expect(countPayment(spans).publishes).toBe(0);
  });

  it('counts nothing under a downstream server span that answered after the gateway did', () => {
    const spans = payment();
    const score = spans.find((s) => s.kind === 1 && s.service === 'risk')!;
    score.durationUs = 200_000;
    const c = countPayment(spans);
    expect(c.hops).toBe(2);
    expect(c.redisRoundTrips).toBe(0);
  });

  it('classifies statements by the span name when the statement text is not recorded', () => {
    const s = span('pg.query:COMMIT wallet', 0, 1);
    expect(statementVerb(s)).toBe('COMMIT');
    expect(statementVerb({ ...s, attributes: { 'db.query.text': '  insert into x values (1)' } })).toBe('INSERT');
  });

  it('finds no path in a trace without a gRPC server span', () => {
    expect(countPayment([span('pg.query:SELECT db', 0, 1)])).toMatchObject({ hops: 0, commits: 0, statements: 0 });
  });
});

describe('countPayments', () => {
  it('averages over the payments found and counts the missing ones apart', () => {
    const spans = payment();
    const other = payment().map((s) => ({ ...s, traceId: 'u' }));
    const { perPayment, payments, missing } = countPayments([...spans, ...other], ['t', 'u', 'absent']);
    expect(payments).toBe(2);
    expect(missing).toBe(1);
    expect(perPayment.commits).toBe(3);
  });

  it('gives zeros, not NaN, when no trace is found (statement spans off, or tracing off)', () => {
    expect(countPayments([], ['t'])).toEqual({ perPayment: { hops: 0, commits: 0, statements: 0, redisRoundTrips: 0, publishes: 0, spans: 0 }, payments: 0, missing: 1 });
  });
});

import { metrics, ValueType, type Attributes, type BatchObservableCallback, type Observable } from '@opentelemetry/api';

/**
 * Every metric WristPay records, in one place (names, units, buckets), and the helpers business
 * code calls. Everything goes through @opentelemetry/api: when register.ts installed no meter
 * provider (METRICS_PORT unset: unit tests, in-process meshes) each call is a no-op and no
 * observable callback ever runs. Names follow the OpenTelemetry semantic conventions where one
 * exists (rpc.server.duration, db.client.connection.count); ours are under `wristpay.`. No
 * attribute may carry an id (payment, account, band, token, merchant): only small fixed sets.
 * docs/metrics.md lists them with their Prometheus names.
 */
export const METRIC = {
  rpcServerDuration: 'rpc.server.duration',
  payments: 'wristpay.payments',
  riskDecisions: 'wristpay.risk.decisions',
  riskScore: 'wristpay.risk.score',
  lostBandCutoff: 'wristpay.lost_band.cutoff',
  outboxOldestAge: 'wristpay.outbox.oldest_age',
  outboxBacklog: 'wristpay.outbox.backlog',
  consumerPending: 'wristpay.consumer.pending',
  consumerAckPending: 'wristpay.consumer.ack_pending',
  consumerRedeliveries: 'wristpay.consumer.redeliveries',
  eventsParked: 'wristpay.events.parked',
  dbConnections: 'db.client.connection.count',
  dbPendingRequests: 'db.client.connection.pending_requests',
  dbConnectionsMax: 'db.client.connection.max',
  redisClients: 'wristpay.redis.clients',
  redisPendingCommands: 'wristpay.redis.pending_commands',
  redisErrors: 'wristpay.redis.errors',
  ledgerChecks: 'wristpay.ledger.checks',
  ledgerViolations: 'wristpay.ledger.violations',
} as const;

/** Latency buckets in seconds for calls that should take milliseconds and must never take seconds. */
export const LATENCY_BUCKETS_S = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Risk scores run 0-1000 (services/risk/src/domain/decision.ts); the policy thresholds sit in between. */
export const RISK_SCORE_BUCKETS = [50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000];

const meter = () => metrics.getMeter('wristpay');

// Instruments are created on first use: register.ts installs the provider before any service
// code runs, and a module-level instrument made from the no-op provider would stay a no-op.
let rpcDuration: ReturnType<ReturnType<typeof meter>['createHistogram']> | undefined;
let payments: ReturnType<ReturnType<typeof meter>['createCounter']> | undefined;
let riskDecisions: ReturnType<ReturnType<typeof meter>['createCounter']> | undefined;
let riskScore: ReturnType<ReturnType<typeof meter>['createHistogram']> | undefined;
let cutoff: ReturnType<ReturnType<typeof meter>['createHistogram']> | undefined;
let redeliveries: ReturnType<ReturnType<typeof meter>['createCounter']> | undefined;
let redisErrors: ReturnType<ReturnType<typeof meter>['createCounter']> | undefined;
let ledgerChecks: ReturnType<ReturnType<typeof meter>['createCounter']> | undefined;
let ledgerViolations: ReturnType<ReturnType<typeof meter>['createGauge']> | undefined;

/**
 * One finished RPC, as the OTel RPC semantic conventions name it: rpc.server.duration in seconds
 * with rpc.system, rpc.service, rpc.method and rpc.grpc.status_code (the numeric code). Rate,
 * errors by status and latency all come from this one histogram.
 */
export function recordRpc(path: string, code: number, seconds: number): void {
  rpcDuration ??= meter().createHistogram(METRIC.rpcServerDuration, {
    unit: 's',
    description: 'Duration of inbound gRPC calls, by method and status code',
    advice: { explicitBucketBoundaries: LATENCY_BUCKETS_S },
  });
  const [, service = '', method = ''] = path.split('/');
  rpcDuration.record(seconds, { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': method, 'rpc.grpc.status_code': code });
}

/**
 * A payment's decision as committed (once per payment and decision): APPROVED, CHALLENGED or
 * DECLINED, with the decline reason in lower case (insufficient_funds; "none" when there is
 * none), both from fixed sets.
 */
export function recordPayment(decision: string, reason: string): void {
  payments ??= meter().createCounter(METRIC.payments, { description: 'Payment decisions committed by the gateway, by decision and decline reason' });
  payments.add(1, { decision, reason: reason ? reason.toLowerCase() : 'none' });
}

/** One risk verdict: the decision (APPROVE, CHALLENGE, DECLINE) counted and its score in the histogram. */
export function recordRiskDecision(decision: string, score: number): void {
  riskDecisions ??= meter().createCounter(METRIC.riskDecisions, { description: 'Risk verdicts by decision' });
  riskScore ??= meter().createHistogram(METRIC.riskScore, {
    unit: '1',
    description: 'Risk scores (0-1000) by decision',
    advice: { explicitBucketBoundaries: RISK_SCORE_BUCKETS },
  });
  riskDecisions.add(1, { decision });
  riskScore.record(score, { decision });
}

/**
 * How long after a band was reported lost one of its cut-off steps took effect (the event's
 * occurred_at to now), in seconds; `step` names which (tokens_suspended, account_frozen).
 */
export function recordLostBandCutoff(step: string, occurredAt: Date | undefined): void {
  if (!occurredAt) return;
  cutoff ??= meter().createHistogram(METRIC.lostBandCutoff, {
    unit: 's',
    description: 'Time from ReportLost to each cut-off step taking effect',
    advice: { explicitBucketBoundaries: [0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30] },
  });
  cutoff.record(Math.max(0, (Date.now() - occurredAt.getTime()) / 1000), { step });
}

/** A JetStream message delivered more than once to `consumer` (the durable name) on `stream`: both fixed sets. */
export function recordRedelivery(consumer: string, stream: string): void {
  redeliveries ??= meter().createCounter(METRIC.consumerRedeliveries, { description: 'JetStream messages delivered again (a handler failed or an ack was lost)' });
  redeliveries.add(1, { consumer, stream });
}

let parked: ReturnType<ReturnType<typeof meter>['createCounter']> | undefined;

/** An event parked on the dead-letter stream after its last delivery failed (`consumer` the durable name, `stream` its stream). */
export function recordParked(consumer: string, stream: string): void {
  parked ??= meter().createCounter(METRIC.eventsParked, { description: 'Events parked on the dead-letter stream after their last delivery failed' });
  parked.add(1, { consumer, stream });
}

/** An error event from a Redis client (a lost connection, a refused command). */
export function recordRedisError(): void {
  redisErrors ??= meter().createCounter(METRIC.redisErrors, { description: 'Errors reported by Redis clients' });
  redisErrors.add(1);
}

/**
 * One run of the settlement ledger check: result ok, violations or error (could not run), and,
 * when it ran, how many violations it found (a gauge: the last check's count).
 */
export function recordLedgerCheck(result: 'ok' | 'violations' | 'error', violations: number | undefined): void {
  ledgerChecks ??= meter().createCounter(METRIC.ledgerChecks, { description: 'Ledger invariant checks run, by result' });
  ledgerViolations ??= meter().createGauge(METRIC.ledgerViolations, { description: 'Violations the last ledger check found', valueType: ValueType.INT });
  ledgerChecks.add(1, { result });
  if (violations !== undefined) ledgerViolations.record(violations);
}

/**
 * Observes several gauges from one callback run at each collection (a scrape), so a value that
 * costs a query (the outbox's age) is read once per scrape, and only when someone scrapes.
 * Returns the function that stops observing (call it when the resource closes).
 */
export function observeGauges(
  gauges: Array<{ name: string; unit?: string; description: string; integer?: boolean }>,
  observe: (record: (name: string, value: number, attributes?: Attributes) => void) => Promise<void> | void,
): () => void {
  const m = meter();
  const instruments = new Map<string, Observable>(
    gauges.map((g) => [g.name, m.createObservableGauge(g.name, { description: g.description, unit: g.unit ?? '1', valueType: g.integer ? ValueType.INT : ValueType.DOUBLE })]),
  );
  const callback: BatchObservableCallback = async (result) => {
    await observe((name, value, attributes) => {
      const instrument = instruments.get(name);
      if (instrument) result.observe(instrument, value, attributes);
    });
  };
  m.addBatchObservableCallback(callback, [...instruments.values()]);
  return () => m.removeBatchObservableCallback(callback, [...instruments.values()]);
}

import { ATTR } from '../../platform/telemetry/attributes';
import { attributeText, byTrace, type Span, type SpanSource } from './span';

/** The gateway's Authorize server span, as the gRPC instrumentation names it. */
export const AUTHORIZE_OPERATION = 'grpc.wristpay.gateway.v1.GatewayService/Authorize';
const GATEWAY = 'gateway';

const paymentOf = (span: Span): string => attributeText(span.attributes[ATTR.paymentId]);

/** One trace of a payment: its spans, and when it started. */
export interface PaymentTrace {
  traceId: string;
  startUs: number;
  spans: Span[];
}

/**
 * Every trace carrying `paymentId`, oldest first: a payment stepped up has several (Authorize;
 * ConfirmPayment or DeclinePayment or the expiry sweep; consumers of the events each published).
 */
export async function tracesOfPayment(source: SpanSource, paymentId: string): Promise<PaymentTrace[]> {
  const spans = await source.find({ tags: { [ATTR.paymentId]: paymentId } });
  return [...byTrace(spans)].map(([traceId, list]) => ({ traceId, startUs: Math.min(...list.map((s) => s.startUs)), spans: list })).sort((a, b) => a.startUs - b.startUs);
}

/**
 * The payment a trace is about (the demo prints trace ids): the payment id its gateway spans
 * carry, else any of its spans; undefined if the trace is not there or names no payment.
 */
export async function paymentOfTrace(source: SpanSource, traceId: string): Promise<string | undefined> {
  const spans = await source.trace(traceId);
  const named = (list: Span[]) => list.map(paymentOf).find(Boolean);
  return named(spans.filter((s) => s.service === GATEWAY)) ?? named(spans);
}

/** A payment's final word among `spans` of the gateway: the latest span that carries a decision. */
function latestByPayment(spans: Span[], keep: (span: Span) => boolean): Map<string, Span> {
  const latest = new Map<string, Span>();
  for (const span of spans) {
    if (span.service !== GATEWAY || !keep(span)) continue;
    const id = paymentOf(span);
    if (!id) continue;
    const before = latest.get(id);
    if (!before || before.startUs < span.startUs) latest.set(id, span);
  }
  return latest;
}

export interface Group {
  key: string;
  count: number;
  share: number;
  samples: string[];
  /** challenged only: how the step-ups ended. */
  outcomes?: Record<string, number>;
  /** declined only: the decline's sentence, as the first sample has it. */
  message?: string;
}

function group(entries: Array<{ key: string; paymentId: string; message?: string; outcome?: string }>, samples: number): Group[] {
  const groups = new Map<string, Group>();
  for (const e of entries) {
    const g = groups.get(e.key) ?? { key: e.key, count: 0, share: 0, samples: [], ...(e.message !== undefined ? { message: e.message } : {}), ...(e.outcome !== undefined ? { outcomes: {} } : {}) };
    g.count++;
    if (g.samples.length < samples) g.samples.push(e.paymentId);
    if (e.outcome !== undefined) g.outcomes![e.outcome] = (g.outcomes![e.outcome] ?? 0) + 1;
    groups.set(e.key, g);
  }
  const total = entries.length;
  return [...groups.values()].map((g) => ({ ...g, share: total ? g.count / total : 0 })).sort((a, b) => b.count - a.count || a.key.localeCompare(b.key));
}

/** Declined payments since `sinceUs`, grouped by decline reason. */
export async function declinesByReason(source: SpanSource, sinceUs: number, samples = 3): Promise<Group[]> {
  const spans = await source.find({ service: GATEWAY, tags: { [ATTR.decision]: 'DECLINED' }, sinceUs });
  const declined = latestByPayment(spans, (s) => s.attributes[ATTR.decision] === 'DECLINED' && s.startUs >= sinceUs);
  const entries = [...declined].sort((a, b) => a[1].startUs - b[1].startUs);
  return group(
    entries.map(([paymentId, span]) => ({ key: attributeText(span.attributes[ATTR.declineReason]) || '(no reason)', paymentId, message: attributeText(span.attributes[ATTR.declineMessage]) })),
    samples,
  );
}

const reasonsKey = (value: unknown): string => (Array.isArray(value) ? value.map(String) : attributeText(value).split(',')).filter(Boolean).sort().join(',') || '(no reason)';

const STEP_UP_ENDS = ['confirmed', 'declined', 'expired'];

/** Payments stepped up since `sinceUs`, grouped by the risk reasons that stepped them up, with how each step-up ended. */
export async function challengesByReason(source: SpanSource, sinceUs: number, samples = 3): Promise<Group[]> {
  const challenged = latestByPayment(await source.find({ service: GATEWAY, tags: { [ATTR.decision]: 'CHALLENGED' }, sinceUs }), (s) => s.attributes[ATTR.decision] === 'CHALLENGED' && s.startUs >= sinceUs);
  const ends = new Map<string, string>();
  for (const outcome of STEP_UP_ENDS) {
    const spans = await source.find({ service: GATEWAY, tags: { [ATTR.challengeOutcome]: outcome }, sinceUs });
    for (const span of spans) if (span.service === GATEWAY && span.attributes[ATTR.challengeOutcome] === outcome && paymentOf(span)) ends.set(paymentOf(span), outcome);
  }
  const entries = [...challenged].sort((a, b) => a[1].startUs - b[1].startUs);
  return group(
    // Risk lists reasons by weight; sorted, the same set is one group whatever the weights.
    entries.map(([paymentId, span]) => ({ key: reasonsKey(span.attributes[ATTR.riskReasons]), paymentId, outcome: ends.get(paymentId) ?? 'pending' })),
    samples,
  );
}

export interface SlowPayment {
  paymentId: string;
  traceId: string;
  startUs: number;
  durationUs: number;
  decision: string;
  reason: string;
  /** The Authorize span's direct child that took longest: where most of the time went. */
  slowestChild?: Span;
}

/** The `count` slowest Authorize calls since `sinceUs`. */
export async function slowestPayments(source: SpanSource, count: number, sinceUs?: number): Promise<SlowPayment[]> {
  const spans = await source.find({ service: GATEWAY, operation: AUTHORIZE_OPERATION, ...(sinceUs !== undefined ? { sinceUs } : {}) });
  const authorizes = spans.filter((s) => s.service === GATEWAY && s.name === AUTHORIZE_OPERATION && s.kind === 'server' && paymentOf(s) && (sinceUs === undefined || s.startUs >= sinceUs));
  authorizes.sort((a, b) => b.durationUs - a.durationUs);
  return authorizes.slice(0, count).map((auth) => {
    const children = spans.filter((s) => s.traceId === auth.traceId && s.parentSpanId === auth.spanId);
    const slowestChild = children.sort((a, b) => b.durationUs - a.durationUs)[0];
    return {
      paymentId: paymentOf(auth),
      traceId: auth.traceId,
      startUs: auth.startUs,
      durationUs: auth.durationUs,
      decision: attributeText(auth.attributes[ATTR.decision]),
      reason: attributeText(auth.attributes[ATTR.declineReason]) || attributeText(auth.attributes[ATTR.riskReasons]),
      ...(slowestChild ? { slowestChild } : {}),
    };
  });
}

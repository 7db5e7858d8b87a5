import { propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type TextMapGetter } from '@opentelemetry/api';
import { AckPolicy, DeliverPolicy, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/nats-core';
import type { Event } from '../../../gen/wristpay/events/v1/events';
import { decodeEvent, type StreamArea } from '../../../platform/events';
import type { Logger } from '../../../platform/log';
import type { EventBus } from '../../../platform/nats';
import { ATTR } from '../../../platform/telemetry/attributes';
import { SERVICE } from './config';
import type { DecisionStore, LabelFromEvent, StoredLabel } from './decision-store';
import type { SignalStore } from './signals';

/** Band lifecycle events and the status each leaves the band in. */
export const DEVICE_STATUS: Readonly<Record<string, string>> = {
  'device.suspended': 'SUSPENDED',
  'device.lost': 'LOST',
  'device.deregistered': 'DEREGISTERED',
  'device.resumed': 'ACTIVE',
};

/** Token lifecycle events and the status each leaves the token in. */
export const TOKEN_STATUS: Readonly<Record<string, string>> = {
  'token.suspended': 'SUSPENDED',
  'token.deleted': 'DELETED',
  'token.resumed': 'ACTIVE',
};

/** Durable consumer names; replicas share them, so each event is handled by one replica. */
export const CONSUMERS = { device: 'risk-device-signals', token: 'risk-token-signals', payment: 'risk-payment-signals', disputes: 'risk-dispute-labels' } as const;

/** Settlement's dispute decision; its outcome becomes the payment's label. */
export const DISPUTE_RESOLVED = 'payment.dispute.resolved';

/** A dispute refunded to the buyer was fraud against them; one released to the merchant was a legitimate payment. */
export const DISPUTE_LABEL: Readonly<Record<string, StoredLabel>> = { REFUND_BUYER: 'FRAUD', RELEASE_TO_MERCHANT: 'LEGIT' };

/** The label source recorded for labels that came from a dispute outcome. */
export const DISPUTE_SOURCE = 'dispute';

// Ids become parts of Redis keys: the same rule as the gRPC edge (no braces, no spaces).
const ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

/**
 * Applies one event to the signal store. Every write is idempotent (statuses keep the newest by
 * event time; counters are sets keyed by event or payment id), so redelivery is harmless.
 * Returns what it did, for logs and tests.
 */
export async function applyEvent(event: Event, signals: SignalStore): Promise<string> {
  const at = (event.occurredAt ?? new Date()).getTime();
  const p = event.payload;
  if (p?.$case === 'device' && DEVICE_STATUS[event.type]) {
    if (!ID.test(p.value.deviceId)) return 'skipped: no usable device id';
    return (await signals.deviceStatus(p.value.deviceId, DEVICE_STATUS[event.type]!, at)) ? 'device status' : 'stale device status';
  }
  if (p?.$case === 'token' && TOKEN_STATUS[event.type]) {
    if (!ID.test(p.value.deviceId) || !ID.test(p.value.tokenId)) return 'skipped: no usable device or token id';
    return (await signals.tokenStatus(p.value.deviceId, p.value.tokenId, TOKEN_STATUS[event.type]!, at)) ? 'token status' : 'stale token status';
  }
  if (p?.$case === 'verification' && event.type === 'token.payment.refused') {
    if (!ID.test(p.value.deviceId)) return 'skipped: no usable device id';
    await signals.refusal(p.value.deviceId, event.eventId, at);
    return 'refusal';
  }
  if (p?.$case === 'payment' && event.type === 'payment.declined') {
    if (!ID.test(p.value.accountId) || !ID.test(p.value.paymentId)) return 'skipped: no usable account or payment id';
    await signals.decline(p.value.accountId, p.value.paymentId, at);
    return 'decline';
  }
  return 'ignored';
}

/**
 * Applies one payment.dispute.resolved: labels the stored decision of its payment (REFUND_BUYER →
 * FRAUD, RELEASE_TO_MERCHANT → LEGIT, source "dispute"), once per event id. A redelivery finds its
 * own record and changes nothing, so it cannot undo a later Feedback. Anything that cannot ever
 * apply (no stored decision, an unknown outcome, an unusable id) is reported, not thrown: retrying
 * would not help. Redis failures throw, and JetStream redelivers.
 */
export async function applyDisputeOutcome(event: Event, decisions: DecisionStore, now: number): Promise<LabelFromEvent | `skipped: ${string}`> {
  const p = event.payload;
  if (p?.$case !== 'dispute') return 'skipped: not a dispute payload';
  if (!ID.test(p.value.paymentId)) return 'skipped: no usable payment id';
  const label = DISPUTE_LABEL[p.value.outcome];
  if (!label) return `skipped: unknown outcome ${JSON.stringify(p.value.outcome.slice(0, 40))}`;
  return decisions.labelFromEvent(p.value.paymentId, event.eventId, label, DISPUTE_SOURCE, now);
}

export interface ConsumerDeps {
  signals: SignalStore;
  decisions: DecisionStore;
  clock: () => number;
}

/** Starts the durable consumers feeding the signal store and the dispute labels; `stop()` closes them. */
export async function startConsumers(bus: EventBus, deps: ConsumerDeps, log: Logger): Promise<{ stop: () => Promise<void> }> {
  const { signals, decisions, clock } = deps;
  const handler = async (event: Event) => {
    const what = await applyEvent(event, signals);
    log.debug({ eventType: event.type, eventId: event.eventId, what }, 'risk signal');
  };
  const disputes = async (event: Event) => {
    const what = await applyDisputeOutcome(event, decisions, clock());
    const fields = { eventId: event.eventId, paymentId: event.payload?.$case === 'dispute' ? event.payload.value.paymentId : undefined, what };
    // Acked either way: a decision that is gone (expired, or scored before risk kept decisions)
    // will not come back, and one event id carrying two outcomes is settlement's bug to look at.
    if (what === 'labelled' || what === 'already labelled') log.info(fields, 'dispute outcome labelled');
    else log.warn(fields, 'dispute outcome not labelled');
  };
  const running = [
    await consumeArea(bus, log, { area: 'device', durable: CONSUMERS.device, handler }),
    await consumeArea(bus, log, { area: 'token', durable: CONSUMERS.token, handler }),
    await consumeArea(bus, log, { area: 'payment', durable: CONSUMERS.payment, handler }),
    // One subject, so the platform consumer can filter on the server (filter_subject, nats-server 2.9 safe).
    await bus.consume({ area: 'payment', durable: CONSUMERS.disputes, types: [DISPUTE_RESOLVED], handler: disputes }),
  ];
  return {
    async stop() {
      await Promise.all(running.map((c) => c.stop()));
    },
  };
}

const tracer = trace.getTracer('wristpay.risk.consumers');
const headerGetter: TextMapGetter<MsgHdrs | undefined> = {
  get: (h, k) => h?.get(k) || undefined,
  keys: (h) => (h ? h.keys() : []),
};

/**
 * A durable pull consumer on a whole area's stream (applyEvent ignores the types it does not
 * use), with explicit ack, redelivery after a failed handler and a CONSUMER span continuing the
 * publisher's trace: what EventBus.consume does, without a subject filter.
 *
 * These durables were created without a filter; EventBus.consume would now ask for one
 * (`<area>.>`), and nats-server 2.9 refuses to change an existing durable's filter. Moving them to
 * bus.consume needs new durable names (and the old ones deleted), a step for a later change.
 */
async function consumeArea(bus: EventBus, log: Logger, options: { area: StreamArea; durable: string; handler: (event: Event) => Promise<void> }): Promise<{ stop: () => Promise<void> }> {
  const jsm = await jetstreamManager(bus.nc);
  const stream = bus.streamName(options.area);
  await jsm.consumers.add(stream, { durable_name: options.durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ack_wait: 30 * 1_000_000_000, max_deliver: -1 });
  const consumer = await bus.js.consumers.get(stream, options.durable);
  const messages = await consumer.consume({ max_messages: 64 });
  const done = (async () => {
    for await (const msg of messages) await handle(msg, options.handler, log);
  })();
  return {
    stop: async () => {
      await messages.close();
      await done;
    },
  };
}

async function handle(msg: JsMsg, handler: (event: Event) => Promise<void>, log: Logger): Promise<void> {
  let event: Event;
  try {
    event = decodeEvent(msg.data);
  } catch {
    // A message that is not an Event will never become one: park it rather than loop on it.
    log.error({ subject: msg.subject, seq: msg.seq }, 'undecodable event terminated');
    msg.term('undecodable');
    return;
  }
  const parent = propagation.extract(ROOT_CONTEXT, msg.headers, headerGetter);
  const attributes = { [ATTR.messagingSystem]: 'nats', [ATTR.messagingDestination]: msg.subject, [ATTR.messagingMessageId]: event.eventId, [ATTR.eventType]: event.type, [ATTR.serviceSource]: SERVICE };
  await tracer.startActiveSpan(`${event.type} process`, { kind: SpanKind.CONSUMER, attributes }, parent, async (span) => {
    try {
      await handler(event);
      msg.ack();
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR });
      log.warn({ err: (err as Error).message, eventType: event.type, eventId: event.eventId }, 'risk signal failed; will redeliver');
      msg.nak(1000);
    } finally {
      span.end();
    }
  });
}

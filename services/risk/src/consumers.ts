import type { Event } from '../../../gen/wristpay/events/v1/events';
import type { Logger } from '../../../platform/log';
import type { EventBus } from '../../../platform/nats';
import type { DecisionStore, LabelFromEvent, StoredLabel } from './decision-store';
import type { SignalStore } from './signals';
import type { UnsavedDecisions } from './unsaved-decisions';

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
export async function applyDisputeOutcome(
  event: Event,
  decisions: DecisionStore,
  now: number,
  unsaved?: Pick<UnsavedDecisions, 'ensureStored'>,
): Promise<LabelFromEvent | `skipped: ${string}`> {
  const p = event.payload;
  if (p?.$case !== 'dispute') return 'skipped: not a dispute payload';
  if (!ID.test(p.value.paymentId)) return 'skipped: no usable payment id';
  const label = DISPUTE_LABEL[p.value.outcome];
  if (!label) return `skipped: unknown outcome ${JSON.stringify(p.value.outcome.slice(0, 40))}`;
  // A decision this replica still holds in memory is written first, or the label would find none.
  await unsaved?.ensureStored(p.value.paymentId);
  return decisions.labelFromEvent(p.value.paymentId, event.eventId, label, DISPUTE_SOURCE, now);
}

export interface ConsumerDeps {
  signals: SignalStore;
  decisions: DecisionStore;
  unsaved?: Pick<UnsavedDecisions, 'ensureStored'>;
  clock: () => number;
}

/** Starts the durable consumers feeding the signal store and the dispute labels; `stop()` closes them. */
export async function startConsumers(bus: EventBus, deps: ConsumerDeps, log: Logger): Promise<{ stop: () => Promise<void> }> {
  const { signals, decisions, unsaved, clock } = deps;
  const handler = async (event: Event) => {
    const what = await applyEvent(event, signals);
    log.debug({ eventType: event.type, eventId: event.eventId, what }, 'risk signal');
  };
  const disputes = async (event: Event) => {
    const what = await applyDisputeOutcome(event, decisions, clock(), unsaved);
    const fields = { eventId: event.eventId, paymentId: event.payload?.$case === 'dispute' ? event.payload.value.paymentId : undefined, what };
    // Acked either way: a decision that is gone (expired, or scored before risk kept decisions)
    // will not come back, and one event id carrying two outcomes is settlement's bug to look at.
    if (what === 'labelled' || what === 'already labelled') log.info(fields, 'dispute outcome labelled');
    else log.warn(fields, 'dispute outcome not labelled');
  };
  const running = [
    await bus.consume({ area: 'device', durable: CONSUMERS.device, types: ['device.>'], handler }),
    await bus.consume({ area: 'token', durable: CONSUMERS.token, types: ['token.>'], handler }),
    await bus.consume({ area: 'payment', durable: CONSUMERS.payment, types: ['payment.>'], handler }),
    await bus.consume({ area: 'payment', durable: CONSUMERS.disputes, types: [DISPUTE_RESOLVED], handler: disputes }),
  ];
  return {
    async stop() {
      await Promise.all(running.map((c) => c.stop()));
    },
  };
}

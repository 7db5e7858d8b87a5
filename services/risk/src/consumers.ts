import type { Event } from '../../../gen/wristpay/events/v1/events';
import type { Logger } from '../../../platform/log';
import type { EventBus } from '../../../platform/nats';
import type { DecisionStore, LabelFromEvent, StoredLabel } from './decision-store';
import { InvalidBandLimits, limitFromMoney } from './domain/band-limits';
import { RISK_ID } from './ids';
import type { LimitsApplied, LimitsChange, SignalStore } from './signals';
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
export const CONSUMERS = {
  device: 'risk-device-signals',
  token: 'risk-token-signals',
  payment: 'risk-payment-signals',
  disputes: 'risk-dispute-labels',
  limits: 'risk-band-limits',
} as const;

/** Settlement's change of a band's spending limits (per payment, per day, frozen). */
export const LIMITS_CHANGED = 'payment.limits.changed';

/** Settlement's dispute decision; its outcome becomes the payment's label. */
export const DISPUTE_RESOLVED = 'payment.dispute.resolved';

/** A dispute refunded to the buyer was fraud against them; one released to the merchant was a legitimate payment. */
export const DISPUTE_LABEL: Readonly<Record<string, StoredLabel>> = { REFUND_BUYER: 'FRAUD', RELEASE_TO_MERCHANT: 'LEGIT' };

/** The label source recorded for labels that came from a dispute outcome. */
export const DISPUTE_SOURCE = 'dispute';

/**
 * Applies one event to the signal store. Every write is idempotent (statuses keep the newest by
 * event time; counters are sets keyed by event or payment id), so redelivery is harmless.
 * Returns what it did, for logs and tests.
 */
export async function applyEvent(event: Event, signals: SignalStore): Promise<string> {
  const at = (event.occurredAt ?? new Date()).getTime();
  const p = event.payload;
  if (p?.$case === 'device' && DEVICE_STATUS[event.type]) {
    if (!RISK_ID.test(p.value.deviceId)) return 'skipped: no usable device id';
    return (await signals.deviceStatus(p.value.deviceId, DEVICE_STATUS[event.type]!, at)) ? 'device status' : 'stale device status';
  }
  if (p?.$case === 'device' && event.type === 'device.paired') {
    // The account learns of a new band when it is paired, not only at its first payment.
    if (!RISK_ID.test(p.value.deviceId) || !RISK_ID.test(p.value.accountId)) return 'skipped: no usable device or account id';
    await signals.pairing(p.value.accountId, p.value.deviceId, at);
    return 'pairing';
  }
  if (p?.$case === 'token' && TOKEN_STATUS[event.type]) {
    if (!RISK_ID.test(p.value.deviceId) || !RISK_ID.test(p.value.tokenId)) return 'skipped: no usable device or token id';
    return (await signals.tokenStatus(p.value.deviceId, p.value.tokenId, TOKEN_STATUS[event.type]!, at)) ? 'token status' : 'stale token status';
  }
  if (p?.$case === 'verification' && event.type === 'token.payment.refused') {
    if (!RISK_ID.test(p.value.deviceId)) return 'skipped: no usable device id';
    await signals.refusal(p.value.deviceId, event.eventId, at);
    return 'refusal';
  }
  if (p?.$case === 'payment' && event.type === 'payment.declined') {
    if (!RISK_ID.test(p.value.accountId) || !RISK_ID.test(p.value.paymentId)) return 'skipped: no usable account or payment id';
    await signals.decline(p.value.accountId, p.value.paymentId, at);
    return 'decline';
  }
  if (p?.$case === 'payment' && event.type === 'payment.authorized') {
    const { deviceId, paymentId, amount, discount } = p.value;
    if (!RISK_ID.test(deviceId) || !RISK_ID.test(paymentId)) return 'skipped: no usable device or payment id';
    if (!amount || !/^[A-Z]{3}$/.test(amount.currency)) return 'skipped: no usable amount';
    // What the band actually paid: a voucher's discount (same currency) is not spend.
    const net = amount.amountMinor - (discount && discount.currency === amount.currency ? discount.amountMinor : 0n);
    if (net <= 0n) return 'skipped: nothing spent';
    return (await signals.spend(deviceId, paymentId, Number(net), amount.currency, at)) ? 'spend' : 'spend already counted';
  }
  return 'ignored';
}

/**
 * Applies one payment.limits.changed: the band's limits are replaced only by a strictly newer
 * version, so a redelivered event or an older change arriving late cannot roll a limit back.
 * A change that can never apply (unusable device id, malformed money, negative version) is
 * reported, not thrown: retrying would not help. Redis failures throw, and JetStream redelivers.
 */
export async function applyLimitsChange(event: Event, signals: SignalStore, now: number): Promise<LimitsApplied | `skipped: ${string}`> {
  const p = event.payload;
  if (p?.$case !== 'limits') return 'skipped: not a limits payload';
  const v = p.value;
  if (!RISK_ID.test(v.deviceId)) return 'skipped: no usable device id';
  if (v.version < 0n) return 'skipped: negative version';
  let change: LimitsChange;
  try {
    change = { eventId: event.eventId, version: v.version, at: (event.occurredAt ?? new Date(now)).getTime(), frozen: v.frozen, perPayment: limitFromMoney(v.perPayment, 'per_payment'), perDay: limitFromMoney(v.perDay, 'per_day') };
  } catch (err) {
    if (err instanceof InvalidBandLimits) return `skipped: ${err.message}`;
    throw err;
  }
  return signals.bandLimits(v.deviceId, change, now);
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
  unlearn?: (paymentId: string) => Promise<unknown>,
): Promise<LabelFromEvent | `skipped: ${string}`> {
  const p = event.payload;
  if (p?.$case !== 'dispute') return 'skipped: not a dispute payload';
  if (!RISK_ID.test(p.value.paymentId)) return 'skipped: no usable payment id';
  const label = DISPUTE_LABEL[p.value.outcome];
  if (!label) return `skipped: unknown outcome ${JSON.stringify(p.value.outcome.slice(0, 40))}`;
  // A decision this replica still holds in memory is written first, or the label would find none.
  await unsaved?.ensureStored(p.value.paymentId);
  const result = await decisions.labelFromEvent(p.value.paymentId, event.eventId, label, DISPUTE_SOURCE, now);
  // A refund to the buyer was fraud: it must stop teaching the account's baselines (idempotent).
  if (label === 'FRAUD' && unlearn) await unlearn(p.value.paymentId);
  return result;
}

export interface ConsumerDeps {
  signals: SignalStore;
  decisions: DecisionStore;
  unsaved?: Pick<UnsavedDecisions, 'ensureStored'>;
  /** Takes a payment labelled FRAUD back out of its account's baselines. */
  unlearn?: (paymentId: string) => Promise<unknown>;
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
    const what = await applyDisputeOutcome(event, decisions, clock(), unsaved, deps.unlearn);
    const fields = { eventId: event.eventId, paymentId: event.payload?.$case === 'dispute' ? event.payload.value.paymentId : undefined, what };
    // Acked either way: a decision that is gone (expired, or scored before risk kept decisions)
    // will not come back, and one event id carrying two outcomes is settlement's bug to look at.
    if (what === 'labelled' || what === 'already labelled') log.info(fields, 'dispute outcome labelled');
    else log.warn(fields, 'dispute outcome not labelled');
  };
  const limits = async (event: Event) => {
    const what = await applyLimitsChange(event, signals, clock());
    const fields = { eventId: event.eventId, deviceId: event.payload?.$case === 'limits' ? event.payload.value.deviceId : undefined, what };
    if (what.startsWith('skipped')) log.warn(fields, 'band limits not applied');
    else log.info(fields, what === 'applied' ? 'band limits applied' : 'band limits change ignored');
  };
  const running = [
    await bus.consume({ area: 'device', durable: CONSUMERS.device, types: ['device.>'], handler }),
    // A durable per type it reads (consumeEach): the token and payment areas carry an event or two
    // per payment that applyEvent ignores (token.payment.verified, payment.hold.placed), which a
    // durable on the whole area was delivered and acked every time.
    await bus.consumeEach({ area: 'token', durable: CONSUMERS.token, types: [...Object.keys(TOKEN_STATUS), 'token.payment.refused'], handler }),
    await bus.consumeEach({ area: 'payment', durable: CONSUMERS.payment, types: ['payment.declined', 'payment.authorized'], handler }),
    await bus.consume({ area: 'payment', durable: CONSUMERS.disputes, types: [DISPUTE_RESOLVED], handler: disputes }),
    // Its own durable on one filter subject (nats-server 2.9 has no filter_subjects): a new
    // deployment reads every limits change on the stream from the start, not only new ones.
    await bus.consume({ area: 'payment', durable: CONSUMERS.limits, types: [LIMITS_CHANGED], handler: limits }),
  ];
  return {
    async stop() {
      await Promise.all(running.map((c) => c.stop()));
    },
  };
}

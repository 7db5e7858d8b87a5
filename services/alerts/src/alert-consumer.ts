import type { Event } from '../../../gen/wristpay/events/v1/events';
import type { Logger } from '../../../platform/log';
import type { EventBus } from '../../../platform/nats';
import { ID } from '../../../platform/validate';
import { ALERT_KIND_OF, alertFor } from './domain/alert';
import type { AlertStore } from './store';
import type { FeedWakeups } from './wakeups';

/** The durable JetStream consumers' name (one on the payment stream, one on the escrow stream); replicas share them. */
export const ALERTS_CONSUMER = 'alerts';

const typesOf = (area: string) => Object.keys(ALERT_KIND_OF).filter((t) => t.startsWith(`${area}.`));

export type IngestOutcome = { stored: true; sequence: bigint } | { stored: false; reason: string };

/**
 * Turns one event into a stored alert and wakes the account's open streams once it has
 * committed. An event that makes no alert (another type, no usable account id) is reported, not
 * thrown: it is acknowledged, since retrying cannot change it. A database failure throws, and
 * JetStream redelivers (the message is acked only after the commit).
 */
export function alertIngest(deps: { store: AlertStore; wakeups: FeedWakeups; log: Logger }): (event: Event) => Promise<IngestOutcome> {
  const { store, wakeups, log } = deps;
  return async (event) => {
    const draft = alertFor(event);
    if ('skip' in draft) {
      log.debug({ eventType: event.type, eventId: event.eventId, why: draft.skip }, 'event makes no alert');
      return { stored: false, reason: draft.skip };
    }
    if (!ID.test(draft.accountId) || !event.eventId) {
      log.warn({ eventType: event.type, eventId: event.eventId }, 'event without a usable account or event id makes no alert');
      return { stored: false, reason: 'unusable account or event id' };
    }
    const outcome = await store.record(ALERTS_CONSUMER, draft);
    if (outcome.stored) {
      wakeups.stored(draft.accountId, outcome.sequence);
      log.info({ accountId: draft.accountId, sequence: outcome.sequence.toString(), kind: draft.kind, eventId: draft.eventId }, 'alert stored');
    }
    return outcome;
  };
}

/**
 * Starts the durable consumers named `alerts` on the payment and the escrow streams. Each takes
 * its whole area (nats-server 2.9 allows one filter subject per consumer) and acks, unhandled,
 * the types that make no alert. `stop()` drains both.
 *
 * Created with deliver-new: the first deployment starts at the end of the streams instead of
 * replaying every payment ever made into the phones' feeds (the streams have no max age). From
 * then on the durable consumer keeps its place across restarts and rollouts, so nothing published
 * while the service is down is lost.
 */
export async function consumeAlerts(deps: { bus: EventBus; ingest: (event: Event) => Promise<IngestOutcome> }): Promise<{ stop: () => Promise<void> }> {
  const handler = async (event: Event) => {
    await deps.ingest(event);
  };
  const consumers: Array<{ stop: () => Promise<void> }> = [];
  try {
    for (const area of ['payment', 'escrow'] as const) consumers.push(await deps.bus.consume({ area, durable: ALERTS_CONSUMER, types: typesOf(area), handler, deliverNew: true }));
  } catch (err) {
    for (const c of consumers) await c.stop();
    throw err;
  }
  return { stop: async () => void (await Promise.all(consumers.map((c) => c.stop()))) };
}

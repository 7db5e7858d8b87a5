import { propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type TextMapGetter } from '@opentelemetry/api';
import { AckPolicy, DeliverPolicy, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/nats-core';
import type { Event } from '../../../gen/wristpay/events/v1/events';
import { decodeEvent } from '../../../platform/events';
import type { Logger } from '../../../platform/log';
import type { EventBus } from '../../../platform/nats';
import type { OutboxRelay } from '../../../platform/outbox';
import { ATTR } from '../../../platform/telemetry/attributes';
import { SERVICE } from './config';
import type { TokenStore } from './store';

/** The durable JetStream consumers' name stem; replicas share them, so each event is handled by one replica. */
export const DEVICE_CONSUMER = 'tokenization-device-lifecycle';

/**
 * What a device event does to the band's tokens. A suspended or lost band's tokens are
 * suspended (the wallet resumes them with ResumeToken once the band is ACTIVE again); a
 * deregistered band's tokens are deleted.
 */
export const DEVICE_EFFECTS: Readonly<Record<string, 'suspend' | 'delete'>> = {
  'device.suspended': 'suspend',
  'device.lost': 'suspend',
  'device.deregistered': 'delete',
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Consumes device.suspended/lost/deregistered and applies them to the band's tokens, once per
 * event id (a redelivery is a no-op). The token events it causes go out through the outbox.
 */
export async function consumeDeviceEvents(deps: { bus: EventBus; tokens: TokenStore; relay: OutboxRelay; log: Logger }): Promise<{ stop: () => Promise<void> }> {
  const { bus, tokens, relay, log } = deps;
  const handler = async (event: Event) => {
    const effect = DEVICE_EFFECTS[event.type];
    const payload = event.payload?.$case === 'device' ? event.payload.value : undefined;
    if (!effect || !payload || !UUID.test(payload.deviceId) || !event.eventId) {
      // Retrying cannot fix a malformed event: acknowledge it and leave a trace in the log.
      log.error({ eventType: event.type, eventId: event.eventId }, 'device event without a usable device id ignored');
      return;
    }
    const deviceId = payload.deviceId.toLowerCase();
    const changed = await tokens.applyDeviceEvent(DEVICE_CONSUMER, event.eventId, deviceId, effect, event.type);
    if (changed === undefined) return;
    relay.kick();
    log.info({ deviceId, eventType: event.type, tokens: changed.length }, effect === 'suspend' ? 'band tokens suspended' : 'band tokens deleted');
  };
  const consumers = await Promise.all(
    Object.keys(DEVICE_EFFECTS).map((type) => consumeOneType(bus, log, { area: 'device', durable: `${DEVICE_CONSUMER}-${type.split('.').pop()}`, type, handler })),
  );
  return { stop: async () => void (await Promise.all(consumers.map((c) => c.stop()))) };
}

const tracer = trace.getTracer('wristpay.tokenization.events');
const headerGetter: TextMapGetter<MsgHdrs | undefined> = {
  get: (h, k) => h?.get(k) || undefined,
  keys: (h) => (h ? h.keys() : []),
};

/**
 * A durable pull consumer on ONE event type, with explicit ack, redelivery after a failed
 * handler, and a CONSUMER span continuing the publisher's trace: what EventBus.consume does,
 * with a single `filter_subject`.
 *
 * Workaround: EventBus.consume always sends `filter_subjects`, which nats-server < 2.10 rejects
 * ("'filter_subjects' requires server 2.10.0"); the Debian package in CI and dev is 2.9.10.
 * Once platform/nats.ts sends `filter_subject` for a single type, replace this with
 * `bus.consume({ area: 'device', durable, types, handler })`.
 */
async function consumeOneType(
  bus: EventBus,
  log: Logger,
  options: { area: 'device'; durable: string; type: string; handler: (event: Event) => Promise<void> },
): Promise<{ stop: () => Promise<void> }> {
  const jsm = await jetstreamManager(bus.nc);
  const stream = bus.streamName(options.area);
  await jsm.consumers.add(stream, {
    durable_name: options.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: bus.subject(options.type),
    ack_wait: 30 * 1_000_000_000,
    max_deliver: -1,
  });
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
  const parent = propagation.extract(ROOT_CONTEXT, msg.headers, headerGetter);
  let event: Event;
  try {
    event = decodeEvent(msg.data);
  } catch {
    log.error({ subject: msg.subject, seq: msg.seq }, 'undecodable event terminated');
    msg.term('undecodable');
    return;
  }
  await tracer.startActiveSpan(
    `${event.type} process`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        [ATTR.messagingSystem]: 'nats',
        [ATTR.messagingDestination]: msg.subject,
        [ATTR.messagingMessageId]: event.eventId,
        [ATTR.eventType]: event.type,
        [ATTR.serviceSource]: SERVICE,
      },
    },
    parent,
    async (span) => {
      try {
        await handler(event);
        msg.ack();
      } catch (err) {
        span.recordException(err as Error);
        span.setStatus({ code: SpanStatusCode.ERROR });
        log.warn({ err, eventType: event.type, eventId: event.eventId }, 'event handler failed; will redeliver');
        msg.nak(1000);
      } finally {
        span.end();
      }
    },
  );
}

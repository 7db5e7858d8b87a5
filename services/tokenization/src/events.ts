import type { Event } from '../../../gen/wristpay/events/v1/events';
import type { Logger } from '../../../platform/log';
import type { EventBus } from '../../../platform/nats';
import type { OutboxRelay } from '../../../platform/outbox';
import { recordLostBandCutoff } from '../../../platform/telemetry/metrics';
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
    // The last step of cutting a lost band off: from ReportLost's commit to its tokens suspended.
    if (event.type === 'device.lost') recordLostBandCutoff('tokens_suspended', event.occurredAt);
    relay.kick();
    log.info({ deviceId, eventType: event.type, tokens: changed.length }, effect === 'suspend' ? 'band tokens suspended' : 'band tokens deleted');
  };
  return bus.consume({ area: 'device', durable: DEVICE_CONSUMER, types: Object.keys(DEVICE_EFFECTS), handler });
}

import type { Event } from '../../../gen/wristpay/events/v1/events';
import type { Logger } from '../../../platform/log';
import type { EventBus } from '../../../platform/nats';
import { isUuid } from '../../../platform/validate';
import type { DeviceStore, TokenProvisionedOutcome } from './store';

/** The durable JetStream consumer's name; replicas share it, so each event is counted by one replica. */
export const TOKEN_PROVISIONED_CONSUMER = 'device-registry-token-provisioned';

export const TOKEN_PROVISIONED = 'token.provisioned';

/**
 * Applies one token.provisioned to the band it names: its token count and last-provisioned time
 * (GetDevice/ListDevices show them), once per event id. Returns what it did, or undefined for an
 * event it cannot use; both are acknowledged, since retrying cannot change them.
 */
export function tokenProvisionedHandler(deps: { devices: DeviceStore; log: Logger }): (event: Event) => Promise<TokenProvisionedOutcome | undefined> {
  const { devices, log } = deps;
  return async (event) => {
    const payload = event.payload?.$case === 'token' ? event.payload.value : undefined;
    if (event.type !== TOKEN_PROVISIONED || !payload || !isUuid(payload.deviceId) || !event.eventId) {
      log.error({ eventType: event.type, eventId: event.eventId }, 'token event without a usable device id ignored');
      return undefined;
    }
    const deviceId = payload.deviceId.toLowerCase();
    const outcome = await devices.recordTokenProvisioned(TOKEN_PROVISIONED_CONSUMER, event.eventId, deviceId, event.occurredAt);
    if (outcome === 'unknown-device') log.warn({ deviceId, tokenId: payload.tokenId, eventId: event.eventId }, 'token provisioned to a band this registry does not know; ignored');
    else if (outcome === 'counted') log.info({ deviceId, tokenId: payload.tokenId }, 'token provisioned to band counted');
    return outcome;
  };
}

/** Starts the durable consumer of token.provisioned (one filter subject, so nats-server 2.9 is fine); `stop()` drains it. */
export function consumeTokenProvisioned(deps: { bus: EventBus; devices: DeviceStore; log: Logger }): Promise<{ stop: () => Promise<void> }> {
  const handler = tokenProvisionedHandler(deps);
  return deps.bus.consume({
    area: 'token',
    durable: TOKEN_PROVISIONED_CONSUMER,
    types: [TOKEN_PROVISIONED],
    handler: async (event) => {
      await handler(event);
    },
  });
}

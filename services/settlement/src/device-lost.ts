import type { Db } from '../../../platform/db';
import type { Logger } from '../../../platform/log';
import type { EventBus } from '../../../platform/nats';
import { recordLostBandCutoff } from '../../../platform/telemetry/metrics';
import type { Ledger } from './ledger';

/**
 * Hears device.lost and freezes that band: its next PlaceHold answers ACCOUNT_FROZEN. The
 * buyer's other bands keep paying. Redelivery is harmless (processed-event key + upsert).
 */
export function consumeDeviceLost(bus: EventBus, db: Db, ledger: Ledger, log: Logger): Promise<{ stop: () => Promise<void> }> {
  return bus.consume({
    area: 'device',
    durable: 'settlement-device-lost',
    types: ['device.lost'],
    handler: async (event) => {
      if (event.payload?.$case !== 'device' || !event.payload.value.deviceId) {
        log.warn({ eventId: event.eventId, eventType: event.type }, 'device.lost without a device; ignored');
        return;
      }
      const { deviceId, accountId } = event.payload.value;
      if (await db.tx((q) => ledger.freezeDevice(q, { eventId: event.eventId, deviceId, accountId }))) {
        recordLostBandCutoff('account_frozen', event.occurredAt);
        log.info({ deviceId }, 'band reported lost: its holds are frozen');
      }
    },
  });
}

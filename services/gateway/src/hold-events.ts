import type { Logger } from '../../../platform/log';
import { isUuid } from '../../../platform/validate';
import type { EventBus } from '../../../platform/nats';
import type { PaymentStore } from './payments';
import type { PaymentWatchers } from './watchers';

/**
 * Hears settlement end a hold the gateway did not end itself (payment.hold.expired: approved
 * and never captured; payment.hold.voided: released in settlement, e.g. by the gateway's Void
 * before its own transition committed) and moves the payment to match. A transition only from
 * APPROVED: redelivery, or a hold the gateway's Void already reflected, changes nothing.
 */
export function consumeHoldEnds(bus: EventBus, store: PaymentStore, watchers: PaymentWatchers, log: Logger): Promise<{ stop: () => Promise<void> }> {
  // A durable per type (gateway-hold-ends-payment-hold-expired, ...-voided): see consumeEach.
  return bus.consumeEach({
    area: 'payment',
    durable: 'gateway-hold-ends',
    types: ['payment.hold.expired', 'payment.hold.voided'],
    handler: async (event) => {
      // Holds placed by others than the gateway (tests, tools) carry ids that are not its payments'.
      if (event.payload?.$case !== 'ledger' || !isUuid(event.payload.value.paymentId)) return;
      const paymentId = event.payload.value.paymentId.toLowerCase();
      const expired = event.type.endsWith('.expired');
      const moved = await store.transition(paymentId, expired ? { status: 'EXPIRED', message: 'the hold lapsed before capture' } : { status: 'VOIDED', message: 'the hold was released before capture' }, {
        from: ['APPROVED'],
      });
      if (moved) {
        watchers.notify(paymentId);
        log.info({ paymentId, status: moved.status }, 'payment follows its hold');
      }
    },
  });
}

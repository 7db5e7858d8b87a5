import { createHash } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { GatewayServiceService, PaymentStatus, type GatewayServiceServer, type Payment } from '../../../gen/wristpay/gateway/v1/gateway';
import { VoidReason } from '../../../gen/wristpay/settlement/v1/settlement';
import { FailedPrecondition, NotFound, relayRefusal, type DomainError } from '../../../platform/errors';
import { REASON } from '../../../platform/reasons';
import type { CallContext } from '../../../platform/grpc/server';
import { register, type Handlers } from '../../../platform/grpc/server';
import type { Logger } from '../../../platform/log';
import { requireAmount } from '../../../platform/money';
import type { OutboxRelay } from '../../../platform/outbox';
import { requireIdempotencyKey, requireUuid, requireVoucherCode } from '../../../platform/validate';
import type { Downstream, PaymentFlow } from './authorize';
import { isPending, toStatus, type PaymentState } from './domain/payment-state';
import { callingMerchant, type MerchantRow, type MerchantStore } from './merchants';
import { toPayment, type PaymentChange, type PaymentRow, type PaymentStore } from './payments';
import type { GatewayPolicy } from './policy';
import type { StepUp } from './step-up';
import type { PaymentWatchers } from './watchers';
import { ATTR } from '../../../platform/telemetry/attributes';
import { annotate, paymentAttributes } from './span-attributes';

export interface GatewayDeps {
  downstream: Downstream;
  store: PaymentStore;
  merchants: MerchantStore;
  flow: PaymentFlow;
  stepUp: StepUp;
  watchers: PaymentWatchers;
  relay: OutboxRelay;
  policy: GatewayPolicy;
  log: Logger;
  /** How often a WatchPayment stream re-reads a payment another replica may have changed. */
  watchPollMs?: number;
}

/**
 * A merchant's idempotency key as settlement sees it: scoped to the merchant and the method,
 * so two merchants (or a capture and a refund) using the same key never meet there.
 */
const scopedKey = (merchantId: string, method: string, key: string): string =>
  `gateway:${createHash('sha256').update(merchantId).update('\u0000').update(method).update('\u0000').update(key).digest('hex')}`;

export function gatewayService(deps: GatewayDeps) {
  const { downstream, store, merchants, flow, stepUp, watchers, relay, log } = deps;
  const watchPollMs = deps.watchPollMs ?? 250;

  /**
   * The payment a merchant asks about, in one of the `allowed` states. Another merchant's
   * payment is NOT_FOUND, worded as for a missing one, so ids cannot be probed across merchants.
   */
  async function merchantPayment(merchant: MerchantRow, paymentId: string, allowed?: PaymentState[]): Promise<PaymentRow> {
    const id = requireUuid(paymentId, 'payment_id');
    const row = await store.get(id);
    if (!row || row.merchant_id !== merchant.merchant_id) throw new NotFound(`no payment ${id} for merchant ${merchant.merchant_id}`);
    if (allowed && !allowed.includes(row.status)) throw new FailedPrecondition(`payment is ${PaymentStatus[toStatus(row.status)].replace('PAYMENT_STATUS_', '')}`);
    return row;
  }

  /**
   * Moves a payment after settlement moved its money; a transition another call or the hold
   * consumer already made is no error (the payment is returned as it is now).
   */
  async function after(row: PaymentRow, change: PaymentChange): Promise<Payment> {
    const moved = await store.transition(row.payment_id, change);
    if (moved) watchers.notify(row.payment_id);
    return toPayment(moved ?? (await store.get(row.payment_id))!);
  }

  const caller = (ctx: CallContext, requested: string) => callingMerchant(merchants, ctx.caller, requested);

  const handlers: Handlers<GatewayServiceServer> = {
    async authorize(req, ctx) {
      const merchant = await caller(ctx, req.merchantId);
      const response = await flow.authorize(req, merchant, ctx.deadline);
      relay.kick();
      return response;
    },

    async getPayment(req, ctx) {
      return { payment: toPayment(await merchantPayment(await caller(ctx, req.merchantId), req.paymentId)) };
    },

    /** The payment now, then each change, until it is decided. */
    async watchPayment(req, ctx, send) {
      const merchant = await caller(ctx, req.merchantId);
      let row = await merchantPayment(merchant, req.paymentId);
      await send({ payment: toPayment(row) });
      while (isPending(row.status) && !ctx.signal.aborted) {
        await watchers.next(row.payment_id, watchPollMs, ctx.signal);
        if (ctx.signal.aborted) return;
        const now = (await store.get(row.payment_id))!;
        if (now.updated_at.getTime() !== row.updated_at.getTime() || now.status !== row.status) await send({ payment: toPayment(now) });
        row = now;
      }
    },

    async confirmPayment(req, ctx) {
      const row = await stepUp.confirm(req, ctx.deadline);
      annotate({ ...paymentAttributes(row), [ATTR.challengeOutcome]: 'confirmed' });
      return { payment: toPayment(row) };
    },

    async declinePayment(req) {
      const row = await stepUp.decline(req);
      annotate({ ...paymentAttributes(row), [ATTR.challengeOutcome]: 'declined' });
      return { payment: toPayment(row) };
    },

    async capture(req, ctx) {
      const merchant = await caller(ctx, req.merchantId);
      const key = requireIdempotencyKey(req.idempotencyKey);
      // A captured (or since refunded) payment still goes to settlement: the same idempotency key
      // gets the first answer back there, another key is refused there as already captured.
      const row = await merchantPayment(merchant, req.paymentId, ['APPROVED', 'CAPTURED', 'REFUNDED']);
      const amount = req.amount ? requireAmount(req.amount) : undefined;
      annotate({ [ATTR.paymentId]: row.payment_id, [ATTR.merchantId]: row.merchant_id, [ATTR.holdId]: row.hold_id });
      await relayRefusal(downstream.settlement.capture({ idempotencyKey: scopedKey(merchant.merchant_id, 'Capture', key), holdId: row.hold_id, amount }));
      annotate({ [ATTR.holdOutcome]: 'captured' });
      return { payment: row.status === 'APPROVED' ? await after(row, { status: 'CAPTURED', message: 'captured into escrow' }) : toPayment(row) };
    },

    /** The merchant cancels before capture: settlement releases the hold at once. */
    async void(req, ctx) {
      const merchant = await caller(ctx, req.merchantId);
      const key = requireIdempotencyKey(req.idempotencyKey);
      const row = await merchantPayment(merchant, req.paymentId, ['APPROVED', 'VOIDED']);
      await relayRefusal(downstream.settlement.void({ idempotencyKey: scopedKey(merchant.merchant_id, 'Void', key), holdId: row.hold_id, paymentId: '', reason: VoidReason.VOID_REASON_MERCHANT_CANCELLED }));
      log.info({ paymentId: row.payment_id, merchantId: merchant.merchant_id }, 'payment voided');
      annotate({ [ATTR.paymentId]: row.payment_id, [ATTR.merchantId]: row.merchant_id, [ATTR.holdId]: row.hold_id, [ATTR.holdOutcome]: 'voided' });
      return { payment: row.status === 'APPROVED' ? await after(row, { status: 'VOIDED', message: 'voided by the merchant before capture' }) : toPayment(row) };
    },

    async refund(req, ctx) {
      const merchant = await caller(ctx, req.merchantId);
      const key = requireIdempotencyKey(req.idempotencyKey);
      const row = await merchantPayment(merchant, req.paymentId, ['CAPTURED', 'REFUNDED']);
      const amount = requireAmount(req.amount);
      annotate({ [ATTR.paymentId]: row.payment_id, [ATTR.merchantId]: row.merchant_id, [ATTR.holdId]: row.hold_id });
      await relayRefusal(downstream.settlement.refund({ idempotencyKey: scopedKey(merchant.merchant_id, 'Refund', key), holdId: row.hold_id, amount }));
      return { payment: await after(row, { status: 'REFUNDED', message: 'refunded by the merchant' }) };
    },

    /** A merchant issues a voucher (scoped key, as for captures). */
    async issueVoucher(req, ctx) {
      const merchant = await caller(ctx, req.merchantId);
      const key = requireIdempotencyKey(req.idempotencyKey);
      const res = await relayRefusal(downstream.settlement.issueVoucher({ ...req, idempotencyKey: scopedKey(merchant.merchant_id, 'IssueVoucher', key), merchantId: merchant.merchant_id }));
      log.info({ merchantId: merchant.merchant_id, voucherId: res.voucher?.voucherId }, 'voucher issued');
      return { voucher: res.voucher };
    },

    /**
     * A merchant looks up one of its vouchers. Another merchant's voucher is NOT_FOUND, worded
     * as for a code that does not exist, so merchants cannot read each other's vouchers.
     */
    async getVoucher(req, ctx) {
      const merchant = await caller(ctx, req.merchantId);
      const code = requireVoucherCode(req.code);
      try {
        return { voucher: (await relayRefusal(downstream.settlement.getVoucher({ merchantId: merchant.merchant_id, code }), [status.PERMISSION_DENIED])).voucher };
      } catch (err) {
        const refused = (err as { code?: number }).code;
        // Only settlement's "issued by another merchant" is hidden; a mesh PERMISSION_DENIED (this
        // gateway not allowed to call settlement) stays what it is.
        if (refused === status.NOT_FOUND || (refused === status.PERMISSION_DENIED && (err as DomainError).reason === REASON.VOUCHER_OF_ANOTHER_MERCHANT)) {
          throw new NotFound(`merchant ${merchant.merchant_id} has no voucher with this code`);
        }
        throw err;
      }
    },
  };

  return register<GatewayServiceServer>({ definition: GatewayServiceService, handlers, allowedCallers: deps.policy.gateway });
}

import { createHash, randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { trace } from '@opentelemetry/api';
import { Channel, type Money } from '../../../gen/wristpay/common/v1/common';
import type { DeviceRegistryServiceClient } from '../../../gen/wristpay/device_registry/v1/device_registry';
import {
  DeclineReason,
  GatewayServiceService,
  PaymentStatus,
  type AuthorizeRequest,
  type AuthorizeResponse,
  type GatewayServiceServer,
  type Payment,
} from '../../../gen/wristpay/gateway/v1/gateway';
import type { RiskServiceClient } from '../../../gen/wristpay/risk/v1/risk';
import type { SettlementServiceClient } from '../../../gen/wristpay/settlement/v1/settlement';
import type { TokenizationServiceClient, Verification } from '../../../gen/wristpay/tokenization/v1/tokenization';
import { FailedPrecondition, InvalidArgument, NotFound, relayRefusal } from '../../../platform/errors';
import { newEvent } from '../../../platform/events';
import type { PromiseClient } from '../../../platform/grpc/client';
import { register, type Handlers } from '../../../platform/grpc/server';
import type { Logger } from '../../../platform/log';
import { requireAmount, type Amount } from '../../../platform/money';
import type { EventBus } from '../../../platform/nats';
import { ATTR } from '../../../platform/telemetry/attributes';
import { requireId, requireMerchantName, requireVoucherCode } from '../../../platform/validate';
import { afterDevice, afterHold, afterRisk, afterVerification, eventTypeFor, type Verdict } from './domain/outcome';
import type { PaymentRecords } from './payments';

export interface Downstream {
  registry: PromiseClient<DeviceRegistryServiceClient>;
  tokenization: PromiseClient<TokenizationServiceClient>;
  risk: PromiseClient<RiskServiceClient>;
  settlement: PromiseClient<SettlementServiceClient>;
}

export interface GatewayDeps {
  downstream: Downstream;
  records: PaymentRecords;
  bus: EventBus;
  log: Logger;
}

const SOURCE = 'gateway';

function requireText(value: string, field: string, max = 128): string {
  if (!value || value.length > max) throw new InvalidArgument(`${field} is required (1-${max} characters)`);
  return value;
}

// The ids settlement takes (checked here, before a credential is spent on a payment settlement
// would refuse); no braces either, so it can be the Redis hash tag of its idempotency records.
const requireMerchantId = (merchantId: string): string => requireId(merchantId, 'merchant_id');

/** Checks the shape of an Authorize request before anything is called or written. */
function validate(req: AuthorizeRequest): { amount: Amount; channel: Channel } {
  requireMerchantId(req.merchantId);
  const amount = requireAmount(req.amount);
  if (req.voucherCode !== '') requireVoucherCode(req.voucherCode, 'voucher_code');
  requireMerchantName(req.merchantName);
  const payload = req.payload;
  if (!payload) throw new InvalidArgument('payload (tap or qr) is required');
  if (!/^\d{16,19}$/.test(payload.value.tokenNumber)) throw new InvalidArgument('payload.token_number must be 16-19 digits');
  if (payload.$case === 'tap') {
    if (payload.value.atc <= 0n) throw new InvalidArgument('tap.atc must be positive');
    if (payload.value.cryptogram.length !== 16) throw new InvalidArgument('tap.cryptogram must be 16 bytes');
    if (payload.value.terminalNonce.length < 4 || payload.value.terminalNonce.length > 32) throw new InvalidArgument('tap.terminal_nonce must be 4-32 bytes');
    return { amount, channel: Channel.CHANNEL_BAND_TAP };
  }
  if (!/^\d{6,10}$/.test(payload.value.offlineCode)) throw new InvalidArgument('qr.offline_code must be 6-10 digits');
  return { amount, channel: Channel.CHANNEL_BAND_QR };
}

export function gatewayService(deps: GatewayDeps) {
  const { downstream, records, bus, log } = deps;

  /**
   * Checks the credential with tokenization under this payment's id, so the channel may retry
   * the call on UNAVAILABLE: a retry gets the first answer instead of spending the ATC or code
   * again (which would come back as REPLAY or CODE_REUSED).
   */
  async function verify(paymentId: string, req: AuthorizeRequest, amount: Amount): Promise<Verification> {
    const payload = req.payload!;
    const res =
      payload.$case === 'tap'
        ? await downstream.tokenization.verifyPayment({
            tokenNumber: payload.value.tokenNumber,
            atc: payload.value.atc,
            amount,
            merchantId: req.merchantId,
            terminalNonce: payload.value.terminalNonce,
            cryptogram: payload.value.cryptogram,
            channel: Channel.CHANNEL_BAND_TAP,
            paymentId,
          })
        : await downstream.tokenization.verifyOfflineCode({ tokenNumber: payload.value.tokenNumber, code: payload.value.offlineCode, amount, merchantId: req.merchantId, paymentId });
    return res.verification!;
  }

  /**
   * Runs the four steps of DESIGN.md in order; stops at the first that says no. A voucher is
   * quoted first, before the credential is verified, so a bad voucher (unknown, another
   * merchant's, expired, used up) is refused with settlement's status and costs nothing: no ATC
   * or offline code spent, no hold. Risk scores and settlement holds the net; PlaceHold redeems
   * the voucher and may still refuse it (FAILED_PRECONDITION) when a concurrent payment took
   * its last use. The quote names the payment: a retry whose first attempt already placed the
   * hold (and used the voucher's last use) is quoted that hold's redemption, not refused.
   */
  async function orchestrate(paymentId: string, req: AuthorizeRequest, amount: Amount, channel: Channel): Promise<{ payment: Payment; verdict: Verdict }> {
    // Zero off and the full amount until a voucher says otherwise; then the quote's, and once
    // held, the hold's (charged is always what is, or would be, held on the buyer's wallet).
    let discount: Money = { amountMinor: 0n, currency: amount.currency };
    let charged: Money = amount;
    if (req.voucherCode) {
      const quote = await relayRefusal(downstream.settlement.quoteVoucher({ merchantId: req.merchantId, code: req.voucherCode, amount, paymentId }), [status.PERMISSION_DENIED]);
      discount = quote.discount!;
      charged = quote.toPay!;
    }
    const payment: Payment = {
      paymentId,
      status: PaymentStatus.PAYMENT_STATUS_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_UNSPECIFIED,
      merchantId: req.merchantId,
      amount,
      holdId: '',
      deviceId: '',
      accountId: '',
      riskScore: 0,
      riskReasons: [],
      createdAt: new Date(),
      discount,
      charged,
      merchantName: req.merchantName,
      voucherCode: req.voucherCode,
    };
    const finish = (verdict: Verdict) => {
      payment.status = verdict.status;
      payment.declineReason = verdict.reason;
      return { payment, verdict };
    };

    const verification = await verify(paymentId, req, amount);
    payment.deviceId = verification.deviceId;
    payment.accountId = verification.accountId;
    const credential = afterVerification(verification.result);
    if (credential) return finish(credential);

    const session = await downstream.registry.getSession({ deviceId: verification.deviceId });
    const device = afterDevice(session.deviceStatus);
    if (device) return finish(device);

    const now = Date.now();
    const risk = await downstream.risk.score({
      paymentId,
      accountId: verification.accountId,
      deviceId: verification.deviceId,
      tokenId: verification.tokenId,
      merchantId: req.merchantId,
      amount: charged,
      location: req.location,
      channel,
      sessionLive: session.session?.live ?? false,
      sessionAgeSeconds: session.session?.live && session.session.startedAt ? BigInt(Math.floor((now - session.session.startedAt.getTime()) / 1000)) : 0n,
      deviceAgeSeconds: session.deviceCreatedAt ? BigInt(Math.floor((now - session.deviceCreatedAt.getTime()) / 1000)) : 0n,
      recentCryptogramFailures: verification.recentFailures,
      occurredAt: new Date(now),
    });
    payment.riskScore = risk.score;
    payment.riskReasons = risk.reasons.map((r) => r.code);
    const riskVerdict = afterRisk(risk.decision, payment.riskReasons);
    if (riskVerdict) return finish(riskVerdict);

    // Settlement takes the gross and the voucher, and holds the net; its refusals (a voucher
    // used up since the quote) reach the terminal with their status.
    const hold = await relayRefusal(
      downstream.settlement.placeHold({
        idempotencyKey: `authorize:${paymentId}`,
        paymentId,
        accountId: verification.accountId,
        merchantId: req.merchantId,
        amount,
        ttlSeconds: 0n,
        deviceId: verification.deviceId,
        voucherCode: req.voucherCode,
        merchantName: req.merchantName,
      }),
    );
    payment.holdId = hold.hold?.holdId ?? '';
    if (hold.hold) {
      payment.discount = hold.hold.discount;
      payment.charged = hold.hold.amount;
    }
    return finish(afterHold(hold.outcome));
  }

  const handlers: Handlers<GatewayServiceServer> = {
    async authorize(req) {
      const { amount, channel } = validate(req);
      const span = trace.getActiveSpan();
      const claim = await records.claim(req, randomUUID());
      if (claim.kind === 'done') return claim.response;
      const paymentId = claim.paymentId;
      span?.setAttributes({ [ATTR.paymentId]: paymentId, [ATTR.merchantId]: req.merchantId, [ATTR.amountMinor]: Number(amount.amountMinor), [ATTR.currency]: amount.currency });
      let outcome: { payment: Payment; verdict: Verdict };
      try {
        outcome = await orchestrate(paymentId, req, amount, channel);
      } catch (err) {
        // Nothing was answered: a retry with the same key runs again under this payment id, so
        // it gets this attempt's verification and hold back instead of a replay or a second hold.
        await records.release(req, paymentId).catch(() => undefined);
        throw err;
      }
      const { payment, verdict } = outcome;
      const response: AuthorizeResponse = {
        paymentId,
        status: payment.status,
        declineReason: payment.declineReason,
        message: verdict.message,
        holdId: payment.holdId,
        riskScore: payment.riskScore,
        riskReasons: payment.riskReasons,
        discount: payment.discount,
        charged: payment.charged,
      };
      span?.setAttributes({ [ATTR.paymentStatus]: PaymentStatus[payment.status], [ATTR.declineReason]: DeclineReason[payment.declineReason], [ATTR.deviceId]: payment.deviceId });
      await records.complete(req, payment, response);
      await bus
        .publish(
          newEvent(eventTypeFor(payment.status), SOURCE, {
            $case: 'payment',
            value: {
              paymentId,
              status: PaymentStatus[payment.status].replace('PAYMENT_STATUS_', ''),
              declineReason: payment.declineReason ? DeclineReason[payment.declineReason].replace('DECLINE_REASON_', '') : '',
              amount,
              merchantId: req.merchantId,
              accountId: payment.accountId,
              deviceId: payment.deviceId,
              holdId: payment.holdId,
              merchantName: payment.merchantName,
              // Unset when no voucher took anything off (events.proto).
              discount: payment.discount && payment.discount.amountMinor > 0n ? payment.discount : undefined,
            },
          }, `${eventTypeFor(payment.status)}.${paymentId}`),
        )
        .catch((err) => log.warn({ err: err.message, paymentId }, 'payment event not published'));
      log.info({ paymentId, status: PaymentStatus[payment.status], declineReason: DeclineReason[payment.declineReason], riskScore: payment.riskScore }, 'payment decided');
      return response;
    },

    async getPayment(req) {
      return { payment: await merchantPayment(req) };
    },

    async capture(req) {
      // A captured (or since refunded) payment still goes to settlement: the same idempotency key
      // gets the first answer back there, another key is refused there as already captured.
      const payment = await merchantPayment(req, [PaymentStatus.PAYMENT_STATUS_APPROVED, PaymentStatus.PAYMENT_STATUS_CAPTURED, PaymentStatus.PAYMENT_STATUS_REFUNDED]);
      await relayRefusal(downstream.settlement.capture({ idempotencyKey: requireText(req.idempotencyKey, 'idempotency_key', 200), holdId: payment.holdId, amount: req.amount ? requireAmount(req.amount) : undefined }));
      if (payment.status === PaymentStatus.PAYMENT_STATUS_APPROVED) {
        payment.status = PaymentStatus.PAYMENT_STATUS_CAPTURED;
        await records.save(payment);
      }
      return { payment };
    },

    async refund(req) {
      const payment = await merchantPayment(req, [PaymentStatus.PAYMENT_STATUS_CAPTURED, PaymentStatus.PAYMENT_STATUS_REFUNDED]);
      await relayRefusal(downstream.settlement.refund({ idempotencyKey: requireText(req.idempotencyKey, 'idempotency_key', 200), holdId: payment.holdId, amount: requireAmount(req.amount) }));
      payment.status = PaymentStatus.PAYMENT_STATUS_REFUNDED;
      await records.save(payment);
      return { payment };
    },

    /**
     * A merchant issues a voucher. The idempotency key is the merchant's own: settlement sees it
     * scoped to the merchant, so two merchants using the same key never meet.
     */
    async issueVoucher(req) {
      const merchantId = requireMerchantId(req.merchantId);
      const key = requireText(req.idempotencyKey, 'idempotency_key', 200);
      const scopedKey = `gateway:${createHash('sha256').update(merchantId).update('\u0000').update(key).digest('hex')}`;
      const res = await relayRefusal(downstream.settlement.issueVoucher({ ...req, idempotencyKey: scopedKey, merchantId }));
      log.info({ merchantId, voucherId: res.voucher?.voucherId }, 'voucher issued');
      return { voucher: res.voucher };
    },

    /**
     * A merchant looks up one of its vouchers. Another merchant's voucher is NOT_FOUND, worded
     * as for a code that does not exist, so merchants cannot read each other's vouchers.
     */
    async getVoucher(req) {
      const merchantId = requireMerchantId(req.merchantId);
      const code = requireVoucherCode(req.code);
      try {
        return { voucher: (await relayRefusal(downstream.settlement.getVoucher({ merchantId, code }), [status.PERMISSION_DENIED])).voucher };
      } catch (err) {
        const refused = (err as { code?: number }).code;
        // Only settlement's "issued by another merchant" is hidden; a mesh PERMISSION_DENIED (this
        // gateway not allowed to call settlement) stays what it is.
        if (refused === status.NOT_FOUND || (refused === status.PERMISSION_DENIED && /issued by another merchant/.test((err as Error).message))) {
          throw new NotFound(`merchant ${merchantId} has no voucher with this code`);
        }
        throw err;
      }
    },
  };

  /**
   * The payment a merchant asks about, in one of the `allowed` states. Another merchant's
   * payment is NOT_FOUND, worded as for a missing one, so ids cannot be probed across merchants.
   */
  async function merchantPayment(req: { paymentId: string; merchantId: string }, allowed?: PaymentStatus[]): Promise<Payment> {
    const paymentId = requireText(req.paymentId, 'payment_id');
    const merchantId = requireText(req.merchantId, 'merchant_id');
    const payment = await records.get(paymentId);
    if (!payment || payment.merchantId !== merchantId) throw new NotFound(`no payment ${paymentId} for merchant ${merchantId}`);
    if (allowed && !allowed.includes(payment.status)) throw new FailedPrecondition(`payment is ${PaymentStatus[payment.status].replace('PAYMENT_STATUS_', '')}`);
    return payment;
  }

  return register<GatewayServiceServer>({ definition: GatewayServiceService, handlers });
}

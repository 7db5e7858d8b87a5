import { trace } from '@opentelemetry/api';
import {
  CaptureRequest,
  CaptureResponse,
  ConfirmDeliveryRequest,
  ConfirmDeliveryResponse,
  DisputeOutcome,
  HoldOutcome,
  IssueVoucherRequest,
  IssueVoucherResponse,
  OpenDisputeRequest,
  OpenDisputeResponse,
  PlaceHoldRequest,
  RefundRequest,
  RefundResponse,
  ResolveDisputeRequest,
  ResolveDisputeResponse,
  RunPayoutsRequest,
  RunPayoutsResponse,
  SetBandLimitsRequest,
  SetBandLimitsResponse,
  SettlementServiceService,
  TopUpRequest,
  TopUpResponse,
  VoidReason,
  VoidRequest,
  VoidResponse,
  type BandLimits,
  type SettlementServiceServer,
  type Transfer,
  type Voucher,
} from '../../../gen/wristpay/settlement/v1/settlement';
import type { Db } from '../../../platform/db';
import { InvalidArgument } from '../../../platform/errors';
import { register, type Handlers } from '../../../platform/grpc/server';
import { once, requestHash } from '../../../platform/idempotency';
import type { Logger } from '../../../platform/log';
import type { OutboxRelay } from '../../../platform/outbox';
import { ATTR } from '../../../platform/telemetry/attributes';
import type { BandLimitsView } from './band-limits';
import type { Config } from './config';
import { requireId, resolveBalanceAccount } from './domain/accounts';
import { requireReason, requireSettings, requireVersionField } from './domain/limits';
import { requireCurrency, requirePositive, toMoney, type Amount } from './domain/money';
import type { Ledger, VoidReasonName } from './ledger';
import type { TransferView } from './store';
import { toHold } from './hold-wire';
import type { VoucherRow } from './vouchers';
import { requireIdempotencyKey, requireMerchantName, requireText, requireUuid, requireVoucherCode } from '../../../platform/validate';
import { settlementPolicy } from './policy';
import { requireMaxUses, requirePercent, type VoucherDiscount } from './domain/voucher';

export interface SettlementDeps {
  config: Config;
  db: Db;
  ledger: Ledger;
  relay: OutboxRelay;
  log: Logger;
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** A real calendar day as YYYY-MM-DD (rejects 2024-02-30). */
function requireDate(value: string, field: string): string {
  const m = DATE.exec(value);
  const d = m ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) : undefined;
  if (!d || d.toISOString().slice(0, 10) !== value) throw new InvalidArgument(`${field} must be a date as YYYY-MM-DD`);
  return value;
}

export function toTransfer(t: TransferView): Transfer {
  return {
    transferId: t.transferId,
    kind: t.kind,
    reference: t.reference,
    createdAt: t.createdAt,
    postings: t.postings.map((p) => ({ account: p.account, amountMinor: p.amount, currency: p.currency })),
  };
}

export function toVoucher(v: VoucherRow): Voucher {
  return {
    voucherId: v.voucherId,
    code: v.code,
    merchantId: v.merchantId,
    discount: v.discount.kind === 'amount' ? { $case: 'amountOff', value: toMoney(v.discount.amount.minor, v.discount.amount.currency) } : { $case: 'percentOff', value: v.discount.percent },
    expiresAt: v.expiresAt,
    maxUses: v.maxUses,
    uses: v.uses,
    createdAt: v.createdAt,
  };
}

/** Exactly one of amount_off (positive) and percent_off (1-99). */
function requireDiscount(discount: IssueVoucherRequest['discount']): VoucherDiscount {
  if (!discount) throw new InvalidArgument('one of amount_off or percent_off is required');
  if (discount.$case === 'amountOff') return { kind: 'amount', amount: requirePositive(discount.value, 'amount_off') };
  return { kind: 'percent', percent: requirePercent(discount.value) };
}

export function toBandLimits(v: BandLimitsView): BandLimits {
  return {
    deviceId: v.deviceId,
    accountId: v.accountId,
    perPayment: v.perPayment === null ? undefined : toMoney(v.perPayment, v.currency!),
    perDay: v.perDay === null ? undefined : toMoney(v.perDay, v.currency!),
    frozen: v.frozen,
    version: v.version,
    updatedAt: v.updatedAt ?? undefined,
    updatedBy: v.updatedBy,
    spentToday: v.spentToday ? toMoney(v.spentToday.minor, v.spentToday.currency) : undefined,
    remainingToday: v.remainingToday ? toMoney(v.remainingToday.minor, v.remainingToday.currency) : undefined,
  };
}

/**
 * Who a limits change is recorded under: the mTLS identity. The LIMIT_CALLERS allow-list
 * already refuses a call without one; should that list ever be lifted, a plaintext change is
 * recorded as what it is rather than under a made-up name.
 */
export const changedBy = (caller: string | null): string => caller ?? 'unauthenticated';

function annotate(attributes: { holdId?: string; paymentId?: string; accountId?: string; merchantId?: string; amount?: Amount }): void {
  const span = trace.getActiveSpan();
  if (!span) return;
  if (attributes.holdId) span.setAttribute(ATTR.holdId, attributes.holdId);
  if (attributes.paymentId) span.setAttribute(ATTR.paymentId, attributes.paymentId);
  if (attributes.accountId) span.setAttribute(ATTR.accountId, attributes.accountId);
  if (attributes.merchantId) span.setAttribute(ATTR.merchantId, attributes.merchantId);
  if (attributes.amount) span.setAttributes({ [ATTR.amountMinor]: Number(attributes.amount.minor), [ATTR.currency]: attributes.amount.currency });
}

/**
 * The gRPC edge of settlement: validates each request completely before anything is written
 * (bad input → INVALID_ARGUMENT with no trace in the database, not even an idempotency key),
 * runs the movement inside `once` so a retried key returns the first answer, and kicks the
 * outbox relay after commit.
 */
export function settlementService(deps: SettlementDeps) {
  const { config, db, ledger, relay, log } = deps;

  function ttlOf(ttlSeconds: bigint): number {
    if (ttlSeconds < 0n || ttlSeconds > BigInt(config.HOLD_MAX_TTL_SECONDS)) throw new InvalidArgument(`ttl_seconds must be between 0 (service default) and ${config.HOLD_MAX_TTL_SECONDS}`);
    return ttlSeconds === 0n ? config.HOLD_TTL_SECONDS : Number(ttlSeconds);
  }

  const handlers: Handlers<SettlementServiceServer> = {
    async topUp(req) {
      const accountId = requireId(req.accountId, 'account_id');
      const amount = requirePositive(req.amount, 'amount');
      const sourceReference = requireText(req.sourceReference, 'source_reference', 200);
      annotate({ accountId, amount });
      const res = await once(db, 'TopUp', req.idempotencyKey, { codec: TopUpRequest, value: req }, TopUpResponse, async (q) => ({
        transfer: toTransfer(await ledger.topUp(q, { accountId, amount, sourceReference })),
      }));
      relay.kick();
      return res;
    },

    async placeHold(req) {
      const input = {
        paymentId: requireId(req.paymentId, 'payment_id'),
        accountId: requireId(req.accountId, 'account_id'),
        merchantId: requireId(req.merchantId, 'merchant_id'),
        deviceId: requireId(req.deviceId, 'device_id'),
        amount: requirePositive(req.amount, 'amount'),
        ttlSeconds: ttlOf(req.ttlSeconds),
        voucherCode: req.voucherCode === '' ? '' : requireVoucherCode(req.voucherCode, 'voucher_code'),
        merchantName: requireMerchantName(req.merchantName),
      };
      annotate(input);
      // Not `once`: place_hold writes the key, the hold, the outbox row and the answer in one
      // statement (one round trip; two with a voucher), with `once`'s rules (src/place-hold.ts).
      const idempotencyKey = requireIdempotencyKey(req.idempotencyKey);
      const placed = await ledger.placeHold(db, input, { key: idempotencyKey, hash: requestHash({ codec: PlaceHoldRequest, value: req }) });
      const res = placed.response;
      relay.kick();
      if (res.hold) annotate({ holdId: res.hold.holdId });
      log.info({ paymentId: input.paymentId, outcome: HoldOutcome[res.outcome], holdId: res.hold?.holdId }, 'hold decided');
      return res;
    },

    async capture(req) {
      const holdId = requireUuid(req.holdId, 'hold_id');
      const amount = req.amount ? requirePositive(req.amount, 'amount') : undefined;
      annotate({ holdId, amount });
      const res = await once(db, 'Capture', req.idempotencyKey, { codec: CaptureRequest, value: req }, CaptureResponse, async (q) => {
        const { hold, transfer } = await ledger.capture(q, { holdId, amount });
        return { hold: toHold(hold), transfer: toTransfer(transfer) };
      });
      relay.kick();
      return res;
    },

    async void(req) {
      // By hold, or by the payment the hold was placed for (exactly one of the two).
      if ((req.holdId === '') === (req.paymentId === '')) throw new InvalidArgument('one of hold_id or payment_id is required');
      const holdId = req.holdId ? requireUuid(req.holdId, 'hold_id') : undefined;
      const paymentId = req.paymentId ? requireId(req.paymentId, 'payment_id') : undefined;
      const reason = voidReasonName(req.reason);
      annotate({ holdId, paymentId });
      const res = await once(db, 'Void', req.idempotencyKey, { codec: VoidRequest, value: req }, VoidResponse, async (q) => ({
        hold: toHold(await ledger.void(q, holdId ?? (await ledger.holdIdOfPayment(q, paymentId!)), reason)),
      }));
      relay.kick();
      return res;
    },

    async confirmDelivery(req) {
      const holdId = requireUuid(req.holdId, 'hold_id');
      annotate({ holdId });
      const res = await once(db, 'ConfirmDelivery', req.idempotencyKey, { codec: ConfirmDeliveryRequest, value: req }, ConfirmDeliveryResponse, async (q) => ({
        transfer: toTransfer(await ledger.confirmDelivery(q, holdId)),
      }));
      relay.kick();
      return res;
    },

    async refund(req) {
      const holdId = requireUuid(req.holdId, 'hold_id');
      const amount = requirePositive(req.amount, 'amount');
      annotate({ holdId, amount });
      const res = await once(db, 'Refund', req.idempotencyKey, { codec: RefundRequest, value: req }, RefundResponse, async (q) => ({
        transfer: toTransfer(await ledger.refund(q, { holdId, amount })),
      }));
      relay.kick();
      return res;
    },

    async openDispute(req) {
      const holdId = requireUuid(req.holdId, 'hold_id');
      const reason = requireText(req.reason, 'reason', 500);
      annotate({ holdId });
      const res = await once(db, 'OpenDispute', req.idempotencyKey, { codec: OpenDisputeRequest, value: req }, OpenDisputeResponse, async (q) => ({
        disputeId: (await ledger.openDispute(q, { holdId, reason })).disputeId,
      }));
      relay.kick();
      return res;
    },

    async resolveDispute(req) {
      const disputeId = requireUuid(req.disputeId, 'dispute_id');
      const outcome =
        req.outcome === DisputeOutcome.DISPUTE_OUTCOME_REFUND_BUYER ? 'REFUND_BUYER' : req.outcome === DisputeOutcome.DISPUTE_OUTCOME_RELEASE_TO_MERCHANT ? 'RELEASE_TO_MERCHANT' : undefined;
      if (!outcome) throw new InvalidArgument('outcome must be REFUND_BUYER or RELEASE_TO_MERCHANT');
      const res = await once(db, 'ResolveDispute', req.idempotencyKey, { codec: ResolveDisputeRequest, value: req }, ResolveDisputeResponse, async (q) => ({
        transfer: toTransfer(await ledger.resolveDispute(q, { disputeId, outcome })),
      }));
      relay.kick();
      log.info({ disputeId, outcome, transferId: res.transfer?.transferId }, 'dispute resolved');
      return res;
    },

    async getBalance(req) {
      const account = resolveBalanceAccount(req.accountId);
      const currency = requireCurrency(req.currency);
      const b = await ledger.balance(db, account.name, currency);
      return { accountId: req.accountId, available: toMoney(b.available, currency), held: toMoney(b.held, currency), posted: toMoney(b.posted, currency) };
    },

    async runPayouts(req) {
      const businessDate = requireDate(req.businessDate, 'business_date');
      const res = await once(db, 'RunPayouts', req.idempotencyKey, { codec: RunPayoutsRequest, value: req }, RunPayoutsResponse, async (q) => {
        const { payouts, report } = await ledger.runPayouts(q, businessDate);
        return {
          payouts: payouts.map((p) => ({ payoutId: p.payoutId, merchantId: p.merchantId, amount: toMoney(p.amount, p.currency), transfers: p.transfers })),
          report,
        };
      });
      relay.kick();
      log.info({ businessDate, payouts: res.payouts.length }, 'payouts run');
      return res;
    },

    async getTransfer(req) {
      return { transfer: toTransfer(await ledger.transfer(db, requireUuid(req.transferId, 'transfer_id'))) };
    },

    async setBandLimits(req, ctx) {
      const deviceId = requireId(req.deviceId, 'device_id');
      const accountId = requireId(req.accountId, 'account_id');
      const settings = requireSettings({ perPayment: req.perPayment, perDay: req.perDay, frozen: req.frozen });
      const reason = requireReason(req.reason);
      const expectedVersion = requireVersionField(req.expectedVersion);
      const by = changedBy(ctx.caller);
      annotate({ accountId });
      const res = await once(db, 'SetBandLimits', req.idempotencyKey, { codec: SetBandLimitsRequest, value: req }, SetBandLimitsResponse, async (q) => ({
        limits: toBandLimits(await ledger.limits.set(q, { deviceId, accountId, settings, reason, expectedVersion, changedBy: by })),
      }));
      relay.kick();
      log.info({ deviceId, accountId, version: res.limits?.version, frozen: res.limits?.frozen, changedBy: by }, 'band limits changed');
      return res;
    },

    async getBandLimits(req) {
      const deviceId = requireId(req.deviceId, 'device_id');
      const accountId = requireId(req.accountId, 'account_id');
      return { limits: toBandLimits(await ledger.limits.get(db, deviceId, accountId)) };
    },

    async issueVoucher(req) {
      const merchantId = requireId(req.merchantId, 'merchant_id');
      const code = req.code === '' ? undefined : requireVoucherCode(req.code);
      const discount = requireDiscount(req.discount);
      if (!req.expiresAt || Number.isNaN(req.expiresAt.getTime())) throw new InvalidArgument('expires_at is required');
      const maxUses = requireMaxUses(req.maxUses);
      annotate({ merchantId });
      const res = await once(db, 'IssueVoucher', req.idempotencyKey, { codec: IssueVoucherRequest, value: req }, IssueVoucherResponse, async (q) => ({
        voucher: toVoucher(await ledger.vouchers.issue(q, { merchantId, code, discount, expiresAt: req.expiresAt!, maxUses })),
      }));
      log.info({ merchantId, voucherId: res.voucher?.voucherId, maxUses }, 'voucher issued');
      return res;
    },

    async getVoucher(req) {
      const merchantId = requireId(req.merchantId, 'merchant_id');
      const code = requireVoucherCode(req.code);
      return { voucher: toVoucher((await ledger.vouchers.get(db, merchantId, code)).voucher) };
    },

    async quoteVoucher(req) {
      const merchantId = requireId(req.merchantId, 'merchant_id');
      const code = requireVoucherCode(req.code);
      const amount = requirePositive(req.amount, 'amount');
      const paymentId = req.paymentId === '' ? undefined : requireId(req.paymentId, 'payment_id');
      const q = await ledger.vouchers.quote(db, merchantId, code, amount, paymentId);
      return { voucher: toVoucher(q.voucher), discount: toMoney(q.discount, amount.currency), toPay: toMoney(q.toPay, amount.currency) };
    },
  };

  // Limits are the band owner's: only the phone-facing wallet backend changes them (mTLS identity).
  return register<SettlementServiceServer>({ definition: SettlementServiceService, handlers, allowedCallers: settlementPolicy(config) });
}

function voidReasonName(reason: VoidReason): VoidReasonName {
  switch (reason) {
    case VoidReason.VOID_REASON_UNSPECIFIED:
    case VoidReason.VOID_REASON_MERCHANT_CANCELLED:
      return 'MERCHANT_CANCELLED';
    case VoidReason.VOID_REASON_PAYMENT_NOT_COMPLETED:
      return 'PAYMENT_NOT_COMPLETED';
    default:
      throw new InvalidArgument(`reason ${String(reason)} is not a VoidReason`);
  }
}

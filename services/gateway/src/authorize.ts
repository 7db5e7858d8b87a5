import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { trace } from '@opentelemetry/api';
import { Channel, type Money } from '../../../gen/wristpay/common/v1/common';
import type { DeviceRegistryServiceClient } from '../../../gen/wristpay/device_registry/v1/device_registry';
import type { Event } from '../../../gen/wristpay/events/v1/events';
import { AuthorizeRequest, DeclineReason, PaymentStatus, type AuthorizeResponse } from '../../../gen/wristpay/gateway/v1/gateway';
import { Decision, Label, type RiskServiceClient } from '../../../gen/wristpay/risk/v1/risk';
import { HoldOutcome, VoidReason, type SettlementServiceClient } from '../../../gen/wristpay/settlement/v1/settlement';
import type { TokenizationServiceClient, Verification } from '../../../gen/wristpay/tokenization/v1/tokenization';
import { IdempotencyKeyReused, InvalidArgument, Unavailable, relayRefusal } from '../../../platform/errors';
import { newEvent } from '../../../platform/events';
import type { PromiseClient } from '../../../platform/grpc/client';
import type { Logger } from '../../../platform/log';
import { requireAmount, type Amount } from '../../../platform/money';
import type { OutboxRelay } from '../../../platform/outbox';
import { ATTR } from '../../../platform/telemetry/attributes';
import { recordPayment } from '../../../platform/telemetry/metrics';
import { requireIdempotencyKey, requireMerchantName, requireVoucherCode } from '../../../platform/validate';
import { afterDevice, afterHold, afterRisk, afterVerification, eventTypeFor, type Verdict } from './domain/outcome';
import type { InstanceHeartbeat } from './instances';
import type { MerchantRow } from './merchants';
import { declineReasonName, toAuthorizeResponse, type PaymentChange, type PaymentRow, type PaymentStore } from './payments';
import { toStatus } from './domain/payment-state';
import type { PaymentWatchers } from './watchers';
import { annotate, paymentAttributes } from './span-attributes';

export interface Downstream {
  registry: PromiseClient<DeviceRegistryServiceClient>;
  tokenization: PromiseClient<TokenizationServiceClient>;
  risk: PromiseClient<RiskServiceClient>;
  settlement: PromiseClient<SettlementServiceClient>;
}

export interface PaymentFlowDeps {
  downstream: Downstream;
  store: PaymentStore;
  instance: InstanceHeartbeat;
  watchers: PaymentWatchers;
  relay: OutboxRelay;
  log: Logger;
  challengeTtlSeconds: number;
}

/** A retry arrived while another replica is still running the first attempt with the same key. */
export class AttemptInProgress extends Unavailable {
  constructor() {
    super('a payment with this idempotency key is still being processed; retry shortly');
  }
}

const SOURCE = 'gateway';
const INT64_MAX = 2n ** 63n - 1n;
const TERMINAL_ID_MAX = 64;
// While another live replica runs a payment, a retry looks again this often.
const JOIN_POLL_MS = 50;

/** Checks the shape of an Authorize request for `merchant` before anything is called or written. */
export function validateAuthorize(req: AuthorizeRequest, merchant: MerchantRow): { amount: Amount; channel: Channel } {
  requireIdempotencyKey(req.idempotencyKey);
  const amount = requireAmount(req.amount);
  if (amount.currency !== merchant.settlement_currency) throw new InvalidArgument(`amount.currency must be ${merchant.settlement_currency}: the currency merchant ${merchant.merchant_id} is paid in`);
  if (req.voucherCode !== '') requireVoucherCode(req.voucherCode, 'voucher_code');
  requireMerchantName(req.merchantName);
  if (req.terminalId.length > TERMINAL_ID_MAX || /[\p{Cc}]/u.test(req.terminalId)) throw new InvalidArgument(`terminal_id must be at most ${TERMINAL_ID_MAX} characters, no control characters`);
  if (req.location) {
    const { latitude: lat, longitude: lon } = req.location;
    if (!Number.isFinite(lat) || lat < -90 || lat > 90 || !Number.isFinite(lon) || lon < -180 || lon > 180) {
      throw new InvalidArgument('location must have latitude in [-90, 90] and longitude in [-180, 180]');
    }
  }
  const payload = req.payload;
  if (!payload) throw new InvalidArgument('payload (tap or qr) is required');
  if (!/^\d{16,19}$/.test(payload.value.tokenNumber)) throw new InvalidArgument('payload.token_number must be 16-19 digits');
  if (payload.$case === 'tap') {
    if (payload.value.atc <= 0n || payload.value.atc > INT64_MAX) throw new InvalidArgument('tap.atc must be between 1 and 2^63-1');
    if (payload.value.cryptogram.length !== 16) throw new InvalidArgument('tap.cryptogram must be 16 bytes');
    if (payload.value.terminalNonce.length < 4 || payload.value.terminalNonce.length > 32) throw new InvalidArgument('tap.terminal_nonce must be 4-32 bytes');
    return { amount, channel: Channel.CHANNEL_BAND_TAP };
  }
  if (!/^\d{6,10}$/.test(payload.value.offlineCode)) throw new InvalidArgument('qr.offline_code must be 6-10 digits');
  return { amount, channel: Channel.CHANNEL_BAND_QR };
}

export const requestHash = (req: AuthorizeRequest): Buffer => createHash('sha256').update(AuthorizeRequest.encode(req).finish()).digest();

/** The event a decided payment publishes (payment.authorized / challenged / declined), built from its row. */
export function decisionEvent(row: PaymentRow): Event | undefined {
  if (row.status !== 'APPROVED' && row.status !== 'CHALLENGED' && row.status !== 'DECLINED') return undefined;
  const type = eventTypeFor(toStatus(row.status));
  const amount = { amountMinor: row.amount_minor, currency: row.currency };
  return newEvent(type, SOURCE, {
    $case: 'payment',
    value: {
      paymentId: row.payment_id,
      status: row.status === 'CHALLENGED' ? 'CHALLENGE_REQUIRED' : row.status,
      declineReason: row.decline_reason,
      amount,
      merchantId: row.merchant_id,
      accountId: row.account_id,
      deviceId: row.device_id,
      holdId: row.hold_id,
      merchantName: row.merchant_name,
      // Unset when no voucher took anything off (events.proto).
      discount: row.discount_minor > 0n ? { amountMinor: row.discount_minor, currency: row.currency } : undefined,
      stepUp:
        row.status === 'CHALLENGED' && row.challenge_id && row.challenge_nonce
          ? { challengeId: row.challenge_id, nonce: Buffer.from(row.challenge_nonce), expiresAt: row.challenge_expires_at ?? undefined }
          : undefined,
    },
  });
}

/** The columns a verdict sets. */
function verdictChange(verdict: Verdict): PaymentChange {
  const state = verdict.status === PaymentStatus.PAYMENT_STATUS_APPROVED ? 'APPROVED' : verdict.status === PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED ? 'CHALLENGED' : 'DECLINED';
  return { status: state, decline_reason: declineReasonName(verdict.reason), message: verdict.message };
}

/**
 * Runs payments from RECEIVED to a decision. Every downstream call carries a key derived from
 * the payment id (VerifyPayment's payment id, PlaceHold's `authorize:<payment>`), so any
 * attempt of the same payment, in this process or after a take-over, gets the first attempt's
 * verification and hold back instead of a replay or a second hold. The decision commits with
 * its event only if this attempt still owns the payment.
 */
export class PaymentFlow {
  /** Attempts running in this process, by payment id: a retry here joins the one running. */
  private readonly running = new Map<string, Promise<PaymentRow>>();

  constructor(private readonly deps: PaymentFlowDeps) {}

  /** Authorize: records the payment (or finds it under its key) and answers its decision. */
  async authorize(req: AuthorizeRequest, merchant: MerchantRow, deadline: Date): Promise<AuthorizeResponse> {
    const { amount, channel } = validateAuthorize(req, merchant);
    const { store, instance } = this.deps;
    const hash = requestHash(req);
    const claim = await store.claim({
      paymentId: randomUUID(),
      merchantId: merchant.merchant_id,
      idempotencyKey: req.idempotencyKey,
      requestHash: hash,
      channel: Channel[channel],
      amountMinor: amount.amountMinor,
      currency: amount.currency,
      voucherCode: req.voucherCode,
      merchantName: merchant.display_name,
      owner: instance.id,
    });
    trace.getActiveSpan()?.setAttributes({ [ATTR.paymentId]: claim.row.payment_id, [ATTR.merchantId]: merchant.merchant_id, [ATTR.channel]: Channel[channel], [ATTR.amountMinor]: Number(amount.amountMinor), [ATTR.currency]: amount.currency });
    if (!claim.fresh && !Buffer.from(claim.row.request_hash).equals(hash)) throw new IdempotencyKeyReused();
    const resume = (row: PaymentRow) => (row.confirmed_at ? this.afterConfirmation(row) : this.orchestrate(row, req, amount, channel));
    const row = claim.fresh ? await this.track(claim.row, resume(claim.row)) : await this.settle(claim.row, resume, deadline);
    const response = toAuthorizeResponse(row);
    annotate({ ...paymentAttributes(row), [ATTR.paymentStatus]: PaymentStatus[response.status] });
    return response;
  }

  /**
   * Brings a payment found RECEIVED to its decision: joins the attempt running in this process;
   * waits for a live replica's attempt; takes over one whose replica is gone (or whose attempt
   * here failed) and runs `resume`. A payment already decided is returned as it is.
   */
  async settle(found: PaymentRow, resume: (row: PaymentRow) => Promise<PaymentRow>, deadline: Date): Promise<PaymentRow> {
    const { store, instance } = this.deps;
    let row = found;
    for (;;) {
      if (row.status !== 'RECEIVED') return row;
      const here = this.running.get(row.payment_id);
      if (here) return here;
      if (row.owner !== instance.id && (await instance.alive(row.owner))) {
        if (Date.now() + JOIN_POLL_MS * 2 > deadline.getTime()) throw new AttemptInProgress();
        await new Promise((resolve) => setTimeout(resolve, JOIN_POLL_MS));
      } else {
        const taken = await store.takeOver(row.payment_id, row.attempt, instance.id);
        if (taken) {
          this.deps.log.info({ paymentId: row.payment_id, attempt: taken.attempt, from: row.owner === instance.id ? 'this replica' : 'a stopped replica' }, 'payment taken over');
          return this.track(taken, resume(taken));
        }
      }
      row = (await store.get(row.payment_id))!;
    }
  }

  /** Registers `work` as the attempt on `row` in this process until it settles. */
  track(row: PaymentRow, work: Promise<PaymentRow>): Promise<PaymentRow> {
    const tracked = work.finally(() => {
      if (this.running.get(row.payment_id) === tracked) this.running.delete(row.payment_id);
    });
    this.running.set(row.payment_id, tracked);
    return tracked;
  }

  /**
   * Commits this attempt's verdict with its event, if the attempt still owns the payment. A
   * superseded attempt (a take-over decided meanwhile) returns the payment as decided; a hold
   * it placed that the decision does not carry is released.
   */
  async decide(row: PaymentRow, change: PaymentChange): Promise<PaymentRow> {
    const { store, relay, watchers, downstream, log } = this.deps;
    const decided = await store.transitionSeen(row, change, { from: ['RECEIVED'], attempt: row.attempt }, decisionEvent);
    if (decided) {
      recordPayment(decided.status, decided.decline_reason);
      relay.kick();
      watchers.notify(row.payment_id);
      log.info({ paymentId: row.payment_id, status: decided.status, declineReason: decided.decline_reason || undefined, riskScore: decided.risk_score }, 'payment decided');
      return decided;
    }
    const now = (await store.get(row.payment_id))!;
    if (now.status === 'RECEIVED') throw new AttemptInProgress();
    if (change.hold_id && now.hold_id !== change.hold_id) {
      log.warn({ paymentId: row.payment_id, status: now.status }, 'a superseded attempt placed a hold the decision does not carry; releasing it');
      await downstream.settlement.void({ idempotencyKey: `superseded:${row.payment_id}`, holdId: change.hold_id, paymentId: '', reason: VoidReason.VOID_REASON_PAYMENT_NOT_COMPLETED }).catch((err) => log.error({ err: err.message, paymentId: row.payment_id }, 'could not release a superseded hold'));
    }
    return now;
  }

  /**
   * Checks the credential with tokenization under this payment's id, so the channel may retry
   * the call on UNAVAILABLE: a retry gets the first answer instead of spending the ATC or code
   * again (which would come back as REPLAY or CODE_REUSED).
   */
  private async verify(paymentId: string, merchantId: string, req: AuthorizeRequest, amount: Amount): Promise<Verification> {
    const { tokenization } = this.deps.downstream;
    const payload = req.payload!;
    const res =
      payload.$case === 'tap'
        ? await tokenization.verifyPayment({
            tokenNumber: payload.value.tokenNumber,
            atc: payload.value.atc,
            amount,
            merchantId,
            terminalNonce: payload.value.terminalNonce,
            cryptogram: payload.value.cryptogram,
            channel: Channel.CHANNEL_BAND_TAP,
            paymentId,
          })
        : await tokenization.verifyOfflineCode({ tokenNumber: payload.value.tokenNumber, code: payload.value.offlineCode, amount, merchantId, paymentId });
    return res.verification!;
  }

  /**
   * The four steps of DESIGN.md in order, stopping at the first that says no. A voucher is
   * quoted first, before the credential is verified, so a bad voucher (unknown, another
   * merchant's, expired, used up) is refused with settlement's status and costs nothing. The
   * quote names the payment: a retry whose first attempt already placed the hold (and used the
   * voucher's last use) is quoted that hold's redemption, not refused.
   */
  private async orchestrate(row: PaymentRow, req: AuthorizeRequest, amount: Amount, channel: Channel): Promise<PaymentRow> {
    const { downstream } = this.deps;
    const paymentId = row.payment_id;
    const merchantId = row.merchant_id;
    const change: PaymentChange = {};
    let charged: Money = amount;
    if (req.voucherCode) {
      const quote = await relayRefusal(downstream.settlement.quoteVoucher({ merchantId, code: req.voucherCode, amount, paymentId }), [status.PERMISSION_DENIED]).catch(async (err) => {
        // The first attempt refused before the credential was presented: nothing was spent, so
        // the payment is forgotten and its key is free again. (A later attempt keeps the row:
        // an earlier one may have got as far as the credential.)
        if (row.attempt === 1) await this.deps.store.discard(paymentId, row.attempt);
        throw err;
      });
      change.discount_minor = quote.discount!.amountMinor;
      change.charged_minor = quote.toPay!.amountMinor;
      charged = quote.toPay!;
    }
    const finish = (verdict: Verdict) => this.decide(row, { ...change, ...verdictChange(verdict) });

    const verification = await this.verify(paymentId, merchantId, req, amount);
    change.device_id = verification.deviceId;
    change.account_id = verification.accountId;
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
      merchantId,
      amount: charged,
      location: req.location,
      channel,
      sessionLive: session.session?.live ?? false,
      sessionAgeSeconds: session.session?.live && session.session.startedAt ? BigInt(Math.floor((now - session.session.startedAt.getTime()) / 1000)) : 0n,
      deviceAgeSeconds: session.deviceCreatedAt ? BigInt(Math.floor((now - session.deviceCreatedAt.getTime()) / 1000)) : 0n,
      recentCryptogramFailures: verification.recentFailures,
      occurredAt: new Date(now),
    });
    change.risk_score = risk.score;
    change.risk_reasons = risk.reasons.map((r) => r.code);
    // The versions are not kept on the payment: the span is where an analyst finds which rules and model decided.
    annotate({ [ATTR.riskDecision]: Decision[risk.decision].replace('DECISION_', ''), [ATTR.rulesetVersion]: risk.rulesetVersion, [ATTR.modelVersion]: risk.modelVersion });
    const riskVerdict = afterRisk(risk.decision, change.risk_reasons);
    if (riskVerdict?.status === PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED) {
      // The phone must confirm: the band signs this challenge (it reaches the phone on the
      // payment.challenged event, through the alert feed) before it expires.
      change.challenge_id = randomUUID();
      change.challenge_nonce = randomBytes(32);
      change.challenge_expires_at = new Date(now + this.deps.challengeTtlSeconds * 1000);
    }
    if (riskVerdict) return finish(riskVerdict);
    return this.hold(row, change);
  }

  /**
   * The last step: settlement takes the gross and the voucher and holds the net; its refusals
   * (a voucher used up since the quote) reach the caller with their status.
   */
  private async hold(row: PaymentRow, change: PaymentChange): Promise<PaymentRow> {
    const hold = await relayRefusal(
      this.deps.downstream.settlement.placeHold({
        idempotencyKey: `authorize:${row.payment_id}`,
        paymentId: row.payment_id,
        accountId: change.account_id ?? row.account_id,
        merchantId: row.merchant_id,
        amount: { amountMinor: row.amount_minor, currency: row.currency },
        ttlSeconds: 0n,
        deviceId: change.device_id ?? row.device_id,
        voucherCode: row.voucher_code,
        merchantName: row.merchant_name,
      }),
    );
    annotate({ [ATTR.holdOutcome]: hold.outcome === HoldOutcome.HOLD_OUTCOME_PLACED ? 'placed' : 'refused' });
    const placed: PaymentChange = { ...change, ...verdictChange(afterHold(hold.outcome)) };
    if (hold.hold) {
      placed.hold_id = hold.hold.holdId;
      placed.discount_minor = hold.hold.discount?.amountMinor ?? 0n;
      placed.charged_minor = hold.hold.amount!.amountMinor;
    }
    return this.decide(row, placed);
  }

  /**
   * A confirmed step-up resumes where it stopped: risk learns the owner confirmed (a LEGIT
   * label, keyed per payment so a resumed attempt does not label twice), then the hold.
   */
  async afterConfirmation(row: PaymentRow): Promise<PaymentRow> {
    await this.deps.downstream.risk.feedback({ idempotencyKey: `step-up:${row.payment_id}`, paymentId: row.payment_id, label: Label.LABEL_LEGIT, source: 'step-up-confirmed' });
    return this.hold(row, {});
  }

  /**
   * Closes a payment whose attempt died and that nobody retried (the sweeper, after
   * ABANDON_AFTER_SECONDS): a confirmed step-up is finished; anything else cannot be (the
   * credential is gone with the request), so a hold it may have placed is released and it ends
   * DECLINED (abandoned).
   */
  async closeOrphan(orphan: PaymentRow): Promise<PaymentRow | undefined> {
    const { store, instance, downstream } = this.deps;
    const taken = await store.takeOver(orphan.payment_id, orphan.attempt, instance.id);
    if (!taken) return undefined;
    if (taken.confirmed_at) return this.track(taken, this.afterConfirmation(taken));
    const close = async () => {
      await downstream.settlement.void({ idempotencyKey: `abandoned:${taken.payment_id}`, holdId: '', paymentId: taken.payment_id, reason: VoidReason.VOID_REASON_PAYMENT_NOT_COMPLETED }).catch((err: { code?: number }) => {
        if (err.code !== status.NOT_FOUND) throw err;
      });
      return this.decide(taken, { status: 'DECLINED', decline_reason: declineReasonName(DeclineReason.DECLINE_REASON_ABANDONED), message: 'the attempt was never answered and was closed' });
    };
    return this.track(taken, close());
  }
}

import { createHash } from 'node:crypto';
import { ChallengePurpose, DeviceStatus } from '../../../gen/wristpay/device_registry/v1/device_registry';
import { ConfirmPaymentRequest, DeclinePaymentRequest, DeclineReason } from '../../../gen/wristpay/gateway/v1/gateway';
import { Label } from '../../../gen/wristpay/risk/v1/risk';
import { FailedPrecondition, IdempotencyKeyReused, InvalidArgument, NotFound, PermissionDenied } from '../../../platform/errors';
import type { Logger } from '../../../platform/log';
import { requireId, requireIdempotencyKey, requireUuid } from '../../../platform/validate';
import { decisionEvent, type Downstream, type PaymentFlow } from './authorize';
import { recordPayment } from '../../../platform/telemetry/metrics';
import type { InstanceHeartbeat } from './instances';
import { declineReasonName, type PaymentChange, type PaymentRow, type PaymentStore } from './payments';
import type { OutboxRelay } from '../../../platform/outbox';
import type { PaymentWatchers } from './watchers';
import { ATTR } from '../../../platform/telemetry/attributes';
import { annotate, paymentAttributes } from './span-attributes';

/** The band's signature does not verify with the key registered for the payment's band. */
export class SignatureRejected extends PermissionDenied {
  constructor() {
    super("the signature does not verify with the device key of this payment's band");
  }
}

/** The step-up's challenge expired before the phone answered it. */
export class ChallengeExpired extends FailedPrecondition {
  constructor() {
    super('the challenge expired: the payment was declined (challenge_expired)');
  }
}

export interface StepUpDeps {
  downstream: Downstream;
  store: PaymentStore;
  flow: PaymentFlow;
  instance: InstanceHeartbeat;
  watchers: PaymentWatchers;
  relay: OutboxRelay;
  log: Logger;
}

const EXPIRED_CHANGE: PaymentChange = {
  status: 'DECLINED',
  decline_reason: declineReasonName(DeclineReason.DECLINE_REASON_CHALLENGE_EXPIRED),
  message: 'the step-up was not confirmed on the phone before it expired',
};

const hashOf = (bytes: Uint8Array): Buffer => createHash('sha256').update(bytes).digest();

/**
 * The phone side of a step-up (the `wallet` identity): confirm with the band's signature, or
 * decline. Each ends the challenge once: the first answer wins by a conditional update against
 * the other answer and the expiry sweep; a retry with the same idempotency key gets the payment
 * as that answer left it; anything else is FAILED_PRECONDITION and changes nothing.
 */
export class StepUp {
  constructor(private readonly deps: StepUpDeps) {}

  /** Declines a challenged payment whose challenge has expired (sweeper, or a late answer); `seen`, the row if the caller just read it. */
  async expire(paymentId: string, seen?: PaymentRow): Promise<PaymentRow | undefined> {
    const { store, relay, watchers, log } = this.deps;
    const now = seen ?? (await store.get(paymentId));
    if (now?.status !== 'CHALLENGED') return undefined;
    const row = await store.transitionSeen(now, EXPIRED_CHANGE, { from: ['CHALLENGED'] }, decisionEvent);
    if (row) {
      annotate({ ...paymentAttributes(row), [ATTR.challengeOutcome]: 'expired' });
      recordPayment(row.status, row.decline_reason);
      relay.kick();
      watchers.notify(paymentId);
      log.info({ paymentId }, 'step-up expired: payment declined');
    }
    return row;
  }

  /** The challenged payment `req` names, for the account it names (another account's is NOT_FOUND). */
  private async challenged(req: { idempotencyKey: string; paymentId: string; accountId: string; challengeId: string }, hash: Buffer): Promise<{ row: PaymentRow; retry: boolean }> {
    const paymentId = requireUuid(req.paymentId, 'payment_id');
    const accountId = requireId(req.accountId, 'account_id');
    const challengeId = requireUuid(req.challengeId, 'challenge_id');
    requireIdempotencyKey(req.idempotencyKey);
    const row = await this.deps.store.get(paymentId);
    if (!row || row.account_id !== accountId) throw new NotFound(`no payment ${paymentId} for account ${accountId}`);
    if (row.resolved_key === req.idempotencyKey) {
      if (!row.resolved_hash || !Buffer.from(row.resolved_hash).equals(hash)) throw new IdempotencyKeyReused();
      return { row, retry: true };
    }
    if (!row.challenge_id) throw new FailedPrecondition('the payment was not stepped up');
    if (row.challenge_id !== challengeId) throw new FailedPrecondition("challenge_id is not this payment's challenge");
    if (row.status !== 'CHALLENGED') {
      if (row.decline_reason === declineReasonName(DeclineReason.DECLINE_REASON_CHALLENGE_EXPIRED)) throw new ChallengeExpired();
      throw new FailedPrecondition(`the step-up was already answered: the payment is ${row.status}`);
    }
    if (row.challenge_expires_at && row.challenge_expires_at.getTime() <= Date.now()) {
      await this.expire(paymentId);
      throw new ChallengeExpired();
    }
    return { row, retry: false };
  }

  /** After a conditional update lost: why, as the precise refusal (or the payment, for a same-key retry). */
  private async lost(paymentId: string, key: string): Promise<PaymentRow> {
    const now = (await this.deps.store.get(paymentId))!;
    if (now.resolved_key === key) return now;
    if (now.status === 'CHALLENGED') {
      await this.expire(paymentId, now);
      throw new ChallengeExpired();
    }
    if (now.decline_reason === declineReasonName(DeclineReason.DECLINE_REASON_CHALLENGE_EXPIRED)) throw new ChallengeExpired();
    throw new FailedPrecondition(`the step-up was already answered: the payment is ${now.status}`);
  }

  async confirm(req: ConfirmPaymentRequest, deadline: Date): Promise<PaymentRow> {
    const { store, flow, instance, downstream, log } = this.deps;
    if (req.signature.length !== 64) throw new InvalidArgument('signature must be 64 bytes (Ed25519)');
    const hash = hashOf(ConfirmPaymentRequest.encode(req).finish());
    const { row, retry } = await this.challenged(req, hash);
    if (retry) return row.status === 'RECEIVED' ? flow.settle(row, (r) => flow.afterConfirmation(r), deadline) : row;

    const signed = await downstream.registry.verifyDeviceSignature({
      deviceId: row.device_id,
      purpose: ChallengePurpose.CHALLENGE_PURPOSE_PAYMENT,
      challengeId: row.challenge_id!,
      nonce: Buffer.from(row.challenge_nonce!),
      signature: req.signature,
    });
    if (!signed.valid) {
      log.warn({ paymentId: row.payment_id, deviceId: row.device_id }, 'step-up signature rejected');
      throw new SignatureRejected();
    }
    const resolved = { resolved_key: req.idempotencyKey, resolved_hash: hash };
    if (signed.deviceStatus !== DeviceStatus.DEVICE_STATUS_ACTIVE) {
      // Signed by the right band, but the band may no longer pay (reported lost meanwhile).
      const change: PaymentChange = { ...resolved, status: 'DECLINED', decline_reason: declineReasonName(DeclineReason.DECLINE_REASON_DEVICE_INACTIVE), message: 'the band is no longer active' };
      const declined = await store.transitionSeen(row, change, { from: ['CHALLENGED'], challengeLive: true }, decisionEvent);
      if (!declined) return this.lost(row.payment_id, req.idempotencyKey);
      recordPayment(declined.status, declined.decline_reason);
      this.changed(row.payment_id);
      return declined;
    }
    // Back to RECEIVED, owned by this replica as a new attempt: from here on it runs (and
    // resumes after a crash) like any payment, from the hold.
    const resuming = await store.transitionSeen(row, { ...resolved, status: 'RECEIVED', confirmed_at: 'now', owner: instance.id, attempt: row.attempt + 1 }, { from: ['CHALLENGED'], challengeLive: true }, decisionEvent);
    if (!resuming) return this.lost(row.payment_id, req.idempotencyKey);
    log.info({ paymentId: row.payment_id }, 'step-up confirmed on the band');
    return flow.track(resuming, flow.afterConfirmation(resuming));
  }

  async decline(req: DeclinePaymentRequest): Promise<PaymentRow> {
    const { store, downstream, log } = this.deps;
    const hash = hashOf(DeclinePaymentRequest.encode(req).finish());
    const { row, retry } = await this.challenged(req, hash);
    if (retry) return row;
    const change: PaymentChange = {
      status: 'DECLINED',
      decline_reason: declineReasonName(DeclineReason.DECLINE_REASON_CHALLENGE_DECLINED),
      message: 'the owner refused the payment on the phone',
      resolved_key: req.idempotencyKey,
      resolved_hash: hash,
    };
    const declined = await store.transitionSeen(row, change, { from: ['CHALLENGED'], challengeLive: true }, decisionEvent);
    if (!declined) return this.lost(row.payment_id, req.idempotencyKey);
    recordPayment(declined.status, declined.decline_reason);
    this.changed(row.payment_id);
    // The owner says it was not them: risk learns it as fraud. Best effort: the decline stands
    // whether or not risk hears it now.
    await downstream.risk
      .feedback({ idempotencyKey: `step-up:${row.payment_id}`, paymentId: row.payment_id, label: Label.LABEL_FRAUD, source: 'step-up-declined' })
      .catch((err: Error) => log.warn({ err: err.message, paymentId: row.payment_id }, 'risk not told of a refused step-up'));
    return declined;
  }

  private changed(paymentId: string): void {
    this.deps.relay.kick();
    this.deps.watchers.notify(paymentId);
  }
}

import { trace, type Attributes } from '@opentelemetry/api';
import { ATTR } from '../../../platform/telemetry/attributes';
import type { PaymentRow } from './payments';

/** The step-up's end as the analysts' trace tool shows it (ATTR.challengeOutcome). */
export type ChallengeOutcome = 'challenged' | 'confirmed' | 'declined' | 'expired';

/**
 * What a payment's span carries to answer "why" without the database: the decision, the decline
 * reason and its sentence, the channel, the risk score and reasons, the voucher's discount and
 * the hold. Ids and codes only: no card number, cryptogram, nonce or voucher code.
 */
export function paymentAttributes(row: PaymentRow): Attributes {
  const attributes: Attributes = {
    [ATTR.paymentId]: row.payment_id,
    [ATTR.merchantId]: row.merchant_id,
    [ATTR.channel]: row.channel,
    [ATTR.voucherUsed]: row.discount_minor > 0n,
  };
  if (row.status === 'APPROVED' || row.status === 'DECLINED' || row.status === 'CHALLENGED') attributes[ATTR.decision] = row.status;
  if (row.status === 'DECLINED') {
    attributes[ATTR.declineReason] = row.decline_reason;
    attributes[ATTR.declineMessage] = row.message;
  }
  if (row.discount_minor > 0n) attributes[ATTR.voucherDiscountMinor] = Number(row.discount_minor);
  if (row.device_id) attributes[ATTR.deviceId] = row.device_id;
  if (row.account_id) attributes[ATTR.accountId] = row.account_id;
  if (row.hold_id) attributes[ATTR.holdId] = row.hold_id;
  // A payment declined before risk was asked has no score: leave it off rather than show 0.
  if (row.risk_reasons.length > 0 || row.risk_score > 0) {
    attributes[ATTR.riskScore] = row.risk_score;
    attributes[ATTR.riskReasons] = row.risk_reasons;
  }
  if (row.status === 'CHALLENGED') attributes[ATTR.challengeOutcome] = 'challenged';
  return attributes;
}

/** Sets `attributes` on the span of the call being served, if there is one. */
export function annotate(attributes: Attributes): void {
  trace.getActiveSpan()?.setAttributes(attributes);
}

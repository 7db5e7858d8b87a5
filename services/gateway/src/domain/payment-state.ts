import { PaymentStatus } from '../../../../gen/wristpay/gateway/v1/gateway';

/**
 * A payment's life in the gateway's database. RECEIVED until it is decided (and again while a
 * confirmed step-up resumes at the hold); CHALLENGED while the phone may confirm; APPROVED with
 * a hold; then CAPTURED, VOIDED or EXPIRED; refunds against a captured one.
 */
export type PaymentState = 'RECEIVED' | 'CHALLENGED' | 'APPROVED' | 'DECLINED' | 'CAPTURED' | 'VOIDED' | 'EXPIRED' | 'REFUNDED';

const NEXT: Record<PaymentState, readonly PaymentState[]> = {
  RECEIVED: ['DECLINED', 'CHALLENGED', 'APPROVED'],
  CHALLENGED: ['RECEIVED', 'DECLINED'],
  APPROVED: ['CAPTURED', 'VOIDED', 'EXPIRED'],
  CAPTURED: ['REFUNDED'],
  REFUNDED: ['REFUNDED'],
  DECLINED: [],
  VOIDED: [],
  EXPIRED: [],
};

/** The states a payment may move to `to` from (what a conditional UPDATE names in its WHERE). */
export function statesBefore(to: PaymentState): PaymentState[] {
  return (Object.keys(NEXT) as PaymentState[]).filter((from) => NEXT[from].includes(to));
}

export const canMove = (from: PaymentState, to: PaymentState): boolean => NEXT[from].includes(to);

/** Still being decided: no final authorization answer yet. */
export const isPending = (state: PaymentState): boolean => state === 'RECEIVED' || state === 'CHALLENGED';

export function toStatus(state: PaymentState): PaymentStatus {
  switch (state) {
    case 'RECEIVED':
      return PaymentStatus.PAYMENT_STATUS_RECEIVED;
    case 'CHALLENGED':
      return PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED;
    default:
      return PaymentStatus[`PAYMENT_STATUS_${state}`];
  }
}

/**
 * What Authorize answers for a payment in `state`: the authorization decision. A payment that was
 * approved stays APPROVED to a retried Authorize whatever happened since (captured, voided, ...);
 * a step-up that ended answers its outcome.
 */
export function authorizationStatus(state: PaymentState): PaymentStatus {
  if (state === 'DECLINED' || state === 'RECEIVED') return toStatus(state);
  if (state === 'CHALLENGED') return PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED;
  return PaymentStatus.PAYMENT_STATUS_APPROVED;
}

import { PaymentStatus } from '../../../../gen/wristpay/gateway/v1/gateway';
import { authorizationStatus, canMove, isPending, statesBefore, toStatus, type PaymentState } from './payment-state';

const ALL: PaymentState[] = ['RECEIVED', 'CHALLENGED', 'APPROVED', 'DECLINED', 'CAPTURED', 'VOIDED', 'EXPIRED', 'REFUNDED'];

describe('payment state machine', () => {
  it('a declined, voided or expired payment never moves again', () => {
    for (const end of ['DECLINED', 'VOIDED', 'EXPIRED'] as const) for (const to of ALL) expect(canMove(end, to)).toBe(false);
  });

  it('money moves only from the states that hold it: capture and void from APPROVED, refunds from CAPTURED', () => {
    expect(statesBefore('CAPTURED')).toEqual(['APPROVED']);
    expect(statesBefore('VOIDED')).toEqual(['APPROVED']);
    expect(statesBefore('EXPIRED')).toEqual(['APPROVED']);
    expect(statesBefore('REFUNDED').sort()).toEqual(['CAPTURED', 'REFUNDED']);
  });

  it('a step-up resumes (back to RECEIVED) or ends declined; only RECEIVED decides', () => {
    expect(statesBefore('APPROVED')).toEqual(['RECEIVED']);
    expect(statesBefore('CHALLENGED')).toEqual(['RECEIVED']);
    expect(statesBefore('DECLINED').sort()).toEqual(['CHALLENGED', 'RECEIVED']);
    expect(isPending('CHALLENGED')).toBe(true);
    expect(isPending('APPROVED')).toBe(false);
  });

  it('answers Authorize with the decision, whatever happened to an approved payment since', () => {
    for (const later of ['APPROVED', 'CAPTURED', 'VOIDED', 'EXPIRED', 'REFUNDED'] as const) expect(authorizationStatus(later)).toBe(PaymentStatus.PAYMENT_STATUS_APPROVED);
    expect(authorizationStatus('CHALLENGED')).toBe(PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED);
    expect(authorizationStatus('DECLINED')).toBe(PaymentStatus.PAYMENT_STATUS_DECLINED);
    expect(toStatus('VOIDED')).toBe(PaymentStatus.PAYMENT_STATUS_VOIDED);
    expect(toStatus('RECEIVED')).toBe(PaymentStatus.PAYMENT_STATUS_RECEIVED);
  });
});

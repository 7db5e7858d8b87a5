import { DeviceStatus } from '../../../../gen/wristpay/device_registry/v1/device_registry';
import { DeclineReason, PaymentStatus } from '../../../../gen/wristpay/gateway/v1/gateway';
import { Decision } from '../../../../gen/wristpay/risk/v1/risk';
import { HoldOutcome } from '../../../../gen/wristpay/settlement/v1/settlement';
import { VerifyResult } from '../../../../gen/wristpay/tokenization/v1/tokenization';
import { afterDevice, afterHold, afterRisk, afterVerification, eventTypeFor } from './outcome';

describe('the gateway decision table', () => {
  it('lets only a verified credential through, each refusal with its own reason', () => {
    expect(afterVerification(VerifyResult.VERIFY_RESULT_OK)).toBeUndefined();
    expect(afterVerification(VerifyResult.VERIFY_RESULT_REPLAY)?.reason).toBe(DeclineReason.DECLINE_REASON_REPLAY);
    expect(afterVerification(VerifyResult.VERIFY_RESULT_CRYPTOGRAM_MISMATCH)?.reason).toBe(DeclineReason.DECLINE_REASON_CRYPTOGRAM_INVALID);
    expect(afterVerification(VerifyResult.VERIFY_RESULT_TOKEN_SUSPENDED)?.reason).toBe(DeclineReason.DECLINE_REASON_TOKEN_INACTIVE);
    expect(afterVerification(VerifyResult.VERIFY_RESULT_UNSPECIFIED)?.status).toBe(PaymentStatus.PAYMENT_STATUS_DECLINED);
  });

  it('declines any band that is not ACTIVE', () => {
    expect(afterDevice(DeviceStatus.DEVICE_STATUS_ACTIVE)).toBeUndefined();
    for (const s of [DeviceStatus.DEVICE_STATUS_LOST, DeviceStatus.DEVICE_STATUS_SUSPENDED, DeviceStatus.DEVICE_STATUS_PENDING_PAIRING, DeviceStatus.DEVICE_STATUS_UNSPECIFIED]) {
      expect(afterDevice(s)).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_DECLINED, reason: DeclineReason.DECLINE_REASON_DEVICE_INACTIVE });
    }
    expect(afterDevice(DeviceStatus.DEVICE_STATUS_LOST)?.message).toMatch(/lost/);
  });

  it('turns CHALLENGE into step-up and DECLINE into a risk decline, with reasons', () => {
    expect(afterRisk(Decision.DECISION_APPROVE, [])).toBeUndefined();
    expect(afterRisk(Decision.DECISION_CHALLENGE, ['SESSION_NOT_LIVE'])).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED, message: expect.stringMatching(/SESSION_NOT_LIVE/) });
    expect(afterRisk(Decision.DECISION_DECLINE, ['VELOCITY'])?.reason).toBe(DeclineReason.DECLINE_REASON_RISK);
    expect(afterRisk(Decision.DECISION_UNSPECIFIED, [])?.status).toBe(PaymentStatus.PAYMENT_STATUS_DECLINED);
  });

  it('approves only a placed hold', () => {
    expect(afterHold(HoldOutcome.HOLD_OUTCOME_PLACED).status).toBe(PaymentStatus.PAYMENT_STATUS_APPROVED);
    expect(afterHold(HoldOutcome.HOLD_OUTCOME_INSUFFICIENT_FUNDS).reason).toBe(DeclineReason.DECLINE_REASON_INSUFFICIENT_FUNDS);
    expect(afterHold(HoldOutcome.HOLD_OUTCOME_ACCOUNT_FROZEN).reason).toBe(DeclineReason.DECLINE_REASON_ACCOUNT_FROZEN);
    expect(afterHold(HoldOutcome.HOLD_OUTCOME_UNSPECIFIED).status).toBe(PaymentStatus.PAYMENT_STATUS_DECLINED);
  });

  it("declines each of the band owner's limits with its own reason and a message saying which", () => {
    expect(afterHold(HoldOutcome.HOLD_OUTCOME_OVER_PAYMENT_LIMIT)).toEqual({
      status: PaymentStatus.PAYMENT_STATUS_DECLINED,
      reason: DeclineReason.DECLINE_REASON_OVER_PAYMENT_LIMIT,
      message: expect.stringMatching(/per-payment limit/),
    });
    expect(afterHold(HoldOutcome.HOLD_OUTCOME_OVER_DAILY_LIMIT)).toEqual({
      status: PaymentStatus.PAYMENT_STATUS_DECLINED,
      reason: DeclineReason.DECLINE_REASON_OVER_DAILY_LIMIT,
      message: expect.stringMatching(/daily limit/),
    });
    expect(afterHold(HoldOutcome.HOLD_OUTCOME_BAND_FROZEN)).toEqual({
      status: PaymentStatus.PAYMENT_STATUS_DECLINED,
      reason: DeclineReason.DECLINE_REASON_BAND_FROZEN,
      message: expect.stringMatching(/frozen/),
    });
    // An owner's freeze is not a lost band: the two keep distinct reasons.
    expect(afterHold(HoldOutcome.HOLD_OUTCOME_BAND_FROZEN).reason).not.toBe(afterHold(HoldOutcome.HOLD_OUTCOME_ACCOUNT_FROZEN).reason);
  });

  it('names the outcome event after the status', () => {
    expect(eventTypeFor(PaymentStatus.PAYMENT_STATUS_APPROVED)).toBe('payment.authorized');
    expect(eventTypeFor(PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED)).toBe('payment.challenged');
    expect(eventTypeFor(PaymentStatus.PAYMENT_STATUS_DECLINED)).toBe('payment.declined');
  });
});

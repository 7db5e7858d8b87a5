import { Decision } from '../../../../gen/wristpay/risk/v1/risk';
import { HoldOutcome } from '../../../../gen/wristpay/settlement/v1/settlement';
import { VerifyResult } from '../../../../gen/wristpay/tokenization/v1/tokenization';
import { DeclineReason, PaymentStatus } from '../../../../gen/wristpay/gateway/v1/gateway';
import { DeviceStatus } from '../../../../gen/wristpay/device_registry/v1/device_registry';

/** Where the orchestration of one payment stopped, and why. Pure: the gateway's decision table. */
export interface Verdict {
  status: PaymentStatus;
  reason: DeclineReason;
  message: string;
}

const approved: Verdict = { status: PaymentStatus.PAYMENT_STATUS_APPROVED, reason: DeclineReason.DECLINE_REASON_UNSPECIFIED, message: 'approved' };
const declined = (reason: DeclineReason, message: string): Verdict => ({ status: PaymentStatus.PAYMENT_STATUS_DECLINED, reason, message });

/** Step 1: the credential. Anything but OK ends the payment. */
export function afterVerification(result: VerifyResult): Verdict | undefined {
  switch (result) {
    case VerifyResult.VERIFY_RESULT_OK:
      return undefined;
    case VerifyResult.VERIFY_RESULT_REPLAY:
      return declined(DeclineReason.DECLINE_REASON_REPLAY, 'this payment was already presented (replay)');
    case VerifyResult.VERIFY_RESULT_CRYPTOGRAM_MISMATCH:
      return declined(DeclineReason.DECLINE_REASON_CRYPTOGRAM_INVALID, 'the band cryptogram does not match the payment');
    case VerifyResult.VERIFY_RESULT_TOKEN_SUSPENDED:
    case VerifyResult.VERIFY_RESULT_TOKEN_DELETED:
      return declined(DeclineReason.DECLINE_REASON_TOKEN_INACTIVE, 'the band token is not active');
    case VerifyResult.VERIFY_RESULT_WRONG_CHANNEL:
      return declined(DeclineReason.DECLINE_REASON_WRONG_CHANNEL, 'the token may not pay on this channel');
    case VerifyResult.VERIFY_RESULT_UNKNOWN_TOKEN:
      return declined(DeclineReason.DECLINE_REASON_UNKNOWN_TOKEN, 'unknown token');
    case VerifyResult.VERIFY_RESULT_CODE_INVALID:
    case VerifyResult.VERIFY_RESULT_CODE_REUSED:
      return declined(DeclineReason.DECLINE_REASON_OFFLINE_CODE_INVALID, 'the offline code is invalid or already used');
    default:
      return declined(DeclineReason.DECLINE_REASON_CRYPTOGRAM_INVALID, 'the credential could not be verified');
  }
}

/** Step 2: the band itself. Only an ACTIVE band pays (a LOST one is cut off here even if its token lags). */
export function afterDevice(status: DeviceStatus): Verdict | undefined {
  if (status === DeviceStatus.DEVICE_STATUS_ACTIVE) return undefined;
  return declined(DeclineReason.DECLINE_REASON_DEVICE_INACTIVE, `the band is ${DeviceStatus[status]?.replace('DEVICE_STATUS_', '').toLowerCase() ?? 'not active'}`);
}

/** Step 3: risk. CHALLENGE means the phone must confirm; no money is reserved until it does. */
export function afterRisk(decision: Decision, reasons: string[]): Verdict | undefined {
  if (decision === Decision.DECISION_APPROVE) return undefined;
  if (decision === Decision.DECISION_CHALLENGE) {
    return { status: PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED, reason: DeclineReason.DECLINE_REASON_UNSPECIFIED, message: `confirm on the phone (${reasons.join(', ') || 'step-up'})` };
  }
  return declined(DeclineReason.DECLINE_REASON_RISK, `declined by risk (${reasons.join(', ') || 'high risk'})`);
}

/**
 * Step 4: the money. Not enough of it, or a limit the band's owner set, is a decline, not an
 * error. An outcome this table does not know declines as insufficient funds: never approve
 * what settlement did not say it placed.
 */
export function afterHold(outcome: HoldOutcome): Verdict {
  switch (outcome) {
    case HoldOutcome.HOLD_OUTCOME_PLACED:
      return approved;
    case HoldOutcome.HOLD_OUTCOME_ACCOUNT_FROZEN:
      return declined(DeclineReason.DECLINE_REASON_ACCOUNT_FROZEN, 'the band sub-account is frozen');
    case HoldOutcome.HOLD_OUTCOME_BAND_FROZEN:
      return declined(DeclineReason.DECLINE_REASON_BAND_FROZEN, "the band's owner has frozen it");
    case HoldOutcome.HOLD_OUTCOME_OVER_PAYMENT_LIMIT:
      return declined(DeclineReason.DECLINE_REASON_OVER_PAYMENT_LIMIT, "over the band's per-payment limit (or not in the limit's currency)");
    case HoldOutcome.HOLD_OUTCOME_OVER_DAILY_LIMIT:
      return declined(DeclineReason.DECLINE_REASON_OVER_DAILY_LIMIT, "over what the band may still spend today under its daily limit");
    default:
      return declined(DeclineReason.DECLINE_REASON_INSUFFICIENT_FUNDS, 'insufficient funds');
  }
}

/** The event a final status publishes (`payment.<past-tense>`). */
export function eventTypeFor(status: PaymentStatus): string {
  if (status === PaymentStatus.PAYMENT_STATUS_APPROVED) return 'payment.authorized';
  if (status === PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED) return 'payment.challenged';
  return 'payment.declined';
}

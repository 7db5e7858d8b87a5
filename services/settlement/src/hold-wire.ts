import { HoldStatus, type Hold } from '../../../gen/wristpay/settlement/v1/settlement';
import { toMoney } from './domain/money';
import type { HoldRow } from './store';

/** A hold as the API shows it. */
export function toHold(h: HoldRow): Hold {
  return {
    holdId: h.holdId,
    paymentId: h.paymentId,
    accountId: h.accountId,
    merchantId: h.merchantId,
    amount: toMoney(h.amount, h.currency),
    status: HoldStatus[`HOLD_STATUS_${h.status}`],
    expiresAt: h.expiresAt,
    captured: toMoney(h.captured, h.currency),
    gross: toMoney(h.gross, h.currency),
    discount: toMoney(h.discount, h.currency),
    voucherId: h.voucherId ?? '',
    merchantName: h.merchantName,
    deviceId: h.deviceId,
  };
}

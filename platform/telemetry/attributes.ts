/**
 * Every span attribute name WristPay sets, in one place (no ad-hoc strings). Standard names follow
 * the OpenTelemetry semantic conventions; `wristpay.*` names are ours. None may carry a secret.
 */
export const ATTR = {
  messagingSystem: 'messaging.system',
  messagingDestination: 'messaging.destination.name',
  messagingMessageId: 'messaging.message.id',
  eventType: 'wristpay.event.type',
  serviceSource: 'wristpay.event.consumer',
  rpcCaller: 'wristpay.rpc.caller',
  paymentId: 'wristpay.payment.id',
  deviceId: 'wristpay.device.id',
  accountId: 'wristpay.account.id',
  tokenId: 'wristpay.token.id',
  merchantId: 'wristpay.merchant.id',
  holdId: 'wristpay.hold.id',
  amountMinor: 'wristpay.amount.minor',
  currency: 'wristpay.amount.currency',
  verifyResult: 'wristpay.token.verify_result',
  sessionLive: 'wristpay.session.live',
  riskDecision: 'wristpay.risk.decision',
  riskScore: 'wristpay.risk.score',
  riskReasons: 'wristpay.risk.reasons',
  paymentStatus: 'wristpay.payment.status',
  declineReason: 'wristpay.payment.decline_reason',
} as const;

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
  /** APPROVED, DECLINED or CHALLENGED: what Authorize decided (the collector's tail sampling keys on it). */
  decision: 'wristpay.decision',
  /** The decline reason code as stored (INSUFFICIENT_FUNDS, REPLAY, ...), only on a decline. */
  declineReason: 'wristpay.payment.decline_reason',
  /** The decline's sentence for people (no secret: built from codes and amounts). */
  declineMessage: 'wristpay.payment.decline_message',
  /** The Channel name (CHANNEL_BAND_TAP, CHANNEL_BAND_QR). */
  channel: 'wristpay.payment.channel',
  rulesetVersion: 'wristpay.risk.ruleset_version',
  modelVersion: 'wristpay.risk.model_version',
  /** Whether a voucher took something off, and how much (never the voucher's code: it is a bearer credential). */
  voucherUsed: 'wristpay.voucher.used',
  voucherDiscountMinor: 'wristpay.voucher.discount.minor',
  /** placed or refused (Authorize, ConfirmPayment; the refusal is declineReason), captured, voided. */
  holdOutcome: 'wristpay.hold.outcome',
  /** On the step-up spans: challenged, confirmed, declined, expired. */
  challengeOutcome: 'wristpay.challenge.outcome',
} as const;

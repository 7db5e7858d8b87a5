import type { Money } from '../../../../gen/wristpay/common/v1/common';
import type { Event, PaymentStepUp } from '../../../../gen/wristpay/events/v1/events';
import { formatAmount } from '../../../../platform/money';

/** The alert kinds, as stored (wristpay.alerts.v1.AlertKind without its prefix). */
export type AlertKindName =
  | 'AUTHORIZED'
  | 'CHALLENGED'
  | 'DECLINED'
  | 'CAPTURED'
  | 'REFUNDED'
  | 'ESCROW_RELEASED'
  | 'DISPUTE_OPENED'
  | 'DISPUTE_RESOLVED'
  | 'LIMITS_CHANGED'
  | 'VOIDED'
  | 'EXPIRED';

/** The event types that become alerts, and the kind each becomes. Anything else is acked and ignored. */
export const ALERT_KIND_OF: Readonly<Record<string, AlertKindName>> = {
  'payment.authorized': 'AUTHORIZED',
  'payment.challenged': 'CHALLENGED',
  'payment.declined': 'DECLINED',
  'payment.hold.captured': 'CAPTURED',
  'payment.refunded': 'REFUNDED',
  'escrow.released': 'ESCROW_RELEASED',
  'escrow.frozen': 'DISPUTE_OPENED',
  'payment.dispute.resolved': 'DISPUTE_RESOLVED',
  'payment.limits.changed': 'LIMITS_CHANGED',
  'payment.hold.voided': 'VOIDED',
  'payment.hold.expired': 'EXPIRED',
};

/** An alert before the store gives it its sequence. */
export interface AlertDraft {
  accountId: string;
  eventId: string;
  kind: AlertKindName;
  deviceId: string;
  paymentId: string;
  occurredAt: Date;
  /** The band's screen: nothing but these three. */
  wrist: { merchantName: string; amount: Money | undefined; outcome: string };
  phone: { title: string; body: string; merchantId: string; declineReason: string };
  /**
   * On a CHALLENGED alert: what the phone has the band sign to confirm the payment. Not a
   * secret, but the nonce is never logged.
   */
  stepUp?: StepUp;
}

/** The gateway's step-up of one payment, as the alert keeps it. */
export interface StepUp {
  challengeId: string;
  nonce: Buffer;
  expiresAt: Date;
}


/** Why a payment was declined, as a person reads it (the gateway's DeclineReason without its prefix). */
const DECLINE_TEXT: Readonly<Record<string, string>> = {
  INSUFFICIENT_FUNDS: 'there is not enough money in your wallet',
  ACCOUNT_FROZEN: "this band's wallet is frozen",
  BAND_FROZEN: 'this band is frozen',
  OVER_PAYMENT_LIMIT: "it is over this band's limit per payment",
  OVER_DAILY_LIMIT: "it is over this band's daily limit",
  RISK: 'it looked unusual, so it was stopped to protect you',
  DEVICE_INACTIVE: 'this band is not active',
  TOKEN_INACTIVE: "this band's payment token is not active",
  UNKNOWN_TOKEN: 'the band was not recognised',
  CRYPTOGRAM_INVALID: 'the band could not be verified',
  REPLAY: 'the same payment was presented twice',
  WRONG_CHANNEL: 'this band may not pay this way',
  OFFLINE_CODE_INVALID: 'the payment code was invalid or already used',
  CHALLENGE_EXPIRED: 'you did not confirm it on your phone in time',
  CHALLENGE_DECLINED: 'you refused it on your phone',
  ABANDONED: 'the terminal did not complete it; nothing was charged',
};

export function declineText(reason: string): string {
  return DECLINE_TEXT[reason] ?? 'the payment could not be completed';
}

const money = (m: Money | undefined): string => (m ? formatAmount(m) : 'the payment');

/**
 * The event's step-up when it is whole; otherwise none (an older payment.challenged has none,
 * and half of one could not be signed).
 */
function stepUpOf(s: PaymentStepUp | undefined): StepUp | undefined {
  if (!s || !s.challengeId || s.nonce.length === 0 || !s.expiresAt) return undefined;
  return { challengeId: s.challengeId, nonce: Buffer.from(s.nonce), expiresAt: s.expiresAt };
}

/** A deadline as the phone text says it: the clock time in UTC (the service does not know the phone's zone). */
const clockUtc = (d: Date): string => `${d.toISOString().slice(11, 19)} UTC`;

/** What a voucher-discounted payment charged: amount less discount, when both are in one currency. */
function charged(amount: Money | undefined, discount: Money | undefined): Money | undefined {
  if (!amount || !discount || discount.currency !== amount.currency || discount.amountMinor <= 0n || discount.amountMinor > amount.amountMinor) return amount;
  return { amountMinor: amount.amountMinor - discount.amountMinor, currency: amount.currency };
}

type LedgerKind = 'CAPTURED' | 'REFUNDED' | 'ESCROW_RELEASED' | 'DISPUTE_OPENED' | 'VOIDED' | 'EXPIRED';

/** What each ledger movement says on the wrist (outcome) and the phone, given the merchant and the amount. */
const LEDGER_TEXT: Readonly<Record<LedgerKind, (merchant: string, amount: string) => { outcome: string; title: string; body: string }>> = {
  CAPTURED: (m, a) => ({ outcome: 'Captured', title: 'Payment captured', body: `${m} took ${a}; it stays in escrow until your order arrives.` }),
  REFUNDED: (m, a) => ({ outcome: 'Refunded', title: 'Refund received', body: `${a} from ${m} is back in your wallet.` }),
  ESCROW_RELEASED: (m, a) => ({ outcome: 'Paid out', title: 'Payment released', body: `${a} held in escrow was released to ${m}.` }),
  DISPUTE_OPENED: (m, a) => ({ outcome: 'Disputed', title: 'Dispute opened', body: `${a} paid to ${m} is frozen in escrow while your dispute is reviewed.` }),
  VOIDED: (m, a) => ({ outcome: 'Cancelled', title: 'Payment cancelled', body: `${m} cancelled your ${a} payment; the money is available again.` }),
  EXPIRED: (m, a) => ({ outcome: 'Released', title: 'Payment expired', body: `Your ${a} payment at ${m} was never taken, so it lapsed; the money is available again.` }),
};

const isLedgerKind = (kind: AlertKindName): kind is LedgerKind => Object.hasOwn(LEDGER_TEXT, kind);

/**
 * The alert an event makes, or why it makes none (a type that is not an alert, or no account to
 * file it under). Pure: the same event always makes the same alert.
 */
export function alertFor(event: Event): AlertDraft | { skip: string } {
  const kind = ALERT_KIND_OF[event.type];
  if (!kind) return { skip: 'not an alert type' };
  const p = event.payload;
  const base = { eventId: event.eventId, kind, occurredAt: event.occurredAt ?? new Date(0) };
  const at = (name: string, id: string) => name || id;

  if (p?.$case === 'payment' && (kind === 'AUTHORIZED' || kind === 'CHALLENGED' || kind === 'DECLINED')) {
    const v = p.value;
    if (!v.accountId) return { skip: 'no account id' };
    const merchant = at(v.merchantName, v.merchantId);
    const paid = charged(v.amount, v.discount);
    const voucher = paid !== v.amount ? ` (${money(v.amount)} less a ${money(v.discount)} voucher)` : '';
    const common = { ...base, accountId: v.accountId, deviceId: v.deviceId, paymentId: v.paymentId };
    if (kind === 'AUTHORIZED') {
      return { ...common, wrist: { merchantName: merchant, amount: paid, outcome: 'Approved' }, phone: { title: 'Payment approved', body: `You paid ${money(paid)} at ${merchant} with your band${voucher}.`, merchantId: v.merchantId, declineReason: '' } };
    }
    if (kind === 'CHALLENGED') {
      const stepUp = stepUpOf(v.stepUp);
      const by = stepUp ? ` by ${clockUtc(stepUp.expiresAt)}` : '';
      return {
        ...common,
        wrist: { merchantName: merchant, amount: paid, outcome: 'Check phone' },
        phone: { title: 'Confirm your payment', body: `Confirm the ${money(paid)} payment at ${merchant} on your phone${by} to complete it.`, merchantId: v.merchantId, declineReason: '' },
        ...(stepUp && { stepUp }),
      };
    }
    return {
      ...common,
      wrist: { merchantName: merchant, amount: paid, outcome: 'Declined' },
      phone: { title: 'Payment declined', body: `Your ${money(paid)} payment at ${merchant} was declined: ${declineText(v.declineReason)}.`, merchantId: v.merchantId, declineReason: v.declineReason || 'UNSPECIFIED' },
    };
  }

  if (p?.$case === 'ledger' && isLedgerKind(kind)) {
    const v = p.value;
    if (!v.accountId) return { skip: 'no account id' };
    // The gateway released a hold of a payment it never completed (declined, abandoned): the
    // buyer hears that payment's outcome; "the merchant cancelled your payment" would be untrue.
    if (kind === 'VOIDED' && v.voidReason === 'PAYMENT_NOT_COMPLETED') return { skip: 'the hold of a payment that was not completed' };
    const merchant = at(v.merchantName, v.merchantId);
    const { outcome, title, body } = LEDGER_TEXT[kind](merchant, money(v.amount));
    return {
      ...base,
      accountId: v.accountId,
      deviceId: v.deviceId,
      paymentId: v.paymentId,
      wrist: { merchantName: merchant, amount: v.amount, outcome },
      phone: { title, body, merchantId: v.merchantId, declineReason: '' },
    };
  }

  if (p?.$case === 'dispute' && kind === 'DISPUTE_RESOLVED') {
    const v = p.value;
    if (!v.accountId) return { skip: 'no account id' };
    const merchant = at(v.merchantName, v.merchantId);
    const refunded = v.outcome === 'REFUND_BUYER';
    return {
      ...base,
      accountId: v.accountId,
      deviceId: v.deviceId,
      paymentId: v.paymentId,
      wrist: { merchantName: merchant, amount: v.amount, outcome: refunded ? 'Dispute won' : 'Dispute lost' },
      phone: {
        title: refunded ? 'Dispute resolved for you' : 'Dispute closed',
        body: refunded
          ? `Your dispute with ${merchant} was resolved in your favour: ${money(v.amount)} is refunded to your wallet.`
          : `Your dispute with ${merchant} was closed: ${money(v.amount)} was released to the merchant.`,
        merchantId: v.merchantId,
        declineReason: '',
      },
    };
  }

  if (p?.$case === 'limits' && kind === 'LIMITS_CHANGED') {
    const v = p.value;
    if (!v.accountId) return { skip: 'no account id' };
    const limits = [v.perPayment && `${formatAmount(v.perPayment)} per payment`, v.perDay && `${formatAmount(v.perDay)} a day`].filter(Boolean).join(' and ');
    const body = v.frozen
      ? 'Your band is frozen: it cannot pay until you unfreeze it.'
      : limits
        ? `Your band can now pay up to ${limits}.`
        : 'Your band has no spending limits now.';
    return {
      ...base,
      accountId: v.accountId,
      deviceId: v.deviceId,
      paymentId: '',
      wrist: { merchantName: '', amount: undefined, outcome: v.frozen ? 'Band frozen' : 'Limits changed' },
      phone: { title: v.frozen ? 'Band frozen' : 'Band limits changed', body, merchantId: '', declineReason: '' },
    };
  }

  return { skip: `payload ${p?.$case ?? 'none'} does not fit ${event.type}` };
}

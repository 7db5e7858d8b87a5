import { newEvent } from '../../../../platform/events';
import { alertFor, declineText, type AlertDraft } from './alert';

const eur = (minor: bigint) => ({ amountMinor: minor, currency: 'EUR' });
const payment = (type: string, over: Record<string, unknown> = {}) =>
  newEvent(type, 'gateway', {
    $case: 'payment',
    value: { paymentId: 'p1', status: '', declineReason: '', amount: eur(1250n), merchantId: 'm-42', accountId: 'acct-1', deviceId: 'd1', holdId: '', merchantName: 'Café Zebra', discount: undefined, stepUp: undefined, ...over },
  });
const ledger = (type: string, over: Record<string, unknown> = {}) =>
  newEvent(type, 'settlement', {
    $case: 'ledger',
    value: { transferId: 't', holdId: 'h', paymentId: 'p1', accountId: 'acct-1', merchantId: 'm-42', amount: eur(1250n), merchantName: '', deviceId: 'd1', discount: undefined, voidReason: '', ...over },
  });
const draft = (x: ReturnType<typeof alertFor>): AlertDraft => {
  if ('skip' in x) throw new Error(`skipped: ${x.skip}`);
  return x;
};

describe('alertFor', () => {
  it('maps each event type to its kind; other types make no alert', () => {
    const kinds = {
      'payment.authorized': 'AUTHORIZED',
      'payment.challenged': 'CHALLENGED',
      'payment.declined': 'DECLINED',
    };
    for (const [type, kind] of Object.entries(kinds)) expect(draft(alertFor(payment(type))).kind).toBe(kind);
    const ledgerKinds = {
      'payment.hold.captured': 'CAPTURED',
      'payment.refunded': 'REFUNDED',
      'escrow.released': 'ESCROW_RELEASED',
      'escrow.frozen': 'DISPUTE_OPENED',
      'payment.hold.voided': 'VOIDED',
      'payment.hold.expired': 'EXPIRED',
    };
    for (const [type, kind] of Object.entries(ledgerKinds)) expect(draft(alertFor(ledger(type))).kind).toBe(kind);
    expect(alertFor(ledger('payment.hold.placed'))).toEqual({ skip: 'not an alert type' });
    expect(alertFor(ledger('escrow.funded'))).toEqual({ skip: 'not an alert type' });
  });

  it('puts only merchant name, amount and a one- or two-word outcome on the wrist; the merchant id stands in for a missing name', () => {
    const a = draft(alertFor(payment('payment.authorized')));
    expect(a.wrist).toEqual({ merchantName: 'Café Zebra', amount: eur(1250n), outcome: 'Approved' });
    expect(draft(alertFor(ledger('payment.hold.captured'))).wrist).toEqual({ merchantName: 'm-42', amount: eur(1250n), outcome: 'Captured' });
    for (const type of ['payment.authorized', 'payment.challenged', 'payment.declined']) {
      expect(draft(alertFor(payment(type))).wrist.outcome.split(' ').length).toBeLessThanOrEqual(2);
    }
  });

  it('a decline says why on the phone, and keeps the reason code', () => {
    const d = draft(alertFor(payment('payment.declined', { declineReason: 'INSUFFICIENT_FUNDS' })));
    expect(d.phone).toEqual({ title: 'Payment declined', body: 'Your 12.50 EUR payment at Café Zebra was declined: there is not enough money in your wallet.', merchantId: 'm-42', declineReason: 'INSUFFICIENT_FUNDS' });
    expect(draft(alertFor(payment('payment.authorized'))).phone.declineReason).toBe('');
  });

  it('says why a step-up payment was declined: not confirmed in time, refused on the phone, abandoned by the terminal', () => {
    const body = (declineReason: string) => draft(alertFor(payment('payment.declined', { declineReason }))).phone;
    expect(body('CHALLENGE_EXPIRED')).toMatchObject({ body: 'Your 12.50 EUR payment at Café Zebra was declined: you did not confirm it on your phone in time.', declineReason: 'CHALLENGE_EXPIRED' });
    expect(body('CHALLENGE_DECLINED')).toMatchObject({ body: 'Your 12.50 EUR payment at Café Zebra was declined: you refused it on your phone.', declineReason: 'CHALLENGE_DECLINED' });
    expect(body('ABANDONED')).toMatchObject({ body: 'Your 12.50 EUR payment at Café Zebra was declined: the terminal did not complete it; nothing was charged.', declineReason: 'ABANDONED' });
    expect(declineText('SOMETHING_NEW')).toBe('the payment could not be completed');
  });

  it('a challenged payment carries its step-up to the phone and says until when to confirm it', () => {
    const stepUp = { challengeId: '5b0d3c9e-8f43-4b8e-a4a1-6a3f1c1e2d7b', nonce: Buffer.alloc(32, 7), expiresAt: new Date('2026-12-03T14:32:05.250Z') };
    const c = draft(alertFor(payment('payment.challenged', { stepUp })));
    expect(c.stepUp).toEqual(stepUp);
    // A copy: the alert does not share the event's buffer.
    expect(c.stepUp!.nonce).not.toBe(stepUp.nonce);
    expect(c.phone).toEqual({ title: 'Confirm your payment', body: 'Confirm the 12.50 EUR payment at Café Zebra on your phone by 14:32:05 UTC to complete it.', merchantId: 'm-42', declineReason: '' });
    expect(c.wrist).toEqual({ merchantName: 'Café Zebra', amount: eur(1250n), outcome: 'Check phone' });
    // No step-up (an event from before step-ups), or half of one: none on the alert, and no deadline in the text.
    for (const partial of [undefined, { ...stepUp, challengeId: '' }, { ...stepUp, nonce: Buffer.alloc(0) }, { ...stepUp, expiresAt: undefined }]) {
      const plain = draft(alertFor(payment('payment.challenged', { stepUp: partial })));
      expect(plain.stepUp).toBeUndefined();
      expect(plain.phone.body).toBe('Confirm the 12.50 EUR payment at Café Zebra on your phone to complete it.');
    }
    // Only a challenge carries one, whatever the event says.
    for (const type of ['payment.authorized', 'payment.declined']) expect(draft(alertFor(payment(type, { stepUp }))).stepUp).toBeUndefined();
    expect(draft(alertFor(ledger('payment.hold.voided'))).stepUp).toBeUndefined();
  });

  it('a voided or expired hold frees the money: Cancelled or Released on the wrist, and the phone says the money is available again', () => {
    const voided = draft(alertFor(ledger('payment.hold.voided', { merchantName: 'Corner Bakery', amount: eur(800n) })));
    expect(voided.wrist).toEqual({ merchantName: 'Corner Bakery', amount: eur(800n), outcome: 'Cancelled' });
    expect(voided.phone).toEqual({ title: 'Payment cancelled', body: 'Corner Bakery cancelled your 8.00 EUR payment; the money is available again.', merchantId: 'm-42', declineReason: '' });
    expect(voided).toMatchObject({ kind: 'VOIDED', accountId: 'acct-1', deviceId: 'd1', paymentId: 'p1' });
    const expired = draft(alertFor(ledger('payment.hold.expired')));
    expect(expired.wrist).toEqual({ merchantName: 'm-42', amount: eur(1250n), outcome: 'Released' });
    expect(expired.phone).toEqual({ title: 'Payment expired', body: 'Your 12.50 EUR payment at m-42 was never taken, so it lapsed; the money is available again.', merchantId: 'm-42', declineReason: '' });
    expect(alertFor(ledger('payment.hold.voided', { accountId: '' }))).toEqual({ skip: 'no account id' });
    // A hold the gateway released because the payment was never completed is no cancellation by
    // the merchant: the buyer already hears the payment's own outcome (declined, abandoned).
    expect(alertFor(ledger('payment.hold.voided', { voidReason: 'PAYMENT_NOT_COMPLETED' }))).toEqual({ skip: 'the hold of a payment that was not completed' });
    expect(draft(alertFor(ledger('payment.hold.voided', { voidReason: 'MERCHANT_CANCELLED' }))).wrist.outcome).toBe('Cancelled');
    // A voided hold is a ledger movement: another payload does not fit it.
    expect(alertFor(payment('payment.hold.voided'))).toEqual({ skip: 'payload payment does not fit payment.hold.voided' });
  });

  it('a declined payment without an account id makes no alert', () => {
    expect(alertFor(payment('payment.declined', { accountId: '' }))).toEqual({ skip: 'no account id' });
  });

  it('a voucher payment shows what was charged, and says what the voucher took off', () => {
    const d = draft(alertFor(payment('payment.authorized', { discount: eur(250n) })));
    expect(d.wrist.amount).toEqual(eur(1000n));
    expect(d.phone.body).toBe('You paid 10.00 EUR at Café Zebra with your band (12.50 EUR less a 2.50 EUR voucher).');
  });

  it('a dispute outcome reads differently for a refund and a release', () => {
    const resolved = (outcome: string) =>
      draft(
        alertFor(
          newEvent('payment.dispute.resolved', 'settlement', {
            $case: 'dispute',
            value: { disputeId: 'x', holdId: 'h', paymentId: 'p1', accountId: 'acct-1', merchantId: 'm-42', amount: eur(1250n), outcome, reason: 'never arrived', transferId: 't', merchantName: 'Shop', deviceId: 'd1' },
          }),
        ),
      );
    expect(resolved('REFUND_BUYER').wrist.outcome).toBe('Dispute won');
    expect(resolved('RELEASE_TO_MERCHANT').phone.body).toBe('Your dispute with Shop was closed: 12.50 EUR was released to the merchant.');
  });

  it('a limits change names the limits, or that the band is frozen', () => {
    const limits = (over: Record<string, unknown>) =>
      draft(alertFor(newEvent('payment.limits.changed', 'settlement', { $case: 'limits', value: { deviceId: 'd1', accountId: 'acct-1', perPayment: undefined, perDay: undefined, frozen: false, version: 2n, changedBy: 'wallet', reason: '', ...over } })));
    expect(limits({ perPayment: eur(5000n), perDay: eur(20000n) }).phone.body).toBe('Your band can now pay up to 50.00 EUR per payment and 200.00 EUR a day.');
    expect(limits({ frozen: true }).wrist).toEqual({ merchantName: '', amount: undefined, outcome: 'Band frozen' });
    expect(limits({}).phone.body).toBe('Your band has no spending limits now.');
  });
});

import { ATTR } from '../../../platform/telemetry/attributes';
import type { PaymentRow } from './payments';
import { paymentAttributes } from './span-attributes';

const row = (over: Partial<PaymentRow>): PaymentRow => ({
  payment_id: 'p-1',
  merchant_id: 'm-1',
  idempotency_key: 'k',
  request_hash: new Uint8Array(32),
  status: 'APPROVED',
  decline_reason: '',
  message: 'approved',
  channel: 'CHANNEL_BAND_TAP',
  amount_minor: 1000n,
  currency: 'EUR',
  discount_minor: 0n,
  charged_minor: 1000n,
  voucher_code: 'SECRET-VOUCHER-CODE',
  merchant_name: 'Shop',
  device_id: 'd-1',
  account_id: 'a-1',
  hold_id: 'h-1',
  risk_score: 120,
  risk_reasons: ['NEW_DEVICE'],
  challenge_id: 'c-1',
  challenge_nonce: new Uint8Array([1, 2, 3]),
  challenge_expires_at: null,
  confirmed_at: null,
  resolved_key: null,
  resolved_hash: null,
  owner: 'o',
  attempt: 1,
  created_at: new Date(0),
  updated_at: new Date(0),
  row_version: '1',
  ...over,
});

describe('the attributes a payment span carries', () => {
  it('an approval: decision, channel, risk, hold, no decline and no voucher', () => {
    expect(paymentAttributes(row({}))).toEqual({
      [ATTR.paymentId]: 'p-1',
      [ATTR.merchantId]: 'm-1',
      [ATTR.channel]: 'CHANNEL_BAND_TAP',
      [ATTR.decision]: 'APPROVED',
      [ATTR.voucherUsed]: false,
      [ATTR.deviceId]: 'd-1',
      [ATTR.accountId]: 'a-1',
      [ATTR.holdId]: 'h-1',
      [ATTR.riskScore]: 120,
      [ATTR.riskReasons]: ['NEW_DEVICE'],
    });
  });

  it('a decline before risk: the reason and its sentence, no score', () => {
    const a = paymentAttributes(row({ status: 'DECLINED', decline_reason: 'REPLAY', message: 'this payment was already presented (replay)', risk_score: 0, risk_reasons: [], hold_id: '' }));
    expect(a).toMatchObject({ [ATTR.decision]: 'DECLINED', [ATTR.declineReason]: 'REPLAY', [ATTR.declineMessage]: 'this payment was already presented (replay)' });
    expect(Object.keys(a)).not.toEqual(expect.arrayContaining([ATTR.riskScore]));
    expect(a[ATTR.holdId]).toBeUndefined();
  });

  it('a step-up and a voucher: challenged, the discount; never the voucher code or the nonce', () => {
    const a = paymentAttributes(row({ status: 'CHALLENGED', discount_minor: 200n }));
    expect(a).toMatchObject({ [ATTR.decision]: 'CHALLENGED', [ATTR.challengeOutcome]: 'challenged', [ATTR.voucherUsed]: true, [ATTR.voucherDiscountMinor]: 200 });
    expect(JSON.stringify(a)).not.toContain('SECRET-VOUCHER-CODE');
    expect(Object.keys(a).filter((k) => /nonce|voucher\.code|cryptogram/.test(k))).toEqual([]);
  });

  it('a payment still RECEIVED (resumed after a confirmation) has no decision yet', () => {
    expect(paymentAttributes(row({ status: 'RECEIVED' }))[ATTR.decision]).toBeUndefined();
  });
});

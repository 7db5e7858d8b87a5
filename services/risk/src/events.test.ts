import { decodeEvent, encodeEvent, newEvent } from '../../../platform/events';
import type { ScoreInput } from './domain/features';
import { fromScoredEvent, toScoredPayment } from './events';

const input: ScoreInput = {
  paymentId: 'pay-1',
  accountId: 'acct-1',
  deviceId: 'dev-1',
  tokenId: 'tok-secret-id',
  merchantId: 'm-1',
  amountMinor: 12_345,
  currency: 'EUR',
  location: { lat: 48.8566, lon: 2.3522 },
  channelQr: true,
  sessionLive: false,
  sessionAgeSeconds: 0,
  deviceAgeSeconds: 86_400,
  cryptogramFailures: 2,
};

const scored = (x: ScoreInput, at: Date) => ({
  ...newEvent('risk.scored', 'risk', { $case: 'risk', value: { paymentId: x.paymentId, decision: 'CHALLENGE', score: 450, reasons: [], rulesetVersion: 'r', modelVersion: 'm', accountId: x.accountId, deviceId: x.deviceId, payment: toScoredPayment(x) } }),
  occurredAt: at,
});

describe('risk.scored carries the score input', () => {
  it('round-trips through the wire format, without the token id', () => {
    const at = new Date('2026-11-20T10:00:00.123Z');
    const bytes = encodeEvent(scored(input, at));
    expect(fromScoredEvent(decodeEvent(bytes))).toEqual({ scoredAt: at.getTime(), input: { ...input, tokenId: '' } });
    expect(Buffer.from(bytes).includes('tok-secret-id')).toBe(false);
  });

  it('keeps "no location" and the tap channel apart from their defaults', () => {
    const tap = { ...input, location: undefined, channelQr: false, sessionLive: true, sessionAgeSeconds: 30 };
    expect(fromScoredEvent(decodeEvent(encodeEvent(scored(tap, new Date(1_000)))))?.input).toEqual({ ...tap, tokenId: '' });
  });

  it('cannot replay an event published before it carried the payment', () => {
    const old = scored(input, new Date());
    if (old.payload?.$case === 'risk') old.payload.value.payment = undefined;
    expect(fromScoredEvent(decodeEvent(encodeEvent(old)))).toBeUndefined();
  });
});

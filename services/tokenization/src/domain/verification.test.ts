import { randomBytes } from 'node:crypto';
import { Channel } from '../../../../gen/wristpay/common/v1/common';
import { InvalidArgument } from '../../../../platform/errors';
import { offlineCodeKey, totp } from '../../../../platform/payment-crypto';
import { currentOfflineCode, matchOfflineCode, parseChannels, parseOfflineCode, parsePayment, precheck } from './verification';

const good = {
  tokenNumber: '4895370000000001',
  atc: 1n,
  amount: { amountMinor: 1250n, currency: 'EUR' },
  merchantId: 'm-1',
  terminalNonce: randomBytes(4),
  cryptogram: randomBytes(16),
  channel: Channel.CHANNEL_BAND_TAP,
};

describe('payment input', () => {
  it('accepts a well-formed tap', () => {
    expect(parsePayment(good)).toMatchObject({ tokenNumber: good.tokenNumber, atc: 1n, amountMinor: 1250n, currency: 'EUR', channel: 'BAND_TAP' });
  });

  it.each<[string, Partial<typeof good> & Record<string, unknown>, RegExp]>([
    ['empty token number', { tokenNumber: '' }, /token_number/],
    ['missing amount', { amount: undefined }, /amount is required/],
    ['lower-case currency', { amount: { amountMinor: 1n, currency: 'eur' } }, /currency/],
    ['zero amount', { amount: { amountMinor: 0n, currency: 'EUR' } }, /positive/],
    ['negative amount', { amount: { amountMinor: -5n, currency: 'EUR' } }, /positive/],
    ['short cryptogram', { cryptogram: randomBytes(15) }, /16 bytes/],
    ['empty nonce', { terminalNonce: Buffer.alloc(0) }, /terminal_nonce/],
    ['ATC zero', { atc: 0n }, /atc/],
    ['ATC beyond int64', { atc: 1n << 63n }, /atc/],
    ['no merchant', { merchantId: '' }, /merchant_id/],
    ['no channel', { channel: Channel.CHANNEL_UNSPECIFIED }, /channel/],
  ])('refuses %s as INVALID_ARGUMENT', (_what, change, message) => {
    expect(() => parsePayment({ ...good, ...change })).toThrow(InvalidArgument);
    expect(() => parsePayment({ ...good, ...change })).toThrow(message);
  });

  it('normalises channels and requires at least one', () => {
    expect(parseChannels([Channel.CHANNEL_BAND_QR, Channel.CHANNEL_BAND_TAP, Channel.CHANNEL_BAND_QR])).toEqual(['BAND_TAP', 'BAND_QR']);
    expect(() => parseChannels([])).toThrow(/at least one/);
    expect(() => parseChannels([Channel.CHANNEL_UNSPECIFIED])).toThrow(/channels must be/);
  });
});

describe('checks before the credential', () => {
  it('runs in order: unknown, status, channel', () => {
    expect(precheck(undefined, 'BAND_TAP')).toBe('UNKNOWN_TOKEN');
    expect(precheck({ status: 'SUSPENDED', channels: ['BAND_QR'] }, 'BAND_TAP')).toBe('TOKEN_SUSPENDED');
    expect(precheck({ status: 'DELETED', channels: ['BAND_TAP'] }, 'BAND_TAP')).toBe('TOKEN_DELETED');
    expect(precheck({ status: 'ACTIVE', channels: ['BAND_QR'] }, 'BAND_TAP')).toBe('WRONG_CHANNEL');
    expect(precheck({ status: 'ACTIVE', channels: ['BAND_TAP'] }, 'BAND_TAP')).toBeUndefined();
  });
});

describe('offline codes', () => {
  const tokenKey = randomBytes(32);
  const now = 1_700_000_015;

  it('are 8-digit SHA-1 TOTP over the offline-code key, as the band computes them', () => {
    const { code, step, validUntil } = currentOfflineCode(tokenKey, now, 30);
    expect(code).toBe(totp(offlineCodeKey(tokenKey), now, { digits: 8, algorithm: 'sha1', stepSeconds: 30 }));
    expect(step).toBe(BigInt(Math.floor(now / 30)));
    expect(validUntil.getTime()).toBe((Math.floor(now / 30) + 1) * 30_000);
  });

  it('match within one step either side and not beyond', () => {
    const at = (t: number) => currentOfflineCode(tokenKey, t, 30).code;
    const step = BigInt(Math.floor(now / 30));
    expect(matchOfflineCode(tokenKey, at(now), now, 30)).toBe(step);
    expect(matchOfflineCode(tokenKey, at(now - 30), now, 30)).toBe(step - 1n);
    expect(matchOfflineCode(tokenKey, at(now + 30), now, 30)).toBe(step + 1n);
    expect(matchOfflineCode(tokenKey, at(now - 60), now, 30)).toBeUndefined();
    expect(matchOfflineCode(randomBytes(32), at(now), now, 30)).toBeUndefined();
  });

  it('must be 8 digits', () => {
    expect(() => parseOfflineCode('1234567')).toThrow(InvalidArgument);
    expect(() => parseOfflineCode('1234567a')).toThrow(InvalidArgument);
    expect(parseOfflineCode('01234567')).toBe('01234567');
  });
});

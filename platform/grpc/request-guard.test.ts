import fc from 'fast-check';
import { InvalidArgument } from '../errors';
import { guardRequest, REQUEST_LIMITS } from './request-guard';

describe('guardRequest', () => {
  const refused = (request: unknown) => {
    try {
      guardRequest(request);
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidArgument);
      return (err as Error).message;
    }
    return undefined;
  };

  it('names the field of a string that was not valid UTF-8 or holds NUL, in nested messages, oneofs and lists', () => {
    expect(refused({ idempotencyKey: 'a\uFFFDb' })).toBe('idempotency_key must be valid UTF-8');
    expect(refused({ accountId: 'a\u0000' })).toBe('account_id must not contain NUL characters');
    expect(refused({ payload: { $case: 'tap', value: { tokenNumber: '1\u0000' } } })).toBe('payload.tap.token_number must not contain NUL characters');
    expect(refused({ reasons: ['ok', 'b\uFFFD'] })).toBe('reasons[1] must be valid UTF-8');
  });

  it('bounds strings, bytes and lists; refuses NaN, infinities and dates no payment has', () => {
    expect(refused({ terminalId: 'x'.repeat(REQUEST_LIMITS.stringChars + 1) })).toMatch(/terminal_id must be at most/);
    expect(refused({ terminalId: 'x'.repeat(REQUEST_LIMITS.stringChars) })).toBeUndefined();
    expect(refused({ nonce: new Uint8Array(REQUEST_LIMITS.bytes + 1) })).toMatch(/nonce must be at most/);
    expect(refused({ ids: new Array(REQUEST_LIMITS.items + 1).fill('a') })).toMatch(/ids must have at most/);
    expect(refused({ location: { latitude: Number.NaN, longitude: 0 } })).toBe('location.latitude must be a finite number');
    expect(refused({ location: { latitude: 0, longitude: Number.POSITIVE_INFINITY } })).toBe('location.longitude must be a finite number');
    expect(refused({ expiresAt: new Date(Number.NaN) })).toBe('expires_at is out of range');
    expect(refused({ expiresAt: new Date(Date.UTC(10000, 0, 1)) })).toBe('expires_at is out of range');
    expect(refused({ expiresAt: new Date('2026-12-03T00:00:00Z'), amount: { amountMinor: 5n, currency: 'EUR' } })).toBeUndefined();
  });

  it('lets through any request built only of printable text, finite numbers, bigints and in-range dates', () => {
    const printable = fc.string({ maxLength: 64 }).filter((s) => !s.includes('\u0000') && !s.includes('\uFFFD'));
    const message = fc.dictionary(
      fc.constantFrom('accountId', 'merchantId', 'amount', 'expiresAt', 'tags'),
      fc.oneof(printable, fc.double({ noNaN: true, noDefaultInfinity: true }), fc.bigInt(), fc.date({ min: new Date(0), max: new Date(Date.UTC(9999, 0, 1)), noInvalidDate: true }), fc.array(printable, { maxLength: 5 })),
    );
    fc.assert(fc.property(message, (m) => refused(m) === undefined), { numRuns: 500 });
  });
});

import { randomBytes } from 'node:crypto';
import { isLuhnValid } from '../../../../platform/payment-crypto';
import { fundingFingerprint, fundingLast4, newTokenNumber, validateFunding } from './funding';

const card = (value: string) => ({ source: { $case: 'cardNumber' as const, value } });
const wallet = (value: string) => ({ source: { $case: 'walletAccountId' as const, value } });

describe('funding sources', () => {
  it('accepts Luhn-valid 12-19 digit cards and trimmed wallet ids', () => {
    expect(validateFunding(card('4111111111111111'))).toEqual({ kind: 'card', cardNumber: '4111111111111111' });
    expect(validateFunding(card('378282246310005'))).toEqual({ kind: 'card', cardNumber: '378282246310005' });
    expect(validateFunding(wallet('  acct-1 '))).toEqual({ kind: 'wallet', walletAccountId: 'acct-1' });
    expect(fundingLast4({ kind: 'card', cardNumber: '4111111111111111' })).toBe('1111');
  });

  it.each([
    [card('4111111111111112'), /Luhn/],
    [card('41111111111'), /12 to 19 digits/],
    [card('41111111111111111111'), /12 to 19 digits/],
    [card('4111 1111 1111 1111'), /12 to 19 digits/],
    [wallet('   '), /wallet_account_id/],
    [wallet('x'.repeat(129)), /wallet_account_id/],
    [{ source: undefined }, /funding_source is required/],
    [undefined, /funding_source is required/],
  ])('refuses %j without echoing it', (source, message) => {
    let thrown: Error | undefined;
    try {
      validateFunding(source);
    } catch (err) {
      thrown = err as Error;
    }
    expect(thrown?.message).toMatch(message);
    expect(thrown?.message).not.toMatch(/\d{6,}/);
  });

  it('issues Luhn-valid numbers in the BIN range that never equal the funding card', () => {
    const funding = { kind: 'card' as const, cardNumber: '4895370000000001' };
    for (let i = 0; i < 200; i++) {
      const n = newTokenNumber('489537', 16, funding);
      expect(n).toMatch(/^489537\d{10}$/);
      expect(isLuhnValid(n)).toBe(true);
      expect(n).not.toBe(funding.cardNumber);
    }
    // A random source whose first candidate is the funding number itself: the next one is taken.
    const digits = (d: string) => Buffer.from([...d].map(Number));
    const first = newTokenNumber('489537', 16, { kind: 'wallet', walletAccountId: 'w' }, () => digits('0000000000000'));
    const calls = [digits('0000000000000'), digits('1234567890000')];
    const avoided = newTokenNumber('489537', 16, { kind: 'card', cardNumber: first }, () => calls.shift()!);
    expect(first).toMatch(/^489537000000000\d$/);
    expect(avoided).toMatch(/^489537123456789\d$/);
  });

  it('fingerprints funding with a key, so equal sources match and nothing reveals the number', () => {
    const master = randomBytes(32);
    const a = fundingFingerprint(master, { kind: 'card', cardNumber: '4111111111111111' });
    expect(fundingFingerprint(master, { kind: 'card', cardNumber: '4111111111111111' })).toBe(a);
    expect(fundingFingerprint(randomBytes(32), { kind: 'card', cardNumber: '4111111111111111' })).not.toBe(a);
    expect(fundingFingerprint(master, { kind: 'wallet', walletAccountId: '4111111111111111' })).not.toBe(a);
    expect(a).not.toContain('1111');
  });
});

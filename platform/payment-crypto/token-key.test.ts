import { createHmac } from 'crypto';
import fc from 'fast-check';
import { deriveTokenKey, offlineCodeKey } from './token-key';

// Independent RFC 5869 HKDF (one output block suffices for 32 bytes of SHA-256).
function referenceHkdf(ikm: Buffer, salt: string, info: string): Buffer {
  const prk = createHmac('sha256', Buffer.from(salt, 'utf8')).update(ikm).digest();
  return createHmac('sha256', prk).update(Buffer.concat([Buffer.from(info, 'utf8'), Buffer.from([1])])).digest();
}

const master = Buffer.alloc(32, 0x42);

describe('deriveTokenKey', () => {
  it('is HKDF-SHA256 with the documented salt and info', () => {
    expect(deriveTokenKey(master, 'tok_123').equals(referenceHkdf(master, 'wristpay-token-key-v1', 'tok_123'))).toBe(true);
  });

  it('matches a known answer (computed with Python hmac), so the derivation cannot drift', () => {
    expect(deriveTokenKey(master, 'tok_123').toString('hex')).toBe('8eab25b13cbb9a12b9e68e849f3e05a09d26b016e4ae6cdb0a5e9a2bb58f6059');
  });

  it('gives distinct keys for distinct token ids and master keys', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), (a, b) => {
        fc.pre(a !== b);
        return !deriveTokenKey(master, a).equals(deriveTokenKey(master, b));
      }),
    );
    expect(deriveTokenKey(Buffer.alloc(32, 1), 't').equals(deriveTokenKey(Buffer.alloc(32, 2), 't'))).toBe(false);
  });

  it('rejects short master keys and empty ids', () => {
    expect(() => deriveTokenKey(Buffer.alloc(31), 't')).toThrow(RangeError);
    expect(() => deriveTokenKey(master, '')).toThrow(RangeError);
  });
});

describe('offlineCodeKey', () => {
  it('is HKDF-SHA256 with the documented salt and info, distinct from the token key', () => {
    const tokenKey = deriveTokenKey(master, 'tok_123');
    const otpKey = offlineCodeKey(tokenKey);
    expect(otpKey.equals(referenceHkdf(tokenKey, 'wristpay-offline-code-v1', 'totp'))).toBe(true);
    expect(otpKey.equals(tokenKey)).toBe(false);
  });

  it('requires a 32-byte token key', () => {
    expect(() => offlineCodeKey(Buffer.alloc(16))).toThrow(RangeError);
  });
});

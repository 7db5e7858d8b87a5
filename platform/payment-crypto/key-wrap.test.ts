import { createDecipheriv, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes } from 'crypto';
import fc from 'fast-check';
import { KeyUnwrapFailed, unwrapKeyOnDevice, WrappedKey, wrapKeyForDevice } from './key-wrap';
import { MalformedKey, rawPublicKey } from './keys';

const device = generateKeyPairSync('x25519');
const devicePublic = rawPublicKey(device.publicKey);
const tokenKey = randomBytes(32);

describe('wrapKeyForDevice / unwrapKeyOnDevice', () => {
  it('round-trips on the right device with the right context', () => {
    const wrapped = wrapKeyForDevice(devicePublic, tokenKey, 'tok_1');
    expect(wrapped.ephemeralPublicKey).toHaveLength(32);
    expect(wrapped.iv).toHaveLength(12);
    expect(wrapped.tag).toHaveLength(16);
    expect(wrapped.ciphertext.equals(tokenKey)).toBe(false);
    expect(unwrapKeyOnDevice(device.privateKey, wrapped, 'tok_1').equals(tokenKey)).toBe(true);
  });

  it('follows the documented construction (ECDH, HKDF salt/info, AES-256-GCM, AAD = context)', () => {
    const wrapped = wrapKeyForDevice(devicePublic, tokenKey, 'tok_1');
    const ephemeral = createPublicKey({
      key: Buffer.concat([Buffer.from('302a300506032b656e032100', 'hex'), wrapped.ephemeralPublicKey]),
      format: 'der',
      type: 'spki',
    });
    const shared = diffieHellman({ privateKey: device.privateKey, publicKey: ephemeral });
    const aesKey = Buffer.from(hkdfSync('sha256', shared, Buffer.from('wristpay-key-wrap-v1'), Buffer.from('tok_1'), 32));
    const d = createDecipheriv('aes-256-gcm', aesKey, wrapped.iv);
    d.setAAD(Buffer.from('tok_1'));
    d.setAuthTag(wrapped.tag);
    expect(Buffer.concat([d.update(wrapped.ciphertext), d.final()]).equals(tokenKey)).toBe(true);
  });

  it('uses a fresh ephemeral key and IV every time', () => {
    const a = wrapKeyForDevice(devicePublic, tokenKey, 'tok_1');
    const b = wrapKeyForDevice(devicePublic, tokenKey, 'tok_1');
    expect(a.ephemeralPublicKey.equals(b.ephemeralPublicKey)).toBe(false);
    expect(a.iv.equals(b.iv)).toBe(false);
    expect(a.ciphertext.equals(b.ciphertext)).toBe(false);
  });

  it('fails on every single-bit flip of the ephemeral key (including the bit X25519 ignores)', () => {
    const wrapped = wrapKeyForDevice(devicePublic, tokenKey, 'tok_1');
    for (let bit = 0; bit < 256; bit++) {
      const eph = Buffer.from(wrapped.ephemeralPublicKey);
      eph[bit >> 3] ^= 1 << (bit & 7);
      expect(() => unwrapKeyOnDevice(device.privateKey, { ...wrapped, ephemeralPublicKey: eph }, 'tok_1')).toThrow(KeyUnwrapFailed);
    }
  });

  it('fails on any single-bit flip in any field', () => {
    const wrapped = wrapKeyForDevice(devicePublic, tokenKey, 'tok_1');
    const names = ['ephemeralPublicKey', 'iv', 'ciphertext', 'tag'] as const;
    fc.assert(
      fc.property(fc.constantFrom(...names), fc.nat(), (field, n) => {
        const copy: WrappedKey = { ...wrapped, [field]: Buffer.from(wrapped[field]) };
        const bit = n % (copy[field].length * 8);
        copy[field][bit >> 3] ^= 1 << (bit & 7);
        expect(() => unwrapKeyOnDevice(device.privateKey, copy, 'tok_1')).toThrow(KeyUnwrapFailed);
      }),
      { numRuns: 200 },
    );
  });

  it('fails on non-canonical encodings of the same ephemeral key', () => {
    const wrapped = wrapKeyForDevice(devicePublic, tokenKey, 'tok_1');
    const topBit = Buffer.from(wrapped.ephemeralPublicKey);
    topBit[31] |= 0x80;
    expect(() => unwrapKeyOnDevice(device.privateKey, { ...wrapped, ephemeralPublicKey: topBit }, 'tok_1')).toThrow(KeyUnwrapFailed);
    const uEqualsP = Buffer.from('ed' + 'ff'.repeat(30) + '7f', 'hex');
    expect(() => unwrapKeyOnDevice(device.privateKey, { ...wrapped, ephemeralPublicKey: uEqualsP }, 'tok_1')).toThrow(KeyUnwrapFailed);
  });

  it('fails under another context, on another device, or with truncated fields', () => {
    const wrapped = wrapKeyForDevice(devicePublic, tokenKey, 'tok_1');
    expect(() => unwrapKeyOnDevice(device.privateKey, wrapped, 'tok_2')).toThrow(KeyUnwrapFailed);
    expect(() => unwrapKeyOnDevice(generateKeyPairSync('x25519').privateKey, wrapped, 'tok_1')).toThrow(KeyUnwrapFailed);
    expect(() => unwrapKeyOnDevice(device.privateKey, { ...wrapped, tag: wrapped.tag.subarray(0, 12) }, 'tok_1')).toThrow(KeyUnwrapFailed);
    expect(() => unwrapKeyOnDevice(device.privateKey, { ...wrapped, iv: wrapped.iv.subarray(0, 8) }, 'tok_1')).toThrow(KeyUnwrapFailed);
    expect(() => unwrapKeyOnDevice(device.privateKey, { ...wrapped, ephemeralPublicKey: Buffer.alloc(31) }, 'tok_1')).toThrow(KeyUnwrapFailed);
    expect(() => unwrapKeyOnDevice(generateKeyPairSync('ed25519').privateKey, wrapped, 'tok_1')).toThrow(KeyUnwrapFailed);
    expect(() => unwrapKeyOnDevice(device.publicKey, wrapped, 'tok_1')).toThrow(KeyUnwrapFailed);
  });

  it('does not put key material in error messages', () => {
    const wrapped = wrapKeyForDevice(devicePublic, tokenKey, 'tok_1');
    try {
      unwrapKeyOnDevice(device.privateKey, wrapped, 'tok_2');
      throw new Error('unreachable');
    } catch (e) {
      const text = `${(e as Error).message} ${(e as Error).stack}`;
      expect(text).not.toContain(tokenKey.toString('hex'));
      expect(text).not.toContain(wrapped.ciphertext.toString('hex'));
    }
  });

  it('rejects malformed and low-order device keys', () => {
    expect(() => wrapKeyForDevice(devicePublic.subarray(1), tokenKey, 'c')).toThrow(MalformedKey);
    expect(() => wrapKeyForDevice(Buffer.alloc(32), tokenKey, 'c')).toThrow(MalformedKey);
    const one = Buffer.alloc(32);
    one[0] = 1;
    expect(() => wrapKeyForDevice(one, tokenKey, 'c')).toThrow(MalformedKey);
  });

  it('rejects an empty key or context', () => {
    expect(() => wrapKeyForDevice(devicePublic, Buffer.alloc(0), 'c')).toThrow(RangeError);
    expect(() => wrapKeyForDevice(devicePublic, tokenKey, '')).toThrow(RangeError);
  });
});

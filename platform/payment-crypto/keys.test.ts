import { createSecretKey, generateKeyPairSync, sign, verify } from 'crypto';
import fc from 'fast-check';
import { ed25519PublicKeyFromRaw, MalformedKey, rawPublicKey, x25519PublicKeyFromRaw } from './keys';

const hex = (s: string) => Buffer.from(s, 'hex');
// RFC 8032 §7.1 TEST 1 public key.
const RFC8032_PUBLIC = hex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');

describe('Ed25519 raw keys', () => {
  it('round-trips generated keys and verifies their signatures', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 64 }), (msg) => {
        const { publicKey, privateKey } = generateKeyPairSync('ed25519');
        const raw = rawPublicKey(publicKey);
        expect(raw).toHaveLength(32);
        const imported = ed25519PublicKeyFromRaw(raw);
        expect(imported.asymmetricKeyType).toBe('ed25519');
        expect(rawPublicKey(imported).equals(raw)).toBe(true);
        return verify(null, msg, imported, sign(null, msg, privateKey));
      }),
      { numRuns: 30 },
    );
  });

  it('accepts the RFC 8032 test key', () => {
    expect(rawPublicKey(ed25519PublicKeyFromRaw(RFC8032_PUBLIC)).equals(RFC8032_PUBLIC)).toBe(true);
  });

  it.each([
    ['31 bytes', Buffer.alloc(31, 1)],
    ['33 bytes', Buffer.alloc(33, 1)],
    ['empty', Buffer.alloc(0)],
    ['not on the curve (y = 2)', hex('02' + '00'.repeat(31))],
    ['non-canonical y (y = p)', hex('ed' + 'ff'.repeat(30) + '7f')],
    ['x = 0 with the sign bit set', hex('01' + '00'.repeat(30) + '80')],
    ['identity (small order)', hex('01' + '00'.repeat(31))],
    ['order 2 point (0, -1)', hex('ec' + 'ff'.repeat(30) + '7f')],
    ['order 4 point', hex('00'.repeat(32))],
    ['order 8 point', hex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a')],
  ])('rejects %s with MalformedKey', (_name, raw) => {
    expect(() => ed25519PublicKeyFromRaw(raw)).toThrow(MalformedKey);
    try {
      ed25519PublicKeyFromRaw(raw);
    } catch (e) {
      expect((e as Error).name).toBe('MalformedKey');
    }
  });

  it('rejects a non-Buffer', () => {
    expect(() => ed25519PublicKeyFromRaw('00'.repeat(32) as unknown as Buffer)).toThrow(MalformedKey);
  });
});

describe('X25519 raw keys', () => {
  it('round-trips generated keys', () => {
    const { publicKey } = generateKeyPairSync('x25519');
    const raw = rawPublicKey(publicKey);
    const imported = x25519PublicKeyFromRaw(raw);
    expect(imported.asymmetricKeyType).toBe('x25519');
    expect(rawPublicKey(imported).equals(raw)).toBe(true);
  });

  it.each([31, 33, 0])('rejects %d bytes', (n) => {
    expect(() => x25519PublicKeyFromRaw(Buffer.alloc(n, 9))).toThrow(MalformedKey);
  });
});

describe('rawPublicKey', () => {
  it('strips exactly the 12-byte SPKI prefix', () => {
    const { publicKey } = generateKeyPairSync('ed25519');
    const der = publicKey.export({ format: 'der', type: 'spki' });
    expect(der.subarray(0, 12).toString('hex')).toBe('302a300506032b6570032100');
    expect(rawPublicKey(publicKey).equals(der.subarray(12))).toBe(true);
  });

  it('returns the public half of a private key', () => {
    const { publicKey, privateKey } = generateKeyPairSync('x25519');
    expect(rawPublicKey(privateKey).equals(rawPublicKey(publicKey))).toBe(true);
  });

  it('rejects secret keys and other key types', () => {
    expect(() => rawPublicKey(createSecretKey(Buffer.alloc(32)))).toThrow(MalformedKey);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(() => rawPublicKey(ec.publicKey)).toThrow(MalformedKey);
    expect(() => rawPublicKey(generateKeyPairSync('ed448').publicKey)).toThrow(MalformedKey);
  });
});

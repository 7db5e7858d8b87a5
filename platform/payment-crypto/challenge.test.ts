import { generateKeyPairSync, sign } from 'crypto';
import fc from 'fast-check';
import { challengeMessage, verifyChallengeSignature } from './challenge';
import { rawPublicKey } from './keys';

const fields = { purpose: 'SESSION' as const, deviceId: 'dev-1', challengeId: 'ch-9', nonce: Buffer.from([0x00, 0xff, 0x10]) };

function keyPair() {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { raw: rawPublicKey(publicKey), privateKey };
}

describe('challengeMessage', () => {
  it('has the documented layout', () => {
    expect(challengeMessage(fields).toString('hex')).toBe(
      Buffer.from('wristpay-challenge-v1\0SESSION\0dev-1\0ch-9\0', 'utf8').toString('hex') + '00ff10',
    );
  });

  it('encodes ids as utf8', () => {
    const msg = challengeMessage({ ...fields, purpose: 'PAIRING', deviceId: 'bänd' });
    expect(msg.includes(Buffer.from('\0PAIRING\0b\xc3\xa4nd\0', 'latin1'))).toBe(true);
  });

  it.each([
    ['purpose', { purpose: 'PAY' }],
    ['empty deviceId', { deviceId: '' }],
    ['NUL in deviceId', { deviceId: 'a\0b' }],
    ['NUL in challengeId', { challengeId: 'c\0' }],
    ['nonce not a Buffer', { nonce: 'abc' }],
  ])('rejects %s', (_name, patch) => {
    expect(() => challengeMessage({ ...fields, ...(patch as object) })).toThrow(RangeError);
  });

  it('is injective over distinct field sets', () => {
    const id = fc.string({ minLength: 1, maxLength: 6 }).filter((s) => !s.includes('\0'));
    const f = fc.record({
      purpose: fc.constantFrom('PAIRING' as const, 'SESSION' as const),
      deviceId: id,
      challengeId: id,
      nonce: fc.uint8Array({ maxLength: 6 }).map((a) => Buffer.from(a)),
    });
    fc.assert(
      fc.property(f, f, (a, b) => {
        const same = a.purpose === b.purpose && a.deviceId === b.deviceId && a.challengeId === b.challengeId && a.nonce.equals(b.nonce);
        return challengeMessage(a).equals(challengeMessage(b)) === same;
      }),
    );
  });
});

describe('verifyChallengeSignature', () => {
  const { raw, privateKey } = keyPair();
  const msg = challengeMessage(fields);
  const sig = sign(null, msg, privateKey);

  it('accepts a genuine signature', () => {
    expect(verifyChallengeSignature(raw, msg, sig)).toBe(true);
  });

  it('rejects a signature over another purpose, device or nonce', () => {
    for (const patch of [{ purpose: 'PAIRING' as const }, { deviceId: 'dev-2' }, { nonce: Buffer.from([1]) }]) {
      expect(verifyChallengeSignature(raw, challengeMessage({ ...fields, ...patch }), sig)).toBe(false);
    }
  });

  it('rejects another key', () => {
    expect(verifyChallengeSignature(keyPair().raw, msg, sig)).toBe(false);
  });

  it('rejects any single-bit flip of the signature', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 64 * 8 - 1 }), (bit) => {
        const bad = Buffer.from(sig);
        bad[bit >> 3] ^= 1 << (bit & 7);
        return !verifyChallengeSignature(raw, msg, bad);
      }),
      { numRuns: 200 },
    );
  });

  it.each([
    ['short signature', () => verifyChallengeSignature(raw, msg, sig.subarray(0, 63))],
    ['long signature', () => verifyChallengeSignature(raw, msg, Buffer.concat([sig, Buffer.from([0])]))],
    ['short key', () => verifyChallengeSignature(raw.subarray(1), msg, sig)],
    ['off-curve key', () => verifyChallengeSignature(Buffer.from('02' + '00'.repeat(31), 'hex'), msg, sig)],
    ['small-order key', () => verifyChallengeSignature(Buffer.from('01' + '00'.repeat(31), 'hex'), msg, sig)],
    ['non-Buffer inputs', () => verifyChallengeSignature(null as unknown as Buffer, 'x' as unknown as Buffer, {} as Buffer)],
  ])('returns false, never throws, for %s', (_name, call) => {
    expect(call()).toBe(false);
  });

  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 70 }), (k, s) => {
        return verifyChallengeSignature(Buffer.from(k), msg, Buffer.from(s)) === false;
      }),
    );
  });
});

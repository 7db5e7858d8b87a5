import { createDecipheriv, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { EnvelopeOpenFailed, Keyring, KeyringError, open, rewrap, seal } from './envelope';

const k1 = randomBytes(32);
const k2 = randomBytes(32);
const spec = `1:${k1.toString('base64')},2:${k2.toString('base64')}`;
const v1 = Keyring.parse(spec, 1);
const v2 = Keyring.parse(spec, 2);
const only2 = Keyring.parse(`2:${k2.toString('base64')}`, 2);

describe('vault envelope encryption', () => {
  it('round-trips any plaintext, with a fresh data key and IV per record', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.string({ minLength: 1, maxLength: 40 }), (bytes, context) => {
        const plain = Buffer.from(bytes);
        const a = seal(v1, plain, context);
        const b = seal(v1, plain, context);
        expect(open(v1, a, context).equals(plain)).toBe(true);
        expect(a.iv.equals(b.iv) || a.wrappedDataKey.equals(b.wrappedDataKey)).toBe(false);
      }),
      { numRuns: 50 },
    );
  });

  it('is AES-256-GCM under a data key that the KEK wraps with AES-256-GCM (checked independently)', () => {
    const record = seal(v1, Buffer.from('4111111111111111'), 'tok-1');
    expect(record.kekVersion).toBe(1);
    expect(record.wrappedDataKey).toHaveLength(60);
    const w = record.wrappedDataKey;
    const kd = createDecipheriv('aes-256-gcm', k1, w.subarray(0, 12));
    kd.setAAD(Buffer.from('wristpay-vault-v1|kek|1|tok-1'));
    kd.setAuthTag(w.subarray(44));
    const dataKey = Buffer.concat([kd.update(w.subarray(12, 44)), kd.final()]);
    const d = createDecipheriv('aes-256-gcm', dataKey, record.iv);
    d.setAAD(Buffer.from('wristpay-vault-v1|data|tok-1'));
    d.setAuthTag(record.tag);
    expect(Buffer.concat([d.update(record.ciphertext), d.final()]).toString()).toBe('4111111111111111');
  });

  it('refuses a record moved to another context, a tampered field, or a relabelled KEK version', () => {
    const record = seal(v2, Buffer.from('secret'), 'tok-1');
    expect(() => open(v2, record, 'tok-2')).toThrow(EnvelopeOpenFailed);
    const flip = (b: Buffer, i: number) => {
      const c = Buffer.from(b);
      c[i]! ^= 1;
      return c;
    };
    expect(() => open(v2, { ...record, ciphertext: flip(record.ciphertext, 0) }, 'tok-1')).toThrow(EnvelopeOpenFailed);
    expect(() => open(v2, { ...record, tag: flip(record.tag, 3) }, 'tok-1')).toThrow(EnvelopeOpenFailed);
    expect(() => open(v2, { ...record, iv: flip(record.iv, 0) }, 'tok-1')).toThrow(EnvelopeOpenFailed);
    expect(() => open(v2, { ...record, wrappedDataKey: flip(record.wrappedDataKey, 20) }, 'tok-1')).toThrow(EnvelopeOpenFailed);
    expect(() => open(v2, { ...record, wrappedDataKey: record.wrappedDataKey.subarray(1) }, 'tok-1')).toThrow(EnvelopeOpenFailed);
    // Same key bytes under both versions would still not open: the version is in the AAD.
    const twin = Keyring.parse(`1:${k2.toString('base64')},2:${k2.toString('base64')}`, 2);
    expect(() => open(twin, { ...record, kekVersion: 1 }, 'tok-1')).toThrow(EnvelopeOpenFailed);
  });

  it('re-wraps under the active KEK without touching the ciphertext, so the old KEK can be retired', () => {
    const record = seal(v1, Buffer.from('wallet-42'), 'tok-9');
    const moved = rewrap(v2, record, 'tok-9');
    expect(moved.kekVersion).toBe(2);
    const after = { ...record, ...moved };
    expect(open(only2, after, 'tok-9').toString()).toBe('wallet-42');
    expect(() => open(only2, record, 'tok-9')).toThrow(/KEK version 1 is not configured/);
  });

  it('parses VAULT_KEKS strictly and never shows a key', () => {
    expect(v2.versions).toEqual([1, 2]);
    expect(() => Keyring.parse(spec, 3)).toThrow(KeyringError);
    expect(() => Keyring.parse(`1:${randomBytes(16).toString('base64')}`, 1)).toThrow(/32 bytes/);
    expect(() => Keyring.parse(`1:${k1.toString('base64')},1:${k2.toString('base64')}`, 1)).toThrow(/twice/);
    expect(() => Keyring.parse('one:abc', 1)).toThrow(KeyringError);
    for (const shown of [inspect(v2, { showHidden: true, depth: 9 }), JSON.stringify(v2), String(Object.values(v2))]) {
      expect(shown).not.toContain(k1.toString('base64'));
      expect(shown).not.toContain(k1.toString('hex'));
    }
    try {
      Keyring.parse(`1:${randomBytes(31).toString('base64')}`, 1);
    } catch (err) {
      expect((err as Error).message).not.toMatch(/[A-Za-z0-9+/]{20,}/);
    }
  });
});

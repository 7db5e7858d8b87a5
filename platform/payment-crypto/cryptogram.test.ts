import fc from 'fast-check';
import { computeCryptogram, cryptogramInput, CryptogramFields, verifyCryptogram } from './cryptogram';

const key = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
const base: CryptogramFields = {
  tokenNumber: '4895370012345678',
  atc: 1n,
  amountMinor: 1250n,
  currency: 'EUR',
  merchantId: 'm-1',
  terminalNonce: Buffer.from('deadbeef', 'hex'),
};

const fieldsArb: fc.Arbitrary<CryptogramFields> = fc.record({
  tokenNumber: fc.stringMatching(/^[0-9]{16,19}$/),
  atc: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  amountMinor: fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }),
  currency: fc.stringMatching(/^[A-Z]{3}$/),
  merchantId: fc.string({ unit: 'grapheme', maxLength: 20 }),
  terminalNonce: fc.uint8Array({ maxLength: 16 }).map((a) => Buffer.from(a)),
});

function sameFields(a: CryptogramFields, b: CryptogramFields): boolean {
  return (
    a.tokenNumber === b.tokenNumber &&
    a.atc === b.atc &&
    a.amountMinor === b.amountMinor &&
    a.currency === b.currency &&
    a.merchantId === b.merchantId &&
    a.terminalNonce.equals(b.terminalNonce)
  );
}

describe('cryptogramInput', () => {
  it('has the documented layout', () => {
    expect(cryptogramInput(base).toString('hex')).toBe(
      '01' +
        '0010' + Buffer.from('4895370012345678').toString('hex') +
        '0008' + '0000000000000001' +
        '0008' + '00000000000004e2' +
        '0003' + '455552' +
        '0003' + '6d2d31' +
        '0004' + 'deadbeef',
    );
  });

  it('encodes amounts as two\'s-complement int64 and atc as uint64', () => {
    const input = cryptogramInput({ ...base, atc: (1n << 64n) - 1n, amountMinor: -1n });
    expect(input.subarray(1 + 2 + 16, 1 + 2 + 16 + 20).toString('hex')).toBe('0008ffffffffffffffff0008ffffffffffffffff');
  });

  it('encodes merchantId as utf8', () => {
    expect(cryptogramInput({ ...base, merchantId: 'café' }).includes(Buffer.from('0005636166c3a9', 'hex'))).toBe(true);
  });

  it('is unambiguous when a boundary moves between merchantId and terminalNonce', () => {
    const a = cryptogramInput({ ...base, merchantId: 'ab', terminalNonce: Buffer.from('c') });
    const b = cryptogramInput({ ...base, merchantId: 'a', terminalNonce: Buffer.from('bc') });
    expect(a.equals(b)).toBe(false);
    expect(computeCryptogram(key, { ...base, merchantId: 'ab', terminalNonce: Buffer.from('c') })).not.toEqual(
      computeCryptogram(key, { ...base, merchantId: 'a', terminalNonce: Buffer.from('bc') }),
    );
  });

  it('is injective (small alphabets make boundary collisions likely if it were not)', () => {
    const small = fc.record({
      tokenNumber: fc.constantFrom('1', '11'),
      atc: fc.bigInt({ min: 0n, max: 2n }),
      amountMinor: fc.bigInt({ min: -1n, max: 1n }),
      currency: fc.constantFrom('EUR', 'USD'),
      merchantId: fc.string({ unit: fc.constantFrom('a', 'b'), maxLength: 3 }),
      terminalNonce: fc.array(fc.constantFrom(0x61, 0x62), { maxLength: 3 }).map((a) => Buffer.from(a)),
    });
    fc.assert(fc.property(small, small, (a, b) => cryptogramInput(a).equals(cryptogramInput(b)) === sameFields(a, b)), { numRuns: 2000 });
  });

  it.each([
    ['non-digit token', { tokenNumber: '4895-3700' }],
    ['empty token', { tokenNumber: '' }],
    ['negative atc', { atc: -1n }],
    ['atc over uint64', { atc: 1n << 64n }],
    ['number atc', { atc: 1 }],
    ['amount over int64', { amountMinor: 1n << 63n }],
    ['amount under int64', { amountMinor: -(1n << 63n) - 1n }],
    ['number amount', { amountMinor: 12.5 }],
    ['lowercase currency', { currency: 'eur' }],
    ['numeric currency', { currency: '978' }],
    ['lone surrogate in merchantId', { merchantId: 'm\ud800' }],
    ['merchantId over 65535 bytes', { merchantId: 'x'.repeat(65536) }],
    ['nonce over 65535 bytes', { terminalNonce: Buffer.alloc(65536) }],
    ['nonce not a Buffer', { terminalNonce: 'deadbeef' }],
  ])('rejects %s', (_name, patch) => {
    expect(() => cryptogramInput({ ...base, ...(patch as object) })).toThrow(RangeError);
  });
});

describe('computeCryptogram', () => {
  it('matches a known answer computed independently (Python hmac)', () => {
    expect(computeCryptogram(key, base).toString('hex')).toBe('9ff854ddc0e5487aaa86a27991ff8146');
  });

  it('changes when any single field changes', () => {
    const mutate: Record<keyof CryptogramFields, (f: CryptogramFields) => CryptogramFields> = {
      tokenNumber: (f) => ({ ...f, tokenNumber: f.tokenNumber.slice(0, -1) + String((Number(f.tokenNumber.slice(-1)) + 1) % 10) }),
      atc: (f) => ({ ...f, atc: f.atc === 0n ? 1n : f.atc - 1n }),
      // Step towards zero so the mutated amount stays inside int64 at both ends.
      amountMinor: (f) => ({ ...f, amountMinor: f.amountMinor > 0n ? f.amountMinor - 1n : f.amountMinor + 1n }),
      currency: (f) => ({ ...f, currency: f.currency === 'EUR' ? 'USD' : 'EUR' }),
      merchantId: (f) => ({ ...f, merchantId: f.merchantId + 'x' }),
      terminalNonce: (f) => ({ ...f, terminalNonce: Buffer.concat([f.terminalNonce, Buffer.from([0])]) }),
    };
    fc.assert(
      fc.property(fieldsArb, fc.constantFrom(...(Object.keys(mutate) as (keyof CryptogramFields)[])), (fields, which) => {
        const changed = mutate[which](fields);
        return !computeCryptogram(key, fields).equals(computeCryptogram(key, changed));
      }),
      { numRuns: 500 },
    );
  });

  it('depends on the key and is 16 bytes', () => {
    const c = computeCryptogram(key, base);
    expect(c).toHaveLength(16);
    expect(computeCryptogram(Buffer.alloc(32, 7), base).equals(c)).toBe(false);
  });
});

describe('verifyCryptogram', () => {
  it('accepts the right cryptogram and rejects any other field set', () => {
    fc.assert(
      fc.property(fieldsArb, fieldsArb, (a, b) => {
        const c = computeCryptogram(key, a);
        return verifyCryptogram(key, a, c) && verifyCryptogram(key, b, c) === sameFields(a, b);
      }),
    );
  });

  it('rejects any single-bit flip', () => {
    const c = computeCryptogram(key, base);
    for (let bit = 0; bit < 128; bit++) {
      const bad = Buffer.from(c);
      bad[bit >> 3] ^= 1 << (bit & 7);
      expect(verifyCryptogram(key, base, bad)).toBe(false);
    }
  });

  it.each([
    ['empty', Buffer.alloc(0)],
    ['15 bytes', Buffer.alloc(15)],
    ['full 32-byte HMAC', Buffer.alloc(32)],
    ['not a Buffer', 'abc' as unknown as Buffer],
  ])('returns false without throwing for a cryptogram that is %s', (_name, given) => {
    expect(verifyCryptogram(key, base, given)).toBe(false);
  });

  it('returns false without throwing for unencodable fields or an empty key', () => {
    const c = computeCryptogram(key, base);
    expect(verifyCryptogram(key, { ...base, currency: 'euro' }, c)).toBe(false);
    expect(verifyCryptogram(key, { ...base, atc: -1n }, c)).toBe(false);
    expect(verifyCryptogram(Buffer.alloc(0), base, c)).toBe(false);
  });
});

describe('verifyCryptogram timing', () => {
  it('compares with crypto.timingSafeEqual', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nodeCrypto = require('crypto') as typeof import('crypto');
    const spy = jest.spyOn(nodeCrypto, 'timingSafeEqual');
    try {
      expect(verifyCryptogram(key, base, computeCryptogram(key, base))).toBe(true);
      expect(spy).toHaveBeenCalledTimes(1);
    } finally {
      spy.mockRestore();
    }
  });
});

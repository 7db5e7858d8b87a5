import fc from 'fast-check';
import { hotp, OtpAlgorithm, totp, totpStep } from './otp';

const SEED_SHA1 = Buffer.from('12345678901234567890', 'ascii');
const SEED_SHA256 = Buffer.from('12345678901234567890123456789012', 'ascii');
const SEED_SHA512 = Buffer.from('1234567890'.repeat(6) + '1234', 'ascii');

describe('RFC 4226 Appendix D (HOTP)', () => {
  const expected = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];
  it.each(expected.map((code, count) => [count, code]))('count %i -> %s', (count, code) => {
    expect(hotp(SEED_SHA1, BigInt(count))).toBe(code);
  });
});

describe('RFC 6238 Appendix B (TOTP, 8 digits)', () => {
  // [time, T as hex, SHA1, SHA256, SHA512]
  const table: [number, string, string, string, string][] = [
    [59, '0000000000000001', '94287082', '46119246', '90693936'],
    [1111111109, '00000000023523EC', '07081804', '68084774', '25091201'],
    [1111111111, '00000000023523ED', '14050471', '67062674', '99943326'],
    [1234567890, '000000000273EF07', '89005924', '91819424', '93441116'],
    [2000000000, '0000000003F940AA', '69279037', '90698825', '38618901'],
    [20000000000, '0000000027BC86AA', '65353130', '77737706', '47863826'],
  ];
  const seeds: [OtpAlgorithm, Buffer, number][] = [
    ['sha1', SEED_SHA1, 2],
    ['sha256', SEED_SHA256, 3],
    ['sha512', SEED_SHA512, 4],
  ];
  const cases = table.flatMap((row) => seeds.map(([alg, seed, col]) => [row[0], alg, row[col] as string, seed, row[1]] as const));

  it('has all 18 vectors', () => expect(cases).toHaveLength(18));

  it.each(cases)('t=%i %s -> %s', (time, algorithm, code, seed, stepHex) => {
    expect(totpStep(time).toString(16).toUpperCase().padStart(16, '0')).toBe(stepHex);
    expect(totp(seed, time, { digits: 8, algorithm })).toBe(code);
  });
});

describe('hotp', () => {
  it('zero-pads and honours digits', () => {
    // RFC 6238 vector 07081804: the leading zero must survive.
    expect(hotp(SEED_SHA1, 0x23523ecn, 8)).toBe('07081804');
    expect(hotp(SEED_SHA1, 0x23523ecn, 6)).toBe('081804');
  });

  it('always returns exactly `digits` digits', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.integer({ min: 6, max: 9 }), (k, c, d) =>
        new RegExp(`^[0-9]{${d}}$`).test(hotp(Buffer.from(k), c, d)),
      ),
    );
  });

  it.each([
    ['empty key', () => hotp(Buffer.alloc(0), 0n)],
    ['negative counter', () => hotp(SEED_SHA1, -1n)],
    ['counter over uint64', () => hotp(SEED_SHA1, 1n << 64n)],
    ['5 digits', () => hotp(SEED_SHA1, 0n, 5)],
    ['10 digits', () => hotp(SEED_SHA1, 0n, 10)],
    ['unknown algorithm', () => hotp(SEED_SHA1, 0n, 6, 'md5' as OtpAlgorithm)],
  ])('rejects %s', (_name, call) => {
    expect(call).toThrow(RangeError);
  });
});

describe('totpStep / totp', () => {
  it('steps at exact boundaries and honours t0 and stepSeconds', () => {
    expect(totpStep(0)).toBe(0n);
    expect(totpStep(29.999)).toBe(0n);
    expect(totpStep(30)).toBe(1n);
    expect(totpStep(100, 60, 40)).toBe(1n);
    expect(totpStep(99, 60, 40)).toBe(0n);
  });

  it('is stable within a step and defaults to SHA-1, 6 digits, 30 s', () => {
    expect(totp(SEED_SHA1, 60)).toBe(totp(SEED_SHA1, 89));
    expect(totp(SEED_SHA1, 59)).toBe(hotp(SEED_SHA1, 1n));
  });

  it.each([
    ['time before t0', () => totpStep(10, 30, 20)],
    ['negative time', () => totpStep(-1)],
    ['NaN', () => totpStep(Number.NaN)],
    ['zero step', () => totpStep(10, 0)],
    ['fractional step', () => totpStep(10, 1.5)],
  ])('rejects %s', (_name, call) => {
    expect(call).toThrow(RangeError);
  });
});

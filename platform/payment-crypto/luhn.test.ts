import fc from 'fast-check';
import { generateTokenNumber, isLuhnValid, luhnCheckDigit } from './luhn';

describe('luhnCheckDigit', () => {
  it.each([
    ['7992739871', '3'],
    ['411111111111111', '1'],
    ['555555555555444', '4'],
    ['0', '0'],
    ['1', '8'],
  ])('%s -> %s', (partial, digit) => {
    expect(luhnCheckDigit(partial)).toBe(digit);
  });

  it.each(['', '12a4', ' 123', '１２３'])('rejects %p', (bad) => {
    expect(() => luhnCheckDigit(bad)).toThrow(RangeError);
  });
});

describe('isLuhnValid', () => {
  it.each(['79927398713', '4111111111111111', '5555555555554444', '00'])('accepts %s', (n) => {
    expect(isLuhnValid(n)).toBe(true);
  });

  it.each(['79927398710', '4111111111111112', '', '0', '4111 1111 1111 1111', 'abc'])('rejects %p', (n) => {
    expect(isLuhnValid(n)).toBe(false);
  });

  it('detects every single-digit substitution', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9]{15,18}$/), fc.nat(), fc.integer({ min: 1, max: 9 }), (partial, pos, delta) => {
        const valid = partial + luhnCheckDigit(partial);
        const i = pos % valid.length;
        const changed = valid.slice(0, i) + String((Number(valid[i]) + delta) % 10) + valid.slice(i + 1);
        return isLuhnValid(valid) && !isLuhnValid(changed);
      }),
    );
  });
});

describe('generateTokenNumber', () => {
  it('produces digits-only, Luhn-valid numbers that start with the BIN, for every length', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9]{6,8}$/), fc.integer({ min: 16, max: 19 }), (bin, length) => {
        const n = generateTokenNumber(bin, length);
        return n.length === length && /^[0-9]+$/.test(n) && n.startsWith(bin) && isLuhnValid(n);
      }),
    );
  });

  it('uses the injected randomness, skipping bytes >= 250 so digits stay uniform', () => {
    const bytes = Buffer.from([250, 255, 1, 12, 249, ...new Array(40).fill(7)]);
    let used = 0;
    const random = (size: number) => {
      const out = bytes.subarray(used, used + size);
      used += size;
      return out;
    };
    const n = generateTokenNumber('489537', 16, random);
    expect(n.slice(0, 12)).toBe('489537' + '129' + '777');
    expect(isLuhnValid(n)).toBe(true);
  });

  it('keeps asking for bytes when the source returns too few', () => {
    const random = (size: number) => Buffer.alloc(Math.min(size, 1), 3);
    expect(generateTokenNumber('400000', 16, random)).toBe('400000333333333' + luhnCheckDigit('400000333333333'));
  });

  it.each([
    ['489537', 15],
    ['489537', 20],
    ['489537', 16.5],
    ['48953a', 16],
    ['', 16],
    ['1234567890123456', 16],
  ])('rejects bin %p length %p', (bin, length) => {
    expect(() => generateTokenNumber(bin, length)).toThrow(RangeError);
  });
});

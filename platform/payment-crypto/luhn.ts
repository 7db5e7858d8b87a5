import { randomBytes } from 'crypto';

const DIGITS = /^[0-9]+$/;

/**
 * Computes the Luhn (mod 10) check digit to append to `partial`.
 *
 * @param partial - the number without its check digit; ASCII digits only, non-empty.
 * @returns a single digit `'0'`..`'9'`.
 * @throws RangeError if `partial` is empty or contains a non-digit.
 */
export function luhnCheckDigit(partial: string): string {
  if (!DIGITS.test(partial)) throw new RangeError('luhnCheckDigit: expected a non-empty string of digits');
  return String((10 - luhnSum(partial, true)) % 10);
}

/**
 * Tells whether `number` (check digit included) passes the Luhn check.
 * Returns false, rather than throwing, for anything that is not at least two ASCII digits,
 * because it is meant for untrusted input.
 */
export function isLuhnValid(number: string): boolean {
  return typeof number === 'string' && number.length >= 2 && DIGITS.test(number) && luhnSum(number, false) === 0;
}

/**
 * Generates a random, Luhn-valid device token number inside a token BIN range.
 *
 * @param bin - the token BIN (issuer prefix); ASCII digits, shorter than `length`.
 * @param length - total number of digits, 16..19 (ISO/IEC 7812 PAN lengths used for tokens).
 * @param random - source of random bytes; injectable so tests can be deterministic.
 * @returns `bin` + random digits + Luhn check digit, exactly `length` digits.
 * @throws RangeError on a bad BIN or length.
 */
export function generateTokenNumber(
  bin: string,
  length: number,
  random: (size: number) => Buffer = randomBytes,
): string {
  if (!Number.isInteger(length) || length < 16 || length > 19) {
    throw new RangeError('generateTokenNumber: length must be an integer in 16..19');
  }
  if (!DIGITS.test(bin) || bin.length >= length) {
    throw new RangeError('generateTokenNumber: bin must be digits and shorter than length');
  }
  let body = bin;
  const need = length - 1;
  while (body.length < need) {
    for (const byte of random(need - body.length + 4)) {
      // Rejection sampling: 250 is the largest multiple of 10 <= 256, so digits stay uniform.
      if (byte < 250 && body.length < need) body += String(byte % 10);
    }
  }
  return body + luhnCheckDigit(body);
}

/** Luhn sum mod 10; `doubleRightmost` is true when the check digit is not yet present. */
function luhnSum(digits: string, doubleRightmost: boolean): number {
  let sum = 0;
  let double = doubleRightmost;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10;
}

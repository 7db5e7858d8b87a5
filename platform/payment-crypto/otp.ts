import { createHmac } from 'crypto';

/** HMAC hash for HOTP/TOTP; RFC 6238 allows SHA-1, SHA-256 and SHA-512. */
export type OtpAlgorithm = 'sha1' | 'sha256' | 'sha512';

/** Options for {@link totp}; defaults are RFC 6238's: 30 s step, T0 = 0, 6 digits, SHA-1. */
export interface TotpOptions {
  stepSeconds?: number;
  t0?: number;
  digits?: number;
  algorithm?: OtpAlgorithm;
}

const UINT64_MAX = (1n << 64n) - 1n;
const ALGORITHMS: readonly string[] = ['sha1', 'sha256', 'sha512'];

/**
 * RFC 4226 HOTP: HMAC over the 8-byte big-endian counter, dynamic truncation to 31 bits,
 * then the low `digits` decimal digits, zero-padded.
 *
 * @param digits - 6..9; truncation leaves 31 bits, so a tenth digit would add no strength.
 * @throws RangeError on an empty key, a counter outside uint64, bad digits or algorithm.
 */
export function hotp(key: Buffer, counter: bigint, digits = 6, algorithm: OtpAlgorithm = 'sha1'): string {
  if (!Buffer.isBuffer(key) || key.length === 0) throw new RangeError('hotp: key must be non-empty');
  if (typeof counter !== 'bigint' || counter < 0n || counter > UINT64_MAX) throw new RangeError('hotp: counter must be a uint64 bigint');
  if (!Number.isInteger(digits) || digits < 6 || digits > 9) throw new RangeError('hotp: digits must be 6..9');
  if (!ALGORITHMS.includes(algorithm)) throw new RangeError('hotp: algorithm must be sha1, sha256 or sha512');

  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(counter);
  const mac = createHmac(algorithm, key).update(msg).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

/**
 * RFC 6238 time step: floor((unixSeconds - t0) / stepSeconds).
 *
 * @throws RangeError on non-finite time, a time before t0, or a non-positive/non-integer step.
 */
export function totpStep(unixSeconds: number, stepSeconds = 30, t0 = 0): bigint {
  if (!Number.isFinite(unixSeconds) || !Number.isFinite(t0) || unixSeconds < t0) {
    throw new RangeError('totpStep: unixSeconds must be finite and not before t0');
  }
  if (!Number.isInteger(stepSeconds) || stepSeconds <= 0) throw new RangeError('totpStep: stepSeconds must be a positive integer');
  return BigInt(Math.floor((unixSeconds - t0) / stepSeconds));
}

/** RFC 6238 TOTP: {@link hotp} over {@link totpStep} of `unixSeconds`. */
export function totp(key: Buffer, unixSeconds: number, options: TotpOptions = {}): string {
  const { stepSeconds = 30, t0 = 0, digits = 6, algorithm = 'sha1' } = options;
  return hotp(key, totpStep(unixSeconds, stepSeconds, t0), digits, algorithm);
}

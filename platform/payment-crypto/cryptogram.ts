import { createHmac, timingSafeEqual } from 'crypto';

/** The fields a cryptogram authenticates, in their canonical order. */
export interface CryptogramFields {
  /** Device token number (digits), never the real account number. */
  tokenNumber: string;
  /** Application transaction counter, uint64; only ever goes up per token. */
  atc: bigint;
  /** Amount in minor units, int64. */
  amountMinor: bigint;
  /** ISO 4217 alphabetic code, e.g. "EUR". */
  currency: string;
  merchantId: string;
  /** The terminal's unpredictable number. */
  terminalNonce: Buffer;
}

/** Length in bytes of a cryptogram. */
export const CRYPTOGRAM_BYTES = 16;

const VERSION = 0x01;
const UINT64_MAX = (1n << 64n) - 1n;
const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

/**
 * Canonical bytes a cryptogram is computed over: byte 0x01 (version), then each field as a
 * uint16 big-endian length followed by its bytes, in this order: tokenNumber (ascii),
 * atc (uint64 BE), amountMinor (int64 BE), currency (ascii), merchantId (utf8),
 * terminalNonce (raw). Length prefixes make the encoding injective: no two field sets
 * share an input.
 *
 * @throws RangeError if a field is out of range: token not digits, atc outside uint64,
 *   amount outside int64, currency not three uppercase letters, merchantId not well-formed
 *   UTF-16, a field over 65535 bytes.
 */
export function cryptogramInput(fields: CryptogramFields): Buffer {
  const { tokenNumber, atc, amountMinor, currency, merchantId, terminalNonce } = fields;
  if (typeof tokenNumber !== 'string' || !/^[0-9]+$/.test(tokenNumber)) {
    throw new RangeError('cryptogram: tokenNumber must be digits');
  }
  if (typeof atc !== 'bigint' || atc < 0n || atc > UINT64_MAX) throw new RangeError('cryptogram: atc must be a uint64 bigint');
  if (typeof amountMinor !== 'bigint' || amountMinor < INT64_MIN || amountMinor > INT64_MAX) {
    throw new RangeError('cryptogram: amountMinor must be an int64 bigint');
  }
  if (typeof currency !== 'string' || !/^[A-Z]{3}$/.test(currency)) {
    throw new RangeError('cryptogram: currency must be an ISO 4217 alphabetic code');
  }
  // A lone surrogate would encode as U+FFFD and collide with a real U+FFFD, breaking injectivity.
  if (typeof merchantId !== 'string' || Buffer.from(merchantId, 'utf8').toString('utf8') !== merchantId) {
    throw new RangeError('cryptogram: merchantId must be well-formed text');
  }
  if (!Buffer.isBuffer(terminalNonce)) throw new RangeError('cryptogram: terminalNonce must be a Buffer');

  const atcBytes = Buffer.alloc(8);
  atcBytes.writeBigUInt64BE(atc);
  const amountBytes = Buffer.alloc(8);
  amountBytes.writeBigInt64BE(amountMinor);
  const parts = [
    Buffer.from(tokenNumber, 'ascii'),
    atcBytes,
    amountBytes,
    Buffer.from(currency, 'ascii'),
    Buffer.from(merchantId, 'utf8'),
    terminalNonce,
  ];
  const out: Buffer[] = [Buffer.from([VERSION])];
  for (const part of parts) {
    if (part.length > 0xffff) throw new RangeError('cryptogram: field longer than 65535 bytes');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(part.length);
    out.push(len, part);
  }
  return Buffer.concat(out);
}

/**
 * Computes a payment cryptogram: the first 16 bytes of HMAC-SHA256(tokenKey, cryptogramInput(fields)).
 *
 * @throws RangeError on an empty token key or invalid fields (see {@link cryptogramInput}).
 */
export function computeCryptogram(tokenKey: Buffer, fields: CryptogramFields): Buffer {
  if (!Buffer.isBuffer(tokenKey) || tokenKey.length === 0) throw new RangeError('cryptogram: tokenKey must be non-empty');
  return createHmac('sha256', tokenKey).update(cryptogramInput(fields)).digest().subarray(0, CRYPTOGRAM_BYTES);
}

/**
 * Checks a cryptogram in constant time. Never throws: a cryptogram of the wrong length or
 * fields that cannot be encoded (both come from the terminal, so are untrusted) give false.
 */
export function verifyCryptogram(tokenKey: Buffer, fields: CryptogramFields, given: Buffer): boolean {
  if (!Buffer.isBuffer(given) || given.length !== CRYPTOGRAM_BYTES) return false;
  let expected: Buffer;
  try {
    expected = computeCryptogram(tokenKey, fields);
  } catch {
    return false;
  }
  return timingSafeEqual(expected, given);
}

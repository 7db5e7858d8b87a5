import { createPublicKey, KeyObject } from 'crypto';

/** Thrown when bytes or a KeyObject are not an acceptable Ed25519/X25519 public key. */
export class MalformedKey extends Error {
  override readonly name = 'MalformedKey';
}

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

/**
 * Turns a raw 32-byte Ed25519 public key (RFC 8032 encoding) into a Node KeyObject.
 *
 * OpenSSL imports any 32 bytes without checking them, so the point is decoded here: the
 * encoding must be canonical, on the curve, and not of small order (a small-order key lets
 * anyone produce signatures that verify, so it would prove nothing about a device).
 *
 * @throws MalformedKey if `raw` is not exactly 32 bytes or not an acceptable point.
 */
export function ed25519PublicKeyFromRaw(raw: Buffer): KeyObject {
  checkLength(raw, 'Ed25519');
  const point = decodeEd25519Point(raw);
  if (!point) throw new MalformedKey('Ed25519 public key is not a valid curve point');
  if (isSmallOrder(point)) throw new MalformedKey('Ed25519 public key is a small-order point');
  return fromSpki(ED25519_SPKI_PREFIX, raw);
}

/**
 * Turns a raw 32-byte X25519 public key (RFC 7748 u-coordinate) into a Node KeyObject.
 * Every 32-byte string is a u-coordinate; low-order inputs are caught later, when ECDH
 * yields an all-zero secret and Node's `diffieHellman` throws.
 *
 * @throws MalformedKey if `raw` is not exactly 32 bytes.
 */
export function x25519PublicKeyFromRaw(raw: Buffer): KeyObject {
  checkLength(raw, 'X25519');
  return fromSpki(X25519_SPKI_PREFIX, raw);
}

/**
 * Returns the raw 32-byte public key of an Ed25519 or X25519 KeyObject.
 * A private key is accepted too; its public half is returned.
 *
 * @throws MalformedKey for a secret key or any other key type.
 */
export function rawPublicKey(key: KeyObject): Buffer {
  if (key.type === 'secret') throw new MalformedKey('expected an asymmetric key');
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const der = pub.export({ format: 'der', type: 'spki' });
  for (const prefix of [ED25519_SPKI_PREFIX, X25519_SPKI_PREFIX]) {
    if (der.length === prefix.length + 32 && der.subarray(0, prefix.length).equals(prefix)) {
      return Buffer.from(der.subarray(prefix.length));
    }
  }
  throw new MalformedKey(`expected an Ed25519 or X25519 key, got ${pub.asymmetricKeyType ?? 'unknown'}`);
}

function checkLength(raw: Buffer, kind: string): void {
  if (!Buffer.isBuffer(raw) || raw.length !== 32) {
    throw new MalformedKey(`${kind} public key must be exactly 32 bytes`);
  }
}

function fromSpki(prefix: Buffer, raw: Buffer): KeyObject {
  try {
    return createPublicKey({ key: Buffer.concat([prefix, raw]), format: 'der', type: 'spki' });
  } catch {
    throw new MalformedKey('public key rejected by the crypto provider');
  }
}

// Edwards25519 arithmetic (RFC 8032 §5.1), only what key validation needs; speed is irrelevant.
const P = 2n ** 255n - 19n;
const D = mod(-121665n * inv(121666n));
const SQRT_M1 = pow(2n, (P - 1n) / 4n);

type Point = { x: bigint; y: bigint };

function mod(a: bigint): bigint {
  const r = a % P;
  return r >= 0n ? r : r + P;
}

function pow(base: bigint, exp: bigint): bigint {
  let result = 1n;
  let b = mod(base);
  for (let e = exp; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % P;
    b = (b * b) % P;
  }
  return result;
}

function inv(a: bigint): bigint {
  return pow(a, P - 2n);
}

/** RFC 8032 §5.1.3 point decoding; undefined when the bytes do not encode a point. */
function decodeEd25519Point(raw: Buffer): Point | undefined {
  const bytes = Buffer.from(raw);
  const sign = BigInt(bytes[31] >> 7);
  bytes[31] &= 0x7f;
  const y = BigInt('0x' + Buffer.from(bytes).reverse().toString('hex'));
  if (y >= P) return undefined;
  const u = mod(y * y - 1n);
  const v = mod(D * y * y + 1n);
  let x = mod(u * pow(v, 3n) * pow(u * pow(v, 7n), (P - 5n) / 8n));
  const vx2 = mod(v * x * x);
  if (vx2 === mod(-u)) x = mod(x * SQRT_M1);
  else if (vx2 !== u) return undefined;
  if (x === 0n && sign === 1n) return undefined;
  if ((x & 1n) !== sign) x = P - x;
  return { x, y };
}

/** [8]P == identity, i.e. the point lies in the cofactor-8 torsion subgroup. */
function isSmallOrder(p: Point): boolean {
  let q = p;
  for (let i = 0; i < 3; i++) q = add(q, q);
  return q.x === 0n && q.y === 1n;
}

// Complete twisted-Edwards addition (a = -1), safe for doubling.
function add(p: Point, q: Point): Point {
  const t = mod(D * p.x * q.x * p.y * q.y);
  return {
    x: mod((p.x * q.y + p.y * q.x) * inv(1n + t)),
    y: mod((p.y * q.y + p.x * q.x) * inv(1n - t)),
  };
}

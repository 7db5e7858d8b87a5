import { createCipheriv, createDecipheriv, diffieHellman, generateKeyPairSync, hkdfSync, KeyObject, randomBytes } from 'crypto';
import { MalformedKey, rawPublicKey, x25519PublicKeyFromRaw } from './keys';

/** A key sealed to one band's X25519 key; every field is safe to send to the band. */
export interface WrappedKey {
  ephemeralPublicKey: Buffer;
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/** Thrown when a wrapped key cannot be opened: tampered, wrong device, or wrong context. */
export class KeyUnwrapFailed extends Error {
  override readonly name = 'KeyUnwrapFailed';
}

const SALT = Buffer.from('wristpay-key-wrap-v1', 'utf8');
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Seals `key` to a band: a fresh ephemeral X25519 key pair, ECDH with the band's public key,
 * HKDF-SHA256(salt = "wristpay-key-wrap-v1", info = context, 32) as the AES-256-GCM key,
 * a random 12-byte IV and AAD = context. The context (e.g. the token id) binds the sealed key
 * to its purpose: opening it under another context fails.
 *
 * @throws MalformedKey if the device key is not 32 bytes or is a low-order point.
 * @throws RangeError on an empty key or context.
 */
export function wrapKeyForDevice(deviceX25519PublicRaw: Buffer, key: Buffer, context: string): WrappedKey {
  if (!Buffer.isBuffer(key) || key.length === 0) throw new RangeError('wrapKeyForDevice: key must be non-empty');
  checkContext(context);
  const devicePublic = x25519PublicKeyFromRaw(deviceX25519PublicRaw);
  const ephemeral = generateKeyPairSync('x25519');
  let aesKey: Buffer;
  try {
    aesKey = wrapKey(ephemeral.privateKey, devicePublic, context);
  } catch {
    // OpenSSL refuses an all-zero shared secret, which is what a low-order public key yields.
    throw new MalformedKey('X25519 public key is a low-order point');
  }
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', aesKey, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(context, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(key), cipher.final()]);
  aesKey.fill(0);
  return { ephemeralPublicKey: rawPublicKey(ephemeral.publicKey), iv, ciphertext, tag: cipher.getAuthTag() };
}

/**
 * Opens a key sealed by {@link wrapKeyForDevice}, on the band holding `devicePrivateKey`.
 *
 * @throws KeyUnwrapFailed on any tampering, the wrong device key, the wrong context or
 *   malformed fields; the message never contains key material.
 */
export function unwrapKeyOnDevice(devicePrivateKey: KeyObject, wrapped: WrappedKey, context: string): Buffer {
  checkContext(context);
  if (devicePrivateKey.type !== 'private' || devicePrivateKey.asymmetricKeyType !== 'x25519') {
    throw new KeyUnwrapFailed('device key must be an X25519 private key');
  }
  const { ephemeralPublicKey, iv, ciphertext, tag } = wrapped;
  if (!Buffer.isBuffer(iv) || iv.length !== IV_BYTES || !Buffer.isBuffer(tag) || tag.length !== TAG_BYTES || !Buffer.isBuffer(ciphertext)) {
    throw new KeyUnwrapFailed('wrapped key has malformed fields');
  }
  // X25519 ignores the top bit and reduces u mod p (RFC 7748 §5), so several encodings give the
  // same secret; wrapKeyForDevice only emits the canonical one, so anything else was tampered.
  if (!isCanonicalX25519(ephemeralPublicKey)) throw new KeyUnwrapFailed('wrapped key has a non-canonical ephemeral key');
  try {
    const aesKey = wrapKey(devicePrivateKey, x25519PublicKeyFromRaw(ephemeralPublicKey), context);
    // authTagLength pins the tag size so a truncated tag cannot be accepted.
    const decipher = createDecipheriv('aes-256-gcm', aesKey, iv, { authTagLength: TAG_BYTES });
    aesKey.fill(0);
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    throw new KeyUnwrapFailed('wrapped key failed authentication');
  }
}

function wrapKey(privateKey: KeyObject, publicKey: KeyObject, context: string): Buffer {
  const shared = diffieHellman({ privateKey, publicKey });
  const key = Buffer.from(hkdfSync('sha256', shared, SALT, Buffer.from(context, 'utf8'), 32));
  shared.fill(0);
  return key;
}

function isCanonicalX25519(raw: Buffer): boolean {
  if (!Buffer.isBuffer(raw) || raw.length !== 32 || raw[31] & 0x80) return false;
  // u >= p = 2^255 - 19 only when bytes are ed..ff, ff x 30, 7f (little-endian).
  return !(raw[31] === 0x7f && raw[0] >= 0xed && raw.subarray(1, 31).every((b) => b === 0xff));
}

function checkContext(context: string): void {
  if (typeof context !== 'string' || context.length === 0) throw new RangeError('key wrap context must be non-empty');
}

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';

/**
 * Envelope encryption for the vault. Each record gets its own random 256-bit data key, which
 * encrypts the record with AES-256-GCM; a key-encryption key (KEK), chosen by version, wraps
 * the data key with AES-256-GCM. Rotating a KEK therefore re-wraps 60 bytes per record and
 * never touches the record itself.
 *
 * Both layers carry associated data: the record's ciphertext is bound to its context (the
 * token id), and the wrapped data key to the context and its KEK version, so a ciphertext or a
 * wrapped key copied onto another row, or relabelled with another version, fails to open.
 */

const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const WRAPPED_KEY_BYTES = IV_BYTES + KEY_BYTES + TAG_BYTES;
const LABEL = 'wristpay-vault-v1';

/** A vault key problem at start-up (bad VAULT_KEKS); the message never carries key material. */
export class KeyringError extends Error {
  override readonly name = 'KeyringError';
}

/** A record or wrapped key failed authentication, or its KEK version is unknown. */
export class EnvelopeOpenFailed extends Error {
  override readonly name = 'EnvelopeOpenFailed';
}

// The KEKs live outside the Keyring object, so no property walk (logger, inspect, JSON) can reach them.
const KEKS = new WeakMap<Keyring, ReadonlyMap<number, Buffer>>();

function kekOf(keyring: Keyring, version: number): Buffer {
  const key = KEKS.get(keyring)?.get(version);
  if (!key) throw new EnvelopeOpenFailed(`KEK version ${version} is not configured`);
  return key;
}

/** The KEKs by version and the version new records are wrapped with. Never exposes or prints its keys. */
export class Keyring {

  constructor(
    keks: ReadonlyMap<number, Buffer>,
    readonly activeVersion: number,
  ) {
    for (const [version, key] of keks) {
      if (!Number.isInteger(version) || version < 1) throw new KeyringError(`KEK version ${version} must be a positive integer`);
      if (!Buffer.isBuffer(key) || key.length !== KEY_BYTES) throw new KeyringError(`KEK version ${version} must be ${KEY_BYTES} bytes`);
    }
    if (!keks.has(activeVersion)) throw new KeyringError(`active KEK version ${activeVersion} is not among the configured versions (${[...keks.keys()].join(', ')})`);
    KEKS.set(this, new Map([...keks].map(([v, k]) => [v, Buffer.from(k)])));
  }

  /** Parses "1:<base64>,2:<base64>" (the VAULT_KEKS format). */
  static parse(spec: string, activeVersion: number): Keyring {
    const keks = new Map<number, Buffer>();
    for (const part of spec.split(',')) {
      const match = /^(\d+):([A-Za-z0-9+/]+={0,2})$/.exec(part.trim());
      if (!match) throw new KeyringError('each entry must be "version:base64key"');
      const version = Number(match[1]);
      if (keks.has(version)) throw new KeyringError(`KEK version ${version} is listed twice`);
      const key = Buffer.from(match[2]!, 'base64');
      if (key.length !== KEY_BYTES) throw new KeyringError(`KEK version ${version} must decode to ${KEY_BYTES} bytes`);
      keks.set(version, key);
    }
    return new Keyring(keks, activeVersion);
  }

  get versions(): number[] {
    return [...KEKS.get(this)!.keys()].sort((a, b) => a - b);
  }

  has(version: number): boolean {
    return KEKS.get(this)!.has(version);
  }

  toJSON(): { activeVersion: number; versions: number[] } {
    return { activeVersion: this.activeVersion, versions: this.versions };
  }

  [inspect.custom](): string {
    return `Keyring ${JSON.stringify(this.toJSON())}`;
  }
}

/** A data key wrapped under one KEK version: iv ‖ ciphertext ‖ tag. */
export interface WrappedDataKey {
  wrappedDataKey: Buffer;
  kekVersion: number;
}

/** A sealed record: what the vault stores. Every field is safe to store; none is secret on its own. */
export interface SealedRecord extends WrappedDataKey {
  ciphertext: Buffer;
  iv: Buffer;
  tag: Buffer;
}

const dataAad = (context: string) => Buffer.from(`${LABEL}|data|${context}`, 'utf8');
const keyAad = (context: string, version: number) => Buffer.from(`${LABEL}|kek|${version}|${context}`, 'utf8');

function checkContext(context: string): void {
  if (typeof context !== 'string' || context.length === 0) throw new RangeError('envelope context must be non-empty');
}

function gcmSeal(key: Buffer, plaintext: Buffer, aad: Buffer): { iv: Buffer; ciphertext: Buffer; tag: Buffer } {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { iv, ciphertext, tag: cipher.getAuthTag() };
}

function gcmOpen(key: Buffer, sealed: { iv: Buffer; ciphertext: Buffer; tag: Buffer }, aad: Buffer, what: string): Buffer {
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.tag);
    return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]);
  } catch {
    throw new EnvelopeOpenFailed(`${what} failed authentication`);
  }
}

function wrapDataKey(keyring: Keyring, dataKey: Buffer, context: string): WrappedDataKey {
  const version = keyring.activeVersion;
  const { iv, ciphertext, tag } = gcmSeal(kekOf(keyring, version), dataKey, keyAad(context, version));
  return { wrappedDataKey: Buffer.concat([iv, ciphertext, tag]), kekVersion: version };
}

function unwrapDataKey(keyring: Keyring, wrapped: WrappedDataKey, context: string): Buffer {
  const blob = Buffer.from(wrapped.wrappedDataKey);
  if (blob.length !== WRAPPED_KEY_BYTES) throw new EnvelopeOpenFailed('wrapped data key has the wrong length');
  const sealed = { iv: blob.subarray(0, IV_BYTES), ciphertext: blob.subarray(IV_BYTES, IV_BYTES + KEY_BYTES), tag: blob.subarray(IV_BYTES + KEY_BYTES) };
  return gcmOpen(kekOf(keyring, wrapped.kekVersion), sealed, keyAad(context, wrapped.kekVersion), 'wrapped data key');
}

/** Encrypts `plaintext` under a fresh data key, wrapped with the active KEK; `context` is the record id. */
export function seal(keyring: Keyring, plaintext: Buffer, context: string): SealedRecord {
  checkContext(context);
  const dataKey = randomBytes(KEY_BYTES);
  try {
    const data = gcmSeal(dataKey, plaintext, dataAad(context));
    return { ...data, ...wrapDataKey(keyring, dataKey, context) };
  } finally {
    dataKey.fill(0);
  }
}

/** Decrypts a sealed record; EnvelopeOpenFailed on any tampering, a wrong context or an unknown KEK version. */
export function open(keyring: Keyring, record: SealedRecord, context: string): Buffer {
  checkContext(context);
  const dataKey = unwrapDataKey(keyring, record, context);
  try {
    return gcmOpen(dataKey, { iv: Buffer.from(record.iv), ciphertext: Buffer.from(record.ciphertext), tag: Buffer.from(record.tag) }, dataAad(context), 'vault record');
  } finally {
    dataKey.fill(0);
  }
}

/** Re-wraps a record's data key under the active KEK; the record's ciphertext is unchanged. */
export function rewrap(keyring: Keyring, wrapped: WrappedDataKey, context: string): WrappedDataKey {
  checkContext(context);
  const dataKey = unwrapDataKey(keyring, wrapped, context);
  try {
    return wrapDataKey(keyring, dataKey, context);
  } finally {
    dataKey.fill(0);
  }
}

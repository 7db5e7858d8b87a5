import { generateKeyPairSync, KeyObject, randomBytes, sign } from 'crypto';
import { inspect } from 'util';
import {
  ChallengePurpose,
  challengeMessage,
  computeCryptogram,
  offlineCodeKey,
  rawPublicKey,
  totp,
  unwrapKeyOnDevice,
  WrappedKey,
} from '../platform/payment-crypto';

/** What a band emits at a terminal: everything the gateway forwards to tokenization.VerifyPayment. */
export interface TapPayload {
  tokenNumber: string;
  atc: bigint;
  terminalNonce: Buffer;
  cryptogram: Buffer;
}

interface InstalledToken {
  tokenId: string;
  tokenNumber: string;
  key: Buffer;
  atc: bigint;
}

/**
 * A simulated fitness band: holds its device keys and one payment token, signs challenges,
 * and taps at terminals. Secrets live in `#private` fields and the custom inspect/JSON views
 * show only public facts, so logging a Band cannot leak a key.
 */
export class Band {
  readonly #model: string;
  readonly #serial: string;
  readonly #signingKey: KeyObject;
  readonly #ed25519Public: Buffer;
  readonly #x25519Private: KeyObject;
  readonly #x25519Public: Buffer;
  #deviceId: string | undefined;
  #token: InstalledToken | undefined;
  #lastTap: TapPayload | undefined;

  private constructor(model: string, serial: string) {
    this.#model = model;
    this.#serial = serial;
    const ed = generateKeyPairSync('ed25519');
    const x = generateKeyPairSync('x25519');
    this.#signingKey = ed.privateKey;
    this.#ed25519Public = rawPublicKey(ed.publicKey);
    this.#x25519Private = x.privateKey;
    this.#x25519Public = rawPublicKey(x.publicKey);
  }

  /** Makes a band with fresh Ed25519 (device signing) and X25519 (key delivery) key pairs. */
  static create(options: { model?: string; serial?: string } = {}): Band {
    return new Band(options.model ?? 'WristPay Band 1', options.serial ?? `WPB${randomBytes(5).toString('hex').toUpperCase()}`);
  }

  get model(): string {
    return this.#model;
  }

  get serial(): string {
    return this.#serial;
  }

  /** Raw 32-byte Ed25519 public key, registered with device-registry. */
  get ed25519PublicKey(): Buffer {
    return Buffer.from(this.#ed25519Public);
  }

  /** Raw 32-byte X25519 public key, to which tokenization seals token keys. */
  get x25519PublicKey(): Buffer {
    return Buffer.from(this.#x25519Public);
  }

  /** The id device-registry assigned at registration; undefined before. */
  get deviceId(): string | undefined {
    return this.#deviceId;
  }

  set deviceId(id: string | undefined) {
    if (id !== undefined && (typeof id !== 'string' || id.length === 0)) throw new RangeError('deviceId must be a non-empty string');
    this.#deviceId = id;
  }

  /** Signs a device-registry challenge with the device key. */
  signChallenge(challenge: { purpose: ChallengePurpose; challengeId: string; nonce: Buffer }): Buffer {
    if (this.#deviceId === undefined) throw new Error('band has no deviceId yet: register it first');
    return sign(null, challengeMessage({ ...challenge, deviceId: this.#deviceId }), this.#signingKey);
  }

  /**
   * Installs a provisioned token, opening its key sealed to this band (context = tokenId).
   * Replaces any previous token; the new token's ATC starts from zero.
   * @throws KeyUnwrapFailed if the wrapped key was not sealed to this band for this token.
   */
  installToken(token: { tokenId: string; tokenNumber: string; wrapped: WrappedKey }): void {
    const key = unwrapKeyOnDevice(this.#x25519Private, token.wrapped, token.tokenId);
    this.#token?.key.fill(0);
    this.#token = { tokenId: token.tokenId, tokenNumber: token.tokenNumber, key, atc: 0n };
    this.#lastTap = undefined;
  }

  /** Pays at a terminal: bumps the ATC (first tap is 1), then computes the cryptogram. */
  tap(request: { amountMinor: bigint; currency: string; merchantId: string; terminalNonce: Buffer }): TapPayload {
    const token = this.#requireToken();
    const atc = token.atc + 1n;
    const { amountMinor, currency, merchantId, terminalNonce } = request;
    const cryptogram = computeCryptogram(token.key, { tokenNumber: token.tokenNumber, atc, amountMinor, currency, merchantId, terminalNonce });
    // Commit the counter only once the cryptogram exists, so a rejected request burns no ATC.
    token.atc = atc;
    this.#lastTap = { tokenNumber: token.tokenNumber, atc, terminalNonce: Buffer.from(terminalNonce), cryptogram };
    return copyTap(this.#lastTap);
  }

  /** The previous tap's payload, byte for byte: simulates a copied (replayed) payment. */
  replayLastTap(): TapPayload {
    if (!this.#lastTap) throw new Error('band has not tapped yet');
    return copyTap(this.#lastTap);
  }

  /** The 8-digit offline code (TOTP, SHA-1, 30 s step) the band shows for QR/offline use. */
  offlineCode(unixSeconds: number = Math.floor(Date.now() / 1000)): string {
    const token = this.#requireToken();
    return totp(offlineCodeKey(token.key), unixSeconds, { digits: 8, algorithm: 'sha1', stepSeconds: 30 });
  }

  /** Public facts only: safe to log. */
  toJSON(): { deviceId?: string; serial: string; model: string; token?: { last4: string; atc: string } } {
    return {
      deviceId: this.#deviceId,
      serial: this.#serial,
      model: this.#model,
      token: this.#token && { last4: this.#token.tokenNumber.slice(-4), atc: this.#token.atc.toString() },
    };
  }

  toString(): string {
    return `Band(${this.#serial})`;
  }

  [inspect.custom](_depth: number, options: object): string {
    return `Band ${inspect(this.toJSON(), options)}`;
  }

  #requireToken(): InstalledToken {
    if (!this.#token) throw new Error('band has no token installed');
    return this.#token;
  }
}

function copyTap(tap: TapPayload): TapPayload {
  return { ...tap, terminalNonce: Buffer.from(tap.terminalNonce), cryptogram: Buffer.from(tap.cryptogram) };
}

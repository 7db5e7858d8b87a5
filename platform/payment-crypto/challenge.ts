import { verify } from 'crypto';
import { ed25519PublicKeyFromRaw } from './keys';

/** What a signed challenge authorises: pairing a band, starting a live session, or one payment (a step-up). */
export type ChallengePurpose = 'PAIRING' | 'SESSION' | 'PAYMENT';

/** The fields a band signs to answer a device-registry challenge. */
export interface ChallengeFields {
  purpose: ChallengePurpose;
  deviceId: string;
  challengeId: string;
  nonce: Buffer;
}

const DOMAIN = 'wristpay-challenge-v1';
const PURPOSES: readonly string[] = ['PAIRING', 'SESSION', 'PAYMENT'];
const NUL = Buffer.from([0]);

/**
 * Builds the exact bytes a band signs for a challenge:
 * utf8 `"wristpay-challenge-v1" 0x00 purpose 0x00 deviceId 0x00 challengeId 0x00 nonce`.
 *
 * The domain string and purpose stop a signature made for one use being replayed for another.
 * NUL separators are only unambiguous if the text fields cannot contain NUL, hence the check;
 * the nonce is last, so it may hold any bytes.
 *
 * @throws RangeError on an unknown purpose, or an empty or NUL-containing id.
 */
export function challengeMessage(fields: ChallengeFields): Buffer {
  const { purpose, deviceId, challengeId, nonce } = fields;
  if (!PURPOSES.includes(purpose)) throw new RangeError('challengeMessage: purpose must be PAIRING, SESSION or PAYMENT');
  for (const [name, value] of [['deviceId', deviceId], ['challengeId', challengeId]] as const) {
    if (typeof value !== 'string' || value.length === 0 || value.includes('\0')) {
      throw new RangeError(`challengeMessage: ${name} must be a non-empty string without NUL`);
    }
  }
  if (!Buffer.isBuffer(nonce)) throw new RangeError('challengeMessage: nonce must be a Buffer');
  return Buffer.concat([
    Buffer.from(DOMAIN, 'utf8'), NUL,
    Buffer.from(purpose, 'utf8'), NUL,
    Buffer.from(deviceId, 'utf8'), NUL,
    Buffer.from(challengeId, 'utf8'), NUL,
    nonce,
  ]);
}

/**
 * Verifies an Ed25519 signature by a band's registered device key.
 * Never throws: a malformed key, a signature that is not 64 bytes or any provider error
 * yields false, because every input here comes from the outside.
 */
export function verifyChallengeSignature(publicKeyRaw: Buffer, message: Buffer, signature: Buffer): boolean {
  try {
    if (!Buffer.isBuffer(message) || !Buffer.isBuffer(signature) || signature.length !== 64) return false;
    return verify(null, message, ed25519PublicKeyFromRaw(publicKeyRaw), signature);
  } catch {
    return false;
  }
}

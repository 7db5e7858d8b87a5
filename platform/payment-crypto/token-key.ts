import { hkdfSync } from 'crypto';

const TOKEN_KEY_SALT = 'wristpay-token-key-v1';
const OFFLINE_CODE_SALT = 'wristpay-offline-code-v1';

/**
 * Derives the per-token key: HKDF-SHA256(ikm = masterKey, salt = "wristpay-token-key-v1",
 * info = tokenId, 32 bytes). The vault keeps only the master key; each token's key is
 * recomputed on demand, so one leaked token key exposes one token.
 *
 * @param masterKey - at least 32 bytes, so the derived keys keep 256-bit strength.
 * @param tokenId - the token's stable id (not the token number), non-empty.
 * @throws RangeError on a short master key or empty token id.
 */
export function deriveTokenKey(masterKey: Buffer, tokenId: string): Buffer {
  if (!Buffer.isBuffer(masterKey) || masterKey.length < 32) {
    throw new RangeError('deriveTokenKey: masterKey must be at least 32 bytes');
  }
  if (typeof tokenId !== 'string' || tokenId.length === 0) {
    throw new RangeError('deriveTokenKey: tokenId must be a non-empty string');
  }
  return hkdf(masterKey, TOKEN_KEY_SALT, tokenId);
}

/**
 * Derives the key for a token's offline one-time codes: HKDF-SHA256(ikm = tokenKey,
 * salt = "wristpay-offline-code-v1", info = "totp", 32 bytes). Kept separate from the
 * cryptogram key so an OTP seed can never be used to forge a cryptogram.
 *
 * @throws RangeError unless `tokenKey` is exactly 32 bytes.
 */
export function offlineCodeKey(tokenKey: Buffer): Buffer {
  if (!Buffer.isBuffer(tokenKey) || tokenKey.length !== 32) {
    throw new RangeError('offlineCodeKey: tokenKey must be exactly 32 bytes');
  }
  return hkdf(tokenKey, OFFLINE_CODE_SALT, 'totp');
}

function hkdf(ikm: Buffer, salt: string, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, Buffer.from(salt, 'utf8'), Buffer.from(info, 'utf8'), 32));
}

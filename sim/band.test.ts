import { randomBytes } from 'crypto';
import { inspect } from 'util';
import {
  challengeMessage,
  deriveTokenKey,
  generateTokenNumber,
  KeyUnwrapFailed,
  offlineCodeKey,
  totp,
  verifyChallengeSignature,
  verifyCryptogram,
  wrapKeyForDevice,
} from '../platform/payment-crypto';
import { Band } from './band';
import { terminalNonce } from './terminal';

const master = randomBytes(32);

function provisionedBand(tokenId = `tok_${randomBytes(4).toString('hex')}`) {
  const band = Band.create({ model: 'Test Band', serial: 'SN-1' });
  band.deviceId = 'dev_1';
  const tokenNumber = generateTokenNumber('489537', 16);
  const tokenKey = deriveTokenKey(master, tokenId);
  band.installToken({ tokenId, tokenNumber, wrapped: wrapKeyForDevice(band.x25519PublicKey, tokenKey, tokenId) });
  return { band, tokenId, tokenNumber, tokenKey };
}

const purchase = () => ({ amountMinor: 1999n, currency: 'EUR', merchantId: 'merchant-42', terminalNonce: terminalNonce() });

describe('Band', () => {
  it('creates distinct 32-byte Ed25519 and X25519 public keys and keeps model and serial', () => {
    const a = Band.create({ model: 'M', serial: 'S' });
    const b = Band.create();
    expect(a.ed25519PublicKey).toHaveLength(32);
    expect(a.x25519PublicKey).toHaveLength(32);
    expect(a.ed25519PublicKey.equals(b.ed25519PublicKey)).toBe(false);
    expect([a.model, a.serial]).toEqual(['M', 'S']);
    expect(b.serial).toMatch(/^WPB[0-9A-F]{10}$/);
    expect(b.deviceId).toBeUndefined();
  });

  it('signs a challenge that verifyChallengeSignature accepts, bound to its deviceId and purpose', () => {
    const band = Band.create();
    const challenge = { purpose: 'SESSION' as const, challengeId: 'ch_1', nonce: randomBytes(32) };
    expect(() => band.signChallenge(challenge)).toThrow(/deviceId/);
    band.deviceId = 'dev_7';
    const sig = band.signChallenge(challenge);
    expect(verifyChallengeSignature(band.ed25519PublicKey, challengeMessage({ ...challenge, deviceId: 'dev_7' }), sig)).toBe(true);
    expect(verifyChallengeSignature(band.ed25519PublicKey, challengeMessage({ ...challenge, deviceId: 'dev_8' }), sig)).toBe(false);
    expect(verifyChallengeSignature(band.ed25519PublicKey, challengeMessage({ ...challenge, purpose: 'PAIRING', deviceId: 'dev_7' }), sig)).toBe(false);
    expect(verifyChallengeSignature(Band.create().ed25519PublicKey, challengeMessage({ ...challenge, deviceId: 'dev_7' }), sig)).toBe(false);
  });

  it('signs a PAYMENT step-up that verifies as PAYMENT and not as SESSION or PAIRING', () => {
    const band = Band.create();
    band.deviceId = 'dev_7';
    const challenge = { purpose: 'PAYMENT' as const, challengeId: 'ch_pay_1', nonce: randomBytes(32) };
    const sig = band.signChallenge(challenge);
    const as = (purpose: 'PAYMENT' | 'SESSION' | 'PAIRING') => verifyChallengeSignature(band.ed25519PublicKey, challengeMessage({ ...challenge, purpose, deviceId: 'dev_7' }), sig);
    expect(as('PAYMENT')).toBe(true);
    expect(as('SESSION')).toBe(false);
    expect(as('PAIRING')).toBe(false);
    // And a session signature over the same challenge does not confirm a payment.
    const sessionSig = band.signChallenge({ ...challenge, purpose: 'SESSION' });
    expect(verifyChallengeSignature(band.ed25519PublicKey, challengeMessage({ ...challenge, deviceId: 'dev_7' }), sessionSig)).toBe(false);
  });

  it('wrap -> install -> tap yields a cryptogram the issuer verifies with the derived token key', () => {
    const { band, tokenNumber, tokenId } = provisionedBand();
    const req = purchase();
    const tap = band.tap(req);
    expect(tap.tokenNumber).toBe(tokenNumber);
    expect(tap.terminalNonce.equals(req.terminalNonce)).toBe(true);
    const issuerKey = deriveTokenKey(master, tokenId);
    const fields = { tokenNumber, atc: tap.atc, ...req };
    expect(verifyCryptogram(issuerKey, fields, tap.cryptogram)).toBe(true);
    expect(verifyCryptogram(issuerKey, { ...fields, amountMinor: 2000n }, tap.cryptogram)).toBe(false);
    expect(verifyCryptogram(deriveTokenKey(randomBytes(32), tokenId), fields, tap.cryptogram)).toBe(false);
  });

  it('starts the ATC at 1 and increases it on every tap', () => {
    const { band } = provisionedBand();
    const atcs = [1, 2, 3, 4].map(() => band.tap(purchase()).atc);
    expect(atcs).toEqual([1n, 2n, 3n, 4n]);
  });

  it('does not burn an ATC on a tap it refuses', () => {
    const { band } = provisionedBand();
    expect(() => band.tap({ ...purchase(), currency: 'euro' })).toThrow(RangeError);
    expect(band.tap(purchase()).atc).toBe(1n);
  });

  it('replayLastTap returns the previous payload byte for byte without advancing the ATC', () => {
    const { band } = provisionedBand();
    expect(() => band.replayLastTap()).toThrow();
    const tap = band.tap(purchase());
    const replay = band.replayLastTap();
    expect(replay).toEqual(tap);
    expect(replay.cryptogram).not.toBe(tap.cryptogram);
    tap.cryptogram.fill(0);
    expect(band.replayLastTap().cryptogram.equals(replay.cryptogram)).toBe(true);
    expect(band.tap(purchase()).atc).toBe(2n);
  });

  it('refuses a token key sealed for another token or another band', () => {
    const band = Band.create();
    const other = Band.create();
    const key = deriveTokenKey(master, 'tok_a');
    const tokenNumber = generateTokenNumber('489537', 16);
    expect(() => band.installToken({ tokenId: 'tok_b', tokenNumber, wrapped: wrapKeyForDevice(band.x25519PublicKey, key, 'tok_a') })).toThrow(KeyUnwrapFailed);
    expect(() => band.installToken({ tokenId: 'tok_a', tokenNumber, wrapped: wrapKeyForDevice(other.x25519PublicKey, key, 'tok_a') })).toThrow(KeyUnwrapFailed);
    expect(() => band.tap(purchase())).toThrow(/no token/);
  });

  it('shows an 8-digit SHA-1 TOTP over the offline-code key', () => {
    const { band, tokenKey } = provisionedBand();
    const t = 1_700_000_000;
    const code = band.offlineCode(t);
    expect(code).toMatch(/^[0-9]{8}$/);
    expect(code).toBe(totp(offlineCodeKey(tokenKey), t, { digits: 8, algorithm: 'sha1', stepSeconds: 30 }));
    expect(band.offlineCode(t + 29 - (t % 30))).toBe(code);
    expect(band.offlineCode()).toMatch(/^[0-9]{8}$/);
  });

  it('never shows the token key (or other secrets) in inspect, JSON or toString', () => {
    const { band, tokenKey, tokenNumber } = provisionedBand();
    band.tap(purchase());
    const views = [inspect(band), inspect(band, { depth: Infinity, showHidden: true }), JSON.stringify(band), String(band), `${band}`];
    const secrets = [
      tokenKey.toString('hex'),
      tokenKey.toString('base64'),
      tokenKey.toString('base64url'),
      offlineCodeKey(tokenKey).toString('hex'),
      tokenNumber,
      tokenNumber.slice(0, 12),
    ];
    for (const view of views) {
      for (const secret of secrets) expect(view).not.toContain(secret);
      expect(view).not.toMatch(/PRIVATE KEY|[0-9a-f]{64}/i);
    }
    expect(JSON.parse(JSON.stringify(band))).toEqual({
      deviceId: 'dev_1',
      serial: 'SN-1',
      model: 'Test Band',
      token: { last4: tokenNumber.slice(-4), atc: '1' },
    });
    expect(inspect(band)).toContain(tokenNumber.slice(-4));
  });
});

describe('terminalNonce', () => {
  it('is 4 fresh random bytes', () => {
    const a = terminalNonce();
    expect(a).toHaveLength(4);
    const seen = new Set(Array.from({ length: 50 }, () => terminalNonce().toString('hex')));
    expect(seen.size).toBeGreaterThan(45);
  });
});

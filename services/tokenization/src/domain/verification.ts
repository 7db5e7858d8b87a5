import { timingSafeEqual } from 'node:crypto';
import { Channel } from '../../../../gen/wristpay/common/v1/common';
import { InvalidArgument } from '../../../../platform/errors';
import { CRYPTOGRAM_BYTES, hotp, offlineCodeKey, totpStep } from '../../../../platform/payment-crypto';
import type { TokenState } from './lifecycle';

/** Every answer a credential check can give; each refusal has its own reason. */
export type VerifyOutcome =
  | 'OK'
  | 'REPLAY'
  | 'CRYPTOGRAM_MISMATCH'
  | 'TOKEN_SUSPENDED'
  | 'TOKEN_DELETED'
  | 'WRONG_CHANNEL'
  | 'UNKNOWN_TOKEN'
  | 'CODE_INVALID'
  | 'CODE_REUSED';

export type ChannelName = 'BAND_TAP' | 'BAND_QR';

const INT64_MAX = (1n << 63n) - 1n;
const TOKEN_NUMBER = /^[0-9]{12,19}$/;
const MAX_NONCE_BYTES = 64;
const MAX_MERCHANT_CHARS = 128;

/** The channel's name, or INVALID_ARGUMENT for UNSPECIFIED/unknown values. */
export function channelName(channel: Channel, field = 'channel'): ChannelName {
  if (channel === Channel.CHANNEL_BAND_TAP) return 'BAND_TAP';
  if (channel === Channel.CHANNEL_BAND_QR) return 'BAND_QR';
  throw new InvalidArgument(`${field} must be BAND_TAP or BAND_QR`);
}

export const channelValue = (name: ChannelName): Channel => Channel[`CHANNEL_${name}`];

/** The channels a token is provisioned for: at least one, no duplicates, in enum order. */
export function parseChannels(channels: Channel[]): ChannelName[] {
  if (channels.length === 0) throw new InvalidArgument('channels must list at least one of BAND_TAP, BAND_QR');
  const names = new Set(channels.map((c) => channelName(c, 'channels')));
  return (['BAND_TAP', 'BAND_QR'] as const).filter((name) => names.has(name));
}

export interface PaymentAmount {
  amountMinor: bigint;
  currency: string;
}

export interface PaymentInput extends PaymentAmount {
  tokenNumber: string;
  atc: bigint;
  merchantId: string;
  terminalNonce: Buffer;
  cryptogram: Buffer;
  channel: ChannelName;
}

export function parseTokenNumber(tokenNumber: string): string {
  if (!TOKEN_NUMBER.test(tokenNumber)) throw new InvalidArgument('token_number must be 12 to 19 digits');
  return tokenNumber;
}

export function parseAmount(amount: { amountMinor: bigint; currency: string } | undefined): PaymentAmount {
  if (!amount) throw new InvalidArgument('amount is required');
  if (!/^[A-Z]{3}$/.test(amount.currency)) throw new InvalidArgument('amount.currency must be an ISO 4217 code of 3 uppercase letters');
  if (amount.amountMinor <= 0n) throw new InvalidArgument('amount.amount_minor must be positive');
  return { amountMinor: amount.amountMinor, currency: amount.currency };
}

export function parseMerchant(merchantId: string): string {
  if (!merchantId || merchantId.length > MAX_MERCHANT_CHARS || merchantId.trim() !== merchantId) {
    throw new InvalidArgument(`merchant_id is required (1-${MAX_MERCHANT_CHARS} characters, no surrounding spaces)`);
  }
  return merchantId;
}

/**
 * Validates a tap's fields. Anything malformed is INVALID_ARGUMENT and is refused before the
 * vault is touched, so it burns no counter, writes no failure and publishes no event.
 */
export function parsePayment(req: {
  tokenNumber: string;
  atc: bigint;
  amount?: { amountMinor: bigint; currency: string } | undefined;
  merchantId: string;
  terminalNonce: Uint8Array;
  cryptogram: Uint8Array;
  channel: Channel;
}): PaymentInput {
  const tokenNumber = parseTokenNumber(req.tokenNumber);
  // The band's first tap is ATC 1; the high-water mark is a PostgreSQL bigint.
  if (req.atc < 1n || req.atc > INT64_MAX) throw new InvalidArgument('atc must be between 1 and 2^63-1');
  const amount = parseAmount(req.amount);
  const merchantId = parseMerchant(req.merchantId);
  if (req.terminalNonce.length === 0 || req.terminalNonce.length > MAX_NONCE_BYTES) {
    throw new InvalidArgument(`terminal_nonce is required (1-${MAX_NONCE_BYTES} bytes)`);
  }
  if (req.cryptogram.length !== CRYPTOGRAM_BYTES) throw new InvalidArgument(`cryptogram must be ${CRYPTOGRAM_BYTES} bytes`);
  return {
    tokenNumber,
    atc: req.atc,
    ...amount,
    merchantId,
    terminalNonce: Buffer.from(req.terminalNonce),
    cryptogram: Buffer.from(req.cryptogram),
    channel: channelName(req.channel),
  };
}

/** What the checks need to know about a token. */
export interface TokenFacts {
  status: TokenState;
  channels: readonly string[];
}

/**
 * The checks before the credential, in their fixed order: known token, status, channel.
 * `undefined` means "go on": the caller then checks the credential (cryptogram or code) and
 * only then moves the replay guard, so a forged credential can never burn a counter or a code.
 */
export function precheck(token: TokenFacts | undefined, channel: ChannelName): VerifyOutcome | undefined {
  if (!token) return 'UNKNOWN_TOKEN';
  const status = refusalForStatus(token.status);
  if (status) return status;
  if (!token.channels.includes(channel)) return 'WRONG_CHANNEL';
  return undefined;
}

/** TOKEN_SUSPENDED / TOKEN_DELETED for a token that may not pay, else undefined. */
export function refusalForStatus(status: TokenState): VerifyOutcome | undefined {
  if (status === 'SUSPENDED') return 'TOKEN_SUSPENDED';
  if (status === 'DELETED') return 'TOKEN_DELETED';
  return undefined;
}

/** Offline codes: RFC 6238 TOTP, SHA-1, 8 digits, over offlineCodeKey(tokenKey). */
export const OFFLINE_CODE_DIGITS = 8;
const OFFLINE_CODE = /^[0-9]{8}$/;

export function parseOfflineCode(code: string): string {
  if (!OFFLINE_CODE.test(code)) throw new InvalidArgument(`code must be ${OFFLINE_CODE_DIGITS} digits`);
  return code;
}

/** The code of the current step and the moment it stops being current. */
export function currentOfflineCode(tokenKey: Buffer, nowSeconds: number, stepSeconds: number): { code: string; step: bigint; validUntil: Date } {
  const step = totpStep(nowSeconds, stepSeconds);
  const code = hotp(offlineCodeKey(tokenKey), step, OFFLINE_CODE_DIGITS, 'sha1');
  return { code, step, validUntil: new Date(Number(step + 1n) * stepSeconds * 1000) };
}

/**
 * The time step whose code equals `code`, looking `window` steps either side of now (clock
 * drift, a code shown just before the step turned); undefined when none does. Every candidate
 * is compared, in constant time, so timing tells nothing about which step nearly matched.
 */
export function matchOfflineCode(tokenKey: Buffer, code: string, nowSeconds: number, stepSeconds: number, window = 1): bigint | undefined {
  const key = offlineCodeKey(tokenKey);
  const now = totpStep(nowSeconds, stepSeconds);
  const given = Buffer.from(code.padEnd(OFFLINE_CODE_DIGITS, '\0').slice(0, OFFLINE_CODE_DIGITS), 'ascii');
  let matched: bigint | undefined;
  // Current step first, so it wins the (1 in 10^8) tie with a neighbour.
  for (const offset of [0n, ...Array.from({ length: window }, (_, i) => [-(BigInt(i) + 1n), BigInt(i) + 1n]).flat()]) {
    const step = now + offset;
    if (step < 0n) continue;
    const expected = Buffer.from(hotp(key, step, OFFLINE_CODE_DIGITS, 'sha1'), 'ascii');
    if (timingSafeEqual(expected, given) && matched === undefined) matched = step;
  }
  key.fill(0);
  return matched;
}

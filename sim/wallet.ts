import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Metadata } from '@grpc/grpc-js';
import { Channel, UnlockMethod } from '../gen/wristpay/common/v1/common';
import { ChallengePurpose } from '../gen/wristpay/device_registry/v1/device_registry';
import type { AuthorizeRequest, AuthorizeResponse, GatewayServiceClient, Payment, QrPayload } from '../gen/wristpay/gateway/v1/gateway';
import type { PromiseClient } from '../platform/grpc/client';
import { Band, type TapPayload } from './band';
import type { MeshClients } from './clients';
import { merchantName, terminalNonce } from './terminal';

/**
 * What the phone wallet does for a band: register, pair, unlock a session, provision a token
 * and fund the wallet. Used by the demo, the end-to-end tests and the benchmarks.
 */
export async function onboardBand(clients: Pick<MeshClients, 'registry' | 'tokenization' | 'settlement'>, accountId: string, topUpMinor: bigint, currency = 'EUR'): Promise<Band> {
  const band = await registerBand(clients.registry, accountId);
  await pairBand(clients.registry, band, accountId);
  await unlock(clients, band);
  const token = await clients.tokenization.provisionToken({
    idempotencyKey: randomUUID(),
    deviceId: band.deviceId!,
    accountId,
    fundingSource: { source: { $case: 'walletAccountId', value: accountId } },
    channels: [Channel.CHANNEL_BAND_TAP, Channel.CHANNEL_BAND_QR],
  });
  band.installToken({ tokenId: token.token!.tokenId, tokenNumber: token.tokenNumber, wrapped: token.wrappedTokenKey! });
  tokenNumbers.set(band, token.tokenNumber);
  if (topUpMinor > 0n) {
    await clients.settlement.topUp({ idempotencyKey: randomUUID(), accountId, amount: { amountMinor: topUpMinor, currency }, sourceReference: `demo-topup-${randomUUID()}` });
  }
  return band;
}

type Registry = MeshClients['registry'];

/** The token number each onboarded band carries (the Band keeps it private; the wallet knows it from provisioning). */
const tokenNumbers = new WeakMap<Band, string>();

/**
 * What the band shows for a QR/offline payment: its token number and the current 8-digit
 * offline code (TOTP from the token key, 30 s step). Each code pays once.
 */
export function qrCode(band: Band, unixSeconds?: number): QrPayload {
  const tokenNumber = tokenNumbers.get(band);
  if (tokenNumber === undefined) throw new Error('band has no token provisioned by onboardBand');
  return { tokenNumber, offlineCode: band.offlineCode(unixSeconds) };
}

/** A new band registered to `accountId` (PENDING_PAIRING), its device id set. */
export async function registerBand(registry: Registry, accountId: string): Promise<Band> {
  const band = Band.create();
  const { device } = await registry.registerDevice({
    idempotencyKey: randomUUID(),
    accountId,
    model: band.model,
    serial: band.serial,
    ed25519PublicKey: band.ed25519PublicKey,
    x25519PublicKey: band.x25519PublicKey,
  });
  band.deviceId = device!.deviceId;
  return band;
}

/** Asks the registry for a challenge and has the band sign it. */
export async function signedChallenge(registry: Registry, band: Band, purpose: 'PAIRING' | 'SESSION'): Promise<{ challengeId: string; signature: Buffer }> {
  const challenge = await registry.createChallenge({
    deviceId: band.deviceId!,
    purpose: purpose === 'PAIRING' ? ChallengePurpose.CHALLENGE_PURPOSE_PAIRING : ChallengePurpose.CHALLENGE_PURPOSE_SESSION,
  });
  return { challengeId: challenge.challengeId, signature: band.signChallenge({ purpose, challengeId: challenge.challengeId, nonce: Buffer.from(challenge.nonce) }) };
}

/** The wallet confirms the pairing with the band's signature: the band becomes ACTIVE. */
export async function pairBand(registry: Registry, band: Band, accountId: string): Promise<void> {
  await registry.pairDevice({ idempotencyKey: randomUUID(), deviceId: band.deviceId!, accountId, ...(await signedChallenge(registry, band, 'PAIRING')) });
}

/** Wrist on, phone unlocked once: a signed session challenge starts a live session. */
export async function unlock(clients: Pick<MeshClients, 'registry'>, band: Band, method = UnlockMethod.UNLOCK_METHOD_BIOMETRIC): Promise<void> {
  await clients.registry.startSession({ idempotencyKey: randomUUID(), deviceId: band.deviceId!, unlockMethod: method, ...(await signedChallenge(clients.registry, band, 'SESSION')) });
}

export interface PaymentAttempt {
  merchantId: string;
  amountMinor: bigint;
  currency?: string;
  /** The tap the terminal forwards; defaults to a fresh tap of `band` for this amount. */
  tap?: TapPayload;
  /** A QR code the terminal scans (see `qrCode`) instead of a tap. */
  qr?: QrPayload;
  /** What the terminal claims the amount is (differs from the tap's only when tampering). */
  presentedAmountMinor?: bigint;
  idempotencyKey?: string;
  /** A voucher of the merchant to apply. */
  voucherCode?: string;
  /** The name the terminal sends; defaults to the demo merchant's display name. */
  merchantName?: string;
}

/** A W3C trace id the caller chooses, so a payment's trace can be found by id afterwards. */
export function newTraceparent(): { traceId: string; metadata: Metadata } {
  const traceId = randomBytes(16).toString('hex');
  const metadata = new Metadata();
  metadata.set('traceparent', `00-${traceId}-${randomBytes(8).toString('hex')}-01`);
  return { traceId, metadata };
}

/** Where a merchant's terminal stands: a fixed spot in Shanghai per merchant, so a retry is the same request. */
export function merchantLocation(merchantId: string): { latitude: number; longitude: number } {
  const h = createHash('sha256').update(merchantId).digest();
  return { latitude: 31.2 + h[0]! / 2560, longitude: 121.45 + h[1]! / 2560 };
}

/**
 * A merchant terminal: the band taps (or shows a QR code, when `attempt.qr` is set), the terminal
 * calls gateway.Authorize (`clients.gateway` presents the merchant's identity). `tap` is what was
 * forwarded for a tap, undefined for a QR payment.
 */
export async function pay(
  clients: Pick<MeshClients, 'gateway'>,
  band: Band,
  attempt: PaymentAttempt,
): Promise<{ response: AuthorizeResponse; ms: number; traceId: string; idempotencyKey: string; tap: TapPayload | undefined }> {
  const currency = attempt.currency ?? 'EUR';
  let tap: TapPayload | undefined;
  let payload: NonNullable<AuthorizeRequest['payload']>;
  if (attempt.qr) {
    payload = { $case: 'qr', value: attempt.qr };
  } else {
    tap = attempt.tap ?? band.tap({ amountMinor: attempt.amountMinor, currency, merchantId: attempt.merchantId, terminalNonce: terminalNonce() });
    payload = { $case: 'tap', value: tap };
  }
  const idempotencyKey = attempt.idempotencyKey ?? randomUUID();
  const { traceId, metadata } = newTraceparent();
  const started = process.hrtime.bigint();
  const response = await clients.gateway.authorize(
    {
      idempotencyKey,
      merchantId: attempt.merchantId,
      amount: { amountMinor: attempt.presentedAmountMinor ?? attempt.amountMinor, currency },
      payload,
      location: merchantLocation(attempt.merchantId),
      terminalId: `pos-${attempt.merchantId}`,
      voucherCode: attempt.voucherCode ?? '',
      merchantName: attempt.merchantName ?? merchantName(attempt.merchantId),
    },
    { metadata },
  );
  return { response, ms: Number(process.hrtime.bigint() - started) / 1e6, traceId, idempotencyKey, tap };
}

/** A step-up as the phone receives it on its alert feed (alerts' StepUp, or the payment.challenged event). */
export interface StepUpToSign {
  paymentId: string;
  accountId: string;
  challengeId: string;
  nonce: Uint8Array;
}

/**
 * The phone confirms a stepped-up payment: the band signs the payment's challenge with its
 * device key (purpose PAYMENT) and the wallet backend sends the signature to the gateway.
 */
export async function confirmStepUp(walletGateway: PromiseClient<GatewayServiceClient>, band: Band, stepUp: StepUpToSign, idempotencyKey: string = randomUUID()): Promise<Payment> {
  const signature = band.signChallenge({ purpose: 'PAYMENT', challengeId: stepUp.challengeId, nonce: Buffer.from(stepUp.nonce) });
  const { payment } = await walletGateway.confirmPayment({ idempotencyKey, paymentId: stepUp.paymentId, accountId: stepUp.accountId, challengeId: stepUp.challengeId, signature });
  return payment!;
}

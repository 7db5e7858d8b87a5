import { randomUUID } from 'node:crypto';
import { trace } from '@opentelemetry/api';
import {
  DeleteTokenRequest,
  DeleteTokenResponse,
  ProvisionTokenRequest,
  ProvisionTokenResponse,
  ResumeTokenRequest,
  ResumeTokenResponse,
  RotateKeysRequest,
  RotateKeysResponse,
  SuspendTokenRequest,
  SuspendTokenResponse,
  TokenizationServiceService,
  TokenStatus,
  Verification,
  VerifyOfflineCodeRequest,
  VerifyPaymentRequest,
  VerifyResult,
  type Token,
  type TokenizationServiceServer,
} from '../../../gen/wristpay/tokenization/v1/tokenization';
import type { Db } from '../../../platform/db';
import { FailedPrecondition, InvalidArgument, NotFound } from '../../../platform/errors';
import { register, type CallContext, type Handlers } from '../../../platform/grpc/server';
import { once, type Codec } from '../../../platform/idempotency';
import type { Logger } from '../../../platform/log';
import type { OutboxRelay } from '../../../platform/outbox';
import { deriveTokenKey, MalformedKey, verifyCryptogram, wrapKeyForDevice } from '../../../platform/payment-crypto';
import { ATTR } from '../../../platform/telemetry/attributes';
import type { Config } from './config';
import type { DeviceDirectory } from './devices';
import type { Keyring } from './domain/envelope';
import { fundingFingerprint, validateFunding } from './domain/funding';
import type { TokenAction, TokenState } from './domain/lifecycle';
import {
  channelValue,
  currentOfflineCode,
  matchOfflineCode,
  parseAmount,
  parseChannels,
  parseMerchant,
  parseOfflineCode,
  parsePayment,
  parseTokenNumber,
} from './domain/verification';
import { assertKeksHeld, type TokenRow, type TokenStore } from './store';
import { idempotencyRecord } from './verification-write';
import { requireId, requireIdempotencyKey, requireUuid } from '../../../platform/validate';
import { tokenizationPolicy } from './policy';

export interface TokenizationDeps {
  config: Config;
  db: Db;
  tokens: TokenStore;
  devices: DeviceDirectory;
  keyring: Keyring;
  relay: OutboxRelay;
  log: Logger;
  /** Seconds since the epoch; injectable so offline-code tests can move time. */
  now?: () => number;
}


function optionalText(value: string, field: string, max = 200): string {
  const v = value.trim();
  if (v.length > max) throw new InvalidArgument(`${field} must be at most ${max} characters`);
  return v;
}

const statusOf = (state: TokenState): TokenStatus => TokenStatus[`TOKEN_STATUS_${state}`];
const outcomeOf = (result: VerifyResult): string => (VerifyResult[result] ?? String(result)).replace('VERIFY_RESULT_', '');

/** A payment id when one is sent (a UUID, lower-cased); '' when the caller sent none. */
function optionalPaymentId(value: string): string {
  return value === '' ? '' : requireUuid(value, 'payment_id');
}

export function toToken(row: TokenRow): Token {
  return {
    tokenId: row.token_id,
    deviceId: row.device_id,
    accountId: row.account_id,
    status: statusOf(row.status),
    channels: row.channels.map(channelValue),
    fundingLast4: row.funding_last4,
    tokenLast4: row.token_number.slice(-4),
    createdAt: row.created_at,
  };
}

function annotate(attributes: Record<string, string | number | boolean | undefined>): void {
  const span = trace.getActiveSpan();
  if (!span) return;
  for (const [k, v] of Object.entries(attributes)) if (v !== undefined && v !== '') span.setAttribute(k, v);
}

function annotateVerification(verification: Verification, paymentId: string, merchantId: string, amountMinor: bigint, currency: string): void {
  annotate({
    [ATTR.verifyResult]: outcomeOf(verification.result),
    [ATTR.tokenId]: verification.tokenId,
    [ATTR.deviceId]: verification.deviceId,
    [ATTR.paymentId]: paymentId,
    [ATTR.merchantId]: merchantId,
    [ATTR.amountMinor]: Number(amountMinor),
    [ATTR.currency]: currency,
  });
}

/** Logs refusals, and any answer repeated for a retried payment id (ids only, never the credential). */
function logVerification(log: Logger, verification: Verification, paymentId: string, merchantId: string, repeated: boolean, refused: string): void {
  const fields = { tokenId: verification.tokenId || undefined, paymentId: paymentId || undefined, result: outcomeOf(verification.result), merchantId };
  if (repeated) log.info(fields, 'verification retried; first answer returned');
  else if (verification.result !== VerifyResult.VERIFY_RESULT_OK) log.info(fields, refused);
}

export function tokenizationService(deps: TokenizationDeps) {
  const { config, db, tokens, devices, keyring, relay, log } = deps;
  const master = config.TOKEN_MASTER_KEY;
  const now = deps.now ?? (() => Date.now() / 1000);
  const step = config.OFFLINE_CODE_STEP_SECONDS;

  /** Runs `use` with the token's key and wipes the key afterwards. */
  function withTokenKey<T>(tokenId: string, use: (key: Buffer) => T): T {
    const key = deriveTokenKey(master, tokenId);
    try {
      return use(key);
    } finally {
      key.fill(0);
    }
  }

  async function lifecycle<Req extends { idempotencyKey: string; tokenId: string }, Res>(
    scope: string,
    request: Req,
    codecs: { req: Codec<Req>; res: Codec<Res> },
    action: TokenAction,
    reason: string,
    ctx: CallContext,
    wrap: (token: Token) => Res,
  ): Promise<Res> {
    const tokenId = requireUuid(request.tokenId, 'token_id');
    const result = await once(db, scope, request.idempotencyKey, { codec: codecs.req, value: request }, codecs.res, async (q) => {
      if (action === 'resume') {
        // A token may pay again only on a band that may: check it with device-registry, under
        // the band's lock so a device.lost being applied right now cannot interleave.
        const current = await tokens.get(q, tokenId);
        await tokens.lockDevice(q, current.device_id);
        await devices.activeDevice(current.device_id, current.account_id, ctx.deadline);
      }
      return wrap(toToken(await tokens.apply(q, tokenId, action, reason)));
    });
    relay.kick();
    annotate({ [ATTR.tokenId]: tokenId });
    log.info({ tokenId, action }, 'token lifecycle change');
    return result;
  }

  const handlers: Handlers<TokenizationServiceServer> = {
    async provisionToken(req, ctx) {
      const deviceId = requireUuid(req.deviceId, 'device_id');
      const accountId = requireId(req.accountId, 'account_id');
      const funding = validateFunding(req.fundingSource);
      const channels = parseChannels(req.channels);
      // The idempotency record keeps a hash of the request; hash a keyed fingerprint of the
      // funding source instead of the card number, which an unkeyed hash would not protect.
      const hashed: ProvisionTokenRequest = {
        ...req,
        fundingSource: { source: { $case: 'walletAccountId', value: `fingerprint:${fundingFingerprint(master, funding)}` } },
      };
      const res = await once(db, 'ProvisionToken', req.idempotencyKey, { codec: ProvisionTokenRequest, value: hashed }, ProvisionTokenResponse, async (q) => {
        await tokens.lockDevice(q, deviceId);
        const device = await devices.activeDevice(deviceId, accountId, ctx.deadline);
        const tokenId = randomUUID();
        const row = await tokens.provision(q, { tokenId, deviceId, accountId, funding, channels });
        const wrapped = withTokenKey(tokenId, (key) => {
          try {
            return wrapKeyForDevice(device.x25519PublicKey, key, tokenId);
          } catch (err) {
            if (err instanceof MalformedKey) throw new FailedPrecondition('the band’s key-delivery (X25519) key cannot receive a token key');
            throw err;
          }
        });
        return { token: toToken(row), tokenNumber: row.token_number, wrappedTokenKey: wrapped };
      });
      relay.kick();
      annotate({ [ATTR.tokenId]: res.token!.tokenId, [ATTR.deviceId]: deviceId, [ATTR.accountId]: accountId });
      log.info({ tokenId: res.token!.tokenId, deviceId }, 'token provisioned');
      return res;
    },

    async verifyPayment(req) {
      const input = parsePayment(req);
      const paymentId = optionalPaymentId(req.paymentId);
      // The idempotency row keeps only a SHA-256 of the encoded request (cryptogram included).
      const idempotency = paymentId ? idempotencyRecord('VerifyPayment', paymentId, { codec: VerifyPaymentRequest, value: { ...req, paymentId } }) : undefined;
      const { verification, repeated } = await tokens.verifyTap(input, idempotency, (token) =>
        withTokenKey(token.token_id, (key) =>
          verifyCryptogram(
            key,
            { tokenNumber: input.tokenNumber, atc: input.atc, amountMinor: input.amountMinor, currency: input.currency, merchantId: input.merchantId, terminalNonce: input.terminalNonce },
            input.cryptogram,
          ),
        ),
      );
      if (!repeated) relay.kick();
      annotateVerification(verification, paymentId, input.merchantId, input.amountMinor, input.currency);
      logVerification(log, verification, paymentId, input.merchantId, repeated, 'payment refused');
      return { verification };
    },

    async issueOfflineCode(req, ctx) {
      const tokenId = requireUuid(req.tokenId, 'token_id');
      const accountId = requireId(req.accountId, 'account_id');
      const token = await tokens.get(db, tokenId);
      // Another account's token is answered exactly like a missing one (same status, same
      // message), before its status is looked at: the caller learns nothing about it.
      if (token.account_id !== accountId) {
        log.warn({ tokenId, caller: ctx.caller }, 'offline code refused: the token belongs to another account');
        throw new NotFound(`no token ${tokenId}`);
      }
      if (token.status !== 'ACTIVE') throw new FailedPrecondition(`a ${token.status} token cannot issue offline codes`);
      if (!token.channels.includes('BAND_QR')) throw new FailedPrecondition('this token is not provisioned for BAND_QR');
      const t = now();
      const issued = withTokenKey(tokenId, (key) => {
        const current = currentOfflineCode(key, t, step);
        return { current, next: currentOfflineCode(key, t + step, step) };
      });
      annotate({ [ATTR.tokenId]: tokenId });
      // The current step's code already paid: hand out the next step's, which the ±1 step
      // tolerance accepts right away, rather than a code that can only be refused.
      const { code, validUntil } = (await tokens.codeSpent(tokenId, issued.current.step)) ? issued.next : issued.current;
      return { code, validUntil };
    },

    async verifyOfflineCode(req) {
      const tokenNumber = parseTokenNumber(req.tokenNumber);
      const code = parseOfflineCode(req.code);
      const amount = parseAmount(req.amount);
      const merchantId = parseMerchant(req.merchantId);
      const paymentId = optionalPaymentId(req.paymentId);
      const t = now();
      const idempotency = paymentId ? idempotencyRecord('VerifyOfflineCode', paymentId, { codec: VerifyOfflineCodeRequest, value: { ...req, paymentId } }) : undefined;
      const { verification, repeated } = await tokens.verifyCode({ tokenNumber, ...amount, merchantId, atc: 0n, channel: 'BAND_QR' }, idempotency, (token) =>
        withTokenKey(token.token_id, (key) => matchOfflineCode(key, code, t, step)),
      );
      if (!repeated) relay.kick();
      annotateVerification(verification, paymentId, merchantId, amount.amountMinor, amount.currency);
      logVerification(log, verification, paymentId, merchantId, repeated, 'offline code refused');
      return { verification };
    },

    async getToken(req) {
      return { token: toToken(await tokens.get(db, requireUuid(req.tokenId, 'token_id'))) };
    },

    suspendToken: (req, ctx) =>
      lifecycle('SuspendToken', req, { req: SuspendTokenRequest, res: SuspendTokenResponse }, 'suspend', optionalText(req.reason, 'reason'), ctx, (token) => ({ token })),
    resumeToken: (req, ctx) => lifecycle('ResumeToken', req, { req: ResumeTokenRequest, res: ResumeTokenResponse }, 'resume', '', ctx, (token) => ({ token })),
    deleteToken: (req, ctx) => lifecycle('DeleteToken', req, { req: DeleteTokenRequest, res: DeleteTokenResponse }, 'delete', '', ctx, (token) => ({ token })),

    async detokenize(req, ctx) {
      const tokenId = requireUuid(req.tokenId, 'token_id');
      const fundingSource = await tokens.funding(db, tokenId);
      annotate({ [ATTR.tokenId]: tokenId });
      // An audit line for every disclosure: who asked for which token (never what was disclosed).
      log.info({ tokenId, caller: ctx.caller }, 'token detokenized');
      return { fundingSource };
    },

    async rotateKeys(req, ctx) {
      requireIdempotencyKey(req.idempotencyKey);
      assertKeksHeld(await tokens.kekVersionsInUse(), keyring);
      // Batches commit one by one, outside `once`: a long rotation never holds a long
      // transaction, and one cut short by its deadline resumes where it stopped on retry.
      let cursor: string | undefined;
      let rewrapped = 0;
      for (;;) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        const batch = await tokens.rewrapBatch(cursor, config.VAULT_REWRAP_BATCH_SIZE);
        rewrapped += batch.rewrapped;
        cursor = batch.cursor;
        if (batch.scanned < config.VAULT_REWRAP_BATCH_SIZE) break;
      }
      const keyVersion = keyring.activeVersion;
      const res = await once(db, 'RotateKeys', req.idempotencyKey, { codec: RotateKeysRequest, value: req }, RotateKeysResponse, async () => ({ keyVersion, rewrapped: BigInt(rewrapped) }));
      log.info({ keyVersion, rewrapped }, 'vault data keys re-wrapped');
      return res;
    },
  };

  return register<TokenizationServiceServer>({
    definition: TokenizationServiceService,
    handlers,
    allowedCallers: tokenizationPolicy(config),
  });
}

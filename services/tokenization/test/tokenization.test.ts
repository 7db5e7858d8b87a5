import { randomBytes, randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { Client } from 'pg';
import { Channel } from '../../../gen/wristpay/common/v1/common';
import { encodeEvent } from '../../../platform/events';
import { createClient } from '../../../platform/grpc/client';
import {
  TokenizationServiceClient,
  TokenStatus,
  VerifyResult,
  type ProvisionTokenRequest,
  type VerifyPaymentRequest,
} from '../../../gen/wristpay/tokenization/v1/tokenization';
import { createLogger } from '../../../platform/log';
import { deriveTokenKey, isLuhnValid } from '../../../platform/payment-crypto';
import { Band } from '../../../sim/band';
import { inChildProcess } from '../../../test/support/both-databases';
import { pairBand, registerBand } from '../../../sim/wallet';
import { watchEvents } from '../../../test/support/events';
import { freshDatabase, requireServers } from '../../../test/support/servers';
import { expectStatus, testClient, testClientAs, testEnv, testLogger, uniqueName } from '../../../test/support/services';
import { meshPki } from '../../../test/support/mesh-pki';
import { startTokenization } from '../src/app';
import { readConfig } from '../src/config';
import { mtlsReplica, testPki, type MtlsReplica } from './support/tls';
import { startVaultDeps, stopVaultDeps, type VaultDeps } from './support/vault-deps';

const { BAND_TAP, BAND_QR } = { BAND_TAP: Channel.CHANNEL_BAND_TAP, BAND_QR: Channel.CHANNEL_BAND_QR };
const R = VerifyResult;
const b64 = (bytes = 32) => randomBytes(bytes).toString('base64');
const PAN = '4111111111111111';

describe('tokenization against real PostgreSQL, NATS and a real device-registry', () => {
  const prefix = uniqueName();
  const masterKey = b64();
  const kek1 = b64();
  const kek2 = b64();
  /** Every log line any tokenization instance wrote, to prove no secret ever reaches a log. */
  const logLines: string[] = [];
  const logger = createLogger('tokenization', 'debug', { write: (line: string) => void logLines.push(line) });
  /** When set, the service's clock (seconds): offline-code tests move time without sleeping. */
  let clock: number | undefined;

  let deps: VaultDeps;
  let service: Awaited<ReturnType<typeof startTokenization>>;
  let client: ReturnType<typeof testClient<TokenizationServiceClient>>;
  let sql: Client;

  const env = (extra: Record<string, string> = {}) =>
    testEnv(prefix, {
      DATABASE_URL: deps.vaultDb.url,
      TOKENIZATION_PORT: '0',
      DEVICE_REGISTRY_ADDR: `127.0.0.1:${deps.registry.port}`,
      TOKEN_MASTER_KEY: masterKey,
      VAULT_KEKS: `1:${kek1}`,
      VAULT_ACTIVE_KEY_VERSION: '1',
      ...extra,
    });

  const start = (extra: Record<string, string> = {}) => startTokenization(readConfig(env(extra)), logger, { now: () => clock ?? Date.now() / 1000 });

  beforeAll(async () => {
    await requireServers('PostgreSQL', 'Redis', 'NATS');
    deps = await startVaultDeps(prefix, testLogger('device-registry'));
    service = await start();
    client = testClient(TokenizationServiceClient, service.port);
    sql = new Client({ connectionString: deps.vaultDb.url });
    await sql.connect();
  });

  afterAll(async () => {
    client?.close();
    await sql?.end();
    await service?.stop();
    await stopVaultDeps(deps);
  });

  async function restart(extra: Record<string, string> = {}) {
    client.close();
    await service.stop();
    service = await start(extra);
    client = testClient(TokenizationServiceClient, service.port);
  }

  /** A band registered with device-registry; paired (ACTIVE) unless `pair` is false. */
  async function newBand(pair = true) {
    const accountId = uniqueName('acct');
    const band = await registerBand(deps.registryClient, accountId);
    if (pair) await pairBand(deps.registryClient, band, accountId);
    return { band, accountId, deviceId: band.deviceId! };
  }

  const provisionRequest = (b: { accountId: string; deviceId: string }, extra: Partial<ProvisionTokenRequest> = {}): ProvisionTokenRequest => ({
    idempotencyKey: randomUUID(),
    deviceId: b.deviceId,
    accountId: b.accountId,
    fundingSource: { source: { $case: 'cardNumber', value: PAN } },
    channels: [BAND_TAP, BAND_QR],
    ...extra,
  });

  /** An ACTIVE band with a token installed, as the phone would set it up. */
  async function bandWithToken(extra: Partial<ProvisionTokenRequest> = {}) {
    const b = await newBand();
    const res = await client.provisionToken(provisionRequest(b, extra));
    b.band.installToken({ tokenId: res.token!.tokenId, tokenNumber: res.tokenNumber, wrapped: res.wrappedTokenKey! });
    return { ...b, tokenId: res.token!.tokenId, tokenNumber: res.tokenNumber, res };
  }

  /** A fresh tap, sent as the gateway sends it: under a new payment id. */
  function tap(band: Band, amountMinor = 1250n, merchantId = 'merchant-1'): VerifyPaymentRequest {
    const p = band.tap({ amountMinor, currency: 'EUR', merchantId, terminalNonce: randomBytes(4) });
    return { tokenNumber: p.tokenNumber, atc: p.atc, amount: { amountMinor, currency: 'EUR' }, merchantId, terminalNonce: p.terminalNonce, cryptogram: p.cryptogram, channel: BAND_TAP, paymentId: randomUUID() };
  }

  /** A payload the band emitted earlier (e.g. band.replayLastTap()), sent as a new payment's VerifyPayment request. */
  function asTap(replay: ReturnType<Band['replayLastTap']>, amountMinor = 1250n, merchantId = 'merchant-1'): VerifyPaymentRequest {
    return { tokenNumber: replay.tokenNumber, atc: replay.atc, amount: { amountMinor, currency: 'EUR' }, merchantId, terminalNonce: replay.terminalNonce, cryptogram: replay.cryptogram, channel: BAND_TAP, paymentId: randomUUID() };
  }

  /** `req` changed by `change`, sent as another payment (a new payment id), as a forger or a replaying terminal would. */
  const another = (req: VerifyPaymentRequest, change: Partial<VerifyPaymentRequest> = {}): VerifyPaymentRequest => ({ ...req, ...change, paymentId: randomUUID() });

  const verify = async (req: VerifyPaymentRequest) => (await client.verifyPayment(req)).verification!;
  const tokenEvents = (type: string, tokenId: string) => deps.events.ofType(type).filter((e) => e.event.payload?.$case && (e.event.payload.value as { tokenId?: string }).tokenId === tokenId);
  const row = async (tokenId: string) => (await sql.query('SELECT * FROM tokens WHERE token_id = $1', [tokenId])).rows[0];
  const counts = async () =>
    (
      await sql.query(
        'SELECT (SELECT count(*) FROM outbox)::int AS outbox, (SELECT count(*) FROM verification_failures)::int AS failures, (SELECT count(*) FROM tokens)::int AS tokens, (SELECT count(*) FROM idempotency_keys)::int AS keys',
      )
    ).rows[0];

  it('provisions a token the band can pay with, once per idempotency key, with one event each', async () => {
    const b = await newBand();
    const req = provisionRequest(b);
    const [first, again] = await Promise.all([client.provisionToken(req), client.provisionToken(req)]);
    expect(again.token!.tokenId).toBe(first.token!.tokenId);
    expect(again.tokenNumber).toBe(first.tokenNumber);
    const { token, tokenNumber } = first;
    expect(token).toMatchObject({ deviceId: b.deviceId, accountId: b.accountId, status: TokenStatus.TOKEN_STATUS_ACTIVE, fundingLast4: '1111', tokenLast4: tokenNumber.slice(-4) });
    expect(token!.channels).toEqual([BAND_TAP, BAND_QR]);
    expect(tokenNumber).toMatch(/^489537\d{10}$/);
    expect(isLuhnValid(tokenNumber)).toBe(true);
    expect(tokenNumber).not.toBe(PAN);
    await expectStatus(client.provisionToken({ ...req, channels: [BAND_TAP] }), status.ALREADY_EXISTS, /idempotency key/);

    b.band.installToken({ tokenId: token!.tokenId, tokenNumber, wrapped: first.wrappedTokenKey! });
    const ok = await verify(tap(b.band));
    expect(ok).toEqual({ result: R.VERIFY_RESULT_OK, tokenId: token!.tokenId, deviceId: b.deviceId, accountId: b.accountId, recentFailures: 0 });
    expect((await client.getToken({ tokenId: token!.tokenId })).token).toEqual(token);

    // The vault holds the card number only encrypted, under KEK version 1.
    const stored = await row(token!.tokenId);
    expect(stored.kek_version).toBe(1);
    expect(stored.funding_last4).toBe('1111');
    for (const column of ['funding_ciphertext', 'data_key_wrapped']) expect(Buffer.from(stored[column]).includes(Buffer.from(PAN))).toBe(false);
    const hashes = await sql.query("SELECT request_hash, response FROM idempotency_keys WHERE scope = 'ProvisionToken'");
    for (const h of hashes.rows) expect(Buffer.concat([h.request_hash, h.response ?? Buffer.alloc(0)]).includes(Buffer.from(PAN))).toBe(false);

    await deps.events.waitFor(() => tokenEvents('token.provisioned', token!.tokenId).length >= 1 && tokenEvents('token.payment.verified', token!.tokenId).length >= 1, 5_000, 'provision and verify events');
    await new Promise((r) => setTimeout(r, 300)); // time for a duplicate to show up, if one were sent
    const provisioned = tokenEvents('token.provisioned', token!.tokenId);
    expect(provisioned).toHaveLength(1);
    expect(provisioned[0]!.event.payload).toEqual({
      $case: 'token',
      value: { tokenId: token!.tokenId, deviceId: b.deviceId, accountId: b.accountId, status: 'ACTIVE', reason: '', tokenLast4: tokenNumber.slice(-4) },
    });
    const verified = tokenEvents('token.payment.verified', token!.tokenId);
    expect(verified).toHaveLength(1);
    expect(verified[0]!.event.payload!.value).toMatchObject({ result: 'OK', atc: 1n, merchantId: 'merchant-1', amount: { amountMinor: 1250n, currency: 'EUR' }, channel: BAND_TAP });
  });

  it('refuses a replayed tap and a tampered amount, counting them, without burning the counter', async () => {
    const t = await bandWithToken();
    const first = tap(t.band);
    expect((await verify(first)).result).toBe(R.VERIFY_RESULT_OK);
    const replayed = asTap(t.band.replayLastTap());
    expect(await verify(replayed)).toMatchObject({ result: R.VERIFY_RESULT_REPLAY, tokenId: t.tokenId, recentFailures: 1 });

    const genuine = tap(t.band, 5000n);
    const tampered = another(genuine, { amount: { amountMinor: 50n, currency: 'EUR' } });
    expect(await verify(tampered)).toMatchObject({ result: R.VERIFY_RESULT_CRYPTOGRAM_MISMATCH, recentFailures: 2 });
    expect(await verify(another(genuine, { merchantId: 'merchant-evil' }))).toMatchObject({ result: R.VERIFY_RESULT_CRYPTOGRAM_MISMATCH, recentFailures: 3 });
    // The forged attempts did not move the high-water mark: the genuine payload with that ATC still pays.
    expect(await verify(genuine)).toMatchObject({ result: R.VERIFY_RESULT_OK, recentFailures: 3 });
    expect(BigInt((await row(t.tokenId)).atc_high)).toBe(2n);
    await deps.events.waitFor(() => tokenEvents('token.payment.refused', t.tokenId).length === 3, 5_000, 'three refusals');
    expect(tokenEvents('token.payment.refused', t.tokenId).map((e) => (e.event.payload!.value as { result: string }).result)).toEqual(['REPLAY', 'CRYPTOGRAM_MISMATCH', 'CRYPTOGRAM_MISMATCH']);
  });

  it('lets only one of two racing taps with the same ATC through', async () => {
    const t = await bandWithToken();
    const once = tap(t.band);
    // Three payments (three payment ids), and three with no payment id (a direct caller): one wins each time.
    const results = await Promise.all([verify(once), verify(another(once)), verify(another(once))]);
    expect(results.map((r) => r.result).sort()).toEqual([R.VERIFY_RESULT_OK, R.VERIFY_RESULT_REPLAY, R.VERIFY_RESULT_REPLAY]);
    const bare = { ...tap(t.band), paymentId: '' };
    const direct = await Promise.all([verify(bare), verify(bare), verify(bare)]);
    expect(direct.map((r) => r.result).sort()).toEqual([R.VERIFY_RESULT_OK, R.VERIFY_RESULT_REPLAY, R.VERIFY_RESULT_REPLAY]);
  });

  /** The idempotency rows a payment id left, per scope (VerifyPayment, VerifyOfflineCode). */
  const keyRows = async (paymentId: string) =>
    (await sql.query('SELECT scope, request_hash, response FROM idempotency_keys WHERE key = $1', [paymentId])).rows as Array<{ scope: string; request_hash: Buffer; response: Buffer | null }>;
  const failureRows = async (tokenId: string) => (await sql.query('SELECT result FROM verification_failures WHERE token_id = $1', [tokenId])).rows.map((r) => r.result);
  /** Gives the outbox relay time to publish a duplicate, if one were enqueued. */
  const settle = () => new Promise((r) => setTimeout(r, 300));

  it('answers a retried payment (same payment id) with its first OK, spending the ATC once and announcing it once', async () => {
    const t = await bandWithToken();
    const req = tap(t.band);
    const first = await verify(req);
    expect(first).toEqual({ result: R.VERIFY_RESULT_OK, tokenId: t.tokenId, deviceId: t.deviceId, accountId: t.accountId, recentFailures: 0 });
    // Retries (as the gateway's channel sends them on UNAVAILABLE), one racing another, and one
    // with the id in upper case (the same UUID): the first answer each time, not a REPLAY.
    const retries = await Promise.all([verify(req), verify(req), verify({ ...req, paymentId: req.paymentId.toUpperCase() })]);
    for (const again of retries) expect(again).toEqual(first);
    expect(BigInt((await row(t.tokenId)).atc_high)).toBe(req.atc);

    // The ATC is spent: the same tap as another payment is a replay; the first payment still answers OK.
    expect(await verify(another(req))).toMatchObject({ result: R.VERIFY_RESULT_REPLAY, recentFailures: 1 });
    expect(await verify(req)).toEqual(first);

    await deps.events.waitFor(() => tokenEvents('token.payment.verified', t.tokenId).length >= 1 && tokenEvents('token.payment.refused', t.tokenId).length >= 1, 5_000, 'verified and refused');
    await settle();
    expect(tokenEvents('token.payment.verified', t.tokenId)).toHaveLength(1);
    expect(tokenEvents('token.payment.refused', t.tokenId)).toHaveLength(1);
    expect(await failureRows(t.tokenId)).toEqual(['REPLAY']);

    // One idempotency row, holding a hash and the Verification: neither the token number nor the cryptogram.
    const [stored, ...more] = await keyRows(req.paymentId);
    expect(more).toEqual([]);
    expect(stored!.scope).toBe('VerifyPayment');
    const kept = Buffer.concat([stored!.request_hash, stored!.response!]);
    expect(kept.includes(Buffer.from(req.cryptogram))).toBe(false);
    expect(kept.includes(Buffer.from(t.tokenNumber))).toBe(false);
  });

  /**
   * Makes storing the answer for `paymentId` fail the first `times` times with SQLSTATE 57P01
   * (the database shutting down), which the service answers UNAVAILABLE: the crash between the
   * verification's writes and its commit. Returns the clean-up.
   */
  async function failStoringAnswer(paymentId: string, times = 1) {
    const name = `fail_${randomUUID().replace(/-/g, '')}`;
    await sql.query(`CREATE SEQUENCE ${name}`);
    await sql.query(`CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF nextval('${name}') <= ${times} THEN RAISE EXCEPTION 'test: storage went away' USING ERRCODE = '57P01'; END IF;
        RETURN NEW;
      END $$`);
    await sql.query(`CREATE TRIGGER ${name} BEFORE UPDATE ON idempotency_keys FOR EACH ROW WHEN (NEW.key = '${paymentId}') EXECUTE FUNCTION ${name}()`);
    return async () => {
      await sql.query(`DROP TRIGGER ${name} ON idempotency_keys`);
      await sql.query(`DROP FUNCTION ${name}()`);
      await sql.query(`DROP SEQUENCE ${name}`);
    };
  }

  it('keeps the payment id and the verification in one transaction: a failed attempt leaves neither, and its retry pays', async () => {
    const t = await bandWithToken();
    const req = tap(t.band);
    const cleanUp = await failStoringAnswer(req.paymentId);
    try {
      const before = await counts();
      await expectStatus(client.verifyPayment(req), status.UNAVAILABLE, /retry later/);
      // Rolled back together: no ATC spent, no failure, no event, no idempotency row.
      expect(await counts()).toEqual(before);
      expect(BigInt((await row(t.tokenId)).atc_high)).toBe(0n);
      expect(await keyRows(req.paymentId)).toEqual([]);
      // The retry runs the verification again: OK, not REPLAY.
      expect(await verify(req)).toMatchObject({ result: R.VERIFY_RESULT_OK, recentFailures: 0 });
      expect(await verify(req)).toMatchObject({ result: R.VERIFY_RESULT_OK, recentFailures: 0 });
    } finally {
      await cleanUp();
    }
    await deps.events.waitFor(() => tokenEvents('token.payment.verified', t.tokenId).length >= 1, 5_000, 'verified');
    await settle();
    expect(tokenEvents('token.payment.verified', t.tokenId)).toHaveLength(1);
  });

  it('is retried by a client configured as the gateway’s (verifyPayment retryable on UNAVAILABLE) and pays once', async () => {
    const t = await bandWithToken();
    const asGateway = createClient(TokenizationServiceClient, `127.0.0.1:${service.port}`, {
      credentials: meshPki().client('gateway'),
      serverName: 'localhost',
      deadlineMs: 5_000,
      retryable: ['verifyPayment', 'verifyOfflineCode'],
    });
    const req = tap(t.band);
    const cleanUp = await failStoringAnswer(req.paymentId, 2);
    try {
      // Two attempts fail UNAVAILABLE; the channel's third (its cap) goes through.
      expect((await asGateway.verifyPayment(req)).verification).toEqual({ result: R.VERIFY_RESULT_OK, tokenId: t.tokenId, deviceId: t.deviceId, accountId: t.accountId, recentFailures: 0 });
      expect(BigInt((await row(t.tokenId)).atc_high)).toBe(req.atc);
      expect(await failureRows(t.tokenId)).toEqual([]);
    } finally {
      asGateway.close();
      await cleanUp();
    }
    await deps.events.waitFor(() => tokenEvents('token.payment.verified', t.tokenId).length >= 1, 5_000, 'verified');
    await settle();
    expect(tokenEvents('token.payment.verified', t.tokenId)).toHaveLength(1);
  });

  it('refuses the same payment id with other fields (ALREADY_EXISTS), changing nothing', async () => {
    const t = await bandWithToken();
    const req = tap(t.band);
    expect((await verify(req)).result).toBe(R.VERIFY_RESULT_OK);
    await deps.events.waitFor(() => tokenEvents('token.payment.verified', t.tokenId).length >= 1, 5_000, 'verified');
    const before = await counts();
    const changes: Array<Partial<VerifyPaymentRequest>> = [
      { amount: { amountMinor: 1251n, currency: 'EUR' } },
      { merchantId: 'merchant-2' },
      { atc: req.atc + 1n },
      { cryptogram: randomBytes(16) },
    ];
    for (const change of changes) await expectStatus(client.verifyPayment({ ...req, ...change }), status.ALREADY_EXISTS, /already used for a different request/);
    // A fresh tap (new ATC) under the old payment id is refused too: the id names one payment.
    const next = tap(t.band);
    await expectStatus(client.verifyPayment({ ...next, paymentId: req.paymentId }), status.ALREADY_EXISTS);
    expect(await counts()).toEqual(before);
    expect(BigInt((await row(t.tokenId)).atc_high)).toBe(req.atc);
    await settle();
    expect(tokenEvents('token.payment.verified', t.tokenId)).toHaveLength(1);
    expect(tokenEvents('token.payment.refused', t.tokenId)).toHaveLength(0);
    // The unspent tap still pays under its own payment id, and the first payment still answers OK.
    expect((await verify(next)).result).toBe(R.VERIFY_RESULT_OK);
    expect((await verify(req)).result).toBe(R.VERIFY_RESULT_OK);
  });

  it('answers a retried refusal with the same refusal, counting one failure and announcing it once', async () => {
    const t = await bandWithToken();
    const genuine = tap(t.band, 5000n);
    const tampered = another(genuine, { amount: { amountMinor: 50n, currency: 'EUR' } });
    const refused = await verify(tampered);
    expect(refused).toMatchObject({ result: R.VERIFY_RESULT_CRYPTOGRAM_MISMATCH, tokenId: t.tokenId, recentFailures: 1 });
    expect(await verify(tampered)).toEqual(refused);
    expect(await verify(tampered)).toEqual(refused);
    expect(await failureRows(t.tokenId)).toEqual(['CRYPTOGRAM_MISMATCH']);
    // The genuine payload, as its own payment, still pays: the refusal burnt no counter.
    expect(await verify(genuine)).toMatchObject({ result: R.VERIFY_RESULT_OK, recentFailures: 1 });
    await deps.events.waitFor(() => tokenEvents('token.payment.refused', t.tokenId).length >= 1 && tokenEvents('token.payment.verified', t.tokenId).length >= 1, 5_000, 'refused and verified');
    await settle();
    expect(tokenEvents('token.payment.refused', t.tokenId)).toHaveLength(1);
  });

  it('answers a malformed payment_id with INVALID_ARGUMENT before touching anything', async () => {
    const t = await bandWithToken({ channels: [BAND_TAP, BAND_QR] });
    const good = tap(t.band);
    const before = await counts();
    for (const paymentId of ['pay-1', ' ', `${randomUUID()}x`, randomUUID().replace(/-/g, ''), `{${randomUUID()}}`]) {
      await expectStatus(client.verifyPayment({ ...good, paymentId }), status.INVALID_ARGUMENT, /payment_id must be a UUID/);
      await expectStatus(
        client.verifyOfflineCode({ tokenNumber: t.tokenNumber, code: t.band.offlineCode(Date.now() / 1000), amount: { amountMinor: 990n, currency: 'EUR' }, merchantId: 'cafe-7', paymentId }),
        status.INVALID_ARGUMENT,
        /payment_id must be a UUID/,
      );
    }
    expect(await counts()).toEqual(before);
    expect(BigInt((await row(t.tokenId)).atc_high)).toBe(0n);
    expect((await verify(good)).result).toBe(R.VERIFY_RESULT_OK);
  });

  it('still refuses a replay after the service restarts on the same database', async () => {
    const t = await bandWithToken();
    expect((await verify(tap(t.band))).result).toBe(R.VERIFY_RESULT_OK);
    await restart();
    expect((await verify(asTap(t.band.replayLastTap()))).result).toBe(R.VERIFY_RESULT_REPLAY);
    expect((await verify(tap(t.band))).result).toBe(R.VERIFY_RESULT_OK);
  });

  it('refuses a tap on a channel the token is not provisioned for, and an unknown token', async () => {
    const t = await bandWithToken({ channels: [BAND_QR] });
    expect(await verify(tap(t.band))).toMatchObject({ result: R.VERIFY_RESULT_WRONG_CHANNEL, tokenId: t.tokenId, recentFailures: 1 });
    const unknown = { ...tap(t.band), tokenNumber: '4895370000000000' };
    expect(await verify(unknown)).toEqual({ result: R.VERIFY_RESULT_UNKNOWN_TOKEN, tokenId: '', deviceId: '', accountId: '', recentFailures: 0 });
  });

  it('follows the token lifecycle: suspended and deleted tokens cannot pay', async () => {
    const t = await bandWithToken();
    const suspendReq = { idempotencyKey: randomUUID(), tokenId: t.tokenId, reason: 'wearer asked' };
    const suspended = await client.suspendToken(suspendReq);
    expect(suspended.token!.status).toBe(TokenStatus.TOKEN_STATUS_SUSPENDED);
    expect((await client.suspendToken(suspendReq)).token).toEqual(suspended.token);
    await expectStatus(client.suspendToken({ ...suspendReq, idempotencyKey: randomUUID() }), status.FAILED_PRECONDITION, /SUSPENDED token cannot be suspended/);
    expect((await verify(tap(t.band))).result).toBe(R.VERIFY_RESULT_TOKEN_SUSPENDED);

    expect((await client.resumeToken({ idempotencyKey: randomUUID(), tokenId: t.tokenId })).token!.status).toBe(TokenStatus.TOKEN_STATUS_ACTIVE);
    expect((await verify(tap(t.band))).result).toBe(R.VERIFY_RESULT_OK);

    expect((await client.deleteToken({ idempotencyKey: randomUUID(), tokenId: t.tokenId })).token!.status).toBe(TokenStatus.TOKEN_STATUS_DELETED);
    expect((await verify(tap(t.band))).result).toBe(R.VERIFY_RESULT_TOKEN_DELETED);
    await expectStatus(client.resumeToken({ idempotencyKey: randomUUID(), tokenId: t.tokenId }), status.FAILED_PRECONDITION, /DELETED token cannot be resumed/);
    await expectStatus(client.getToken({ tokenId: randomUUID() }), status.NOT_FOUND);
    await expectStatus(client.suspendToken({ idempotencyKey: randomUUID(), tokenId: 'nope', reason: '' }), status.INVALID_ARGUMENT, /token_id/);

    await deps.events.waitFor(() => ['token.suspended', 'token.resumed', 'token.deleted'].every((type) => tokenEvents(type, t.tokenId).length === 1), 5_000, 'lifecycle events');
    expect((tokenEvents('token.suspended', t.tokenId)[0]!.event.payload!.value as { reason: string }).reason).toBe('wearer asked');
  });

  it('answers malformed payments with INVALID_ARGUMENT and changes nothing', async () => {
    const t = await bandWithToken();
    const good = tap(t.band);
    const before = await counts();
    const bad: Array<[Partial<VerifyPaymentRequest>, RegExp]> = [
      [{ tokenNumber: '' }, /token_number/],
      [{ amount: undefined }, /amount is required/],
      [{ amount: { amountMinor: 1250n, currency: 'eur' } }, /currency/],
      [{ amount: { amountMinor: 1250n, currency: 'EURO' } }, /currency/],
      [{ amount: { amountMinor: 0n, currency: 'EUR' } }, /positive/],
      [{ amount: { amountMinor: -1250n, currency: 'EUR' } }, /positive/],
      [{ cryptogram: good.cryptogram.subarray(0, 15) }, /16 bytes/],
      [{ cryptogram: Buffer.alloc(0) }, /16 bytes/],
      [{ terminalNonce: Buffer.alloc(0) }, /terminal_nonce/],
      [{ merchantId: '' }, /merchant_id/],
      [{ atc: 0n }, /atc/],
      [{ channel: Channel.CHANNEL_UNSPECIFIED }, /channel/],
    ];
    for (const [change, message] of bad) await expectStatus(client.verifyPayment({ ...good, ...change }), status.INVALID_ARGUMENT, message);
    expect(await counts()).toEqual(before);
    expect(BigInt((await row(t.tokenId)).atc_high)).toBe(0n);
    expect((await verify(good)).result).toBe(R.VERIFY_RESULT_OK);
  });

  it('refuses to provision for a band that is unknown, not ACTIVE or someone else’s, or with bad input, writing nothing', async () => {
    const pending = await newBand(false);
    const lost = await newBand();
    await deps.registryClient.reportLost({ idempotencyKey: randomUUID(), deviceId: lost.deviceId });
    const mine = await newBand();
    const before = await counts();
    await expectStatus(client.provisionToken(provisionRequest(pending)), status.FAILED_PRECONDITION, /PENDING_PAIRING, not ACTIVE/);
    await expectStatus(client.provisionToken(provisionRequest(lost)), status.FAILED_PRECONDITION, /LOST, not ACTIVE/);
    await expectStatus(client.provisionToken(provisionRequest({ ...mine, accountId: 'someone-else' })), status.PERMISSION_DENIED, /another account/);
    await expectStatus(client.provisionToken(provisionRequest({ ...mine, deviceId: randomUUID() })), status.NOT_FOUND, /no device/);
    const invalid: Array<[Partial<ProvisionTokenRequest>, RegExp]> = [
      [{ fundingSource: { source: { $case: 'cardNumber', value: '4111111111111112' } } }, /Luhn/],
      [{ fundingSource: { source: { $case: 'cardNumber', value: '41111111111' } } }, /12 to 19 digits/],
      [{ fundingSource: { source: { $case: 'walletAccountId', value: '' } } }, /wallet_account_id/],
      [{ fundingSource: undefined }, /funding_source/],
      [{ channels: [] }, /channels/],
      [{ deviceId: 'band-1' }, /device_id/],
      [{ accountId: 'acct with space' }, /account_id/],
      [{ idempotencyKey: '' }, /idempotency_key/],
    ];
    for (const [change, message] of invalid) {
      const err = await expectStatus(client.provisionToken(provisionRequest(mine, change)), status.INVALID_ARGUMENT, message);
      expect(err.details).not.toMatch(/\d{8,}/);
    }
    expect(await counts()).toEqual(before);
    // A wallet-funded token for the right account goes through.
    const wallet = await client.provisionToken(provisionRequest(mine, { fundingSource: { source: { $case: 'walletAccountId', value: 'wallet-0042' } } }));
    expect(wallet.token!.fundingLast4).toBe('0042');
  });

  it('suspends a lost band’s tokens within a second, deletes a deregistered band’s, and keeps them down', async () => {
    const lost = await bandWithToken();
    const second = await client.provisionToken(provisionRequest(lost, { fundingSource: { source: { $case: 'walletAccountId', value: 'w-1' } } }));
    expect((await verify(tap(lost.band))).result).toBe(R.VERIFY_RESULT_OK);
    const reportedAt = Date.now();
    await deps.registryClient.reportLost({ idempotencyKey: randomUUID(), deviceId: lost.deviceId });
    let result = R.VERIFY_RESULT_OK;
    while (result === R.VERIFY_RESULT_OK) {
      const attempt = tap(lost.band);
      result = (await verify(attempt)).result;
      if (Date.now() - reportedAt > 5_000) break;
    }
    const cutOffMs = Date.now() - reportedAt;
    expect(result).toBe(R.VERIFY_RESULT_TOKEN_SUSPENDED);
    expect(cutOffMs).toBeLessThan(1_000);
    expect((await client.getToken({ tokenId: second.token!.tokenId })).token!.status).toBe(TokenStatus.TOKEN_STATUS_SUSPENDED);
    expect((await row(lost.tokenId)).status_reason).toBe('device.lost');
    await expectStatus(client.resumeToken({ idempotencyKey: randomUUID(), tokenId: lost.tokenId }), status.FAILED_PRECONDITION, /LOST, not ACTIVE/);
    await deps.events.waitFor(() => tokenEvents('token.suspended', lost.tokenId).length === 1 && tokenEvents('token.suspended', second.token!.tokenId).length === 1, 5_000, 'token.suspended for both tokens');

    const gone = await bandWithToken();
    await deps.registryClient.deregister({ idempotencyKey: randomUUID(), deviceId: gone.deviceId });
    await waitUntil(async () => (await client.getToken({ tokenId: gone.tokenId })).token!.status === TokenStatus.TOKEN_STATUS_DELETED, 'token deleted');
    expect((await verify(tap(gone.band))).result).toBe(R.VERIFY_RESULT_TOKEN_DELETED);

    // A suspended band's tokens come back only by ResumeToken, and only once the band is ACTIVE again.
    const paused = await bandWithToken();
    await deps.registryClient.suspendDevice({ idempotencyKey: randomUUID(), deviceId: paused.deviceId, reason: 'wearer asked' });
    await waitUntil(async () => (await client.getToken({ tokenId: paused.tokenId })).token!.status === TokenStatus.TOKEN_STATUS_SUSPENDED, 'token suspended');
    await expectStatus(client.resumeToken({ idempotencyKey: randomUUID(), tokenId: paused.tokenId }), status.FAILED_PRECONDITION, /SUSPENDED, not ACTIVE/);
    await deps.registryClient.resumeDevice({ idempotencyKey: randomUUID(), deviceId: paused.deviceId });
    await client.resumeToken({ idempotencyKey: randomUUID(), tokenId: paused.tokenId });
    expect((await verify(tap(paused.band))).result).toBe(R.VERIFY_RESULT_OK);
  });

  describe('callers over mTLS (a second replica on the same vault)', () => {
    // The caller's certificate CN is its identity; one replica serves every test in this block.
    let secure: MtlsReplica<'settlement' | 'gateway' | 'wallet'>;
    beforeAll(async () => {
      secure = await mtlsReplica(start, ['settlement', 'gateway', 'wallet']);
    });
    afterAll(async () => {
      await secure?.stop();
    });

    /** IssueOfflineCode as the wallet backend asks for it: for the account the phone is signed in as. */
    const issue = (t: { tokenId: string; accountId: string }) => secure.as.wallet.issueOfflineCode({ tokenId: t.tokenId, accountId: t.accountId });

    it('accepts each offline code once, within one time step either side', async () => {
      const t = await bandWithToken({ channels: [BAND_QR] });
      const base = 1_800_000_000;
      clock = base + 10;
      try {
        const offline = (code: string, amountMinor = 990n) => client.verifyOfflineCode({ tokenNumber: t.tokenNumber, code, amount: { amountMinor, currency: 'EUR' }, merchantId: 'cafe-7', paymentId: randomUUID() });
        const issued = await issue(t);
        expect(issued.code).toBe(t.band.offlineCode(clock));
        expect(issued.validUntil!.getTime()).toBe((base + 30) * 1000);
        expect((await offline(issued.code)).verification).toMatchObject({ result: R.VERIFY_RESULT_OK, tokenId: t.tokenId, deviceId: t.deviceId });
        expect((await offline(issued.code)).verification!.result).toBe(R.VERIFY_RESULT_CODE_REUSED);
        // The current step's code is spent: the next one is handed out, and accepted right away.
        const next = await issue(t);
        expect(next.code).toBe(t.band.offlineCode(clock + 30));
        expect((await offline(next.code)).verification!.result).toBe(R.VERIFY_RESULT_OK);
        expect((await offline(t.band.offlineCode(clock - 30))).verification!.result).toBe(R.VERIFY_RESULT_OK);
        expect((await offline(t.band.offlineCode(clock - 60))).verification!.result).toBe(R.VERIFY_RESULT_CODE_INVALID);
        const wrong = String((Number(t.band.offlineCode(clock)) + 1) % 1e8).padStart(8, '0');
        expect((await offline(wrong)).verification!.result).toBe(R.VERIFY_RESULT_CODE_INVALID);
        clock += 30;
        expect((await offline(t.band.offlineCode(clock))).verification!.result).toBe(R.VERIFY_RESULT_CODE_REUSED);
        clock += 30;
        expect((await offline(t.band.offlineCode(clock))).verification).toMatchObject({ result: R.VERIFY_RESULT_OK, recentFailures: 4 });

        await expectStatus(offline('1234567'), status.INVALID_ARGUMENT, /8 digits/);
        await expectStatus(offline('12345678', 0n), status.INVALID_ARGUMENT, /positive/);
        const tapOnly = await bandWithToken({ channels: [BAND_TAP] });
        await expectStatus(issue(tapOnly), status.FAILED_PRECONDITION, /BAND_QR/);
        // Another token's code does not pay with this token.
        expect((await offline(tapOnly.band.offlineCode(clock))).verification!.result).toBe(R.VERIFY_RESULT_CODE_INVALID);
        const tapOnlyOffline = await client.verifyOfflineCode({ tokenNumber: tapOnly.tokenNumber, code: tapOnly.band.offlineCode(clock), amount: { amountMinor: 1n, currency: 'EUR' }, merchantId: 'cafe-7', paymentId: '' });
        expect(tapOnlyOffline.verification!.result).toBe(R.VERIFY_RESULT_WRONG_CHANNEL);
      } finally {
        clock = undefined;
      }
    });

    it('answers a retried offline payment (same payment id) with its first OK; another payment with that code is CODE_REUSED', async () => {
      const t = await bandWithToken({ channels: [BAND_QR] });
      clock = 1_800_000_000 + 10;
      try {
        const { code } = await issue(t);
        const req = { tokenNumber: t.tokenNumber, code, amount: { amountMinor: 990n, currency: 'EUR' }, merchantId: 'cafe-7', paymentId: randomUUID() };
        const first = (await client.verifyOfflineCode(req)).verification!;
        expect(first).toEqual({ result: R.VERIFY_RESULT_OK, tokenId: t.tokenId, deviceId: t.deviceId, accountId: t.accountId, recentFailures: 0 });
        const retries = await Promise.all([client.verifyOfflineCode(req), client.verifyOfflineCode(req)]);
        for (const again of retries) expect(again.verification).toEqual(first);
        // A retry a time step later still gets the first answer (it is not checked again).
        clock += 30;
        expect((await client.verifyOfflineCode(req)).verification).toEqual(first);
        clock -= 30;

        expect((await client.verifyOfflineCode({ ...req, paymentId: randomUUID() })).verification).toMatchObject({ result: R.VERIFY_RESULT_CODE_REUSED, recentFailures: 1 });
        expect((await client.verifyOfflineCode({ ...req, paymentId: '' })).verification!.result).toBe(R.VERIFY_RESULT_CODE_REUSED);
        const before = await counts();
        await expectStatus(client.verifyOfflineCode({ ...req, amount: { amountMinor: 991n, currency: 'EUR' } }), status.ALREADY_EXISTS, /different request/);
        expect(await counts()).toEqual(before);
        expect((await client.verifyOfflineCode(req)).verification).toEqual(first);

        expect((await sql.query('SELECT count(*)::int AS n FROM offline_codes_used WHERE token_id = $1', [t.tokenId])).rows[0].n).toBe(1);
        expect(await failureRows(t.tokenId)).toEqual(['CODE_REUSED', 'CODE_REUSED']);
        expect((await keyRows(req.paymentId)).map((r) => r.scope)).toEqual(['VerifyOfflineCode']);
        await deps.events.waitFor(() => tokenEvents('token.payment.verified', t.tokenId).length >= 1 && tokenEvents('token.payment.refused', t.tokenId).length >= 2, 5_000, 'verified and refused');
        await settle();
        expect(tokenEvents('token.payment.verified', t.tokenId)).toHaveLength(1);
        expect(tokenEvents('token.payment.refused', t.tokenId)).toHaveLength(2);
      } finally {
        clock = undefined;
      }
    });

    it('issues offline codes only to the wallet backend: not to the back office, not to the gateway', async () => {
      const t = await bandWithToken({ channels: [BAND_QR] });
      const req = { tokenId: t.tokenId, accountId: t.accountId };
      const backoffice = testClientAs(TokenizationServiceClient, service.port, 'backoffice');
      await expectStatus(backoffice.issueOfflineCode(req), status.PERMISSION_DENIED, /^IssueOfflineCode may only be called by wallet \(caller: backoffice\)$/);
      backoffice.close();
      await expectStatus(secure.as.gateway.issueOfflineCode(req), status.PERMISSION_DENIED, /^IssueOfflineCode may only be called by wallet \(caller: gateway\)$/);
      await expectStatus(secure.as.settlement.issueOfflineCode(req), status.PERMISSION_DENIED, /caller: settlement/);
      // Refused before the request is looked at: a malformed one gets the same answer.
      await expectStatus(secure.as.gateway.issueOfflineCode({ tokenId: 'x', accountId: '' }), status.PERMISSION_DENIED, /caller: gateway/);
      // The wallet's code is one the vault accepts.
      const { code } = await issue(t);
      const paid = await client.verifyOfflineCode({ tokenNumber: t.tokenNumber, code, amount: { amountMinor: 450n, currency: 'EUR' }, merchantId: 'cafe-7', paymentId: randomUUID() });
      expect(paid.verification).toMatchObject({ result: R.VERIFY_RESULT_OK, tokenId: t.tokenId, accountId: t.accountId });
    });

    it('issues a code only for the account the token belongs to; another account’s token is NOT_FOUND, like a missing one', async () => {
      const t = await bandWithToken({ channels: [BAND_QR] });
      const other = await bandWithToken({ channels: [BAND_QR] });
      const before = await counts();
      const refused = await expectStatus(secure.as.wallet.issueOfflineCode({ tokenId: t.tokenId, accountId: other.accountId }), status.NOT_FOUND);
      const missingId = randomUUID();
      const missing = await expectStatus(secure.as.wallet.issueOfflineCode({ tokenId: missingId, accountId: t.accountId }), status.NOT_FOUND);
      // The same words as for a token that does not exist: nothing says this one does.
      expect(refused.details).toBe(missing.details.replace(missingId, t.tokenId));
      // Its status is not revealed either: a suspended token of another account is still NOT_FOUND.
      await client.suspendToken({ idempotencyKey: randomUUID(), tokenId: other.tokenId, reason: 'test' });
      await expectStatus(secure.as.wallet.issueOfflineCode({ tokenId: other.tokenId, accountId: t.accountId }), status.NOT_FOUND);
      await expectStatus(secure.as.wallet.issueOfflineCode({ tokenId: other.tokenId, accountId: other.accountId }), status.FAILED_PRECONDITION, /SUSPENDED/);
      expect(await counts()).toMatchObject({ failures: before.failures, tokens: before.tokens });
      expect((await sql.query('SELECT count(*)::int AS n FROM offline_codes_used WHERE token_id = $1', [t.tokenId])).rows[0].n).toBe(0);
      expect(logLines.some((l) => l.includes('offline code refused') && l.includes(t.tokenId) && l.includes('"caller":"wallet"'))).toBe(true);
    });

    it('answers IssueOfflineCode without an account_id, or with a malformed token_id, with INVALID_ARGUMENT', async () => {
      const t = await bandWithToken({ channels: [BAND_QR] });
      await expectStatus(secure.as.wallet.issueOfflineCode({ tokenId: t.tokenId, accountId: '' }), status.INVALID_ARGUMENT, /account_id is required/);
      await expectStatus(secure.as.wallet.issueOfflineCode({ tokenId: t.tokenId, accountId: '   ' }), status.INVALID_ARGUMENT, /account_id is required/);
      await expectStatus(secure.as.wallet.issueOfflineCode({ tokenId: t.tokenId, accountId: 'a'.repeat(129) }), status.INVALID_ARGUMENT, /account_id/);
      await expectStatus(secure.as.wallet.issueOfflineCode({ tokenId: 'not-a-uuid', accountId: t.accountId }), status.INVALID_ARGUMENT, /token_id must be a UUID/);
    });

    it('detokenizes only for settlement', async () => {
      const t = await bandWithToken();
      const wallet = testClientAs(TokenizationServiceClient, service.port, 'wallet');
      await expectStatus(wallet.detokenize({ tokenId: t.tokenId }), status.PERMISSION_DENIED, /only be called by settlement \(caller: wallet\)/);
      wallet.close();
      const { settlement: asSettlement, gateway: asGateway } = secure.as;
      expect((await asSettlement.detokenize({ tokenId: t.tokenId })).fundingSource).toEqual({ source: { $case: 'cardNumber', value: PAN } });
      await expectStatus(asGateway.detokenize({ tokenId: t.tokenId }), status.PERMISSION_DENIED, /caller: gateway/);
      await expectStatus(asSettlement.detokenize({ tokenId: randomUUID() }), status.NOT_FOUND);
      expect((await asGateway.getToken({ tokenId: t.tokenId })).token!.tokenId).toBe(t.tokenId);
      expect(logLines.some((l) => l.includes('token detokenized') && l.includes('"caller":"settlement"'))).toBe(true);
    });

    it('reads the allow-list from OFFLINE_CODE_CALLERS (default wallet), refusing a malformed one by name', () => {
      expect(readConfig(env()).OFFLINE_CODE_CALLERS).toEqual(['wallet']);
      expect(readConfig(env({ OFFLINE_CODE_CALLERS: 'wallet, support-console' })).OFFLINE_CODE_CALLERS).toEqual(['wallet', 'support-console']);
      for (const bad of ['', ',', 'wallet,', 'wallet gateway']) expect(() => readConfig(env({ OFFLINE_CODE_CALLERS: bad }))).toThrow(/^invalid configuration: OFFLINE_CODE_CALLERS: /);
    });
  });

  it('never lets a card number, key, token key or cryptogram reach a log line or an event', async () => {
    const t = await bandWithToken();
    const taps = [tap(t.band), tap(t.band)];
    for (const req of taps) await verify(req);
    await verify(another(taps[1]!, { amount: { amountMinor: 1n, currency: 'EUR' } }));
    await verify(taps[1]!); // a retry of the same payment: answered from the idempotency row
    await verify(asTap(t.band.replayLastTap()));
    await expectStatus(client.provisionToken(provisionRequest(t, { fundingSource: { source: { $case: 'cardNumber', value: '4111111111111112' } } })), status.INVALID_ARGUMENT);
    await deps.events.waitFor(() => tokenEvents('token.payment.refused', t.tokenId).length === 2, 5_000, 'refusals');
    const tokenKey = deriveTokenKey(Buffer.from(masterKey, 'base64'), t.tokenId);
    const secrets = [PAN, '4111111111111112', masterKey, kek1, kek2, tokenKey.toString('hex'), tokenKey.toString('base64'), t.tokenNumber];
    for (const req of taps) secrets.push(Buffer.from(req.cryptogram).toString('hex'), Buffer.from(req.cryptogram).toString('base64'));
    const logged = logLines.join('\n');
    expect(logLines.length).toBeGreaterThan(5);
    for (const secret of secrets) expect(logged).not.toContain(secret);
    const published = deps.events.seen.map((e) => Buffer.from(encodeEvent(e.event)));
    for (const bytes of published) {
      expect(bytes.includes(Buffer.from(PAN))).toBe(false);
      expect(bytes.includes(tokenKey)).toBe(false);
      for (const req of taps) expect(bytes.includes(Buffer.from(req.cryptogram))).toBe(false);
    }
  });

  async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs = 5_000) {
    const until = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > until) throw new Error(`timed out waiting until ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  describe('on embedded PGlite (no DATABASE_URL, as `npm start` runs locally)', () => {
    const pglitePrefix = uniqueName();
    let pgliteEvents: Awaited<ReturnType<typeof watchEvents>>;
    let pgliteRegistryDb: Awaited<ReturnType<typeof freshDatabase>>;
    beforeAll(async () => {
      pgliteEvents = await watchEvents(pglitePrefix);
      pgliteRegistryDb = await freshDatabase();
    });
    afterAll(async () => {
      await pgliteEvents?.close();
      await pgliteRegistryDb?.drop();
    });

    it('provisions, verifies (once per payment id), refuses a replay, suspends a lost band’s token and rotates keys, in a child process', async () => {
      const seen = (await inChildProcess('services/tokenization/test/support/pglite-scenario.ts', { REGISTRY_DATABASE_URL: pgliteRegistryDb.url, SCENARIO_PREFIX: pglitePrefix }, 60_000)) as { tokenId: string };
      expect(seen).toMatchObject({ results: ['VERIFY_RESULT_OK', 'VERIFY_RESULT_OK', 'VERIFY_RESULT_REPLAY', 'VERIFY_RESULT_TOKEN_SUSPENDED'], kekVersion: 2, rewrapped: '0' });
      const forToken = (type: string) => pgliteEvents.ofType(type).filter((e) => (e.event.payload?.value as { tokenId?: string }).tokenId === seen.tokenId);
      await pgliteEvents.waitFor(() => ['token.provisioned', 'token.payment.verified', 'token.suspended'].every((t) => forToken(t).length === 1) && forToken('token.payment.refused').length === 2, 5_000, 'PGlite outbox events');
    }, 70_000);
  });

  describe('key rotation', () => {
    const rotationPrefix = uniqueName();
    let rotationDb: Awaited<ReturnType<typeof freshDatabase>>;
    let rotationEvents: Awaited<ReturnType<typeof watchEvents>>;

    beforeAll(async () => {
      rotationDb = await freshDatabase();
      rotationEvents = await watchEvents(rotationPrefix);
    });

    afterAll(async () => {
      await rotationEvents?.close();
      await rotationDb?.drop();
    });

    // Its own vault and subject prefix, so its device consumer never takes the main vault's events.
    const startRotation = (extra: Record<string, string>) =>
      startTokenization(readConfig({ ...env(extra), DATABASE_URL: rotationDb.url, NATS_SUBJECT_PREFIX: rotationPrefix, REDIS_KEY_PREFIX: rotationPrefix }), logger);

    it('re-wraps every data key under the new KEK in batches while payments keep flowing', async () => {
      let vault = await startRotation({ VAULT_KEKS: `1:${kek1}` });
      let rc = testClient(TokenizationServiceClient, vault.port);
      const bands = [];
      try {
        for (let i = 0; i < 4; i++) {
          const b = await newBand();
          for (let j = 0; j < 3; j++) {
            const res = await rc.provisionToken(provisionRequest(b, { fundingSource: { source: { $case: 'walletAccountId', value: `wallet-${i}-${j}` } } }));
            if (j === 0) {
              b.band.installToken({ tokenId: res.token!.tokenId, tokenNumber: res.tokenNumber, wrapped: res.wrappedTokenKey! });
              bands.push({ ...b, tokenId: res.token!.tokenId });
            }
          }
        }
        rc.close();
        await vault.stop();
        // The operator adds KEK 2, makes it active, rolls the pods, then rotates.
        vault = await startRotation({ VAULT_KEKS: `1:${kek1},2:${kek2}`, VAULT_ACTIVE_KEY_VERSION: '2', VAULT_REWRAP_BATCH_SIZE: '5' });
        rc = testClient(TokenizationServiceClient, vault.port);
        const fresh = await rc.provisionToken(provisionRequest(bands[0]!, { fundingSource: { source: { $case: 'cardNumber', value: PAN } } }));
        const rotateReq = { idempotencyKey: randomUUID() };
        const payments = Promise.all(bands.map(async (b) => {
          const results = [];
          for (let k = 0; k < 5; k++) results.push((await rc.verifyPayment(tap(b.band))).verification!.result);
          return results;
        }));
        const [rotated, results] = await Promise.all([rc.rotateKeys(rotateReq), payments]);
        expect(rotated).toEqual({ keyVersion: 2, rewrapped: 12n });
        expect(results.flat().every((r) => r === R.VERIFY_RESULT_OK)).toBe(true);
        expect(await rc.rotateKeys(rotateReq)).toEqual(rotated);
        expect(await rc.rotateKeys({ idempotencyKey: randomUUID() })).toEqual({ keyVersion: 2, rewrapped: 0n });

        // With KEK 1 retired, every record still opens (checked through Detokenize over mTLS).
        rc.close();
        await vault.stop();
        const pki = testPki(['tokenization', 'settlement']);
        vault = await startRotation({ VAULT_KEKS: `2:${kek2}`, VAULT_ACTIVE_KEY_VERSION: '2', ...pki.env('tokenization') });
        rc = testClient(TokenizationServiceClient, vault.port, pki.client('settlement'));
        try {
          expect((await rc.detokenize({ tokenId: fresh.token!.tokenId })).fundingSource).toEqual({ source: { $case: 'cardNumber', value: PAN } });
          const db = new Client({ connectionString: rotationDb.url });
          await db.connect();
          const all = await db.query('SELECT token_id, kek_version FROM tokens');
          await db.end();
          expect(all.rows.every((r) => r.kek_version === 2)).toBe(true);
          const opened = await Promise.all(all.rows.map((r) => rc.detokenize({ tokenId: r.token_id })));
          expect(opened.filter((o) => o.fundingSource!.source!.$case === 'walletAccountId')).toHaveLength(12);
        } finally {
          pki.remove();
        }
      } finally {
        rc.close();
        await vault.stop();
      }
    });

    it('refuses to start with an active KEK it does not hold, naming the variable', () => {
      expect(() => readConfig(env({ VAULT_KEKS: `1:${kek1}`, VAULT_ACTIVE_KEY_VERSION: '2' }))).toThrow(/VAULT_ACTIVE_KEY_VERSION/);
      expect(() => readConfig(env({ VAULT_KEKS: `1:${b64(16)}` }))).toThrow(/VAULT_KEKS: .*32 bytes/);
      expect(() => readConfig(env({ TOKEN_MASTER_KEY: b64(16) }))).toThrow(/TOKEN_MASTER_KEY/);
    });
  });
});

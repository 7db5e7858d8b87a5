import { randomBytes, randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { Client } from 'pg';
import { SessionEndReason } from '../../../gen/wristpay/device_registry/v1/device_registry';
import { DeclineReason, PaymentStatus } from '../../../gen/wristpay/gateway/v1/gateway';
import { freePort } from '../../../scripts/mesh';
import type { Band, TapPayload } from '../../../sim/band';
import { type MeshClients } from '../../../sim/clients';
import { GatewayServiceClient } from '../../../gen/wristpay/gateway/v1/gateway';
import { createClient } from '../../../platform/grpc/client';
import { terminalNonce } from '../../../sim/terminal';
import { onboardBand, pay } from '../../../sim/wallet';
import { watchEvents } from '../../../test/support/events';
import { startGatewayMesh, type GatewayMesh, type MerchantTerminal } from '../../../test/support/gateway-mesh';
import { requireServers } from '../../../test/support/servers';
import { expectStatus, testLogger, uniqueName } from '../../../test/support/services';
import { startRisk } from '../../risk/src/app';
import { readConfig as riskConfig } from '../../risk/src/config';
import { startGateway } from '../src/app';
import { readConfig as gatewayConfig } from '../src/config';

/**
 * The gateway in-process on port 0 in front of the four real downstream services, all over
 * mutual TLS (test/support/gateway-mesh.ts), on real PostgreSQL, Redis and NATS JetStream under
 * one prefix. Every test onboards its own merchants (back office), bands and accounts.
 */
describe('gateway against the real mesh', () => {
  let mesh: GatewayMesh;
  let shop: MerchantTerminal;
  let clients: MeshClients;
  let events: Awaited<ReturnType<typeof watchEvents>>;
  let db: Client;
  const stoppers: Array<{ stop(): Promise<void> }> = [];

  beforeAll(async () => {
    await requireServers('PostgreSQL', 'Redis', 'NATS');
    mesh = await startGatewayMesh();
    events = await watchEvents(mesh.prefix);
    shop = await mesh.merchant();
    clients = shop.clients;
    db = new Client({ connectionString: String(mesh.gatewayEnv().DATABASE_URL) });
    await db.connect();
  }, 60_000);

  afterAll(async () => {
    await db?.end();
    for (const s of stoppers.reverse()) await s.stop();
    await events?.close();
    await mesh?.stop();
  });

  /** The gateway's row for a merchant's idempotency key. */
  const rowOf = async (merchantId: string, key: string) =>
    (await db.query<{ payment_id: string; status: string; attempt: number }>('SELECT payment_id, status, attempt FROM payments WHERE merchant_id = $1 AND idempotency_key = $2', [merchantId, key])).rows[0];

  const EUR = 'EUR';
  const balanceOf = async (accountId: string) => {
    const b = await clients.settlement.getBalance({ accountId, currency: EUR });
    return { held: b.held!.amountMinor, available: b.available!.amountMinor };
  };
  const tapFor = (band: Band, merchantId: string, amountMinor: bigint): TapPayload => band.tap({ amountMinor, currency: EUR, merchantId, terminalNonce: terminalNonce() });
  const mentions = (needle: string) => (e: { event: unknown }) => JSON.stringify(e.event, (_k, v) => (typeof v === 'bigint' ? String(v) : v)).includes(needle);
  /** Events of `type` about `needle` (a payment id, device id, ...). */
  const eventsAbout = (type: string, needle: string) => events.ofType(type).filter(mentions(needle));
  /** A tap's verification events: what tokenization said about this band's ATC. */
  const verifications = (band: Band, atc: bigint) =>
    [...events.ofType('token.payment.verified'), ...events.ofType('token.payment.refused')]
      .filter((e) => e.event.payload?.$case === 'verification' && e.event.payload.value.deviceId === band.deviceId && e.event.payload.value.atc === atc)
      .map((e) => (e.event.payload as { value: { result: string } }).value.result);

  it('approves a live band; a retried Authorize returns the same payment and holds the money once', async () => {
    const accountId = uniqueName('acct');
    const { merchantId, displayName } = shop;
    const band = await onboardBand(clients, accountId, 10_000n);
    const first = await pay(clients, band, { merchantId, amountMinor: 1_234n });
    expect(first.response).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_APPROVED, declineReason: DeclineReason.DECLINE_REASON_UNSPECIFIED, holdId: expect.any(String) });
    expect(first.response.holdId).not.toBe('');

    const retry = await pay(clients, band, { merchantId, amountMinor: 1_234n, tap: first.tap, idempotencyKey: first.idempotencyKey });
    expect(retry.response).toEqual(first.response);
    expect(await balanceOf(accountId)).toEqual({ held: 1_234n, available: 10_000n - 1_234n });

    const { payment } = await clients.gateway.getPayment({ paymentId: first.response.paymentId, merchantId });
    expect(payment).toMatchObject({ paymentId: first.response.paymentId, status: PaymentStatus.PAYMENT_STATUS_APPROVED, holdId: first.response.holdId, accountId, deviceId: band.deviceId, merchantId, amount: { amountMinor: 1_234n, currency: EUR }, merchantName: displayName });

    const paymentId = first.response.paymentId;
    await events.waitFor(() => eventsAbout('payment.authorized', paymentId).length > 0 && eventsAbout('payment.hold.placed', paymentId).length > 0, 5_000, 'payment.authorized and payment.hold.placed');
    await new Promise((r) => setTimeout(r, 200));
    expect(eventsAbout('payment.authorized', paymentId)).toHaveLength(1);
    expect(eventsAbout('payment.hold.placed', paymentId)).toHaveLength(1);
    expect(verifications(band, first.tap!.atc)).toEqual(['OK']);
  });

  it('captures once: the same Capture retried answers as the first, another key is refused, a refund after it still works', async () => {
    const accountId = uniqueName('acct');
    const { merchantId } = shop;
    const band = await onboardBand(clients, accountId, 10_000n);
    const { response } = await pay(clients, band, { merchantId, amountMinor: 2_000n });
    expect(response.status).toBe(PaymentStatus.PAYMENT_STATUS_APPROVED);
    const capture = { paymentId: response.paymentId, merchantId, idempotencyKey: randomUUID(), amount: undefined };
    const first = await clients.gateway.capture(capture);
    expect(first.payment!.status).toBe(PaymentStatus.PAYMENT_STATUS_CAPTURED);
    expect(await clients.gateway.capture(capture)).toEqual(first);
    await expectStatus(clients.gateway.capture({ ...capture, idempotencyKey: randomUUID() }), status.FAILED_PRECONDITION);
    // Settlement's refusals reach the merchant as they are, not as INTERNAL.
    await expectStatus(clients.gateway.refund({ paymentId: response.paymentId, merchantId, idempotencyKey: randomUUID(), amount: { amountMinor: 2_001n, currency: EUR } }), status.FAILED_PRECONDITION);
    expect(await balanceOf(accountId)).toEqual({ held: 0n, available: 8_000n });
    // Another merchant cannot see, capture or refund it: NOT_FOUND, as for an unknown payment;
    // naming this merchant is PERMISSION_DENIED (a merchant acts only for itself).
    const stranger = await mesh.merchant();
    await expectStatus(stranger.clients.gateway.getPayment({ paymentId: response.paymentId, merchantId: '' }), status.NOT_FOUND);
    await expectStatus(stranger.clients.gateway.refund({ paymentId: response.paymentId, merchantId: '', idempotencyKey: randomUUID(), amount: { amountMinor: 1n, currency: EUR } }), status.NOT_FOUND);
    await expectStatus(stranger.clients.gateway.getPayment({ paymentId: response.paymentId, merchantId }), status.PERMISSION_DENIED, /acts for merchant/);
    await expectStatus(clients.gateway.getPayment({ paymentId: 'not-a-uuid', merchantId: '' }), status.INVALID_ARGUMENT, /payment_id/);

    const refund = { paymentId: response.paymentId, merchantId, idempotencyKey: randomUUID(), amount: { amountMinor: 500n, currency: EUR } };
    expect((await clients.gateway.refund(refund)).payment!.status).toBe(PaymentStatus.PAYMENT_STATUS_REFUNDED);
    expect((await clients.gateway.refund(refund)).payment!.status).toBe(PaymentStatus.PAYMENT_STATUS_REFUNDED);
    // A late retry of the capture answers from settlement and does not take the payment back to CAPTURED.
    await clients.gateway.capture(capture);
    expect((await clients.gateway.getPayment({ paymentId: response.paymentId, merchantId })).payment!.status).toBe(PaymentStatus.PAYMENT_STATUS_REFUNDED);
    expect(await balanceOf(accountId)).toEqual({ held: 0n, available: 8_500n });
  });

  it('after a downstream failure, the same Authorize again approves under the first attempt’s payment id, verified and held once', async () => {
    // A second gateway replica (same payments database) whose risk is not there yet: the first
    // attempt verifies the tap (spending its ATC) and reads the session, then fails at risk.Score.
    const riskPort = await freePort();
    const gateway = await startGateway(gatewayConfig(mesh.gatewayEnv({ GATEWAY_PORT: '0', RISK_ADDR: `localhost:${riskPort}` })), testLogger('gateway'));
    stoppers.push(gateway);
    const viaGateway = {
      ...clients,
      gateway: createClient(GatewayServiceClient, `localhost:${gateway.port}`, { credentials: mesh.pki.client(`merchant.${shop.merchantId}`), deadlineMs: 10_000, retryable: [] }),
    };
    try {
      const accountId = uniqueName('acct');
      const { merchantId } = shop;
      const band = await onboardBand(clients, accountId, 10_000n);
      const tap = tapFor(band, merchantId, 2_500n);
      const attempt = { merchantId, amountMinor: 2_500n, tap, idempotencyKey: randomUUID() };

      await expectStatus(pay(viaGateway, band, attempt), status.UNAVAILABLE);
      expect(await balanceOf(accountId)).toEqual({ held: 0n, available: 10_000n });
      await events.waitFor(() => verifications(band, tap.atc).length > 0, 5_000, 'the first attempt’s verification');
      expect(verifications(band, tap.atc)).toEqual(['OK']);
      // The failed attempt left its payment RECEIVED in the database, for the retry to resume.
      const record = await rowOf(merchantId, attempt.idempotencyKey);
      expect(record).toMatchObject({ status: 'RECEIVED', attempt: 1 });
      const firstPaymentId = record!.payment_id;

      const risk = await startRisk(riskConfig({ ...mesh.gatewayEnv(), ...mesh.pki.env('risk'), RISK_PORT: String(riskPort), RISK_RULES_WATCH: 'false', RISK_CONSUMERS: 'false' }), testLogger('risk'));
      stoppers.push(risk);
      // The terminal retries the same request while the gateway's channel to risk reconnects
      // (each retry takes the payment over again, under the same payment id).
      let retried = await pay(viaGateway, band, attempt).catch((err: { code?: number }) => err);
      for (const until = Date.now() + 10_000; 'code' in retried && retried.code === status.UNAVAILABLE && Date.now() < until; ) {
        await new Promise((r) => setTimeout(r, 100));
        retried = await pay(viaGateway, band, attempt).catch((err: { code?: number }) => err);
      }
      if (!('response' in retried)) throw retried;
      // Before payment ids survived a failed attempt, this retry got a new id, so tokenization saw
      // the spent ATC again and the payment was DECLINED as REPLAY.
      expect(retried.response).toMatchObject({ paymentId: firstPaymentId, status: PaymentStatus.PAYMENT_STATUS_APPROVED, declineReason: DeclineReason.DECLINE_REASON_UNSPECIFIED });
      expect(await balanceOf(accountId)).toEqual({ held: 2_500n, available: 10_000n - 2_500n });
      expect((await viaGateway.gateway.getPayment({ paymentId: firstPaymentId, merchantId })).payment).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_APPROVED, holdId: retried.response.holdId });

      expect(await rowOf(merchantId, attempt.idempotencyKey)).toMatchObject({ status: 'APPROVED' });
      // Once answered, the same request returns that answer (through either replica).
      expect((await pay(viaGateway, band, attempt)).response).toEqual(retried.response);
      expect((await pay(clients, band, attempt)).response).toEqual(retried.response);

      await events.waitFor(() => eventsAbout('payment.authorized', firstPaymentId).length > 0 && eventsAbout('payment.hold.placed', firstPaymentId).length > 0, 5_000, 'payment.authorized and payment.hold.placed');
      await new Promise((r) => setTimeout(r, 200));
      expect(eventsAbout('payment.authorized', firstPaymentId)).toHaveLength(1);
      expect(eventsAbout('payment.hold.placed', firstPaymentId)).toHaveLength(1);
      expect(eventsAbout('payment.declined', firstPaymentId)).toHaveLength(0);
      // One verification of the tap, never a REPLAY refusal.
      expect(verifications(band, tap.atc)).toEqual(['OK']);
    } finally {
      viaGateway.gateway.close();
    }
  });

  it('refuses bad input with INVALID_ARGUMENT before anything is spent or held; a reused key with another amount is ALREADY_EXISTS', async () => {
    const accountId = uniqueName('acct');
    const { merchantId } = shop;
    const band = await onboardBand(clients, accountId, 5_000n);
    const tap = tapFor(band, merchantId, 800n);

    await expectStatus(pay(clients, band, { merchantId, amountMinor: 800n, tap, idempotencyKey: '' }), status.INVALID_ARGUMENT, /idempotency_key/);
    await expectStatus(pay(clients, band, { merchantId, amountMinor: 800n, tap, idempotencyKey: 'k'.repeat(201) }), status.INVALID_ARGUMENT, /idempotency_key/);
    await expectStatus(pay(clients, band, { merchantId, amountMinor: 800n, tap, idempotencyKey: 'key\u0000nul' }), status.INVALID_ARGUMENT, /idempotency_key/);
    await expectStatus(pay(clients, band, { merchantId, amountMinor: 800n, tap, presentedAmountMinor: 0n }), status.INVALID_ARGUMENT, /amount/);
    await expectStatus(pay(clients, band, { merchantId, amountMinor: 800n, tap, presentedAmountMinor: -800n }), status.INVALID_ARGUMENT, /amount/);
    await expectStatus(pay(clients, band, { merchantId, amountMinor: 800n, tap, currency: 'eur' }), status.INVALID_ARGUMENT, /currency/);
    await expectStatus(pay(clients, band, { merchantId, amountMinor: 800n, tap, currency: 'ZZZ' }), status.INVALID_ARGUMENT, /currency/);
    // A currency the merchant is not paid in is refused before the tap is presented.
    await expectStatus(pay(clients, band, { merchantId, amountMinor: 800n, tap, currency: 'USD' }), status.INVALID_ARGUMENT, /must be EUR/);
    await expectStatus(pay(clients, band, { merchantId, amountMinor: 800n, tap: { ...tap, atc: 2n ** 64n - 1n } }), status.INVALID_ARGUMENT, /atc/);
    await expectStatus(
      clients.gateway.authorize({ idempotencyKey: randomUUID(), merchantId, amount: { amountMinor: 800n, currency: EUR }, payload: { $case: 'tap', value: tap }, location: { latitude: Number.NaN, longitude: 0 }, terminalId: '', voucherCode: '', merchantName: '' }),
      status.INVALID_ARGUMENT,
      /location/,
    );
    await expectStatus(
      clients.gateway.authorize({ idempotencyKey: randomUUID(), merchantId, amount: { amountMinor: 800n, currency: EUR }, payload: { $case: 'tap', value: tap }, location: undefined, terminalId: 't'.repeat(65), voucherCode: '', merchantName: '' }),
      status.INVALID_ARGUMENT,
      /terminal_id/,
    );
    // merchant_id may be left out (the caller's merchant) but never names another one.
    await expectStatus(pay(clients, band, { merchantId: `${merchantId}x`, amountMinor: 800n, tap }), status.PERMISSION_DENIED, /acts for merchant/);
    await expectStatus(pay(clients, band, { merchantId, amountMinor: 800n, tap: { ...tap, cryptogram: tap.cryptogram.subarray(0, 8) } }), status.INVALID_ARGUMENT, /cryptogram/);
    expect(await balanceOf(accountId)).toEqual({ held: 0n, available: 5_000n });

    // Nothing was spent: the same tap still pays.
    const ok = await pay(clients, band, { merchantId, amountMinor: 800n, tap });
    expect(ok.response.status).toBe(PaymentStatus.PAYMENT_STATUS_APPROVED);
    // Its key with a different amount is refused, and moves nothing.
    await expectStatus(pay(clients, band, { merchantId, amountMinor: 800n, tap, presentedAmountMinor: 900n, idempotencyKey: ok.idempotencyKey }), status.ALREADY_EXISTS, /idempotency key/);
    expect(await balanceOf(accountId)).toEqual({ held: 800n, available: 5_000n - 800n });
    // The verification event arrives on its own time: wait for it, then for any second one.
    await events.waitFor(() => verifications(band, tap.atc).length > 0, 5_000, 'the verification event');
    await new Promise((r) => setTimeout(r, 200));
    expect(verifications(band, tap.atc)).toEqual(['OK']);
  });

  it('declines a band reported lost, and asks for step-up (CHALLENGE) once the band is off the wrist; neither holds money', async () => {
    const { merchantId } = shop;
    const lostAccount = uniqueName('acct');
    const lost = await onboardBand(clients, lostAccount, 5_000n);
    await clients.registry.reportLost({ idempotencyKey: randomUUID(), deviceId: lost.deviceId! });
    const declined = await pay(clients, lost, { merchantId, amountMinor: 500n });
    // The registry says LOST at once; tokenization suspends the token when it hears device.lost.
    // Whichever the gateway sees first, the payment is declined as an inactive band or token.
    expect(declined.response).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_DECLINED, holdId: '' });
    expect([DeclineReason.DECLINE_REASON_DEVICE_INACTIVE, DeclineReason.DECLINE_REASON_TOKEN_INACTIVE]).toContain(declined.response.declineReason);
    expect(declined.response.message).toMatch(/lost|not active/);
    expect(await balanceOf(lostAccount)).toEqual({ held: 0n, available: 5_000n });

    const offAccount = uniqueName('acct');
    const off = await onboardBand(clients, offAccount, 5_000n);
    const ended = await clients.registry.endSession({ idempotencyKey: randomUUID(), deviceId: off.deviceId!, reason: SessionEndReason.SESSION_END_REASON_WRIST_OFF });
    expect(ended.ended).toBe(true);
    const challenged = await pay(clients, off, { merchantId, amountMinor: 500n });
    expect(challenged.response).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED, declineReason: DeclineReason.DECLINE_REASON_UNSPECIFIED, holdId: '', challenge: { challengeId: expect.any(String), expiresAt: expect.any(Date) } });
    expect(challenged.response.riskReasons).toContain('SESSION_NOT_LIVE');
    expect(await balanceOf(offAccount)).toEqual({ held: 0n, available: 5_000n });

    await events.waitFor(
      () => eventsAbout('payment.declined', declined.response.paymentId).length > 0 && eventsAbout('payment.challenged', challenged.response.paymentId).length > 0,
      5_000,
      'payment.declined and payment.challenged',
    );
  });

  describe('vouchers and merchant names', () => {
    const voucherCode = (label = 'GW') => `${label}-${randomBytes(5).toString('hex')}`;
    const issue = async (m: MerchantTerminal, over: Partial<Parameters<MeshClients['gateway']['issueVoucher']>[0]> = {}) =>
      (
        await m.clients.gateway.issueVoucher({
          idempotencyKey: randomUUID(),
          merchantId: m.merchantId,
          code: voucherCode(),
          discount: { $case: 'amountOff', value: { amountMinor: 300n, currency: EUR } },
          expiresAt: new Date(Date.now() + 3_600_000),
          maxUses: 1,
          ...over,
        })
      ).voucher!;
    const usesOf = async (m: MerchantTerminal, code: string) => (await m.clients.gateway.getVoucher({ merchantId: m.merchantId, code })).voucher!.uses;

    it('Authorize with a voucher: approved for the net, discount and charged on the answer, record and events', async () => {
      const accountId = uniqueName('acct');
      const m = await mesh.merchant({ displayName: 'Dumpling House' });
      const { merchantId } = m;
      const clients = m.clients;
      const v = await issue(m);
      const band = await onboardBand(clients, accountId, 10_000n);
      const { response } = await pay(clients, band, { merchantId, amountMinor: 2_000n, voucherCode: v.code, merchantName: 'What The Terminal Says' });
      expect(response).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_APPROVED, discount: { amountMinor: 300n, currency: EUR }, charged: { amountMinor: 1_700n, currency: EUR } });
      expect(await balanceOf(accountId)).toEqual({ held: 1_700n, available: 10_000n - 1_700n });
      const { payment } = await clients.gateway.getPayment({ paymentId: response.paymentId, merchantId });
      expect(payment).toMatchObject({
        amount: { amountMinor: 2_000n, currency: EUR },
        discount: { amountMinor: 300n, currency: EUR },
        charged: { amountMinor: 1_700n, currency: EUR },
        merchantName: 'Dumpling House',
        voucherCode: v.code,
      });
      expect(await usesOf(m, v.code)).toBe(1);

      await events.waitFor(() => eventsAbout('payment.authorized', response.paymentId).length > 0 && eventsAbout('payment.hold.placed', response.paymentId).length > 0, 5_000, 'authorized and hold.placed');
      expect(eventsAbout('payment.authorized', response.paymentId)[0]!.event.payload).toMatchObject({
        value: { amount: { amountMinor: 2_000n }, discount: { amountMinor: 300n, currency: EUR }, merchantName: 'Dumpling House' },
      });
      expect(eventsAbout('payment.hold.placed', response.paymentId)[0]!.event.payload).toMatchObject({
        value: { amount: { amountMinor: 1_700n }, discount: { amountMinor: 300n }, merchantName: 'Dumpling House', deviceId: band.deviceId },
      });

      // Capture through the gateway: the net to escrow, the discount is the merchant's cost.
      await clients.gateway.capture({ paymentId: response.paymentId, merchantId, idempotencyKey: randomUUID(), amount: undefined });
      const vouchers = await clients.settlement.getBalance({ accountId: `merchant:${merchantId}:vouchers`, currency: EUR });
      expect(vouchers.posted).toEqual({ amountMinor: -300n, currency: EUR });
      const escrow = await clients.settlement.getBalance({ accountId: `merchant:${merchantId}:escrow`, currency: EUR });
      expect(escrow.posted).toEqual({ amountMinor: 1_700n, currency: EUR });

      // A payment without a voucher: nothing off, charged the amount, no discount on its event.
      const plain = await pay(clients, band, { merchantId, amountMinor: 500n });
      expect(plain.response).toMatchObject({ discount: { amountMinor: 0n, currency: EUR }, charged: { amountMinor: 500n, currency: EUR } });
      await events.waitFor(() => eventsAbout('payment.authorized', plain.response.paymentId).length > 0, 5_000, 'plain authorized');
      expect((eventsAbout('payment.authorized', plain.response.paymentId)[0]!.event.payload as { value: { discount?: unknown } }).value.discount).toBeUndefined();
    });

    it('a used-up voucher is refused FAILED_PRECONDITION before the band’s credential is spent', async () => {
      const accountId = uniqueName('acct');
      const m = await mesh.merchant({ displayName: 'Dumpling House' });
      const { merchantId } = m;
      const clients = m.clients;
      const v = await issue(m);
      const band = await onboardBand(clients, accountId, 10_000n);
      expect((await pay(clients, band, { merchantId, amountMinor: 1_000n, voucherCode: v.code })).response.status).toBe(PaymentStatus.PAYMENT_STATUS_APPROVED);

      const tap = tapFor(band, merchantId, 1_000n);
      const attempt = { merchantId, amountMinor: 1_000n, tap, voucherCode: v.code, idempotencyKey: randomUUID() };
      await expectStatus(pay(clients, band, attempt), status.FAILED_PRECONDITION, /used up \(1\/1 uses\)/);
      expect(await balanceOf(accountId)).toEqual({ held: 700n, available: 10_000n - 700n });
      // The tap's ATC was never presented to tokenization: the same tap still pays, without the voucher.
      await new Promise((r) => setTimeout(r, 200));
      expect(verifications(band, tap.atc)).toEqual([]);
      const ok = await pay(clients, band, { merchantId, amountMinor: 1_000n, tap });
      expect(ok.response).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_APPROVED, charged: { amountMinor: 1_000n } });
      await events.waitFor(() => verifications(band, tap.atc).length > 0, 5_000, 'the verification event');
      expect(verifications(band, tap.atc)).toEqual(['OK']);
    });

    it('another merchant’s voucher is PERMISSION_DENIED, an expired one FAILED_PRECONDITION, a malformed one INVALID_ARGUMENT; nothing spent', async () => {
      const accountId = uniqueName('acct');
      const m = await mesh.merchant();
      const { merchantId } = m;
      const clients = m.clients;
      const band = await onboardBand(clients, accountId, 10_000n);
      const foreign = await issue(await mesh.merchant());
      const tap = tapFor(band, merchantId, 1_000n);
      const unknownCode = voucherCode('NONE');
      const refusals = [
        await expectStatus(pay(clients, band, { merchantId, amountMinor: 1_000n, tap, voucherCode: foreign.code }), status.PERMISSION_DENIED, /issued by another merchant/),
        await expectStatus(pay(clients, band, { merchantId, amountMinor: 1_000n, tap, voucherCode: unknownCode }), status.NOT_FOUND, /no voucher/),
      ];
      await expectStatus(pay(clients, band, { merchantId, amountMinor: 1_000n, tap, voucherCode: 'no' }), status.INVALID_ARGUMENT, /voucher_code must be 4-32/);
      await expectStatus(pay(clients, band, { merchantId, amountMinor: 1_000n, tap, merchantName: 'x'.repeat(65) }), status.INVALID_ARGUMENT, /merchant_name/);
      await expectStatus(pay(clients, band, { merchantId, amountMinor: 1_000n, tap, merchantName: 'Shop\u202e' }), status.INVALID_ARGUMENT, /merchant_name/);

      const soon = await issue(m, { expiresAt: new Date(Date.now() + 1_000) });
      await new Promise((r) => setTimeout(r, 1_300));
      refusals.push(await expectStatus(pay(clients, band, { merchantId, amountMinor: 1_000n, tap, voucherCode: soon.code }), status.FAILED_PRECONDITION, /expired at/));
      // A voucher code is a bearer code: refusals (and so the spans that record them) never echo it.
      for (const [i, code] of [foreign.code, unknownCode, soon.code].entries()) expect(refusals[i]!.details.toUpperCase()).not.toContain(code.toUpperCase());
      expect(await balanceOf(accountId)).toEqual({ held: 0n, available: 10_000n });
      expect(verifications(band, tap.atc)).toEqual([]);
      expect((await pay(clients, band, { merchantId, amountMinor: 1_000n, tap })).response.status).toBe(PaymentStatus.PAYMENT_STATUS_APPROVED);
    });

    it('two concurrent Authorizes with one single-use voucher: one approved, the other refused and its key released', async () => {
      const m = await mesh.merchant();
      const { merchantId } = m;
      const clients = m.clients;
      const v = await issue(m, { discount: { $case: 'percentOff', value: 10 } });
      const accounts = [uniqueName('acct'), uniqueName('acct')];
      const bands = await Promise.all(accounts.map((a) => onboardBand(clients, a, 10_000n)));
      const attempts = bands.map((b) => ({ merchantId, amountMinor: 1_000n, voucherCode: v.code, idempotencyKey: randomUUID(), tap: tapFor(b, merchantId, 1_000n) }));
      const results = await Promise.allSettled(bands.map((b, i) => pay(clients, b, attempts[i]!)));
      const approved = results.filter((r) => r.status === 'fulfilled' && r.value.response.status === PaymentStatus.PAYMENT_STATUS_APPROVED);
      const refused = results.map((r, i) => ({ r, i })).filter(({ r }) => r.status === 'rejected');
      expect(approved).toHaveLength(1);
      expect(refused).toHaveLength(1);
      expect((refused[0]!.r as PromiseRejectedResult).reason).toMatchObject({ code: status.FAILED_PRECONDITION, details: expect.stringMatching(/used up/) });
      expect(await usesOf(m, v.code)).toBe(1);
      const held = await Promise.all(accounts.map(balanceOf));
      expect(held.map((b) => b.held).sort()).toEqual([0n, 900n]);
      // Its credential was spent, so its payment stays RECEIVED (unanswered): a retry resumes it
      // under the same payment id (and is refused again, the voucher still used up).
      const loser = refused[0]!.i;
      expect(await rowOf(merchantId, attempts[loser]!.idempotencyKey)).toMatchObject({ status: 'RECEIVED' });
      await expectStatus(pay(clients, bands[loser]!, attempts[loser]!), status.FAILED_PRECONDITION, /used up/);
    });

    it('IssueVoucher and GetVoucher are scoped to the merchant: another merchant’s voucher is NOT_FOUND, worded as an unknown one', async () => {
      const mine = await mesh.merchant();
      const theirs = await mesh.merchant();
      const { merchantId } = mine;
      const other = theirs.merchantId;
      const key = randomUUID();
      const request = { idempotencyKey: key, merchantId: '', code: voucherCode(), discount: { $case: 'percentOff' as const, value: 20 }, expiresAt: new Date(Date.now() + 3_600_000), maxUses: 0 };
      const { voucher } = await mine.clients.gateway.issueVoucher(request);
      expect(voucher).toMatchObject({ merchantId, code: request.code, maxUses: 1, uses: 0, discount: { $case: 'percentOff', value: 20 } });
      expect((await mine.clients.gateway.issueVoucher(request)).voucher).toEqual(voucher);
      // The same key from another merchant is that merchant's own request, not a reuse of ours.
      const theirsIssued = await theirs.clients.gateway.issueVoucher({ ...request, code: voucherCode() });
      expect(theirsIssued.voucher!.merchantId).toBe(other);
      await expectStatus(theirs.clients.gateway.issueVoucher({ ...request, idempotencyKey: randomUUID() }), status.ALREADY_EXISTS, /already taken/);
      // A merchant issues only its own vouchers.
      await expectStatus(theirs.clients.gateway.issueVoucher({ ...request, idempotencyKey: randomUUID(), merchantId, code: voucherCode() }), status.PERMISSION_DENIED, /acts for merchant/);
      await expectStatus(mine.clients.gateway.issueVoucher({ ...request, idempotencyKey: randomUUID(), expiresAt: new Date(Date.now() - 1_000) }), status.INVALID_ARGUMENT, /expires_at/);
      await expectStatus(mine.clients.gateway.issueVoucher({ ...request, idempotencyKey: '' }), status.INVALID_ARGUMENT, /idempotency_key/);

      expect((await mine.clients.gateway.getVoucher({ merchantId, code: request.code })).voucher).toEqual(voucher);
      const foreign = await expectStatus(theirs.clients.gateway.getVoucher({ merchantId: '', code: request.code }), status.NOT_FOUND);
      const unknownCode = voucherCode('NONE');
      const unknown = await expectStatus(theirs.clients.gateway.getVoucher({ merchantId: '', code: unknownCode }), status.NOT_FOUND);
      expect(foreign.details).toBe(`merchant ${other} has no voucher with this code`);
      expect(unknown.details).toBe(foreign.details);
      await expectStatus(mine.clients.gateway.getVoucher({ merchantId, code: 'a b' }), status.INVALID_ARGUMENT, /code/);
    });
  });
});

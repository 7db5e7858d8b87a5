import { randomUUID } from 'node:crypto';
import { status, type ClientReadableStream } from '@grpc/grpc-js';
import { SessionEndReason } from '../../../gen/wristpay/device_registry/v1/device_registry';
import { DeclineReason, GatewayServiceClient, MerchantAdminServiceClient, MerchantStatus, PaymentStatus, type Payment, type WatchPaymentResponse } from '../../../gen/wristpay/gateway/v1/gateway';
import { Label, RiskServiceClient } from '../../../gen/wristpay/risk/v1/risk';
import { createClient } from '../../../platform/grpc/client';
import { Band } from '../../../sim/band';
import { confirmStepUp, onboardBand, pay, type StepUpToSign } from '../../../sim/wallet';
import { watchEvents } from '../../../test/support/events';
import { startGatewayMesh, type GatewayMesh, type MerchantTerminal } from '../../../test/support/gateway-mesh';
import { eventually } from '../../../test/support/eventually';
import { requireServers } from '../../../test/support/servers';
import { expectStatus, uniqueName } from '../../../test/support/services';
import { startGateway } from '../src/app';
import { readConfig as gatewayConfig } from '../src/config';
import { testLogger } from '../../../test/support/services';

const EUR = 'EUR';

/**
 * Step-up, void, watch and the merchant registry, through the gateway over mutual TLS in front
 * of the real downstream services (test/support/gateway-mesh.ts).
 */
describe('payments: step-up, void, watch, merchants', () => {
  let mesh: GatewayMesh;
  let shop: MerchantTerminal;
  let events: Awaited<ReturnType<typeof watchEvents>>;
  const extra: Array<{ stop(): Promise<void> }> = [];

  beforeAll(async () => {
    await requireServers('PostgreSQL', 'Redis', 'NATS');
    mesh = await startGatewayMesh();
    events = await watchEvents(mesh.prefix);
    shop = await mesh.merchant({ displayName: 'Noodle Bar' });
  }, 60_000);

  afterAll(async () => {
    for (const s of extra.reverse()) await s.stop();
    await events?.close();
    await mesh?.stop();
  });

  const balanceOf = async (accountId: string) => {
    const b = await shop.clients.settlement.getBalance({ accountId, currency: EUR });
    return { held: b.held!.amountMinor, available: b.available!.amountMinor };
  };
  const ofPayment = (type: string, paymentId: string) =>
    events.ofType(type).filter((e) => e.event.payload?.$case === 'payment' && e.event.payload.value.paymentId === paymentId);

  /** A funded band whose wearer took it off: its next payment is stepped up. */
  async function wristOffBand(topUp = 10_000n): Promise<{ band: Band; accountId: string }> {
    const accountId = uniqueName('acct');
    const band = await onboardBand(shop.clients, accountId, topUp);
    await shop.clients.registry.endSession({ idempotencyKey: randomUUID(), deviceId: band.deviceId!, reason: SessionEndReason.SESSION_END_REASON_WRIST_OFF });
    return { band, accountId };
  }

  /** Pays with a wrist-off band; returns the step-up as the phone gets it (from payment.challenged). */
  async function stepUp(band: Band, accountId: string, amountMinor = 1_500n, terminal = shop): Promise<StepUpToSign & { paid: Awaited<ReturnType<typeof pay>> }> {
    const paid = await pay(terminal.clients, band, { merchantId: terminal.merchantId, amountMinor });
    const { response } = paid;
    expect(response).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED, holdId: '', challenge: { challengeId: expect.any(String) } });
    await events.waitFor(() => ofPayment('payment.challenged', response.paymentId).length > 0, 5_000, 'payment.challenged');
    const event = ofPayment('payment.challenged', response.paymentId)[0]!.event.payload as { value: { stepUp: { challengeId: string; nonce: Uint8Array; expiresAt: Date } } };
    expect(event.value.stepUp.challengeId).toBe(response.challenge!.challengeId);
    expect(event.value.stepUp.nonce).toHaveLength(32);
    return { paymentId: response.paymentId, accountId, challengeId: event.value.stepUp.challengeId, nonce: event.value.stepUp.nonce, paid };
  }

  /** What risk learned of a payment (Explain, as an analyst in the back office). */
  async function riskLabelOf(paymentId: string): Promise<Label> {
    const risk = createClient(RiskServiceClient, `localhost:${mesh.ports.risk}`, { credentials: mesh.pki.client('backoffice'), deadlineMs: 5_000, retryable: [] });
    try {
      return (await risk.explain({ paymentId })).label;
    } finally {
      risk.close();
    }
  }

  /** Follows a payment with WatchPayment until the stream ends; resolves with every message. */
  function watch(terminal: MerchantTerminal, paymentId: string): { updates: Payment[]; ended: Promise<Payment[]>; call: ClientReadableStream<WatchPaymentResponse> } {
    const raw = new GatewayServiceClient(`localhost:${mesh.ports.gateway}`, mesh.pki.client(`merchant.${terminal.merchantId}`));
    const call = raw.watchPayment({ paymentId, merchantId: '' });
    const updates: Payment[] = [];
    const ended = new Promise<Payment[]>((resolve, reject) => {
      call.on('data', (m: WatchPaymentResponse) => updates.push(m.payment!));
      call.on('end', () => {
        raw.close();
        resolve(updates);
      });
      call.on('error', (err) => {
        raw.close();
        reject(err);
      });
    });
    return { updates, ended, call };
  }

  describe('step-up', () => {
    it('confirmed on the band: the payment resumes to APPROVED with one hold, risk learns LEGIT, the terminal watches it end', async () => {
      const { band, accountId } = await wristOffBand();
      const up = await stepUp(band, accountId);
      const watching = watch(shop, up.paymentId);
      expect(await eventually(() => watching.updates[0], 5_000, 'the watch’s first message')).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED });

      const key = randomUUID();
      const confirmed = await confirmStepUp(mesh.wallet, band, up, key);
      expect(confirmed).toMatchObject({ paymentId: up.paymentId, status: PaymentStatus.PAYMENT_STATUS_APPROVED, holdId: expect.any(String), accountId, merchantName: 'Noodle Bar' });
      expect(confirmed.holdId).not.toBe('');
      expect(await balanceOf(accountId)).toEqual({ held: 1_500n, available: 10_000n - 1_500n });

      const updates = await watching.ended;
      expect(updates.at(-1)).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_APPROVED, holdId: confirmed.holdId });
      // A retried Authorize (same key, same tap) answers the outcome now, not the challenge.
      const retried = await pay(shop.clients, band, { merchantId: shop.merchantId, amountMinor: 1_500n, tap: up.paid.tap, idempotencyKey: up.paid.idempotencyKey });
      expect(retried.response).toMatchObject({ paymentId: up.paymentId, status: PaymentStatus.PAYMENT_STATUS_APPROVED, holdId: confirmed.holdId, challenge: undefined });
      const { payment } = await shop.clients.gateway.getPayment({ paymentId: up.paymentId, merchantId: '' });
      expect(payment).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_APPROVED, challenge: { challengeId: up.challengeId } });

      // The same confirmation again (same key) returns the payment; a second confirmation is refused.
      expect(await confirmStepUp(mesh.wallet, band, up, key)).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_APPROVED, holdId: confirmed.holdId });
      await expectStatus(confirmStepUp(mesh.wallet, band, up), status.FAILED_PRECONDITION, /already answered: the payment is APPROVED/);
      await expectStatus(mesh.wallet.declinePayment({ idempotencyKey: randomUUID(), paymentId: up.paymentId, accountId, challengeId: up.challengeId }), status.FAILED_PRECONDITION, /already answered/);
      expect(await balanceOf(accountId)).toEqual({ held: 1_500n, available: 10_000n - 1_500n });

      await events.waitFor(() => ofPayment('payment.authorized', up.paymentId).length > 0, 5_000, 'payment.authorized');
      await new Promise((r) => setTimeout(r, 300));
      expect(ofPayment('payment.challenged', up.paymentId)).toHaveLength(1);
      expect(ofPayment('payment.authorized', up.paymentId)).toHaveLength(1);
      expect(ofPayment('payment.declined', up.paymentId)).toHaveLength(0);
      expect(await riskLabelOf(up.paymentId)).toBe(Label.LABEL_LEGIT);
    });

    it('refuses a signature from another band, for another purpose, a replayed one, another account or challenge: nothing changes', async () => {
      const { band, accountId } = await wristOffBand();
      const up = await stepUp(band, accountId);
      const other = await onboardBand(shop.clients, uniqueName('acct'), 0n);
      const signed = (b: Band, purpose: 'PAYMENT' | 'SESSION', challengeId = up.challengeId) => b.signChallenge({ purpose, challengeId, nonce: Buffer.from(up.nonce) });
      const confirm = (signature: Buffer, over: Partial<{ accountId: string; challengeId: string; paymentId: string }> = {}) =>
        mesh.wallet.confirmPayment({ idempotencyKey: randomUUID(), paymentId: up.paymentId, accountId, challengeId: up.challengeId, signature, ...over });

      await expectStatus(confirm(signed(other, 'PAYMENT')), status.PERMISSION_DENIED, /does not verify/);
      await expectStatus(confirm(signed(band, 'SESSION')), status.PERMISSION_DENIED, /does not verify/);
      // A signature over an earlier challenge of the same band does not confirm this one.
      const earlier = await stepUp(band, accountId, 900n);
      await expectStatus(confirm(band.signChallenge({ purpose: 'PAYMENT', challengeId: earlier.challengeId, nonce: Buffer.from(earlier.nonce) })), status.PERMISSION_DENIED, /does not verify/);
      await expectStatus(confirm(band.signChallenge({ purpose: 'PAYMENT', challengeId: earlier.challengeId, nonce: Buffer.from(earlier.nonce) }), { challengeId: earlier.challengeId }), status.FAILED_PRECONDITION, /not this payment's challenge/);
      await expectStatus(confirm(band.signChallenge({ purpose: 'PAYMENT', challengeId: up.challengeId, nonce: Buffer.from(earlier.nonce) })), status.PERMISSION_DENIED, /does not verify/);
      await expectStatus(confirm(signed(band, 'PAYMENT'), { accountId: uniqueName('acct') }), status.NOT_FOUND);
      await expectStatus(confirm(signed(band, 'PAYMENT'), { challengeId: randomUUID() }), status.FAILED_PRECONDITION, /not this payment's challenge/);
      await expectStatus(confirm(signed(band, 'PAYMENT'), { paymentId: randomUUID() }), status.NOT_FOUND);
      await expectStatus(confirm(signed(band, 'PAYMENT').subarray(0, 63)), status.INVALID_ARGUMENT, /signature/);
      await expectStatus(confirm(signed(band, 'PAYMENT'), { paymentId: 'not-a-uuid' }), status.INVALID_ARGUMENT, /payment_id/);
      await expectStatus(mesh.wallet.confirmPayment({ idempotencyKey: '', paymentId: up.paymentId, accountId, challengeId: up.challengeId, signature: signed(band, 'PAYMENT') }), status.INVALID_ARGUMENT, /idempotency_key/);
      // Only the wallet backend answers step-ups; a merchant cannot.
      await expectStatus(
        shop.clients.gateway.confirmPayment({ idempotencyKey: randomUUID(), paymentId: up.paymentId, accountId, challengeId: up.challengeId, signature: signed(band, 'PAYMENT') }),
        status.PERMISSION_DENIED,
        /may only be called by wallet/,
      );

      const { payment } = await shop.clients.gateway.getPayment({ paymentId: up.paymentId, merchantId: '' });
      expect(payment).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED, holdId: '' });
      expect(await balanceOf(accountId)).toEqual({ held: 0n, available: 10_000n });
      // And the right signature still confirms it.
      expect((await confirm(signed(band, 'PAYMENT'))).payment).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_APPROVED });
    });

    it('declined on the phone: DECLINED (challenge_declined), risk learns FRAUD, nothing held; confirming afterwards is refused', async () => {
      const { band, accountId } = await wristOffBand();
      const up = await stepUp(band, accountId);
      const request = { idempotencyKey: randomUUID(), paymentId: up.paymentId, accountId, challengeId: up.challengeId };
      const { payment } = await mesh.wallet.declinePayment(request);
      expect(payment).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_DECLINED, declineReason: DeclineReason.DECLINE_REASON_CHALLENGE_DECLINED, holdId: '' });
      expect((await mesh.wallet.declinePayment(request)).payment).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_DECLINED });
      await expectStatus(confirmStepUp(mesh.wallet, band, up), status.FAILED_PRECONDITION, /already answered: the payment is DECLINED/);
      expect(await balanceOf(accountId)).toEqual({ held: 0n, available: 10_000n });
      await events.waitFor(() => ofPayment('payment.declined', up.paymentId).length > 0, 5_000, 'payment.declined');
      expect((ofPayment('payment.declined', up.paymentId)[0]!.event.payload as { value: { declineReason: string } }).value.declineReason).toBe('CHALLENGE_DECLINED');
      expect(await riskLabelOf(up.paymentId)).toBe(Label.LABEL_FRAUD);
    });

    it('a confirmation and a refusal racing: exactly one wins, the other is refused, at most one hold', async () => {
      for (let round = 0; round < 3; round++) {
        const { band, accountId } = await wristOffBand();
        const up = await stepUp(band, accountId);
        const [confirmed, declined] = await Promise.allSettled([
          confirmStepUp(mesh.wallet, band, up),
          mesh.wallet.declinePayment({ idempotencyKey: randomUUID(), paymentId: up.paymentId, accountId, challengeId: up.challengeId }),
        ]);
        expect([confirmed.status, declined.status].sort()).toEqual(['fulfilled', 'rejected']);
        const { payment } = await shop.clients.gateway.getPayment({ paymentId: up.paymentId, merchantId: '' });
        const held = (await balanceOf(accountId)).held;
        if (confirmed.status === 'fulfilled') {
          expect(payment!.status).toBe(PaymentStatus.PAYMENT_STATUS_APPROVED);
          expect(held).toBe(1_500n);
        } else {
          expect(payment!.status).toBe(PaymentStatus.PAYMENT_STATUS_DECLINED);
          expect(held).toBe(0n);
        }
      }
    });

    it('left to expire: DECLINED (challenge_expired) by the sweeper, its event once; a late confirmation is refused', async () => {
      // A second replica on the same database with a one-second challenge.
      const quick = await startGateway(gatewayConfig(mesh.gatewayEnv({ GATEWAY_PORT: '0', CHALLENGE_TTL_SECONDS: '1', SWEEP_INTERVAL_MS: '200' })), testLogger('gateway'));
      extra.push(quick);
      const terminal = { ...shop, clients: { ...shop.clients, gateway: createClient(GatewayServiceClient, `localhost:${quick.port}`, { credentials: mesh.pki.client(`merchant.${shop.merchantId}`), deadlineMs: 10_000, retryable: [] }) } };
      try {
        const { band, accountId } = await wristOffBand();
        const up = await stepUp(band, accountId, 1_500n, terminal);
        await events.waitFor(() => ofPayment('payment.declined', up.paymentId).length > 0, 5_000, 'the expiry decline');
        const { payment } = await shop.clients.gateway.getPayment({ paymentId: up.paymentId, merchantId: '' });
        expect(payment).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_DECLINED, declineReason: DeclineReason.DECLINE_REASON_CHALLENGE_EXPIRED, holdId: '' });
        await expectStatus(confirmStepUp(mesh.wallet, band, up), status.FAILED_PRECONDITION, /challenge expired/);
        await new Promise((r) => setTimeout(r, 500));
        expect(ofPayment('payment.declined', up.paymentId)).toHaveLength(1);
        expect(await balanceOf(accountId)).toEqual({ held: 0n, available: 10_000n });
      } finally {
        terminal.clients.gateway.close();
      }
    });
  });

  describe('void', () => {
    it('a merchant voids an approved payment before capture: the hold is released at once; capture is refused after; other merchants see nothing', async () => {
      const accountId = uniqueName('acct');
      const band = await onboardBand(shop.clients, accountId, 10_000n);
      const { response } = await pay(shop.clients, band, { merchantId: shop.merchantId, amountMinor: 2_200n });
      expect(response.status).toBe(PaymentStatus.PAYMENT_STATUS_APPROVED);
      expect(await balanceOf(accountId)).toEqual({ held: 2_200n, available: 7_800n });

      const stranger = await mesh.merchant();
      await expectStatus(stranger.clients.gateway.void({ idempotencyKey: randomUUID(), paymentId: response.paymentId, merchantId: '' }), status.NOT_FOUND);
      await expectStatus(stranger.clients.gateway.void({ idempotencyKey: randomUUID(), paymentId: response.paymentId, merchantId: shop.merchantId }), status.PERMISSION_DENIED);

      const request = { idempotencyKey: randomUUID(), paymentId: response.paymentId, merchantId: '' };
      const voided = await shop.clients.gateway.void(request);
      expect(voided.payment).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_VOIDED, holdId: response.holdId });
      expect(await balanceOf(accountId)).toEqual({ held: 0n, available: 10_000n });
      expect((await shop.clients.gateway.void(request)).payment).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_VOIDED });
      await expectStatus(shop.clients.gateway.capture({ idempotencyKey: randomUUID(), paymentId: response.paymentId, merchantId: '', amount: undefined }), status.FAILED_PRECONDITION, /VOIDED/);
      await expectStatus(shop.clients.gateway.void({ idempotencyKey: '', paymentId: response.paymentId, merchantId: '' }), status.INVALID_ARGUMENT, /idempotency_key/);
      // The retried Authorize still answers the decision it was given.
      expect((await shop.clients.gateway.getPayment({ paymentId: response.paymentId, merchantId: '' })).payment!.status).toBe(PaymentStatus.PAYMENT_STATUS_VOIDED);

      // A captured payment cannot be voided.
      const captured = await pay(shop.clients, band, { merchantId: shop.merchantId, amountMinor: 300n });
      await shop.clients.gateway.capture({ idempotencyKey: randomUUID(), paymentId: captured.response.paymentId, merchantId: '', amount: undefined });
      await expectStatus(shop.clients.gateway.void({ idempotencyKey: randomUUID(), paymentId: captured.response.paymentId, merchantId: '' }), status.FAILED_PRECONDITION, /CAPTURED/);
    });
  });

  describe('merchants', () => {
    const create = (over: Partial<Parameters<GatewayMesh['backoffice']['createMerchant']>[0]> = {}) =>
      mesh.backoffice.createMerchant({ idempotencyKey: randomUUID(), merchantId: uniqueName('m'), displayName: 'Tea House', mcc: '5814', country: 'CN', settlementCurrency: 'CNY', ...over });

    it('onboards, reads, lists; refuses malformed merchants and a second one with the same id; the same key answers once', async () => {
      const request = { idempotencyKey: randomUUID(), merchantId: uniqueName('m'), displayName: 'Tea House', mcc: '5814', country: 'CN', settlementCurrency: 'CNY' };
      const { merchant } = await mesh.backoffice.createMerchant(request);
      expect(merchant).toMatchObject({ merchantId: request.merchantId, displayName: 'Tea House', mcc: '5814', country: 'CN', settlementCurrency: 'CNY', status: MerchantStatus.MERCHANT_STATUS_ACTIVE, callerIdentity: `merchant.${request.merchantId}` });
      expect((await mesh.backoffice.createMerchant(request)).merchant).toEqual(merchant);
      expect((await mesh.backoffice.getMerchant({ merchantId: request.merchantId })).merchant).toEqual(merchant);
      await expectStatus(mesh.backoffice.createMerchant({ ...request, idempotencyKey: randomUUID() }), status.ALREADY_EXISTS, /already exists/);
      await expectStatus(mesh.backoffice.createMerchant({ ...request, displayName: 'Other' }), status.ALREADY_EXISTS, /idempotency key/);
      await expectStatus(mesh.backoffice.getMerchant({ merchantId: uniqueName('m') }), status.NOT_FOUND);

      for (const [over, message] of [
        [{ merchantId: '' }, /merchant_id/],
        [{ merchantId: 'a:b' }, /merchant_id/],
        [{ merchantId: 'm'.repeat(56) }, /merchant_id must be at most 55/],
        [{ displayName: '' }, /display_name/],
        [{ displayName: 'x'.repeat(65) }, /display_name/],
        [{ displayName: 'Tea\u202eHouse' }, /display_name/],
        [{ mcc: '58' }, /mcc/],
        [{ country: 'XX' }, /country/],
        [{ country: 'cn' }, /country/],
        [{ settlementCurrency: 'ZZZ' }, /settlement_currency/],
        [{ idempotencyKey: '' }, /idempotency_key/],
        [{ idempotencyKey: 'a\u0000b' }, /idempotency_key/],
      ] as const) {
        const merchantId = 'merchantId' in over ? over.merchantId : uniqueName('m');
        await expectStatus(create({ ...over, merchantId }), status.INVALID_ARGUMENT, message);
        if (merchantId) await expectStatus(mesh.backoffice.getMerchant({ merchantId }), merchantId.length > 55 || merchantId.includes(':') ? status.INVALID_ARGUMENT : status.NOT_FOUND);
      }

      const seen: string[] = [];
      let pageToken = '';
      do {
        const page = await mesh.backoffice.listMerchants({ pageSize: 2, pageToken });
        seen.push(...page.merchants.map((m) => m.merchantId));
        pageToken = page.nextPageToken;
      } while (pageToken);
      expect(seen).toContain(request.merchantId);
      expect(seen).toContain(shop.merchantId);
      expect([...seen].sort()).toEqual(seen);
      await expectStatus(mesh.backoffice.listMerchants({ pageSize: 201, pageToken: '' }), status.INVALID_ARGUMENT, /page_size/);
      await expectStatus(mesh.backoffice.listMerchants({ pageSize: 2, pageToken: '%%%' }), status.INVALID_ARGUMENT, /page_token/);
    });

    it('only the back office onboards; a suspended or unregistered merchant is refused, a reactivated one pays again', async () => {
      const m = await mesh.merchant();
      await expectStatus(m.clients.gateway.authorize({ idempotencyKey: randomUUID(), merchantId: '', amount: undefined, payload: undefined, location: undefined, terminalId: '', voucherCode: '', merchantName: '' }), status.INVALID_ARGUMENT);
      const asMerchant = createClient(MerchantAdminServiceClient, `localhost:${mesh.ports.gateway}`, {
        credentials: mesh.pki.client(`merchant.${m.merchantId}`),
        deadlineMs: 5_000,
        retryable: [],
      });
      try {
        await expectStatus(asMerchant.createMerchant({ idempotencyKey: randomUUID(), merchantId: uniqueName('m'), displayName: 'X', mcc: '5812', country: 'CN', settlementCurrency: 'EUR' }), status.PERMISSION_DENIED, /may only be called by backoffice/);
        await expectStatus(asMerchant.suspendMerchant({ idempotencyKey: randomUUID(), merchantId: m.merchantId, reason: 'me' }), status.PERMISSION_DENIED);
      } finally {
        asMerchant.close();
      }
      // The wallet backend is no merchant either.
      await expectStatus(mesh.wallet.getPayment({ paymentId: randomUUID(), merchantId: '' }), status.PERMISSION_DENIED, /may only be called by merchant/);

      const accountId = uniqueName('acct');
      const band = await onboardBand(m.clients, accountId, 10_000n);
      const paid = await pay(m.clients, band, { merchantId: m.merchantId, amountMinor: 700n });
      expect(paid.response.status).toBe(PaymentStatus.PAYMENT_STATUS_APPROVED);

      const suspended = await mesh.backoffice.suspendMerchant({ idempotencyKey: randomUUID(), merchantId: m.merchantId, reason: 'chargeback review' });
      expect(suspended.merchant).toMatchObject({ status: MerchantStatus.MERCHANT_STATUS_SUSPENDED, statusReason: 'chargeback review' });
      await expectStatus(pay(m.clients, band, { merchantId: m.merchantId, amountMinor: 700n }), status.PERMISSION_DENIED, /suspended/);
      await expectStatus(m.clients.gateway.capture({ idempotencyKey: randomUUID(), paymentId: paid.response.paymentId, merchantId: '', amount: undefined }), status.PERMISSION_DENIED, /suspended/);
      await expectStatus(mesh.backoffice.suspendMerchant({ idempotencyKey: randomUUID(), merchantId: uniqueName('m'), reason: 'x' }), status.NOT_FOUND);
      await expectStatus(mesh.backoffice.suspendMerchant({ idempotencyKey: randomUUID(), merchantId: m.merchantId, reason: '' }), status.INVALID_ARGUMENT, /reason/);
      expect(await balanceOf(accountId)).toEqual({ held: 700n, available: 9_300n });

      await mesh.backoffice.reactivateMerchant({ idempotencyKey: randomUUID(), merchantId: m.merchantId });
      expect((await pay(m.clients, band, { merchantId: m.merchantId, amountMinor: 700n })).response.status).toBe(PaymentStatus.PAYMENT_STATUS_APPROVED);

      // A certificate for a merchant the registry does not know.
      const ghost = mesh.gatewayAs(`merchant.${uniqueName('ghost')}`);
      await expectStatus(ghost.getPayment({ paymentId: paid.response.paymentId, merchantId: '' }), status.PERMISSION_DENIED, /not registered/);
    });

    it('the merchant name on the payment and its events is the registry’s, whatever the terminal sends', async () => {
      const accountId = uniqueName('acct');
      const band = await onboardBand(shop.clients, accountId, 10_000n);
      const { response } = await pay(shop.clients, band, { merchantId: shop.merchantId, amountMinor: 400n, merchantName: 'Totally Legit Bank' });
      await events.waitFor(() => ofPayment('payment.authorized', response.paymentId).length > 0, 5_000, 'payment.authorized');
      expect((ofPayment('payment.authorized', response.paymentId)[0]!.event.payload as { value: { merchantName: string } }).value.merchantName).toBe('Noodle Bar');
      expect((await shop.clients.gateway.getPayment({ paymentId: response.paymentId, merchantId: '' })).payment!.merchantName).toBe('Noodle Bar');
    });
  });
});

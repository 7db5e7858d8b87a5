import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { DisputeOutcome, HoldOutcome, HoldStatus, VoidReason } from '../../../gen/wristpay/settlement/v1/settlement';
import { decodeEvent, newEvent } from '../../../platform/events';
import { EventBus } from '../../../platform/nats';
import { TEST_NATS_URL, TEST_STREAM_LIMITS } from '../../../test/support/servers';
import { expectStatus, testLogger } from '../../../test/support/services';
import { disputeResolvedEventId } from '../src/domain/event-ids';
import { Ledger } from '../src/ledger';
import { eur, idempotencyRecords, startHarness, uniqueName, type Harness } from './support/settlement-harness';

jest.setTimeout(30_000);

describe('settlement against real PostgreSQL and NATS', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness();
  });

  afterEach(async () => {
    await h.expectLedgerSound();
  });

  afterAll(async () => {
    await h?.stop();
  });

  describe('foundation: top-ups, holds, balances', () => {
    it('a top-up credits the wallet from external funding in one balanced transfer and one event', async () => {
      const alice = uniqueName('alice');
      const { transfer } = await h.topUp(alice, 10_000);
      expect(transfer!.kind).toBe('topup');
      expect(transfer!.postings).toEqual([
        { account: 'external:funding', amountMinor: -10_000n, currency: 'EUR' },
        { account: `wallet:${alice}`, amountMinor: 10_000n, currency: 'EUR' },
      ]);
      expect(await h.balance(alice)).toEqual({ available: 10_000n, held: 0n, posted: 10_000n });
      expect((await h.client.getTransfer({ transferId: transfer!.transferId })).transfer).toEqual(transfer);
      await h.events.waitFor(() => h.about('payment.topup.completed', transfer!.transferId).length === 1, 5_000, 'topup event');
      expect(h.about('payment.topup.completed', transfer!.transferId)[0]!.event.payload).toEqual({
        $case: 'ledger',
        // A top-up has no hold, merchant or band: those fields (issue 7 contract) stay empty.
        value: { transferId: transfer!.transferId, holdId: '', paymentId: '', accountId: alice, merchantId: '', amount: eur(10_000), merchantName: '', deviceId: '', discount: undefined, voidReason: '' },
      });
    });

    it('a hold reserves money: available drops, posted stays, one hold.placed event', async () => {
      const alice = uniqueName('alice');
      await h.topUp(alice, 10_000);
      const req = h.holdRequest(alice, 2_500);
      const res = await h.client.placeHold(req);
      expect(res.outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
      expect(res.hold).toMatchObject({ paymentId: req.paymentId, accountId: alice, merchantId: 'merchant-42', amount: eur(2_500), status: HoldStatus.HOLD_STATUS_PENDING, captured: eur(0) });
      // The service default TTL (7 days) applies when ttl_seconds is 0.
      expect(res.hold!.expiresAt!.getTime() - Date.now()).toBeGreaterThan(6.9 * 24 * 3600 * 1000);
      expect(await h.balance(alice)).toEqual({ available: 7_500n, held: 2_500n, posted: 10_000n });
      await h.events.waitFor(() => h.about('payment.hold.placed', res.hold!.holdId).length === 1, 5_000, 'hold.placed');
    });

    it('insufficient funds is an outcome, not an error, and writes nothing but the idempotency record', async () => {
      const alice = uniqueName('alice');
      await h.topUp(alice, 500);
      const req = h.holdRequest(alice, 501);
      const res = await h.client.placeHold(req);
      expect(res).toEqual({ outcome: HoldOutcome.HOLD_OUTCOME_INSUFFICIENT_FUNDS, hold: undefined });
      expect(await h.balance(alice)).toEqual({ available: 500n, held: 0n, posted: 500n });
      const { rows } = await h.ledgerDb.query('SELECT 1 FROM holds WHERE payment_id = $1', [req.paymentId]);
      expect(rows).toHaveLength(0);
      expect(await idempotencyRecords(h.ledgerDb, req.idempotencyKey)).toBe(1);
      // A wallet that never existed has nothing in it.
      const nobody = uniqueName('nobody');
      expect((await h.client.placeHold(h.holdRequest(nobody, 1))).outcome).toBe(HoldOutcome.HOLD_OUTCOME_INSUFFICIENT_FUNDS);
      expect(await h.balance(nobody)).toEqual({ available: 0n, held: 0n, posted: 0n });
      const { rows: wallets } = await h.ledgerDb.query('SELECT 1 FROM accounts WHERE account = $1', [`wallet:${nobody}`]);
      expect(wallets).toHaveLength(0);
      // The whole balance can be held, to the cent.
      expect((await h.client.placeHold(h.holdRequest(alice, 500))).outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
      expect((await h.balance(alice)).available).toBe(0n);
    });

    it('50 concurrent holds that together exceed the wallet: exactly those that fit succeed, available never below zero', async () => {
      const alice = uniqueName('alice');
      await h.topUp(alice, 10_000);
      const results = await Promise.all(Array.from({ length: 50 }, () => h.client.placeHold(h.holdRequest(alice, 300))));
      const placed = results.filter((r) => r.outcome === HoldOutcome.HOLD_OUTCOME_PLACED);
      const refused = results.filter((r) => r.outcome === HoldOutcome.HOLD_OUTCOME_INSUFFICIENT_FUNDS);
      expect(placed).toHaveLength(33); // floor(10000 / 300)
      expect(refused).toHaveLength(17);
      expect(new Set(placed.map((r) => r.hold!.holdId)).size).toBe(33);
      expect(await h.balance(alice)).toEqual({ available: 100n, held: 9_900n, posted: 10_000n });
    });

    it('concurrent holds of different sizes: every refused one was larger than what is left', async () => {
      const bob = uniqueName('bob');
      await h.topUp(bob, 5_000);
      const amounts = Array.from({ length: 50 }, (_, i) => 50 + ((i * 137) % 400));
      const results = await Promise.all(amounts.map((a) => h.client.placeHold(h.holdRequest(bob, a)).then((r) => ({ a, r }))));
      const placedTotal = results.filter(({ r }) => r.outcome === HoldOutcome.HOLD_OUTCOME_PLACED).reduce((s, { a }) => s + BigInt(a), 0n);
      const after = await h.balance(bob);
      expect(after.held).toBe(placedTotal);
      expect(after.available).toBe(5_000n - placedTotal);
      expect(after.available).toBeGreaterThanOrEqual(0n);
      for (const { a, r } of results) if (r.outcome === HoldOutcome.HOLD_OUTCOME_INSUFFICIENT_FUNDS) expect(BigInt(a)).toBeGreaterThan(after.available);
    });

    it('a retried key returns the first answer and moves nothing twice; another request under the key is refused', async () => {
      const alice = uniqueName('alice');
      const topUp = { idempotencyKey: randomUUID(), accountId: alice, amount: eur(1_000), sourceReference: 'bank-1' };
      const [t1, t2] = await Promise.all([h.client.topUp(topUp), h.client.topUp(topUp)]);
      expect(t2).toEqual(t1);
      expect(await h.client.topUp(topUp)).toEqual(t1);
      expect(await h.balance(alice)).toMatchObject({ posted: 1_000n });
      await expectStatus(h.client.topUp({ ...topUp, amount: eur(2_000) }), status.ALREADY_EXISTS, /idempotency key/);

      const req = h.holdRequest(alice, 400);
      const answers = await Promise.all(Array.from({ length: 5 }, () => h.client.placeHold(req)));
      for (const a of answers) expect(a).toEqual(answers[0]);
      expect(await h.balance(alice)).toEqual({ available: 600n, held: 400n, posted: 1_000n });
      await expectStatus(h.client.placeHold({ ...req, amount: eur(401) }), status.ALREADY_EXISTS, /idempotency key/);
      // One payment holds once, whatever the key.
      await expectStatus(h.client.placeHold({ ...req, idempotencyKey: randomUUID() }), status.ALREADY_EXISTS, new RegExp(`payment ${req.paymentId} already has hold`));
      // An insufficient-funds answer is also the answer for its key, even after a top-up.
      const big = h.holdRequest(alice, 5_000);
      expect((await h.client.placeHold(big)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_INSUFFICIENT_FUNDS);
      await h.topUp(alice, 10_000);
      expect((await h.client.placeHold(big)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_INSUFFICIENT_FUNDS);
      expect((await h.client.placeHold({ ...big, idempotencyKey: randomUUID() })).outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);

      await h.events.waitFor(() => h.about('payment.topup.completed', t1.transfer!.transferId).length >= 1 && h.about('payment.hold.placed', answers[0]!.hold!.holdId).length >= 1);
      await new Promise((r) => setTimeout(r, 300));
      expect(h.about('payment.topup.completed', t1.transfer!.transferId)).toHaveLength(1);
      expect(h.about('payment.hold.placed', answers[0]!.hold!.holdId)).toHaveLength(1);
    });

    it('bad input is INVALID_ARGUMENT and writes nothing, not even the idempotency key', async () => {
      const alice = uniqueName('alice');
      await h.topUp(alice, 1_000);
      const good = h.holdRequest(alice, 100);
      const badHolds: Array<[string, Partial<typeof good>, RegExp]> = [
        ['zero amount', { amount: eur(0) }, /amount_minor must be greater than zero/],
        ['negative amount', { amount: eur(-100) }, /greater than zero/],
        ['no amount', { amount: undefined }, /amount is required/],
        ['lower-case currency', { amount: eur(100, 'eur') }, /ISO 4217/],
        ['four-letter currency', { amount: eur(100, 'EURO') }, /ISO 4217/],
        ['missing payment id', { paymentId: '' }, /payment_id/],
        ['missing account id', { accountId: '' }, /account_id/],
        ['missing merchant id', { merchantId: '' }, /merchant_id/],
        ['missing device id', { deviceId: '' }, /device_id/],
        ['colon in account id', { accountId: 'a:b' }, /account_id/],
        ['negative ttl', { ttlSeconds: -1n }, /ttl_seconds/],
        ['ttl over the maximum', { ttlSeconds: 10n ** 9n }, /ttl_seconds/],
      ];
      for (const [what, change, message] of badHolds) {
        const req = { ...good, ...change, idempotencyKey: randomUUID() };
        await expectStatus(h.client.placeHold(req), status.INVALID_ARGUMENT, message).catch((err) => {
          throw new Error(`${what}: ${(err as Error).message}`);
        });
        expect(await idempotencyRecords(h.ledgerDb, req.idempotencyKey)).toBe(0);
      }
      await expectStatus(h.client.placeHold({ ...good, idempotencyKey: '' }), status.INVALID_ARGUMENT, /idempotency_key/);
      const topUpKey = randomUUID();
      await expectStatus(h.client.topUp({ idempotencyKey: topUpKey, accountId: alice, amount: eur(100), sourceReference: '' }), status.INVALID_ARGUMENT, /source_reference/);
      await expectStatus(h.client.topUp({ idempotencyKey: topUpKey, accountId: alice, amount: eur(100, 'E1R'), sourceReference: 'x' }), status.INVALID_ARGUMENT, /currency/);
      expect(await idempotencyRecords(h.ledgerDb, topUpKey)).toBe(0);
      await expectStatus(h.client.getBalance({ accountId: alice, currency: 'eur' }), status.INVALID_ARGUMENT, /currency/);
      await expectStatus(h.client.getBalance({ accountId: 'bank:1', currency: 'EUR' }), status.INVALID_ARGUMENT, /ledger account/);
      await expectStatus(h.client.getTransfer({ transferId: 'nope' }), status.INVALID_ARGUMENT, /transfer_id/);
      await expectStatus(h.client.getTransfer({ transferId: randomUUID() }), status.NOT_FOUND, /no transfer/);
      expect(await h.balance(alice)).toEqual({ available: 1_000n, held: 0n, posted: 1_000n });
      const { rows } = await h.ledgerDb.query('SELECT 1 FROM holds WHERE account_id = $1', [alice]);
      expect(rows).toHaveLength(0);
    });

    it('reads any ledger account by name; wallets per currency are separate', async () => {
      const alice = uniqueName('alice');
      await h.topUp(alice, 700, 'CNY');
      expect(await h.balance(alice, 'CNY')).toEqual({ available: 700n, held: 0n, posted: 700n });
      expect(await h.balance(alice, 'EUR')).toEqual({ available: 0n, held: 0n, posted: 0n });
      expect(await h.balance(`wallet:${alice}`, 'CNY')).toEqual({ available: 700n, held: 0n, posted: 700n });
      expect((await h.balance('external:funding', 'CNY')).posted).toBeLessThanOrEqual(-700n);
    });
  });

  describe('capture, void, escrow, refunds, disputes, payouts', () => {
    async function placed(minor = 1_000, merchantId = uniqueName('m')) {
      const buyer = uniqueName('buyer');
      await h.topUp(buyer, 10_000);
      const res = await h.client.placeHold(h.holdRequest(buyer, minor, { merchantId }));
      expect(res.outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
      return { buyer, merchantId, hold: res.hold! };
    }

    async function captured(minor = 1_000, captureMinor?: number) {
      const p = await placed(minor);
      const res = await h.client.capture({ idempotencyKey: randomUUID(), holdId: p.hold.holdId, amount: captureMinor === undefined ? undefined : eur(captureMinor) });
      return { ...p, capture: res };
    }

    it('a full capture moves the hold from the wallet into the merchant escrow, once', async () => {
      const { buyer, merchantId, hold } = await placed(1_000);
      const req = { idempotencyKey: randomUUID(), holdId: hold.holdId, amount: undefined };
      const res = await h.client.capture(req);
      expect(res.hold).toMatchObject({ status: HoldStatus.HOLD_STATUS_CAPTURED, captured: eur(1_000) });
      expect(res.transfer!.postings).toEqual([
        { account: `wallet:${buyer}`, amountMinor: -1_000n, currency: 'EUR' },
        { account: `merchant:${merchantId}:escrow`, amountMinor: 1_000n, currency: 'EUR' },
      ]);
      expect(await h.balance(buyer)).toEqual({ available: 9_000n, held: 0n, posted: 9_000n });
      expect(await h.balance(`merchant:${merchantId}:escrow`)).toMatchObject({ posted: 1_000n });
      expect(await h.client.capture(req)).toEqual(res);
      await expectStatus(h.client.capture({ ...req, idempotencyKey: randomUUID() }), status.FAILED_PRECONDITION, /hold is CAPTURED/);
      await expectStatus(h.client.void({ reason: VoidReason.VOID_REASON_MERCHANT_CANCELLED, idempotencyKey: randomUUID(), holdId: hold.holdId, paymentId: "" }), status.FAILED_PRECONDITION, /hold is CAPTURED/);
      await h.events.waitFor(() => h.about('payment.hold.captured', hold.holdId).length === 1 && h.about('escrow.funded', hold.holdId).length === 1, 5_000, 'capture events');
    });

    it('a partial capture takes part and releases the rest of the reservation', async () => {
      const { buyer, hold } = await placed(1_000);
      const res = await h.client.capture({ idempotencyKey: randomUUID(), holdId: hold.holdId, amount: eur(600) });
      expect(res.hold!.captured).toEqual(eur(600));
      expect(await h.balance(buyer)).toEqual({ available: 9_400n, held: 0n, posted: 9_400n });
    });

    it('refuses captures above the hold, in another currency, or of unknown holds', async () => {
      const { hold } = await placed(1_000);
      await expectStatus(h.client.capture({ idempotencyKey: randomUUID(), holdId: hold.holdId, amount: eur(1_001) }), status.FAILED_PRECONDITION, /exceeds the held 10.00 EUR/);
      await expectStatus(h.client.capture({ idempotencyKey: randomUUID(), holdId: hold.holdId, amount: eur(100, 'USD') }), status.INVALID_ARGUMENT, /hold's currency \(EUR\)/);
      await expectStatus(h.client.capture({ idempotencyKey: randomUUID(), holdId: hold.holdId, amount: eur(0) }), status.INVALID_ARGUMENT, /greater than zero/);
      await expectStatus(h.client.capture({ idempotencyKey: randomUUID(), holdId: randomUUID(), amount: undefined }), status.NOT_FOUND, /no hold/);
      await expectStatus(h.client.capture({ idempotencyKey: randomUUID(), holdId: 'not-a-uuid', amount: undefined }), status.INVALID_ARGUMENT, /hold_id/);
    });

    it('a void releases the reservation once; the hold can then neither be captured nor voided', async () => {
      const { buyer, hold } = await placed(1_000);
      const req = { idempotencyKey: randomUUID(), holdId: hold.holdId, paymentId: "", reason: VoidReason.VOID_REASON_MERCHANT_CANCELLED };
      const res = await h.client.void(req);
      expect(res.hold!.status).toBe(HoldStatus.HOLD_STATUS_VOIDED);
      expect(await h.client.void(req)).toEqual(res);
      expect(await h.balance(buyer)).toEqual({ available: 10_000n, held: 0n, posted: 10_000n });
      await expectStatus(h.client.void({ ...req, idempotencyKey: randomUUID() }), status.FAILED_PRECONDITION, /hold is VOIDED/);
      await expectStatus(h.client.capture({ idempotencyKey: randomUUID(), holdId: hold.holdId, amount: undefined }), status.FAILED_PRECONDITION, /hold is VOIDED/);
      await h.events.waitFor(() => h.about('payment.hold.voided', hold.holdId).length === 1, 5_000, 'hold.voided');
      expect(h.about('payment.hold.voided', hold.holdId)[0]!.event.payload!.value).toMatchObject({ voidReason: 'MERCHANT_CANCELLED' });
    });

    it('capture and void racing on one hold: exactly one wins', async () => {
      const { buyer, hold } = await placed(1_000);
      const [c, v] = await Promise.allSettled([
        h.client.capture({ idempotencyKey: randomUUID(), holdId: hold.holdId, amount: undefined }),
        h.client.void({ reason: VoidReason.VOID_REASON_MERCHANT_CANCELLED, idempotencyKey: randomUUID(), holdId: hold.holdId, paymentId: "" }),
      ]);
      expect([c.status, v.status].filter((s) => s === 'fulfilled')).toHaveLength(1);
      const b = await h.balance(buyer);
      expect(b.held).toBe(0n);
      expect(b.posted).toBe(c.status === 'fulfilled' ? 9_000n : 10_000n);
    });

    it('a void by payment id releases that payment’s PENDING hold, once; a retry with the key answers the same', async () => {
      const { buyer, hold } = await placed(1_000);
      const req = { idempotencyKey: randomUUID(), holdId: '', paymentId: hold.paymentId, reason: VoidReason.VOID_REASON_PAYMENT_NOT_COMPLETED };
      const res = await h.client.void(req);
      expect(res.hold).toMatchObject({ holdId: hold.holdId, paymentId: hold.paymentId, status: HoldStatus.HOLD_STATUS_VOIDED });
      expect(await h.balance(buyer)).toEqual({ available: 10_000n, held: 0n, posted: 10_000n });
      for (const again of await Promise.all([h.client.void(req), h.client.void(req)])) expect(again).toEqual(res);
      expect(await h.balance(buyer)).toEqual({ available: 10_000n, held: 0n, posted: 10_000n });
      await expectStatus(h.client.void({ ...req, idempotencyKey: randomUUID() }), status.FAILED_PRECONDITION, /hold is VOIDED/);
      // The same key naming the hold instead of the payment is another request.
      await expectStatus(h.client.void({ ...req, holdId: hold.holdId, paymentId: '' }), status.ALREADY_EXISTS, /idempotency key/);
      await h.events.waitFor(() => h.about('payment.hold.voided', hold.holdId).length === 1, 5_000, 'hold.voided');
      await new Promise((r) => setTimeout(r, 300));
      expect(h.about('payment.hold.voided', hold.holdId)).toHaveLength(1);
      // The gateway released it for a payment it did not complete: the event says so (alerts tells the buyer nothing of it).
      expect(h.about('payment.hold.voided', hold.holdId)[0]!.event.payload!.value).toMatchObject({ paymentId: hold.paymentId, accountId: buyer, amount: eur(1_000), voidReason: 'PAYMENT_NOT_COMPLETED' });
    });

    it('a void names one of hold and payment (INVALID_ARGUMENT otherwise); a payment without a hold is NOT_FOUND, a captured one FAILED_PRECONDITION', async () => {
      const { buyer, hold } = await placed(1_000);
      for (const ids of [{ holdId: hold.holdId, paymentId: hold.paymentId }, { holdId: '', paymentId: '' }]) {
        const req = { idempotencyKey: randomUUID(), ...ids, reason: VoidReason.VOID_REASON_MERCHANT_CANCELLED };
        await expectStatus(h.client.void(req), status.INVALID_ARGUMENT, /^one of hold_id or payment_id is required/);
        expect(await idempotencyRecords(h.ledgerDb, req.idempotencyKey)).toBe(0);
      }
      const unknownReason = { idempotencyKey: randomUUID(), holdId: hold.holdId, paymentId: '', reason: 7 as VoidReason };
      await expectStatus(h.client.void(unknownReason), status.INVALID_ARGUMENT, /^reason 7 is not a VoidReason/);
      expect(await idempotencyRecords(h.ledgerDb, unknownReason.idempotencyKey)).toBe(0);
      await expectStatus(h.client.void({ reason: VoidReason.VOID_REASON_MERCHANT_CANCELLED, idempotencyKey: randomUUID(), holdId: '', paymentId: 'pay:1' }), status.INVALID_ARGUMENT, /^payment_id is required/);
      expect(await h.balance(buyer)).toEqual({ available: 9_000n, held: 1_000n, posted: 10_000n });

      // A payment refused for insufficient funds placed no hold; nor did one never seen.
      const refused = h.holdRequest(buyer, 1_000_000);
      expect((await h.client.placeHold(refused)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_INSUFFICIENT_FUNDS);
      for (const paymentId of [refused.paymentId, randomUUID()]) {
        await expectStatus(h.client.void({ reason: VoidReason.VOID_REASON_MERCHANT_CANCELLED, idempotencyKey: randomUUID(), holdId: '', paymentId }), status.NOT_FOUND, new RegExp(`^no hold was placed for payment ${paymentId}`));
      }
      // NOT_FOUND stores nothing under its key: once the hold is there, a retry with the same key voids it.
      const late = h.holdRequest(buyer, 500);
      const key = randomUUID();
      await expectStatus(h.client.void({ reason: VoidReason.VOID_REASON_MERCHANT_CANCELLED, idempotencyKey: key, holdId: '', paymentId: late.paymentId }), status.NOT_FOUND, /no hold was placed/);
      expect(await idempotencyRecords(h.ledgerDb, key)).toBe(0);
      expect((await h.client.placeHold(late)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
      expect((await h.client.void({ reason: VoidReason.VOID_REASON_MERCHANT_CANCELLED, idempotencyKey: key, holdId: '', paymentId: late.paymentId })).hold!.status).toBe(HoldStatus.HOLD_STATUS_VOIDED);

      const c = await captured(1_000);
      await expectStatus(h.client.void({ reason: VoidReason.VOID_REASON_MERCHANT_CANCELLED, idempotencyKey: randomUUID(), holdId: '', paymentId: c.hold.paymentId }), status.FAILED_PRECONDITION, /hold is CAPTURED/);
      expect(await h.balance(c.buyer)).toEqual({ available: 9_000n, held: 0n, posted: 9_000n });
    });

    it('ConfirmDelivery releases escrow to the merchant payable, once', async () => {
      const { merchantId, hold } = await captured(1_000);
      const req = { idempotencyKey: randomUUID(), holdId: hold.holdId, paymentId: "", reason: VoidReason.VOID_REASON_MERCHANT_CANCELLED };
      const res = await h.client.confirmDelivery(req);
      expect(res.transfer!.kind).toBe('release');
      expect(res.transfer!.postings).toEqual([
        { account: `merchant:${merchantId}:escrow`, amountMinor: -1_000n, currency: 'EUR' },
        { account: `merchant:${merchantId}:payable`, amountMinor: 1_000n, currency: 'EUR' },
      ]);
      expect(await h.client.confirmDelivery(req)).toEqual(res);
      expect((await h.balance(`merchant:${merchantId}:escrow`)).posted).toBe(0n);
      expect((await h.balance(`merchant:${merchantId}:payable`)).posted).toBe(1_000n);
      await expectStatus(h.client.confirmDelivery({ ...req, idempotencyKey: randomUUID() }), status.FAILED_PRECONDITION, /already released/);
      const pending = await placed(100);
      await expectStatus(h.client.confirmDelivery({ idempotencyKey: randomUUID(), holdId: pending.hold.holdId }), status.FAILED_PRECONDITION, /PENDING/);
      await h.events.waitFor(() => h.about('escrow.released', hold.holdId).length === 1, 5_000, 'escrow.released');
    });

    it('refunds come from escrow, then from the payable after release, and never exceed what was captured', async () => {
      const { buyer, merchantId, hold } = await captured(1_000, 800);
      const refund = (minor: number, idempotencyKey = randomUUID()) => h.client.refund({ idempotencyKey, holdId: hold.holdId, amount: eur(minor) });
      const first = await refund(300);
      expect(first.transfer!.postings).toEqual([
        { account: `merchant:${merchantId}:escrow`, amountMinor: -300n, currency: 'EUR' },
        { account: `wallet:${buyer}`, amountMinor: 300n, currency: 'EUR' },
      ]);
      await h.client.confirmDelivery({ idempotencyKey: randomUUID(), holdId: hold.holdId });
      expect((await h.balance(`merchant:${merchantId}:payable`)).posted).toBe(500n);
      const key = randomUUID();
      const second = await refund(200, key);
      expect(second.transfer!.postings[0]).toEqual({ account: `merchant:${merchantId}:payable`, amountMinor: -200n, currency: 'EUR' });
      expect(await refund(200, key)).toEqual(second);
      await expectStatus(refund(301), status.FAILED_PRECONDITION, /exceeds what is refundable \(3.00 EUR of 8.00 EUR captured\)/);
      await expectStatus(refund(100, key), status.ALREADY_EXISTS, /idempotency key/);
      await refund(300);
      await expectStatus(refund(1), status.FAILED_PRECONDITION, /refundable \(0.00 EUR/);
      expect(await h.balance(buyer)).toEqual({ available: 10_000n, held: 0n, posted: 10_000n });
      expect((await h.balance(`merchant:${merchantId}:payable`)).posted).toBe(0n);
      const p = await placed(100);
      await expectStatus(h.client.refund({ idempotencyKey: randomUUID(), holdId: p.hold.holdId, amount: eur(100) }), status.FAILED_PRECONDITION, /PENDING/);
      await expectStatus(h.client.refund({ idempotencyKey: randomUUID(), holdId: hold.holdId, amount: undefined }), status.INVALID_ARGUMENT, /amount is required/);
      await h.events.waitFor(() => h.about('payment.refunded', hold.holdId).length === 3, 5_000, 'three refunds');
    });

    it('a dispute freezes escrow; resolving it refunds the buyer or releases to the merchant, once', async () => {
      const a = await captured(1_000);
      const open = { idempotencyKey: randomUUID(), holdId: a.hold.holdId, reason: 'item never arrived' };
      const { disputeId } = await h.client.openDispute(open);
      expect(await h.client.openDispute(open)).toEqual({ disputeId });
      await expectStatus(h.client.openDispute({ ...open, idempotencyKey: randomUUID() }), status.FAILED_PRECONDITION, /already has an open dispute/);
      await expectStatus(h.client.confirmDelivery({ idempotencyKey: randomUUID(), holdId: a.hold.holdId }), status.FAILED_PRECONDITION, /frozen by an open dispute/);
      await expectStatus(h.client.refund({ idempotencyKey: randomUUID(), holdId: a.hold.holdId, amount: eur(1) }), status.FAILED_PRECONDITION, /frozen/);
      await expectStatus(h.client.resolveDispute({ idempotencyKey: randomUUID(), disputeId, outcome: DisputeOutcome.DISPUTE_OUTCOME_UNSPECIFIED }), status.INVALID_ARGUMENT, /outcome/);
      const resolve = { idempotencyKey: randomUUID(), disputeId, outcome: DisputeOutcome.DISPUTE_OUTCOME_REFUND_BUYER };
      const refunded = await h.client.resolveDispute(resolve);
      expect(refunded.transfer!.kind).toBe('refund');
      expect(await h.client.resolveDispute(resolve)).toEqual(refunded);
      await expectStatus(h.client.resolveDispute({ ...resolve, idempotencyKey: randomUUID() }), status.FAILED_PRECONDITION, /already resolved/);
      expect(await h.balance(a.buyer)).toEqual({ available: 10_000n, held: 0n, posted: 10_000n });
      expect((await h.balance(`merchant:${a.merchantId}:escrow`)).posted).toBe(0n);

      const b = await captured(700);
      const second = await h.client.openDispute({ idempotencyKey: randomUUID(), holdId: b.hold.holdId, reason: 'damaged' });
      const released = await h.client.resolveDispute({ idempotencyKey: randomUUID(), disputeId: second.disputeId, outcome: DisputeOutcome.DISPUTE_OUTCOME_RELEASE_TO_MERCHANT });
      expect(released.transfer!.kind).toBe('release');
      expect((await h.balance(`merchant:${b.merchantId}:payable`)).posted).toBe(700n);
      await expectStatus(h.client.openDispute({ idempotencyKey: randomUUID(), holdId: b.hold.holdId, reason: 'again' }), status.FAILED_PRECONDITION, /Refund instead/);
      await expectStatus(h.client.openDispute({ idempotencyKey: randomUUID(), holdId: b.hold.holdId, reason: ' ' }), status.INVALID_ARGUMENT, /reason/);
      await expectStatus(h.client.resolveDispute({ idempotencyKey: randomUUID(), disputeId: randomUUID(), outcome: DisputeOutcome.DISPUTE_OUTCOME_REFUND_BUYER }), status.NOT_FOUND, /no dispute/);
      await h.events.waitFor(() => h.about('escrow.frozen', a.hold.holdId).length === 1 && h.about('escrow.frozen', b.hold.holdId).length === 1, 5_000, 'escrow.frozen');
    });

    it('ResolveDispute publishes payment.dispute.resolved once, with the outcome; a retry publishes nothing new', async () => {
      const resolvedEvents = (disputeId: string) =>
        h.events.ofType('payment.dispute.resolved').filter((e) => e.event.payload?.$case === 'dispute' && e.event.payload.value.disputeId === disputeId);

      const a = await captured(1_000);
      const opened = await h.client.openDispute({ idempotencyKey: randomUUID(), holdId: a.hold.holdId, reason: 'item never arrived' });
      const resolve = { idempotencyKey: randomUUID(), disputeId: opened.disputeId, outcome: DisputeOutcome.DISPUTE_OUTCOME_REFUND_BUYER };
      const refunded = await h.client.resolveDispute(resolve);
      await h.events.waitFor(() => resolvedEvents(opened.disputeId).length === 1, 5_000, 'payment.dispute.resolved');
      const [seen] = resolvedEvents(opened.disputeId);
      expect(seen!.event.source).toBe('settlement');
      expect(seen!.event.eventId).toBe(disputeResolvedEventId(opened.disputeId));
      expect(seen!.msgId).toBe(seen!.event.eventId);
      expect(seen!.event.payload).toEqual({
        $case: 'dispute',
        value: {
          disputeId: opened.disputeId,
          holdId: a.hold.holdId,
          paymentId: a.hold.paymentId,
          accountId: a.buyer,
          merchantId: a.merchantId,
          amount: eur(1_000),
          outcome: 'REFUND_BUYER',
          reason: 'item never arrived',
          transferId: refunded.transfer!.transferId,
          merchantName: '',
          deviceId: a.hold.deviceId,
        },
      });
      // The ledger event of the same resolution is there too, and is a plain refund.
      await h.events.waitFor(() => h.about('payment.refunded', a.hold.holdId).length === 1, 5_000, 'payment.refunded');

      // Retried with the same key: the first answer, nothing new in the outbox or on the stream.
      const outboxRows = async () => Number((await h.ledgerDb.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox WHERE event_id = $1', [seen!.event.eventId])).rows[0]!.n);
      expect(await h.client.resolveDispute(resolve)).toEqual(refunded);
      await expectStatus(h.client.resolveDispute({ ...resolve, idempotencyKey: randomUUID() }), status.FAILED_PRECONDITION, /already resolved/);
      expect(await outboxRows()).toBe(1);
      await new Promise((r) => setTimeout(r, 500));
      expect(resolvedEvents(opened.disputeId)).toHaveLength(1);
      expect(h.about('payment.refunded', a.hold.holdId)).toHaveLength(1);

      const b = await captured(700);
      const second = await h.client.openDispute({ idempotencyKey: randomUUID(), holdId: b.hold.holdId, reason: 'damaged' });
      const released = await h.client.resolveDispute({ idempotencyKey: randomUUID(), disputeId: second.disputeId, outcome: DisputeOutcome.DISPUTE_OUTCOME_RELEASE_TO_MERCHANT });
      await h.events.waitFor(() => resolvedEvents(second.disputeId).length === 1, 5_000, 'payment.dispute.resolved (release)');
      const value = resolvedEvents(second.disputeId)[0]!.event.payload;
      expect(value).toMatchObject({ $case: 'dispute', value: { outcome: 'RELEASE_TO_MERCHANT', paymentId: b.hold.paymentId, amount: eur(700), reason: 'damaged', transferId: released.transfer!.transferId } });
    });

    it('RunPayouts nets each merchant’s released funds into one payout per day, idempotently, with a report', async () => {
      const merchantId = uniqueName('shop');
      for (const minor of [1_000, 2_500]) {
        const p = await placed(minor, merchantId);
        await h.client.capture({ idempotencyKey: randomUUID(), holdId: p.hold.holdId, amount: undefined });
        await h.client.confirmDelivery({ idempotencyKey: randomUUID(), holdId: p.hold.holdId });
        if (minor === 2_500) await h.client.refund({ idempotencyKey: randomUUID(), holdId: p.hold.holdId, amount: eur(500) });
      }
      // A merchant whose released money was all refunded nets zero: no payout, carried over.
      const refundedShop = uniqueName('shop');
      const r = await placed(400, refundedShop);
      await h.client.capture({ idempotencyKey: randomUUID(), holdId: r.hold.holdId, amount: undefined });
      await h.client.confirmDelivery({ idempotencyKey: randomUUID(), holdId: r.hold.holdId });
      await h.client.refund({ idempotencyKey: randomUUID(), holdId: r.hold.holdId, amount: eur(400) });
      const today = new Date().toISOString().slice(0, 10);
      const req = { idempotencyKey: randomUUID(), businessDate: today };
      const res = await h.client.runPayouts(req);
      const mine = res.payouts.filter((p) => p.merchantId === merchantId);
      expect(mine).toEqual([{ payoutId: expect.any(String), merchantId, amount: eur(3_000), transfers: 3 }]);
      expect(res.payouts.filter((p) => p.merchantId === refundedShop)).toEqual([]);
      expect(res.report).toMatch(/not positive after refunds; carried to the next payout/);
      expect(res.report).toContain(`Payouts for ${today} (UTC)`);
      expect(res.report).toMatch(new RegExp(`${merchantId}\\s+EUR\\s+30.00 EUR\\s+3`));
      expect((await h.balance(`merchant:${merchantId}:payable`)).posted).toBe(0n);
      expect(await h.client.runPayouts(req)).toEqual(res);
      const again = await h.client.runPayouts({ idempotencyKey: randomUUID(), businessDate: today });
      expect(again.payouts.filter((p) => p.merchantId === merchantId)).toEqual(mine);
      await expectStatus(h.client.runPayouts({ idempotencyKey: randomUUID(), businessDate: '2999-01-01' }), status.FAILED_PRECONDITION, /has not begun/);
      await expectStatus(h.client.runPayouts({ idempotencyKey: randomUUID(), businessDate: '2024-02-30' }), status.INVALID_ARGUMENT, /YYYY-MM-DD/);
      // Yesterday's run finds nothing new: today's releases are after its cut-off.
      const yesterday = new Date(Date.now() - 24 * 3600 * 1000).toISOString().slice(0, 10);
      expect((await h.client.runPayouts({ idempotencyKey: randomUUID(), businessDate: yesterday })).payouts.filter((p) => p.merchantId === merchantId)).toEqual([]);
    });

    it('device.lost freezes that band: its next PlaceHold is ACCOUNT_FROZEN, the buyer’s other bands still pay', async () => {
      const buyer = uniqueName('buyer');
      await h.topUp(buyer, 5_000);
      const lostBand = randomUUID();
      const otherBand = randomUUID();
      expect((await h.client.placeHold(h.holdRequest(buyer, 100, { deviceId: lostBand }))).outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
      const bus = await EventBus.connect({ url: TEST_NATS_URL, prefix: h.prefix, source: 'device-registry', log: testLogger('device-registry'), limits: TEST_STREAM_LIMITS });
      try {
        const lost = newEvent('device.lost', 'device-registry', { $case: 'device', value: { deviceId: lostBand, accountId: buyer, status: 'LOST', previousStatus: 'ACTIVE', reason: '' } });
        const published = Date.now();
        await bus.publish(lost);
        let outcome = HoldOutcome.HOLD_OUTCOME_PLACED;
        while (Date.now() - published < 5_000) {
          const res = await h.client.placeHold(h.holdRequest(buyer, 100, { deviceId: lostBand }));
          outcome = res.outcome;
          if (outcome === HoldOutcome.HOLD_OUTCOME_ACCOUNT_FROZEN) break;
          await h.client.void({ reason: VoidReason.VOID_REASON_MERCHANT_CANCELLED, idempotencyKey: randomUUID(), holdId: res.hold!.holdId, paymentId: "" });
          await new Promise((r) => setTimeout(r, 50));
        }
        expect(outcome).toBe(HoldOutcome.HOLD_OUTCOME_ACCOUNT_FROZEN);
        // The design's budget for cutting off a lost band is a second; leave headroom for a loaded CI box.
        expect(Date.now() - published).toBeLessThan(2_000);
        expect((await h.client.placeHold(h.holdRequest(buyer, 100, { deviceId: otherBand }))).outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
        // A frozen band is refused even when the wallet could not pay anyway: the freeze is the answer.
        expect((await h.client.placeHold(h.holdRequest(buyer, 1_000_000, { deviceId: lostBand }))).outcome).toBe(HoldOutcome.HOLD_OUTCOME_ACCOUNT_FROZEN);
      } finally {
        await bus.close();
      }
    });

    it('an event published but not marked (relay killed between publish and mark) is published again and still arrives once', async () => {
      // Commit a top-up straight into the ledger, then publish its outbox row as a relay would and
      // "crash" before marking it. The service's relay publishes the row too (before or after us):
      // two publishes with one message id, and JetStream keeps one.
      const ledger = new Ledger({ protectionWindowSeconds: 3600 });
      const transfer = await h.ledgerDb.tx((q) => ledger.topUp(q, { accountId: uniqueName('buyer'), amount: { minor: 42n, currency: 'EUR' }, sourceReference: 'crash-test' }));
      const { rows } = await h.ledgerDb.query<{ event: Uint8Array }>('SELECT event FROM outbox ORDER BY seq DESC LIMIT 1');
      const event = decodeEvent(rows[0]!.event);
      expect(event.payload?.$case === 'ledger' && event.payload.value.transferId).toBe(transfer.transferId);
      const bus = await EventBus.connect({ url: TEST_NATS_URL, prefix: h.prefix, source: 'settlement', log: testLogger('settlement'), limits: TEST_STREAM_LIMITS });
      try {
        expect((await bus.publish(event)).seq).toBeGreaterThan(0);
      } finally {
        await bus.close();
      }
      await waitUntilPublished();
      await h.events.waitFor(() => h.about('payment.topup.completed', transfer.transferId).length >= 1, 5_000, 'the event');
      await new Promise((r) => setTimeout(r, 300));
      expect(h.about('payment.topup.completed', transfer.transferId)).toHaveLength(1);
    });

    it('an event committed while the service is down is published when it comes back, once', async () => {
      await h.halt();
      const ledger = new Ledger({ protectionWindowSeconds: 3600 });
      const transfer = await h.ledgerDb.tx((q) => ledger.topUp(q, { accountId: uniqueName('buyer'), amount: { minor: 7n, currency: 'EUR' }, sourceReference: 'restart-test' }));
      await new Promise((r) => setTimeout(r, 400));
      expect(h.about('payment.topup.completed', transfer.transferId)).toHaveLength(0);
      await h.resume();
      await waitUntilPublished();
      await h.events.waitFor(() => h.about('payment.topup.completed', transfer.transferId).length >= 1, 5_000, 'the event after restart');
      await new Promise((r) => setTimeout(r, 300));
      expect(h.about('payment.topup.completed', transfer.transferId)).toHaveLength(1);
      expect(await h.balance(transfer.postings[1]!.account)).toMatchObject({ posted: 7n });
    });

    async function waitUntilPublished(): Promise<void> {
      for (let i = 0; i < 50; i++) {
        const { rows } = await h.ledgerDb.query('SELECT 1 FROM outbox WHERE published_at IS NULL');
        if (rows.length === 0) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('outbox still has unpublished rows');
    }
  });

  it('every event arrived once (unique ids, unique message ids)', async () => {
    await new Promise((r) => setTimeout(r, 500));
    const ours = h.events.seen.filter((e) => e.event.source === 'settlement');
    const ids = ours.map((e) => e.event.eventId);
    expect(ids.length).toBeGreaterThan(20);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ours.every((e) => e.msgId === e.event.eventId)).toBe(true);
    const { rows } = await h.ledgerDb.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox');
    expect(ids.length).toBe(Number(rows[0]!.n));
  });
});

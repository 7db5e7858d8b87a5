import { randomBytes, randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { DisputeOutcome, HoldOutcome, HoldStatus, type IssueVoucherRequest, type Voucher, VoidReason } from '../../../gen/wristpay/settlement/v1/settlement';
import { Ledger } from '../src/ledger';
import { expectStatus } from '../../../test/support/services';
import { eur, idempotencyRecords, startHarness, uniqueName, type Harness } from './support/settlement-harness';

jest.setTimeout(60_000);

const code = (label = 'V') => `${label}-${randomBytes(5).toString('hex')}`;
const inAnHour = () => new Date(Date.now() + 3_600_000);

describe('settlement vouchers against real PostgreSQL and NATS', () => {
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

  const issueRequest = (merchantId: string, over: Partial<IssueVoucherRequest> = {}): IssueVoucherRequest => ({
    idempotencyKey: randomUUID(),
    merchantId,
    code: code(),
    discount: { $case: 'percentOff', value: 10 },
    expiresAt: inAnHour(),
    maxUses: 0,
    ...over,
  });
  const issue = async (merchantId: string, over: Partial<IssueVoucherRequest> = {}): Promise<Voucher> => (await h.client.issueVoucher(issueRequest(merchantId, over))).voucher!;
  const usesOf = async (voucherId: string) => Number((await h.ledgerDb.query<{ uses: number }>('SELECT uses FROM vouchers WHERE voucher_id = $1', [voucherId])).rows[0]!.uses);
  const redemptions = async (voucherId: string) =>
    (await h.ledgerDb.query<{ payment_id: string; released: boolean }>('SELECT payment_id, (released_at IS NOT NULL) AS released FROM voucher_redemptions WHERE voucher_id = $1', [voucherId])).rows;
  /** A buyer with `minor` on the wallet. */
  const buyer = async (minor = 10_000) => {
    const id = uniqueName('buyer');
    await h.topUp(id, minor);
    return id;
  };
  const ledgerEvent = (type: string, holdId: string) => {
    const e = h.about(type, holdId)[0];
    return e?.event.payload?.$case === 'ledger' ? e.event.payload.value : undefined;
  };

  describe('IssueVoucher, GetVoucher, QuoteVoucher', () => {
    it('issues amount-off and percent-off vouchers; 0 uses means single use; a retried key returns the same voucher', async () => {
      const merchantId = uniqueName('m');
      const req = issueRequest(merchantId, { discount: { $case: 'amountOff', value: eur(500) }, maxUses: 0 });
      const { voucher } = await h.client.issueVoucher(req);
      expect(voucher).toMatchObject({ voucherId: expect.any(String), code: req.code, merchantId, discount: { $case: 'amountOff', value: eur(500) }, maxUses: 1, uses: 0 });
      expect(voucher!.expiresAt!.getTime()).toBe(req.expiresAt!.getTime());
      expect(await h.client.issueVoucher(req)).toEqual({ voucher });
      await expectStatus(h.client.issueVoucher({ ...req, maxUses: 5 }), status.ALREADY_EXISTS, /idempotency key/);

      const percent = await issue(merchantId, { discount: { $case: 'percentOff', value: 25 }, maxUses: 1_000_000 });
      expect(percent).toMatchObject({ discount: { $case: 'percentOff', value: 25 }, maxUses: 1_000_000 });
      // Found in any case, as issued.
      expect((await h.client.getVoucher({ merchantId, code: percent.code.toLowerCase() })).voucher).toEqual(percent);
    });

    it('generates a code when none is given: 10 characters of an unambiguous alphabet', async () => {
      const merchantId = uniqueName('m');
      const a = await issue(merchantId, { code: '' });
      const b = await issue(merchantId, { code: '' });
      for (const v of [a, b]) expect(v.code).toMatch(/^[2-9A-HJKMNP-Z]{10}$/);
      expect(a.code).not.toBe(b.code);
    });

    it('refuses bad requests with INVALID_ARGUMENT and writes nothing, not even the idempotency key', async () => {
      const merchantId = uniqueName('m');
      const bad: Array<[string, Partial<IssueVoucherRequest>, RegExp]> = [
        ['no merchant', { merchantId: '' }, /merchant_id/],
        ['colon in merchant', { merchantId: 'a:b' }, /merchant_id/],
        ['short code', { code: 'abc' }, /code must be 4-32/],
        ['long code', { code: 'x'.repeat(33) }, /code must be 4-32/],
        ['code with spaces', { code: 'ab cd' }, /code must be 4-32/],
        ['no discount', { discount: undefined }, /one of amount_off or percent_off/],
        ['zero percent', { discount: { $case: 'percentOff', value: 0 } }, /percent_off/],
        ['100 percent', { discount: { $case: 'percentOff', value: 100 } }, /percent_off/],
        ['zero amount off', { discount: { $case: 'amountOff', value: eur(0) } }, /amount_off.amount_minor must be greater than zero/],
        ['negative amount off', { discount: { $case: 'amountOff', value: eur(-5) } }, /amount_off/],
        ['bad currency', { discount: { $case: 'amountOff', value: eur(5, 'eur') } }, /amount_off.currency/],
        ['no expiry', { expiresAt: undefined }, /expires_at is required/],
        ['expiry in the past', { expiresAt: new Date(Date.now() - 1_000) }, /expires_at must be in the future/],
        ['too many uses', { maxUses: 1_000_001 }, /max_uses/],
      ];
      for (const [what, change, message] of bad) {
        const req = issueRequest(merchantId, change);
        await expectStatus(h.client.issueVoucher(req), status.INVALID_ARGUMENT, message).catch((err) => {
          throw new Error(`${what}: ${(err as Error).message}`);
        });
        expect(await idempotencyRecords(h.ledgerDb, req.idempotencyKey)).toBe(0);
      }
      const { rows } = await h.ledgerDb.query('SELECT 1 FROM vouchers WHERE merchant_id = $1', [merchantId]);
      expect(rows).toHaveLength(0);
    });

    it('a code is unique across merchants, whatever the case: ALREADY_EXISTS', async () => {
      const taken = code('TAKEN');
      await issue(uniqueName('m'), { code: taken });
      await expectStatus(h.client.issueVoucher(issueRequest(uniqueName('m'), { code: taken.toLowerCase() })), status.ALREADY_EXISTS, /already taken/);
      // Two merchants racing for one code: one gets it.
      const contested = code('RACE');
      const results = await Promise.allSettled([0, 1, 2].map(() => h.client.issueVoucher(issueRequest(uniqueName('m'), { code: contested }))));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect((r.reason as { code: number }).code).toBe(status.ALREADY_EXISTS);
    });

    it('GetVoucher: unknown is NOT_FOUND, another merchant’s is PERMISSION_DENIED', async () => {
      const merchantId = uniqueName('m');
      const v = await issue(merchantId);
      expect((await h.client.getVoucher({ merchantId, code: v.code })).voucher).toEqual(v);
      await expectStatus(h.client.getVoucher({ merchantId, code: code('NONE') }), status.NOT_FOUND, /no voucher/);
      await expectStatus(h.client.getVoucher({ merchantId: uniqueName('m'), code: v.code }), status.PERMISSION_DENIED, new RegExp(`^the voucher was issued by another merchant`));
      await expectStatus(h.client.getVoucher({ merchantId, code: 'x' }), status.INVALID_ARGUMENT, /code/);
    });

    it('QuoteVoucher: amount and percent discounts; expired, used up, other currency, nothing left to pay are FAILED_PRECONDITION', async () => {
      const merchantId = uniqueName('m');
      const amountOff = await issue(merchantId, { discount: { $case: 'amountOff', value: eur(300) } });
      const percent = await issue(merchantId, { discount: { $case: 'percentOff', value: 15 } });
      expect(await h.client.quoteVoucher({ merchantId, code: amountOff.code, amount: eur(1_000), paymentId: '' })).toEqual({ voucher: amountOff, discount: eur(300), toPay: eur(700) });
      // 15% of 9.99 is 1.4985: rounded down to 1.49.
      expect(await h.client.quoteVoucher({ merchantId, code: percent.code, amount: eur(999), paymentId: '' })).toMatchObject({ discount: eur(149), toPay: eur(850) });
      expect(await h.client.quoteVoucher({ merchantId, code: percent.code, amount: eur(999, 'USD'), paymentId: '' })).toMatchObject({ discount: eur(149, 'USD'), toPay: eur(850, 'USD') });

      await expectStatus(h.client.quoteVoucher({ merchantId, code: amountOff.code, amount: eur(1_000, 'USD'), paymentId: '' }), status.FAILED_PRECONDITION, /is for EUR, not USD/);
      await expectStatus(h.client.quoteVoucher({ merchantId, code: amountOff.code, amount: eur(300), paymentId: '' }), status.FAILED_PRECONDITION, /leaves nothing to pay/);
      await expectStatus(h.client.quoteVoucher({ merchantId, code: amountOff.code, amount: eur(200), paymentId: '' }), status.FAILED_PRECONDITION, /leaves nothing to pay/);
      await expectStatus(h.client.quoteVoucher({ merchantId, code: code('NONE'), amount: eur(200), paymentId: '' }), status.NOT_FOUND, /no voucher/);
      await expectStatus(h.client.quoteVoucher({ merchantId: uniqueName('m'), code: amountOff.code, amount: eur(1_000), paymentId: '' }), status.PERMISSION_DENIED, /issued by another merchant/);
      await expectStatus(h.client.quoteVoucher({ merchantId, code: amountOff.code, amount: eur(0), paymentId: '' }), status.INVALID_ARGUMENT, /amount/);

      await h.ledgerDb.query("UPDATE vouchers SET expires_at = '2026-01-02T03:04:05Z' WHERE voucher_id = $1", [percent.voucherId]);
      await expectStatus(h.client.quoteVoucher({ merchantId, code: percent.code, amount: eur(999), paymentId: '' }), status.FAILED_PRECONDITION, /expired at 2026-01-02T03:04:05.000Z/);

      const once = await issue(merchantId);
      const alice = await buyer();
      expect((await h.client.placeHold(h.holdRequest(alice, 1_000, { merchantId, voucherCode: once.code }))).outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
      await expectStatus(h.client.quoteVoucher({ merchantId, code: once.code, amount: eur(1_000), paymentId: '' }), status.FAILED_PRECONDITION, /is used up \(1\/1 uses\)/);
    });
  });

  describe('PlaceHold with a voucher', () => {
    it('holds the net, records gross, discount, voucher and merchant name, counts one use; a retry does not redeem again', async () => {
      const merchantId = uniqueName('m');
      const v = await issue(merchantId, { discount: { $case: 'amountOff', value: eur(250) }, maxUses: 5 });
      const alice = await buyer(10_000);
      const req = h.holdRequest(alice, 1_000, { merchantId, voucherCode: v.code.toLowerCase(), merchantName: 'Café Zoë' });
      const res = await h.client.placeHold(req);
      expect(res.outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
      expect(res.hold).toMatchObject({ amount: eur(750), gross: eur(1_000), discount: eur(250), voucherId: v.voucherId, merchantName: 'Café Zoë', deviceId: req.deviceId, status: HoldStatus.HOLD_STATUS_PENDING });
      expect(await h.balance(alice)).toEqual({ available: 9_250n, held: 750n, posted: 10_000n });
      expect(await usesOf(v.voucherId)).toBe(1);

      const retries = await Promise.all([h.client.placeHold(req), h.client.placeHold(req)]);
      for (const r of retries) expect(r).toEqual(res);
      expect(await usesOf(v.voucherId)).toBe(1);
      expect(await redemptions(v.voucherId)).toEqual([{ payment_id: req.paymentId, released: false }]);
      expect(await h.balance(alice)).toEqual({ available: 9_250n, held: 750n, posted: 10_000n });

      await h.events.waitFor(() => h.about('payment.hold.placed', res.hold!.holdId).length === 1, 5_000, 'hold.placed');
      expect(ledgerEvent('payment.hold.placed', res.hold!.holdId)).toMatchObject({ amount: eur(750), discount: eur(250), merchantName: 'Café Zoë', deviceId: req.deviceId });
      // A hold without a voucher: gross = amount, no discount on its event.
      const plain = await h.client.placeHold(h.holdRequest(alice, 100, { merchantId }));
      expect(plain.hold).toMatchObject({ amount: eur(100), gross: eur(100), discount: eur(0), voucherId: '', merchantName: '' });
      await h.events.waitFor(() => h.about('payment.hold.placed', plain.hold!.holdId).length === 1, 5_000, 'plain hold.placed');
      expect(ledgerEvent('payment.hold.placed', plain.hold!.holdId)!.discount).toBeUndefined();
    });

    it('refusals roll the hold back: foreign, unknown, used up, bad code or name; nothing held, nothing redeemed', async () => {
      const merchantId = uniqueName('m');
      const v = await issue(merchantId);
      const alice = await buyer(10_000);
      const cases: Array<[Partial<Parameters<Harness['holdRequest']>[2]>, number, RegExp]> = [
        [{ merchantId: uniqueName('m'), voucherCode: v.code }, status.PERMISSION_DENIED, /issued by another merchant/],
        [{ merchantId, voucherCode: code('NONE') }, status.NOT_FOUND, /no voucher/],
        [{ merchantId, voucherCode: 'ab' }, status.INVALID_ARGUMENT, /voucher_code/],
        [{ merchantId, merchantName: 'x'.repeat(65) }, status.INVALID_ARGUMENT, /merchant_name must be at most 64/],
        [{ merchantId, merchantName: 'Shop\u0007' }, status.INVALID_ARGUMENT, /merchant_name must be printable/],
      ];
      for (const [over, code, message] of cases) {
        const req = h.holdRequest(alice, 1_000, over);
        await expectStatus(h.client.placeHold(req), code, message);
        expect(await idempotencyRecords(h.ledgerDb, req.idempotencyKey)).toBe(0);
      }
      // Over the voucher's worth: a 10% voucher on 0.05 takes nothing off.
      await expectStatus(h.client.placeHold(h.holdRequest(alice, 5, { merchantId, voucherCode: v.code })), status.FAILED_PRECONDITION, /takes nothing off/);
      expect(await h.balance(alice)).toEqual({ available: 10_000n, held: 0n, posted: 10_000n });
      expect(await usesOf(v.voucherId)).toBe(0);
      const { rows } = await h.ledgerDb.query('SELECT 1 FROM holds WHERE account_id = $1', [alice]);
      expect(rows).toHaveLength(0);
    });

    it('insufficient funds or a frozen band leaves the voucher unused', async () => {
      const merchantId = uniqueName('m');
      const v = await issue(merchantId, { discount: { $case: 'amountOff', value: eur(100) } });
      const poor = await buyer(899);
      // Net 900 > 899.
      const res = await h.client.placeHold(h.holdRequest(poor, 1_000, { merchantId, voucherCode: v.code }));
      expect(res).toEqual({ outcome: HoldOutcome.HOLD_OUTCOME_INSUFFICIENT_FUNDS, hold: undefined });
      expect(await usesOf(v.voucherId)).toBe(0);
      const band = randomUUID();
      await h.ledgerDb.query("INSERT INTO frozen_devices (device_id, account_id, event_id) VALUES ($1, $2, 'test')", [band, poor]);
      expect((await h.client.placeHold(h.holdRequest(poor, 500, { merchantId, voucherCode: v.code, deviceId: band }))).outcome).toBe(HoldOutcome.HOLD_OUTCOME_ACCOUNT_FROZEN);
      expect(await usesOf(v.voucherId)).toBe(0);
      expect(await redemptions(v.voucherId)).toEqual([]);
      // Net 899 fits exactly: now it is redeemed.
      expect((await h.client.placeHold(h.holdRequest(poor, 999, { merchantId, voucherCode: v.code }))).outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
      expect(await usesOf(v.voucherId)).toBe(1);
      expect(await h.balance(poor)).toEqual({ available: 0n, held: 899n, posted: 899n });
    });

    it('two concurrent PlaceHolds racing one single-use voucher: exactly one PLACED, the other FAILED_PRECONDITION', async () => {
      const merchantId = uniqueName('m');
      const v = await issue(merchantId, { discount: { $case: 'percentOff', value: 20 } });
      const buyers = await Promise.all([buyer(), buyer()]);
      const results = await Promise.allSettled(buyers.map((b) => h.client.placeHold(h.holdRequest(b, 1_000, { merchantId, voucherCode: v.code }))));
      const placed = results.filter((r) => r.status === 'fulfilled' && r.value.outcome === HoldOutcome.HOLD_OUTCOME_PLACED);
      const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(placed).toHaveLength(1);
      expect(refused).toHaveLength(1);
      expect(refused[0]!.reason).toMatchObject({ code: status.FAILED_PRECONDITION, details: expect.stringMatching(/used up \(1\/1 uses\)/) });
      expect(await usesOf(v.voucherId)).toBe(1);
      const held = await Promise.all(buyers.map((b) => h.balance(b)));
      expect(held.map((b) => b.held).sort()).toEqual([0n, 800n]);
    });

    it('a voucher of 3 uses raced by 8 payments: exactly 3 redeem it', async () => {
      const merchantId = uniqueName('m');
      const v = await issue(merchantId, { discount: { $case: 'amountOff', value: eur(50) }, maxUses: 3 });
      const alice = await buyer(100_000);
      const results = await Promise.allSettled(Array.from({ length: 8 }, () => h.client.placeHold(h.holdRequest(alice, 500, { merchantId, voucherCode: v.code }))));
      const placed = results.filter((r) => r.status === 'fulfilled' && r.value.outcome === HoldOutcome.HOLD_OUTCOME_PLACED);
      expect(placed).toHaveLength(3);
      expect(results.filter((r) => r.status === 'rejected' && (r.reason as { code: number }).code === status.FAILED_PRECONDITION)).toHaveLength(5);
      expect(await usesOf(v.voucherId)).toBe(3);
      expect(await redemptions(v.voucherId)).toHaveLength(3);
      expect(await h.balance(alice)).toMatchObject({ held: 3n * 450n });
    });

    it('QuoteVoucher for the payment that already holds the voucher’s last use quotes its redemption (a retried Authorize); any other payment is refused', async () => {
      const merchantId = uniqueName('m');
      const v = await issue(merchantId, { discount: { $case: 'percentOff', value: 20 } });
      const alice = await buyer();
      const placed = await h.client.placeHold(h.holdRequest(alice, 1_000, { merchantId, voucherCode: v.code }));
      const paymentId = placed.hold!.paymentId;
      expect(await h.client.quoteVoucher({ merchantId, code: v.code, amount: eur(1_000), paymentId })).toMatchObject({ discount: eur(200), toPay: eur(800) });
      await expectStatus(h.client.quoteVoucher({ merchantId, code: v.code, amount: eur(1_000), paymentId: randomUUID() }), status.FAILED_PRECONDITION, /used up/);
      await expectStatus(h.client.quoteVoucher({ merchantId, code: v.code, amount: eur(1_000), paymentId: '' }), status.FAILED_PRECONDITION, /used up/);
      await expectStatus(h.client.quoteVoucher({ merchantId, code: v.code, amount: eur(1_000), paymentId: 'not an id' }), status.INVALID_ARGUMENT, /payment_id/);
      // Once voided, the redemption no longer stands: the payment is quoted like any other.
      await h.client.void({ reason: VoidReason.VOID_REASON_MERCHANT_CANCELLED, idempotencyKey: randomUUID(), holdId: placed.hold!.holdId, paymentId: "" });
      expect(await h.client.quoteVoucher({ merchantId, code: v.code, amount: eur(500), paymentId })).toMatchObject({ discount: eur(100), toPay: eur(400) });
    });

    it('a void or an expiry gives the use back: the buyer keeps the voucher', async () => {
      const merchantId = uniqueName('m');
      const v = await issue(merchantId, { discount: { $case: 'percentOff', value: 10 } });
      const alice = await buyer();
      const first = await h.client.placeHold(h.holdRequest(alice, 1_000, { merchantId, voucherCode: v.code, merchantName: 'Noodle Bar' }));
      expect(await usesOf(v.voucherId)).toBe(1);
      await h.client.void({ reason: VoidReason.VOID_REASON_MERCHANT_CANCELLED, idempotencyKey: randomUUID(), holdId: first.hold!.holdId, paymentId: "" });
      expect(await usesOf(v.voucherId)).toBe(0);
      expect(await redemptions(v.voucherId)).toEqual([{ payment_id: first.hold!.paymentId, released: true }]);
      await h.events.waitFor(() => h.about('payment.hold.voided', first.hold!.holdId).length === 1, 5_000, 'hold.voided');
      expect(ledgerEvent('payment.hold.voided', first.hold!.holdId)).toMatchObject({ merchantName: 'Noodle Bar', amount: eur(900) });

      const second = await h.client.placeHold(h.holdRequest(alice, 1_000, { merchantId, voucherCode: v.code }));
      expect(second.outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
      expect(await usesOf(v.voucherId)).toBe(1);
      await h.ledgerDb.query("UPDATE holds SET expires_at = now() - interval '1 second' WHERE hold_id = $1", [second.hold!.holdId]);
      const ledger = new Ledger({ protectionWindowSeconds: 3600 });
      expect(await h.ledgerDb.tx((q) => ledger.expire(q, second.hold!.holdId))).toBe(true);
      expect(await usesOf(v.voucherId)).toBe(0);
      expect(await h.balance(alice)).toEqual({ available: 10_000n, held: 0n, posted: 10_000n });
      expect((await h.client.placeHold(h.holdRequest(alice, 1_000, { merchantId, voucherCode: v.code }))).outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
    });
  });

  describe('capture, escrow and payout of a voucher payment', () => {
    it('capture moves the net to escrow and posts the discount from the merchant’s vouchers account; the payout is the net', async () => {
      const merchantId = uniqueName('shop');
      const v = await issue(merchantId, { discount: { $case: 'amountOff', value: eur(300) } });
      const alice = await buyer(10_000);
      const placed = await h.client.placeHold(h.holdRequest(alice, 2_000, { merchantId, voucherCode: v.code, merchantName: 'Book Nook' }));
      const holdId = placed.hold!.holdId;
      const external = (await h.balance('external:vouchers')).posted;
      const capture = await h.client.capture({ idempotencyKey: randomUUID(), holdId, amount: undefined });
      expect(capture.hold).toMatchObject({ status: HoldStatus.HOLD_STATUS_CAPTURED, captured: eur(1_700), gross: eur(2_000), discount: eur(300) });
      expect(capture.transfer!.postings).toEqual([
        { account: `wallet:${alice}`, amountMinor: -1_700n, currency: 'EUR' },
        { account: `merchant:${merchantId}:escrow`, amountMinor: 1_700n, currency: 'EUR' },
      ]);
      const { rows } = await h.ledgerDb.query<{ transfer_id: string }>("SELECT transfer_id FROM transfers WHERE hold_id = $1 AND kind = 'voucher'", [holdId]);
      expect(rows).toHaveLength(1);
      const voucherTransfer = (await h.client.getTransfer({ transferId: rows[0]!.transfer_id })).transfer!;
      expect(voucherTransfer).toMatchObject({ kind: 'voucher', reference: placed.hold!.paymentId });
      expect(voucherTransfer.postings).toEqual([
        { account: `merchant:${merchantId}:vouchers`, amountMinor: -300n, currency: 'EUR' },
        { account: 'external:vouchers', amountMinor: 300n, currency: 'EUR' },
      ]);
      expect(await h.balance(`merchant:${merchantId}:vouchers`)).toEqual({ available: -300n, held: 0n, posted: -300n });
      expect((await h.balance('external:vouchers')).posted - external).toBe(300n);
      expect(await h.balance(alice)).toEqual({ available: 8_300n, held: 0n, posted: 8_300n });
      // A second capture (another key) is refused and posts nothing more.
      await expectStatus(h.client.capture({ idempotencyKey: randomUUID(), holdId, amount: undefined }), status.FAILED_PRECONDITION);
      expect((await h.balance(`merchant:${merchantId}:vouchers`)).posted).toBe(-300n);

      await h.events.waitFor(() => h.about('payment.hold.captured', holdId).length === 1 && h.about('escrow.funded', holdId).length === 1, 5_000, 'capture events');
      expect(ledgerEvent('payment.hold.captured', holdId)).toMatchObject({ amount: eur(1_700), discount: eur(300), merchantName: 'Book Nook', deviceId: placed.hold!.deviceId });
      expect(ledgerEvent('escrow.funded', holdId)).toMatchObject({ amount: eur(1_700), merchantName: 'Book Nook' });

      await h.client.confirmDelivery({ idempotencyKey: randomUUID(), holdId });
      const today = new Date().toISOString().slice(0, 10);
      const payouts = await h.client.runPayouts({ idempotencyKey: randomUUID(), businessDate: today });
      expect(payouts.payouts.filter((p) => p.merchantId === merchantId)).toEqual([{ payoutId: expect.any(String), merchantId, amount: eur(1_700), transfers: 1 }]);
      // The voucher stays spent after capture.
      expect(await usesOf(v.voucherId)).toBe(1);
    });

    it('a partial capture still posts the whole discount; refunds and disputes work on the net and carry the merchant name', async () => {
      const merchantId = uniqueName('shop');
      const v = await issue(merchantId, { discount: { $case: 'percentOff', value: 50 }, maxUses: 2 });
      const alice = await buyer(10_000);
      const a = (await h.client.placeHold(h.holdRequest(alice, 1_000, { merchantId, voucherCode: v.code, merchantName: 'Tea House' }))).hold!;
      await h.client.capture({ idempotencyKey: randomUUID(), holdId: a.holdId, amount: eur(400) });
      expect((await h.balance(`merchant:${merchantId}:vouchers`)).posted).toBe(-500n);
      await expectStatus(h.client.refund({ idempotencyKey: randomUUID(), holdId: a.holdId, amount: eur(401) }), status.FAILED_PRECONDITION, /refundable/);
      await h.client.refund({ idempotencyKey: randomUUID(), holdId: a.holdId, amount: eur(400) });

      const b = (await h.client.placeHold(h.holdRequest(alice, 600, { merchantId, voucherCode: v.code, merchantName: 'Tea House' }))).hold!;
      await h.client.capture({ idempotencyKey: randomUUID(), holdId: b.holdId, amount: undefined });
      const { disputeId } = await h.client.openDispute({ idempotencyKey: randomUUID(), holdId: b.holdId, reason: 'cold tea' });
      const resolved = await h.client.resolveDispute({ idempotencyKey: randomUUID(), disputeId, outcome: DisputeOutcome.DISPUTE_OUTCOME_REFUND_BUYER });
      expect(resolved.transfer!.postings).toEqual([
        { account: `merchant:${merchantId}:escrow`, amountMinor: -300n, currency: 'EUR' },
        { account: `wallet:${alice}`, amountMinor: 300n, currency: 'EUR' },
      ]);
      expect((await h.balance(`merchant:${merchantId}:vouchers`)).posted).toBe(-800n);
      expect(await h.balance(alice)).toEqual({ available: 10_000n, held: 0n, posted: 10_000n });
      const resolvedEvents = () => h.events.ofType('payment.dispute.resolved').filter((e) => e.event.payload?.$case === 'dispute' && e.event.payload.value.disputeId === disputeId);
      await h.events.waitFor(() => resolvedEvents().length === 1 && h.about('payment.refunded', a.holdId).length === 1, 5_000, 'dispute and refund events');
      expect(resolvedEvents()[0]!.event.payload).toMatchObject({ value: { merchantName: 'Tea House', deviceId: b.deviceId, amount: eur(300) } });
      expect(ledgerEvent('payment.refunded', a.holdId)).toMatchObject({ merchantName: 'Tea House', amount: eur(400) });
    });
  });

  it('the ledger check catches a voucher whose uses drift from its redemptions, and a vouchers account out of step', async () => {
    const { checkLedger } = await import('../src/invariants');
    const merchantId = uniqueName('m');
    const v = await issue(merchantId, { maxUses: 3 });
    const alice = await buyer();
    const hold = (await h.client.placeHold(h.holdRequest(alice, 1_000, { merchantId, voucherCode: v.code }))).hold!;
    await h.client.capture({ idempotencyKey: randomUUID(), holdId: hold.holdId, amount: undefined });
    expect((await checkLedger(h.ledgerDb)).violations).toEqual([]);
    await h.ledgerDb.query('UPDATE vouchers SET uses = uses + 1 WHERE voucher_id = $1', [v.voucherId]);
    await h.ledgerDb.query('UPDATE holds SET discount_minor = discount_minor + 1, gross_minor = gross_minor + 1 WHERE hold_id = $1', [hold.holdId]);
    const broken = (await checkLedger(h.ledgerDb)).violations.map((line) => line.split(':')[0]);
    expect([...new Set(broken)].sort()).toEqual([
      'each captured voucher hold has one voucher transfer of its discount',
      'each voucher hold has its redemption, released iff the hold was voided or expired',
      'merchant vouchers equal the discounts of captured holds',
      'voucher uses equal standing redemptions',
    ]);
    // Put it back for the afterEach check.
    await h.ledgerDb.query('UPDATE vouchers SET uses = uses - 1 WHERE voucher_id = $1', [v.voucherId]);
    await h.ledgerDb.query('UPDATE holds SET discount_minor = discount_minor - 1, gross_minor = gross_minor - 1 WHERE hold_id = $1', [hold.holdId]);
  });
});

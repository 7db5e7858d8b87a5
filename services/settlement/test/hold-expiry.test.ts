import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { HoldOutcome, VoidReason } from '../../../gen/wristpay/settlement/v1/settlement';
import { expectStatus } from '../../../test/support/services';
import { eur, startHarness, uniqueName, type Harness } from './support/settlement-harness';

jest.setTimeout(30_000);

/** Waits until `check` resolves true, polling; fails with `what` after `ms`. */
async function eventually(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('settlement sweeper: hold expiry and the buyer-protection window', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ SWEEP_INTERVAL_MS: '100', PROTECTION_WINDOW_SECONDS: '1' });
  });

  afterEach(async () => {
    await h.expectLedgerSound();
  });

  afterAll(async () => {
    await h?.stop();
  });

  async function funded() {
    const buyer = uniqueName('buyer');
    await h.topUp(buyer, 5_000);
    return buyer;
  }

  it('a hold past its ttl expires once: the reservation is released and it can no longer be captured', async () => {
    const buyer = await funded();
    const res = await h.client.placeHold(h.holdRequest(buyer, 1_200, { ttlSeconds: 1n }));
    expect(res.outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
    expect(await h.balance(buyer)).toMatchObject({ available: 3_800n, held: 1_200n });
    await eventually(async () => (await h.balance(buyer)).held === 0n, 5_000, 'the hold to expire');
    expect(await h.balance(buyer)).toEqual({ available: 5_000n, held: 0n, posted: 5_000n });
    await expectStatus(h.client.capture({ idempotencyKey: randomUUID(), holdId: res.hold!.holdId, amount: undefined }), status.FAILED_PRECONDITION, /hold is EXPIRED/);
    await expectStatus(h.client.void({ reason: VoidReason.VOID_REASON_MERCHANT_CANCELLED, idempotencyKey: randomUUID(), holdId: res.hold!.holdId, paymentId: "" }), status.FAILED_PRECONDITION, /hold is EXPIRED/);
    await h.events.waitFor(() => h.about('payment.hold.expired', res.hold!.holdId).length === 1, 5_000, 'hold.expired');
    await new Promise((r) => setTimeout(r, 300));
    expect(h.about('payment.hold.expired', res.hold!.holdId)).toHaveLength(1);
  });

  it('a hold captured before its expiry stays captured; the sweeper leaves it alone', async () => {
    const buyer = await funded();
    const res = await h.client.placeHold(h.holdRequest(buyer, 1_000, { ttlSeconds: 1n }));
    await h.client.capture({ idempotencyKey: randomUUID(), holdId: res.hold!.holdId, amount: eur(400) });
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await h.balance(buyer)).toEqual({ available: 4_600n, held: 0n, posted: 4_600n });
    expect(h.about('payment.hold.expired', res.hold!.holdId)).toHaveLength(0);
  });

  it('escrow past the protection window is released to the merchant automatically, once', async () => {
    const buyer = await funded();
    const merchantId = uniqueName('shop');
    const res = await h.client.placeHold(h.holdRequest(buyer, 900, { merchantId }));
    await h.client.capture({ idempotencyKey: randomUUID(), holdId: res.hold!.holdId, amount: undefined });
    await eventually(async () => (await h.balance(`merchant:${merchantId}:payable`)).posted === 900n, 5_000, 'auto-release');
    expect((await h.balance(`merchant:${merchantId}:escrow`)).posted).toBe(0n);
    await expectStatus(h.client.confirmDelivery({ idempotencyKey: randomUUID(), holdId: res.hold!.holdId }), status.FAILED_PRECONDITION, /already released/);
    await h.events.waitFor(() => h.about('escrow.released', res.hold!.holdId).length === 1, 5_000, 'escrow.released');
  });

  it('a dispute stops the protection window: frozen escrow is not auto-released', async () => {
    const buyer = await funded();
    const merchantId = uniqueName('shop');
    const res = await h.client.placeHold(h.holdRequest(buyer, 900, { merchantId }));
    await h.client.capture({ idempotencyKey: randomUUID(), holdId: res.hold!.holdId, amount: undefined });
    await h.client.openDispute({ idempotencyKey: randomUUID(), holdId: res.hold!.holdId, reason: 'never arrived' });
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await h.balance(`merchant:${merchantId}:escrow`)).posted).toBe(900n);
    expect((await h.balance(`merchant:${merchantId}:payable`)).posted).toBe(0n);
  });
});

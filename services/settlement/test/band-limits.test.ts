import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { HoldOutcome, SettlementServiceClient, type SetBandLimitsRequest, VoidReason } from '../../../gen/wristpay/settlement/v1/settlement';
import { onFreshPostgres, inChildProcess } from '../../../test/support/both-databases';
import { testPki } from '../../../test/support/pki';
import { expectStatus, testClient } from '../../../test/support/services';
import { runLimitsScenario } from './support/limits-scenario';
import { eur, idempotencyRecords, startHarness, uniqueName, type Harness } from './support/settlement-harness';

jest.setTimeout(120_000);

const view = (version: string, currency: string | null, perPayment: string | null, perDay: string | null, frozen: boolean, by: string, spent: string | null, remaining: string | null) => ({
  version,
  account: 'alice',
  currency,
  perPayment,
  perDay,
  frozen,
  by,
  spent,
  remaining,
});

/** What the limits code must do, identically, on PostgreSQL and on embedded PGlite (see limits-scenario.ts for each step). */
const EXPECTED = {
  neverSet: view('0', null, null, null, false, '', null, null),
  firstSet: view('1', 'EUR', '1000', '3000', false, 'wallet', '0 EUR', '3000 EUR'),
  // Equal to the per-payment limit passes; one minor unit more is refused.
  perPayment: ['PLACED', 'OVER_PAYMENT_LIMIT'],
  otherCurrency: 'OVER_PAYMENT_LIMIT',
  // 2000 spent → 1001 is over per payment first → 1000 reaches 3000 exactly → 1 more is over the day.
  daily: ['PLACED', 'OVER_PAYMENT_LIMIT', 'PLACED', 'OVER_DAILY_LIMIT'],
  atLimit: view('1', 'EUR', '1000', '3000', false, 'wallet', '3000 EUR', '0 EUR'),
  afterVoid: view('1', 'EUR', '1000', '3000', false, 'wallet', '2000 EUR', '1000 EUR'),
  // A 1000 hold captured at 400 counts 400.
  afterPartialCapture: view('1', 'EUR', '1000', '3000', false, 'wallet', '2400 EUR', '600 EUR'),
  fillToLimit: ['PLACED', 'OVER_DAILY_LIMIT'],
  yesterdayFreed: [view('1', 'EUR', '1000', '3000', false, 'wallet', '2000 EUR', '1000 EUR'), 'PLACED', 'OVER_DAILY_LIMIT'],
  freeze: view('2', 'EUR', '1000', '3000', true, 'wallet', '3000 EUR', '0 EUR'),
  // Frozen is the answer even for amounts over the limits and in another currency.
  frozenHolds: ['BAND_FROZEN', 'BAND_FROZEN', 'BAND_FROZEN'],
  lostAndFrozen: 'ACCOUNT_FROZEN',
  staleVersion: 'FailedPrecondition: band limits are at version 2, not the expected version 1; read them again and retry',
  afterRefusals: view('2', 'EUR', '1000', '3000', true, 'wallet', '3000 EUR', '0 EUR'),
  otherAccount: ['NotFound: no band band-1 for account mallory', 'NotFound: no band band-1 for account mallory'],
  unfreezeAndLift: view('3', 'EUR', null, '10000', false, 'wallet', '3000 EUR', '7000 EUR'),
  liftedPerPayment: 'PLACED',
  removeAll: view('4', null, null, null, false, 'wallet', '8000 EUR', null),
  noLimitsAnyCurrency: ['PLACED', 'PLACED'],
  noLimitsView: [view('4', null, null, null, false, 'wallet', '10 USD', null), view('0', null, null, null, false, '', null, null)],
  // Bob's hold on band-2 is not shown to alice.
  noLimitsOtherAccount: view('0', null, null, null, false, '', null, null),
  audit: [
    '1 wallet "test" null/null/null/false -> EUR/1000/3000/false',
    '2 wallet "on holiday" EUR/1000/3000/false -> EUR/1000/3000/true',
    '3 wallet "back home" EUR/1000/3000/true -> EUR/null/10000/false',
    '4 wallet "test" EUR/null/10000/false -> null/null/null/false',
  ],
  limitEvents: [
    'band-1/alice v1 per_payment=1000 EUR per_day=3000 EUR frozen=false by=wallet "test"',
    'band-1/alice v2 per_payment=1000 EUR per_day=3000 EUR frozen=true by=wallet "on holiday"',
    'band-lost/alice v1 per_payment=- per_day=- frozen=true by=wallet "test"',
    'band-1/alice v3 per_payment=- per_day=10000 EUR frozen=false by=wallet "back home"',
    'band-1/alice v4 per_payment=- per_day=- frozen=false by=wallet "test"',
  ],
};

describe('band limits store code on both databases', () => {
  it('on PostgreSQL', async () => {
    expect(await onFreshPostgres(runLimitsScenario)).toEqual(EXPECTED);
  });

  it('on embedded PGlite (openDb with no DATABASE_URL), in a child process', async () => {
    expect(await inChildProcess('services/settlement/test/support/limits-pglite-scenario.ts')).toEqual(EXPECTED);
  });
});

type Client = ReturnType<typeof testClient<SettlementServiceClient>>;

describe('band limits over gRPC against real PostgreSQL and NATS', () => {
  let h: Harness;
  // A second replica on the same database listening with mTLS: SetBandLimits needs a caller identity.
  let replica: Awaited<ReturnType<Harness['replica']>>;
  let pki: ReturnType<typeof testPki>;
  let wallet: Client;
  let gateway: Client;

  beforeAll(async () => {
    h = await startHarness();
    pki = testPki(['settlement', 'wallet', 'gateway']);
    replica = await h.replica(pki.env('settlement'));
    wallet = testClient(SettlementServiceClient, replica.port, pki.client('wallet'));
    gateway = testClient(SettlementServiceClient, replica.port, pki.client('gateway'));
  });

  afterEach(async () => {
    await h.expectLedgerSound();
  });

  afterAll(async () => {
    wallet?.close();
    gateway?.close();
    await replica?.stop();
    pki?.remove();
    await h?.stop();
  });

  /** A buyer with money and a band of their own. */
  async function buyerWithBand(minor = 100_000) {
    const accountId = uniqueName('buyer');
    await h.topUp(accountId, minor);
    return { accountId, deviceId: randomUUID() };
  }

  const limitsRequest = (band: { accountId: string; deviceId: string }, over: Partial<SetBandLimitsRequest> = {}): SetBandLimitsRequest => ({
    idempotencyKey: randomUUID(),
    deviceId: band.deviceId,
    accountId: band.accountId,
    perPayment: undefined,
    perDay: undefined,
    frozen: false,
    reason: 'set by owner in app',
    expectedVersion: 0n,
    ...over,
  });

  const setLimits = async (band: { accountId: string; deviceId: string }, over: Partial<SetBandLimitsRequest> = {}) => (await wallet.setBandLimits(limitsRequest(band, over))).limits!;
  const pay = (band: { accountId: string; deviceId: string }, minor: number | bigint, currency = 'EUR') =>
    h.client.placeHold(h.holdRequest(band.accountId, minor, { deviceId: band.deviceId, amount: eur(minor, currency) }));
  const limitsOf = async (band: { accountId: string; deviceId: string }) => (await h.client.getBandLimits({ deviceId: band.deviceId, accountId: band.accountId })).limits!;
  const spentInDb = async (deviceId: string): Promise<bigint> => {
    const { rows } = await h.ledgerDb.query<{ s: string }>(
      "SELECT coalesce(sum(CASE status WHEN 'PENDING' THEN amount_minor WHEN 'CAPTURED' THEN captured_minor ELSE 0 END), 0)::text AS s FROM holds WHERE device_id = $1",
      [deviceId],
    );
    return BigInt(rows[0]!.s);
  };
  const auditRows = async (deviceId: string) =>
    (await h.ledgerDb.query<Record<string, unknown>>('SELECT * FROM band_limit_changes WHERE device_id = $1 ORDER BY version', [deviceId])).rows;
  const limitEvents = (deviceId: string) => h.events.ofType('payment.limits.changed').filter((e) => e.event.payload?.$case === 'limits' && e.event.payload.value.deviceId === deviceId);

  it('per payment: a payment equal to the limit is placed, one minor unit more is refused and holds nothing', async () => {
    const band = await buyerWithBand();
    await setLimits(band, { perPayment: eur(2_500) });
    expect((await pay(band, 2_500)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
    const req = h.holdRequest(band.accountId, 2_501, { deviceId: band.deviceId });
    expect(await h.client.placeHold(req)).toEqual({ outcome: HoldOutcome.HOLD_OUTCOME_OVER_PAYMENT_LIMIT, hold: undefined });
    // An outcome, not an error: the answer is kept for the key, and nothing is held.
    expect(await idempotencyRecords(h.ledgerDb, req.idempotencyKey)).toBe(1);
    expect((await h.ledgerDb.query('SELECT 1 FROM holds WHERE payment_id = $1', [req.paymentId])).rows).toHaveLength(0);
    expect(await h.balance(band.accountId)).toEqual({ available: 97_500n, held: 2_500n, posted: 100_000n });
    // Another band of the same buyer is not limited.
    expect((await pay({ ...band, deviceId: randomUUID() }, 9_000)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
  });

  it('per day: reaching the limit exactly is placed, one more minor unit is refused; GetBandLimits shows spent and remaining', async () => {
    const band = await buyerWithBand();
    await setLimits(band, { perDay: eur(5_000) });
    expect((await pay(band, 3_000)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
    expect((await limitsOf(band))).toMatchObject({ spentToday: eur(3_000), remainingToday: eur(2_000), version: 1n });
    expect((await pay(band, 2_001)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_OVER_DAILY_LIMIT);
    expect((await pay(band, 2_000)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
    expect((await pay(band, 1)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_OVER_DAILY_LIMIT);
    expect((await limitsOf(band))).toMatchObject({ spentToday: eur(5_000), remainingToday: eur(0) });
    expect(await h.balance(band.accountId)).toMatchObject({ held: 5_000n });
  });

  it('a voided hold frees its allowance; a captured one counts what was captured', async () => {
    const band = await buyerWithBand();
    await setLimits(band, { perDay: eur(1_000) });
    const first = await pay(band, 1_000);
    expect((await pay(band, 1)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_OVER_DAILY_LIMIT);
    await h.client.void({ reason: VoidReason.VOID_REASON_MERCHANT_CANCELLED, idempotencyKey: randomUUID(), holdId: first.hold!.holdId, paymentId: "" });
    expect((await limitsOf(band)).spentToday).toEqual(eur(0));
    const second = await pay(band, 1_000);
    expect(second.outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
    await h.client.capture({ idempotencyKey: randomUUID(), holdId: second.hold!.holdId, amount: eur(700) });
    expect((await limitsOf(band))).toMatchObject({ spentToday: eur(700), remainingToday: eur(300) });
    expect((await pay(band, 301)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_OVER_DAILY_LIMIT);
    expect((await pay(band, 300)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
  });

  it('20 concurrent payments on one band where the daily limit allows 7: exactly 7 are placed, spent never passes the limit', async () => {
    const band = await buyerWithBand(50_000);
    await setLimits(band, { perDay: eur(7_500) });
    const results = await Promise.all(Array.from({ length: 20 }, () => pay(band, 1_000)));
    const placed = results.filter((r) => r.outcome === HoldOutcome.HOLD_OUTCOME_PLACED);
    const refused = results.filter((r) => r.outcome === HoldOutcome.HOLD_OUTCOME_OVER_DAILY_LIMIT);
    expect(placed).toHaveLength(7);
    expect(refused).toHaveLength(13);
    expect(await spentInDb(band.deviceId)).toBe(7_000n);
    expect(await h.balance(band.accountId)).toEqual({ available: 43_000n, held: 7_000n, posted: 50_000n });
    expect((await limitsOf(band)).remainingToday).toEqual(eur(500));
  });

  it('concurrent payments where both the daily limit and the wallet bind: neither is passed', async () => {
    const band = await buyerWithBand(4_000);
    await setLimits(band, { perDay: eur(3_000) });
    const amounts = Array.from({ length: 20 }, (_, i) => 100 + ((i * 137) % 600));
    const results = await Promise.all(amounts.map((a) => pay(band, a).then((r) => ({ a, r }))));
    const placedTotal = results.filter(({ r }) => r.outcome === HoldOutcome.HOLD_OUTCOME_PLACED).reduce((s, { a }) => s + BigInt(a), 0n);
    expect(await spentInDb(band.deviceId)).toBe(placedTotal);
    expect(placedTotal).toBeLessThanOrEqual(3_000n);
    // Every refusal was because that payment did not fit what was left under the limit.
    for (const { a, r } of results) if (r.outcome === HoldOutcome.HOLD_OUTCOME_OVER_DAILY_LIMIT) expect(placedTotal + BigInt(a)).toBeGreaterThan(3_000n);
    expect(await h.balance(band.accountId)).toEqual({ available: 4_000n - placedTotal, held: placedTotal, posted: 4_000n });
  });

  it('lowering the daily limit while payments run: no hold after the change passes the new limit; raising it lets the next one through', async () => {
    const band = await buyerWithBand(1_000_000);
    await setLimits(band, { perDay: eur(100_000) });
    const NEW_LIMIT = 25_500n;
    let changed = false;
    let placedBefore = 0;
    const after: HoldOutcome[] = [];
    const worker = async () => {
      // Each worker pays until it has been refused three times after the change.
      let refusals = 0;
      while (refusals < 3) {
        const issuedAfterChange = changed;
        const { outcome } = await pay(band, 1_000);
        if (issuedAfterChange) after.push(outcome);
        else if (outcome === HoldOutcome.HOLD_OUTCOME_PLACED) placedBefore++;
        if (issuedAfterChange && outcome !== HoldOutcome.HOLD_OUTCOME_PLACED) refusals++;
      }
    };
    const change = (async () => {
      while (placedBefore < 8) await new Promise((r) => setTimeout(r, 5));
      const limits = await setLimits(band, { perDay: eur(NEW_LIMIT), expectedVersion: 1n, reason: 'lowered mid-stream' });
      changed = true;
      return limits;
    })();
    const [changedTo] = await Promise.all([change, ...Array.from({ length: 4 }, worker)]);
    // The change saw (under the band's row lock) every hold serialised before it.
    const spentAtChange = changedTo.spentToday!.amountMinor;
    expect(spentAtChange).toBeGreaterThanOrEqual(8_000n);
    const spent = await spentInDb(band.deviceId);
    // Holds after the change stop exactly where the new limit allows (25 × 1000 ≤ 25500), or
    // none are placed if the band had already spent more than that.
    expect(spent).toBe(spentAtChange <= NEW_LIMIT ? 25_000n : spentAtChange);
    expect(after.filter((o) => o !== HoldOutcome.HOLD_OUTCOME_PLACED && o !== HoldOutcome.HOLD_OUTCOME_OVER_DAILY_LIMIT)).toEqual([]);
    expect((await h.balance(band.accountId)).held).toBe(spent);
    expect((await pay(band, 1_000)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_OVER_DAILY_LIMIT);
    await setLimits(band, { perDay: eur(spent + 1_000n), expectedVersion: 2n, reason: 'raised' });
    expect((await pay(band, 1_000)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
    expect((await pay(band, 1)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_OVER_DAILY_LIMIT);
  });

  it('lowering the per-payment limit while payments run: every payment sent after the change is refused', async () => {
    const band = await buyerWithBand(1_000_000);
    await setLimits(band, { perPayment: eur(1_000) });
    let changed = false;
    let placed = 0;
    const afterChange: HoldOutcome[] = [];
    const worker = async () => {
      while (afterChange.length < 20) {
        const issuedAfterChange = changed;
        const { outcome } = await pay(band, 800);
        if (issuedAfterChange) afterChange.push(outcome);
        if (outcome === HoldOutcome.HOLD_OUTCOME_PLACED) placed++;
      }
    };
    const change = (async () => {
      while (placed < 5) await new Promise((r) => setTimeout(r, 5));
      await setLimits(band, { perPayment: eur(799) });
      changed = true;
    })();
    await Promise.all([change, ...Array.from({ length: 4 }, worker)]);
    expect(new Set(afterChange)).toEqual(new Set([HoldOutcome.HOLD_OUTCOME_OVER_PAYMENT_LIMIT]));
    // Every placed hold has a row and a reservation, and nothing else does.
    const { rows } = await h.ledgerDb.query<{ n: number }>("SELECT count(*)::int AS n FROM holds WHERE device_id = $1 AND status = 'PENDING'", [band.deviceId]);
    expect(Number(rows[0]!.n)).toBe(placed);
    expect((await h.balance(band.accountId)).held).toBe(BigInt(placed * 800));
    expect((await pay(band, 799)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
  });

  it('freeze: BAND_FROZEN whatever the amount; unfreeze: placed again', async () => {
    const band = await buyerWithBand();
    await setLimits(band, { perPayment: eur(500), frozen: true, reason: 'band left at the gym' });
    expect((await pay(band, 1)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_BAND_FROZEN);
    expect((await pay(band, 5_000)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_BAND_FROZEN);
    expect(await h.balance(band.accountId)).toMatchObject({ held: 0n });
    expect((await limitsOf(band))).toMatchObject({ frozen: true, version: 1n, updatedBy: 'wallet' });
    await setLimits(band, { perPayment: eur(500), frozen: false, reason: 'found it' });
    expect((await pay(band, 500)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
  });

  it('a stale expected_version is FAILED_PRECONDITION naming both versions and changes nothing', async () => {
    const band = await buyerWithBand();
    const v1 = await setLimits(band, { perDay: eur(1_000) });
    const v2 = await setLimits(band, { perDay: eur(2_000), expectedVersion: v1.version });
    expect(v2.version).toBe(2n);
    const stale = limitsRequest(band, { perDay: eur(9_000), expectedVersion: 1n });
    await expectStatus(wallet.setBandLimits(stale), status.FAILED_PRECONDITION, /^band limits are at version 2, not the expected version 1/);
    expect(await idempotencyRecords(h.ledgerDb, stale.idempotencyKey)).toBe(0);
    expect((await limitsOf(band))).toMatchObject({ version: 2n, perDay: eur(2_000) });
    expect(await auditRows(band.deviceId)).toHaveLength(2);
    // expected_version on a band that never had limits: it is at version 0.
    await expectStatus(wallet.setBandLimits(limitsRequest({ ...band, deviceId: randomUUID() }, { expectedVersion: 3n })), status.FAILED_PRECONDITION, /version 0, not the expected version 3/);
  });

  it('concurrent changes to one band, the first ones included, are serialised: versions 1..8, one audit row and one event each', async () => {
    const band = await buyerWithBand();
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => setLimits(band, { perDay: eur(1_000 + i), reason: `change ${i}` })));
    expect(answers.map((a) => a.version).sort((x, y) => Number(x - y))).toEqual([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n]);
    const rows = await auditRows(band.deviceId);
    expect(rows.map((r) => r.version)).toEqual([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n]);
    // Each change's "before" is the previous change's "after": none was lost in the race.
    for (let i = 1; i < rows.length; i++) expect(rows[i]!.per_day_minor_before).toEqual(rows[i - 1]!.per_day_minor_after);
    expect(rows[0]!.per_day_minor_before).toBeNull();
    expect((await limitsOf(band)).perDay).toEqual(eur(rows[7]!.per_day_minor_after as bigint));
    await h.events.waitFor(() => limitEvents(band.deviceId).length === 8, 5_000, 'eight payment.limits.changed');
    expect(new Set(limitEvents(band.deviceId).map((e) => (e.event.payload as { value: { version: bigint } }).value.version)).size).toBe(8);
  });

  it('a retried key returns the first answer: one version, one audit row, one event; another request under the key is refused', async () => {
    const band = await buyerWithBand();
    const req = limitsRequest(band, { perPayment: eur(700), perDay: eur(1_400) });
    const answers = await Promise.all(Array.from({ length: 4 }, () => wallet.setBandLimits(req)));
    for (const a of answers) expect(a).toEqual(answers[0]);
    expect(await wallet.setBandLimits(req)).toEqual(answers[0]);
    expect(answers[0]!.limits!.version).toBe(1n);
    expect(await auditRows(band.deviceId)).toHaveLength(1);
    await expectStatus(wallet.setBandLimits({ ...req, perDay: eur(1_500) }), status.ALREADY_EXISTS, /idempotency key/);
    await h.events.waitFor(() => limitEvents(band.deviceId).length >= 1, 5_000, 'payment.limits.changed');
    await new Promise((r) => setTimeout(r, 300));
    expect(limitEvents(band.deviceId)).toHaveLength(1);
  });

  it('every change leaves an audit row (who, when, why, before and after) and a payment.limits.changed event', async () => {
    const band = await buyerWithBand();
    const started = Date.now();
    await setLimits(band, { perPayment: eur(700), perDay: eur(1_400), reason: 'first limits' });
    await setLimits(band, { perDay: eur(2_000), frozen: true, reason: '  holiday  ' });
    const rows = await auditRows(band.deviceId);
    expect(rows.map((r) => ({ ...r, changed_at: undefined }))).toEqual([
      {
        device_id: band.deviceId, version: 1n, account_id: band.accountId, changed_by: 'wallet', changed_at: undefined, reason: 'first limits',
        currency_before: null, per_payment_minor_before: null, per_day_minor_before: null, frozen_before: false,
        currency_after: 'EUR', per_payment_minor_after: 700n, per_day_minor_after: 1_400n, frozen_after: false,
      },
      {
        device_id: band.deviceId, version: 2n, account_id: band.accountId, changed_by: 'wallet', changed_at: undefined, reason: 'holiday',
        currency_before: 'EUR', per_payment_minor_before: 700n, per_day_minor_before: 1_400n, frozen_before: false,
        currency_after: 'EUR', per_payment_minor_after: null, per_day_minor_after: 2_000n, frozen_after: true,
      },
    ]);
    for (const r of rows) expect((r.changed_at as Date).getTime()).toBeGreaterThanOrEqual(started - 5_000);
    await h.events.waitFor(() => limitEvents(band.deviceId).length === 2, 5_000, 'two payment.limits.changed');
    expect(limitEvents(band.deviceId).map((e) => e.event.payload)).toEqual([
      { $case: 'limits', value: { deviceId: band.deviceId, accountId: band.accountId, perPayment: eur(700), perDay: eur(1_400), frozen: false, version: 1n, changedBy: 'wallet', reason: 'first limits' } },
      { $case: 'limits', value: { deviceId: band.deviceId, accountId: band.accountId, perPayment: undefined, perDay: eur(2_000), frozen: true, version: 2n, changedBy: 'wallet', reason: 'holiday' } },
    ]);
    expect(limitEvents(band.deviceId).map((e) => e.event.source)).toEqual(['settlement', 'settlement']);
  });

  it('bad input is INVALID_ARGUMENT and changes nothing, not even the idempotency key', async () => {
    const band = await buyerWithBand();
    await setLimits(band, { perDay: eur(1_000) });
    const bad: Array<[string, Partial<SetBandLimitsRequest>, RegExp]> = [
      ['zero per payment', { perPayment: eur(0) }, /per_payment\.amount_minor must be greater than zero/],
      ['negative per day', { perDay: eur(-1) }, /per_day\.amount_minor must be greater than zero/],
      ['lower-case currency', { perDay: eur(100, 'eur') }, /per_day\.currency must be an ISO 4217/],
      ['two currencies', { perPayment: eur(100), perDay: eur(1_000, 'USD') }, /one currency/],
      ['reason too long', { reason: 'x'.repeat(201) }, /reason must be at most 200/],
      ['reason with NUL (the request guard)', { reason: 'ok\u0000' }, /reason must not contain NUL/],
      ['reason with another control character', { reason: 'ok\u0007' }, /printable/],
      ['missing device id', { deviceId: '' }, /device_id/],
      ['colon in account id', { accountId: 'a:b' }, /account_id/],
      ['negative expected version', { expectedVersion: -1n }, /expected_version/],
    ];
    for (const [what, change, message] of bad) {
      const req = limitsRequest(band, { perDay: eur(9_999), ...change });
      await expectStatus(wallet.setBandLimits(req), status.INVALID_ARGUMENT, message).catch((err) => {
        throw new Error(`${what}: ${(err as Error).message}`);
      });
      expect(await idempotencyRecords(h.ledgerDb, req.idempotencyKey)).toBe(0);
    }
    await expectStatus(wallet.setBandLimits(limitsRequest(band, { idempotencyKey: '' })), status.INVALID_ARGUMENT, /idempotency_key/);
    await expectStatus(h.client.getBandLimits({ deviceId: band.deviceId, accountId: '' }), status.INVALID_ARGUMENT, /account_id/);
    expect((await limitsOf(band))).toMatchObject({ version: 1n, perDay: eur(1_000), perPayment: undefined, frozen: false });
    expect(await auditRows(band.deviceId)).toHaveLength(1);
  });

  it("another account's band is NOT_FOUND, worded as a missing band, for both Set and Get; nothing changes", async () => {
    const band = await buyerWithBand();
    await setLimits(band, { perPayment: eur(100) });
    const mallory = uniqueName('mallory');
    await expectStatus(wallet.setBandLimits(limitsRequest({ ...band, accountId: mallory }, { perPayment: eur(1_000_000) })), status.NOT_FOUND, new RegExp(`^no band ${band.deviceId} for account ${mallory}$`));
    await expectStatus(h.client.getBandLimits({ deviceId: band.deviceId, accountId: mallory }), status.NOT_FOUND, new RegExp(`^no band ${band.deviceId} for account ${mallory}$`));
    expect((await limitsOf(band))).toMatchObject({ version: 1n, perPayment: eur(100), accountId: band.accountId });
    expect((await pay(band, 101)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_OVER_PAYMENT_LIMIT);
  });

  it('a band never given limits answers version 0, no limits, and what it spent today', async () => {
    const band = await buyerWithBand();
    expect(await limitsOf(band)).toEqual({ deviceId: band.deviceId, accountId: band.accountId, perPayment: undefined, perDay: undefined, frozen: false, version: 0n, updatedAt: undefined, updatedBy: '', spentToday: undefined, remainingToday: undefined });
    await pay(band, 1_234);
    expect(await limitsOf(band)).toMatchObject({ version: 0n, spentToday: eur(1_234), remainingToday: undefined });
  });

  it('while limits are set, a payment in another currency is over the per-payment limit', async () => {
    const band = await buyerWithBand();
    await h.topUp(band.accountId, 10_000, 'USD');
    await setLimits(band, { perDay: eur(50_000) });
    expect((await pay(band, 1, 'USD')).outcome).toBe(HoldOutcome.HOLD_OUTCOME_OVER_PAYMENT_LIMIT);
    expect(await h.balance(band.accountId, 'USD')).toMatchObject({ held: 0n });
    expect((await pay(band, 1, 'EUR')).outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
    await setLimits(band, {});
    expect((await pay(band, 1, 'USD')).outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
  });

  it('only the wallet backend may SetBandLimits, and read them with the back office: other identities are PERMISSION_DENIED', async () => {
    const band = await buyerWithBand();
    const req = limitsRequest(band, { frozen: true });
    await expectStatus(gateway.setBandLimits(req), status.PERMISSION_DENIED, /^SetBandLimits may only be called by wallet \(caller: gateway\)$/);
    expect(await idempotencyRecords(h.ledgerDb, req.idempotencyKey)).toBe(0);
    await expectStatus(gateway.getBandLimits({ deviceId: band.deviceId, accountId: band.accountId }), status.PERMISSION_DENIED, /caller: gateway/);
    expect((await wallet.getBandLimits({ deviceId: band.deviceId, accountId: band.accountId })).limits!.version).toBe(0n);
    expect((await pay(band, 1)).outcome).toBe(HoldOutcome.HOLD_OUTCOME_PLACED);
  });
});


import { randomUUID } from 'node:crypto';
import { Timestamp } from '../../../gen/google/protobuf/timestamp';
import { HoldOutcome, PlaceHoldRequest, PlaceHoldResponse } from '../../../gen/wristpay/settlement/v1/settlement';
import { migrate, openDb, type Db, type Queryable } from '../../../platform/db';
import { IdempotencyKeyReused } from '../../../platform/errors';
import { decodeEvent } from '../../../platform/events';
import { requestHash } from '../../../platform/idempotency';
import { repoPath } from '../../../platform/paths';
import { freshDatabase, requireServers } from '../../../test/support/servers';
import type { LimitSettings } from '../src/domain/limits';
import { NO_LIMITS } from '../src/domain/limits';
import { checkLedger } from '../src/invariants';
import { Ledger, type PlaceHoldInput } from '../src/ledger';
import { PLACE_HOLD_SCOPE } from '../src/place-hold';

// PlaceHold's one statement (migrations/006_place_hold.sql) driven through the Ledger on the
// real PostgreSQL with no transaction around it, as the server calls it: round trips, the stored
// answer, the key's rules, the limits' edges, and concurrency. (Both databases: ledger-store,
// band-limits and voucher-store tests run the same code on PGlite too.)

const EUR = (minor: bigint, currency = 'EUR') => ({ minor, currency });

/** A Queryable that counts the statements sent: each is one round trip to PostgreSQL. */
function counting(q: Queryable): Queryable & { sent: string[] } {
  const sent: string[] = [];
  return {
    sent,
    query: (sql, params) => {
      sent.push(sql.trim().split(/\s+/).slice(0, 4).join(' '));
      return q.query(sql, params);
    },
  };
}

let database: Awaited<ReturnType<typeof freshDatabase>>;
let db: Db;
const ledger = new Ledger({ protectionWindowSeconds: 3600 });

beforeAll(async () => {
  await requireServers('PostgreSQL');
  database = await freshDatabase();
  db = await openDb({ databaseUrl: database.url, poolSize: 24 });
  await migrate(db, repoPath('services', 'settlement', 'migrations'));
});

afterEach(async () => {
  expect((await checkLedger(db)).violations).toEqual([]);
});

afterAll(async () => {
  await db?.close();
  await database?.drop();
});

let n = 0;
const unique = (stem: string) => `${stem}-${++n}-${randomUUID().slice(0, 8)}`;

async function topUp(accountId: string, minor: bigint, currency = 'EUR') {
  await db.tx((q) => ledger.topUp(q, { accountId, amount: EUR(minor, currency), sourceReference: unique('bank') }));
}

function input(accountId: string, minor: bigint, over: Partial<PlaceHoldInput> = {}): PlaceHoldInput {
  return { paymentId: unique('pay'), accountId, merchantId: 'm1', deviceId: unique('band'), amount: EUR(minor), ttlSeconds: 600, ...over };
}

/** The key and request hash the server would derive for `hold` under `key`. */
function keyed(hold: PlaceHoldInput, key = randomUUID()) {
  const request: PlaceHoldRequest = {
    idempotencyKey: key,
    paymentId: hold.paymentId,
    accountId: hold.accountId,
    merchantId: hold.merchantId,
    deviceId: hold.deviceId,
    amount: { amountMinor: hold.amount.minor, currency: hold.amount.currency },
    ttlSeconds: BigInt(hold.ttlSeconds),
    voucherCode: hold.voucherCode ?? '',
    merchantName: hold.merchantName ?? '',
  };
  return { key, hash: requestHash({ codec: PlaceHoldRequest, value: request }) };
}

async function storedKey(key: string) {
  const { rows } = await db.query<{ response: Uint8Array | null }>('SELECT response FROM idempotency_keys WHERE scope = $1 AND key = $2', [PLACE_HOLD_SCOPE, key]);
  return rows[0];
}

async function setLimits(deviceId: string, accountId: string, settings: Partial<LimitSettings>) {
  await db.tx((q) => ledger.limits.set(q, { deviceId, accountId, settings: { ...NO_LIMITS, ...settings }, reason: 'test', expectedVersion: 0n, changedBy: 'wallet' }));
}

const placedOutcome = async (hold: PlaceHoldInput) => (await ledger.placeHold(db, hold, keyed(hold))).outcome;

describe('PlaceHold in one statement', () => {
  it('is one round trip without a voucher, two with one, one for a replay; the old path was ten to twelve', async () => {
    const alice = unique('alice');
    await topUp(alice, 10_000n);
    const plain = input(alice, 1_000n);
    const key = keyed(plain);
    const q = counting(db);
    const first = await ledger.placeHold(q, plain, key);
    expect(first.outcome).toBe('PLACED');
    expect(q.sent).toEqual(['SELECT * FROM place_hold($1,']);

    q.sent.length = 0;
    const again = await ledger.placeHold(q, plain, key);
    expect(again.replayed).toBe(true);
    expect(PlaceHoldResponse.encode(again.response).finish()).toEqual(PlaceHoldResponse.encode(first.response).finish());
    expect(q.sent).toHaveLength(1);

    const voucher = await db.tx((tx) => ledger.vouchers.issue(tx, { merchantId: 'm1', code: undefined, discount: { kind: 'percent', percent: 10 }, expiresAt: new Date(Date.now() + 3_600_000), maxUses: 5 }));
    q.sent.length = 0;
    const withVoucher = input(alice, 1_000n, { voucherCode: voucher.code });
    expect((await ledger.placeHold(q, withVoucher, keyed(withVoucher))).outcome).toBe('PLACED');
    expect(q.sent).toEqual(['SELECT *, now() AS', 'SELECT * FROM place_hold($1,']);

    // A refusal is one round trip too.
    q.sent.length = 0;
    const poor = input(alice, 1_000_000n);
    expect((await ledger.placeHold(q, poor, keyed(poor))).outcome).toBe('INSUFFICIENT_FUNDS');
    expect(q.sent).toHaveLength(1);
  });

  it('stores exactly the answer it returns: the hold with the database’s expiry, decodable by the service', async () => {
    const bob = unique('bob');
    await topUp(bob, 5_000n);
    const hold = input(bob, 1_234n, { merchantName: 'Corner Shop', ttlSeconds: 90 });
    const key = keyed(hold);
    const placed = await ledger.placeHold(db, hold, key);
    const stored = (await storedKey(key.key))!.response!;
    expect(PlaceHoldResponse.decode(stored)).toEqual(placed.response);
    const { rows } = await db.query<{ expires_at: Date; created_at: Date }>('SELECT expires_at, created_at FROM holds WHERE payment_id = $1', [hold.paymentId]);
    expect(placed.response).toEqual({
      outcome: HoldOutcome.HOLD_OUTCOME_PLACED,
      hold: expect.objectContaining({
        holdId: placed.hold!.holdId,
        paymentId: hold.paymentId,
        accountId: bob,
        merchantId: 'm1',
        deviceId: hold.deviceId,
        amount: { amountMinor: 1_234n, currency: 'EUR' },
        gross: { amountMinor: 1_234n, currency: 'EUR' },
        discount: { amountMinor: 0n, currency: 'EUR' },
        captured: { amountMinor: 0n, currency: 'EUR' },
        merchantName: 'Corner Shop',
        voucherId: '',
        expiresAt: rows[0]!.expires_at,
      }),
    });
    expect(rows[0]!.expires_at.getTime() - rows[0]!.created_at.getTime()).toBe(90_000);
    expect(placed.hold!.expiresAt).toEqual(rows[0]!.expires_at);
    // Its payment.hold.placed row is in the outbox, written by the same statement.
    const { rows: outbox } = await db.query<{ event: Uint8Array }>('SELECT event FROM outbox');
    const events = outbox.map((r) => decodeEvent(r.event)).filter((e) => e.payload?.$case === 'ledger' && e.payload.value.holdId === placed.hold!.holdId);
    expect(events.map((e) => e.type)).toEqual(['payment.hold.placed']);
  });

  it('encodes timestamps and varints as protobuf does (whole seconds, microseconds, large values)', async () => {
    for (const at of ['2026-12-03T15:00:00.000Z', '2026-12-03T15:00:00.123Z', '1970-01-01T00:00:00.000Z', '2100-02-28T23:59:59.999Z']) {
      const { rows } = await db.query<{ ts: Uint8Array }>('SELECT pb_timestamp($1::timestamptz) AS ts', [at]);
      const decoded = Timestamp.decode(rows[0]!.ts);
      expect(Number(decoded.seconds) * 1000 + decoded.nanos / 1e6).toBe(new Date(at).getTime());
    }
    const { rows } = await db.query<{ micros: Uint8Array }>("SELECT pb_timestamp('2026-12-03T15:00:00.000001Z'::timestamptz) AS micros");
    expect(Timestamp.decode(rows[0]!.micros).nanos).toBe(1_000);
    for (const value of [0n, 1n, 127n, 128n, 300n, 2n ** 35n + 5n, 2n ** 63n - 1n]) {
      const { rows: v } = await db.query<{ varint: Uint8Array }>('SELECT pb_varint($1::bigint) AS varint', [value]);
      expect(Timestamp.decode(Buffer.concat([Buffer.from([0x08]), Buffer.from(v[0]!.varint)])).seconds).toBe(value);
    }
    await expect(db.query('SELECT pb_varint(-1)')).rejects.toThrow(/negative/);
  });

  it('the same key with another request is IdempotencyKeyReused and changes nothing; a refusal’s answer is stored too', async () => {
    const carol = unique('carol');
    await topUp(carol, 1_000n);
    const poor = input(carol, 5_000n);
    const key = keyed(poor);
    expect((await ledger.placeHold(db, poor, key)).outcome).toBe('INSUFFICIENT_FUNDS');
    expect(PlaceHoldResponse.decode((await storedKey(key.key))!.response!).outcome).toBe(HoldOutcome.HOLD_OUTCOME_INSUFFICIENT_FUNDS);
    // A top-up later does not change the first answer.
    await topUp(carol, 10_000n);
    expect((await ledger.placeHold(db, poor, key)).outcome).toBe('INSUFFICIENT_FUNDS');
    const other = input(carol, 10n);
    await expect(ledger.placeHold(db, other, { key: key.key, hash: keyed(other).hash })).rejects.toBeInstanceOf(IdempotencyKeyReused);
    expect((await ledger.balance(db, `wallet:${carol}`, 'EUR')).held).toBe(0n);
  });

  it('a payment that already has a hold is ALREADY_EXISTS and stores nothing, not even the key', async () => {
    const dave = unique('dave');
    await topUp(dave, 10_000n);
    const hold = input(dave, 100n);
    expect(await placedOutcome(hold)).toBe('PLACED');
    const key = keyed({ ...hold, amount: EUR(200n) });
    await expect(ledger.placeHold(db, { ...hold, amount: EUR(200n) }, key)).rejects.toThrow(/already has hold [0-9a-f-]{36}/);
    expect(await storedKey(key.key)).toBeUndefined();
    expect((await ledger.balance(db, `wallet:${dave}`, 'EUR')).held).toBe(100n);
  });

  it('limits: frozen first; per payment and per day at the edge pass, one minor unit more is refused; another currency is over the per-payment limit', async () => {
    const erin = unique('erin');
    await topUp(erin, 1_000_000n);
    await topUp(erin, 1_000_000n, 'USD');
    const band = unique('band');
    const on = (minor: bigint, currency = 'EUR') => placedOutcome(input(erin, minor, { deviceId: band, amount: EUR(minor, currency) }));
    await setLimits(band, erin, { currency: 'EUR', perPayment: 1_000n, perDay: 3_000n });
    expect(await on(1_001n)).toBe('OVER_PAYMENT_LIMIT');
    expect(await on(1_000n)).toBe('PLACED');
    expect(await on(1n, 'USD')).toBe('OVER_PAYMENT_LIMIT');
    expect(await on(1_000n)).toBe('PLACED');
    expect(await on(1_001n)).toBe('OVER_PAYMENT_LIMIT');
    expect(await on(1_000n)).toBe('PLACED'); // 3000 of 3000: the limit reached exactly
    expect(await on(1n)).toBe('OVER_DAILY_LIMIT');
    await setLimits(band, erin, { currency: 'EUR', perDay: 1_000n, frozen: true });
    expect(await on(1n)).toBe('BAND_FROZEN');
    expect(await on(1n, 'USD')).toBe('BAND_FROZEN');
    // Only a daily limit: still no way around it in another currency; under it in its own, placed.
    const band2 = unique('band');
    await setLimits(band2, erin, { currency: 'EUR', perDay: 10_000n });
    expect(await placedOutcome(input(erin, 1n, { deviceId: band2, amount: EUR(1n, 'USD') }))).toBe('OVER_PAYMENT_LIMIT');
    expect(await placedOutcome(input(erin, 5_000n, { deviceId: band2 }))).toBe('PLACED');
    // A band with a limits row but no limit (all unset): anything goes.
    const band3 = unique('band');
    await setLimits(band3, erin, {});
    expect(await placedOutcome(input(erin, 500_000n, { deviceId: band3, amount: EUR(500_000n, 'USD') }))).toBe('PLACED');
  });

  it('concurrent retries of one key: one hold, every caller gets the same answer', async () => {
    const frank = unique('frank');
    await topUp(frank, 10_000n);
    const hold = input(frank, 700n);
    const key = keyed(hold);
    const answers = await Promise.all(Array.from({ length: 12 }, () => ledger.placeHold(db, hold, key)));
    const bytes = new Set(answers.map((a) => Buffer.from(PlaceHoldResponse.encode(a.response).finish()).toString('hex')));
    expect(bytes.size).toBe(1);
    expect(answers.filter((a) => !a.replayed)).toHaveLength(1);
    expect((await ledger.balance(db, `wallet:${frank}`, 'EUR')).held).toBe(700n);
  });

  it('40 concurrent holds of random sizes on one wallet never reserve more than it has; each refused one was larger than what was left', async () => {
    const gina = unique('gina');
    await topUp(gina, 10_000n);
    const sizes = Array.from({ length: 40 }, () => BigInt(1 + Math.floor(Math.random() * 1_500)));
    const results = await Promise.all(sizes.map((minor) => ledger.placeHold(db, input(gina, minor), keyed(input(gina, minor)))));
    const placed = sizes.filter((_, i) => results[i]!.outcome === 'PLACED').reduce((a, b) => a + b, 0n);
    const balance = await ledger.balance(db, `wallet:${gina}`, 'EUR');
    expect(balance.held).toBe(placed);
    expect(balance.available).toBeGreaterThanOrEqual(0n);
    const refused = sizes.filter((_, i) => results[i]!.outcome === 'INSUFFICIENT_FUNDS');
    expect(refused.length + results.filter((r) => r.outcome === 'PLACED').length).toBe(40);
    for (const minor of refused) expect(minor).toBeGreaterThan(balance.available);
  });

  it('a voucher used up between its quote and its lock: quoted again and refused with the reason, nothing held; the key’s first answer survives the voucher being used up', async () => {
    const hank = unique('hank');
    await topUp(hank, 10_000n);
    const voucher = await db.tx((q) => ledger.vouchers.issue(q, { merchantId: 'm1', code: undefined, discount: { kind: 'amount', amount: EUR(100n) }, expiresAt: new Date(Date.now() + 3_600_000), maxUses: 1 }));
    const first = input(hank, 1_000n, { voucherCode: voucher.code });
    const firstKey = keyed(first);
    // Let the quote pass, then use the voucher up before place_hold locks it.
    const racing: Queryable = {
      query: async (sql, params) => {
        if (sql.includes('place_hold')) await db.query('UPDATE vouchers SET uses = max_uses WHERE voucher_id = $1', [voucher.voucherId]);
        return db.query(sql, params);
      },
    };
    await expect(ledger.placeHold(racing, first, firstKey)).rejects.toThrow(/used up \(1\/1 uses\)/);
    expect(await storedKey(firstKey.key)).toBeUndefined();
    expect((await ledger.balance(db, `wallet:${hank}`, 'EUR')).held).toBe(0n);

    await db.query('UPDATE vouchers SET uses = 0 WHERE voucher_id = $1', [voucher.voucherId]);
    const placed = await ledger.placeHold(db, first, firstKey);
    expect(placed.outcome).toBe('PLACED');
    expect(placed.response.hold!.discount).toEqual({ amountMinor: 100n, currency: 'EUR' });
    // The retry's quote now refuses (the use is taken, by this very payment): the stored answer comes back instead.
    const retry = await ledger.placeHold(db, first, firstKey);
    expect(retry.replayed).toBe(true);
    expect(retry.response).toEqual(placed.response);
    // Another request under that key is still refused as such.
    await expect(ledger.placeHold(db, { ...first, amount: EUR(999n) }, { key: firstKey.key, hash: keyed({ ...first, amount: EUR(999n) }).hash })).rejects.toBeInstanceOf(IdempotencyKeyReused);
  });

  it('a retry whose voucher expired while the first call under its key is still placing the hold gets the first answer, not the expiry', async () => {
    const ivy = unique('ivy');
    await topUp(ivy, 10_000n);
    const expiresAt = new Date(Date.now() + 1_500);
    const voucher = await db.tx((q) => ledger.vouchers.issue(q, { merchantId: 'm1', code: undefined, discount: { kind: 'amount', amount: EUR(100n) }, expiresAt, maxUses: 5 }));
    const hold = input(ivy, 1_000n, { voucherCode: voucher.code });
    const key = keyed(hold);
    const waitingOn = async (text: string) => {
      for (;;) {
        const { rows } = await db.query("SELECT 1 FROM pg_stat_activity WHERE query LIKE $1 AND wait_event_type = 'Lock'", [`%${text}(%`]);
        if (rows.length) return;
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    // Hold the wallet's row, so the first call stops there: its key row written, not committed.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const walletLocked = new Promise<void>((r) => (locked = r));
    const blocker = db.tx(async (q) => {
      await q.query('SELECT 1 FROM accounts WHERE account = $1 AND currency = $2 FOR UPDATE', [`wallet:${ivy}`, 'EUR']);
      locked();
      await gate;
    });
    await walletLocked;
    const first = ledger.placeHold(db, hold, key);
    await waitingOn('place_hold');
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAt.getTime() - Date.now()) + 200));
    // The retry's quote now sees an expired voucher; the first call is still in flight.
    const retry = ledger.placeHold(db, hold, key);
    const retrySettled = retry.then(() => 'answered', () => 'refused');
    await Promise.race([waitingOn('idempotency_answer'), retrySettled]);
    release();
    await blocker;
    const placed = await first;
    expect(placed.outcome).toBe('PLACED');
    expect(await retrySettled).toBe('answered');
    const again = await retry;
    expect(again.replayed).toBe(true);
    expect(again.response).toEqual(placed.response);
    expect((await ledger.balance(db, `wallet:${ivy}`, 'EUR')).held).toBe(900n);
  });
});

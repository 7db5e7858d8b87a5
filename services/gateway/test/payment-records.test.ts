import { randomBytes, randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { DeclineReason, PaymentStatus, type AuthorizeRequest, type AuthorizeResponse, type Payment } from '../../../gen/wristpay/gateway/v1/gateway';
import { IdempotencyKeyReused, InvalidArgument } from '../../../platform/errors';
import { requireServers, TEST_REDIS_URL, uniqueName } from '../../../test/support/servers';
import { AttemptInProgress, PaymentRecords } from '../src/payments';

const TTL_SECONDS = 3_600;
const LEASE_MS = 30_000;

function request(over: Partial<AuthorizeRequest> = {}): AuthorizeRequest {
  return {
    idempotencyKey: randomUUID(),
    merchantId: 'm-shop',
    amount: { amountMinor: 1_250n, currency: 'EUR' },
    payload: { $case: 'tap', value: { tokenNumber: '4895370000000001', atc: 7n, terminalNonce: randomBytes(4), cryptogram: randomBytes(16) } },
    location: { latitude: 31.23, longitude: 121.47 },
    terminalId: 'pos-1',
    voucherCode: '',
    merchantName: 'Shop',
    ...over,
  };
}

function approved(paymentId: string): { payment: Payment; response: AuthorizeResponse } {
  const response: AuthorizeResponse = {
    paymentId,
    status: PaymentStatus.PAYMENT_STATUS_APPROVED,
    declineReason: DeclineReason.DECLINE_REASON_UNSPECIFIED,
    message: 'approved',
    holdId: `hold-${paymentId}`,
    riskScore: 42,
    riskReasons: ['MODEL'],
    discount: undefined,
    charged: { amountMinor: 1_250n, currency: 'EUR' },
  };
  const payment: Payment = {
    paymentId,
    status: response.status,
    declineReason: response.declineReason,
    merchantId: 'm-shop',
    amount: { amountMinor: 1_250n, currency: 'EUR' },
    holdId: response.holdId,
    deviceId: 'dev-1',
    accountId: 'acct-1',
    riskScore: 42,
    riskReasons: ['MODEL'],
    createdAt: new Date(1_700_000_000_000),
    discount: undefined,
    charged: { amountMinor: 1_250n, currency: 'EUR' },
    merchantName: 'Shop',
    voucherCode: '',
  };
  return { payment, response };
}

/** PaymentRecords (the Authorize idempotency record and its lease) against real Redis. */
describe('gateway PaymentRecords against real Redis', () => {
  let redis: Redis;
  const prefixes: string[] = [];
  /** The records' clock (ms); each test sets it, so leases run out without sleeping. */
  let now = 0;

  beforeAll(async () => {
    await requireServers('Redis');
    redis = new Redis(TEST_REDIS_URL);
  });

  afterAll(async () => {
    for (const prefix of prefixes) {
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length) await redis.del(...keys);
    }
    redis?.disconnect();
  });

  /** Records under a prefix of their own, so tests never share keys. */
  function records(prefix = uniqueName('gwrec')): { records: PaymentRecords; prefix: string } {
    now = 1_700_000_000_000;
    prefixes.push(prefix);
    return { records: new PaymentRecords(redis, prefix, TTL_SECONDS, LEASE_MS, () => now), prefix };
  }

  it('claims a new key for the given payment id; the same request while it runs is AttemptInProgress (UNAVAILABLE)', async () => {
    const { records: r } = records();
    const req = request();
    const id = randomUUID();
    expect(await r.claim(req, id)).toEqual({ kind: 'new', paymentId: id });
    const busy = await r.claim(req, randomUUID()).catch((e: unknown) => e);
    expect(busy).toBeInstanceOf(AttemptInProgress);
    expect((busy as AttemptInProgress).code).toBe(14 /* UNAVAILABLE */);
    // Still busy one millisecond before the lease runs out.
    now += LEASE_MS - 1;
    await expect(r.claim(req, randomUUID())).rejects.toBeInstanceOf(AttemptInProgress);
  });

  it('refuses the same key with a different request (IdempotencyKeyReused), running or done', async () => {
    const { records: r } = records();
    const req = request();
    const id = randomUUID();
    await r.claim(req, id);
    const other = { ...req, amount: { amountMinor: 1_251n, currency: 'EUR' } };
    await expect(r.claim(other, randomUUID())).rejects.toBeInstanceOf(IdempotencyKeyReused);
    await expect(r.claim({ ...req, terminalId: 'pos-2' }, randomUUID())).rejects.toBeInstanceOf(IdempotencyKeyReused);
    const { payment, response } = approved(id);
    await r.complete(req, payment, response);
    await expect(r.claim(other, randomUUID())).rejects.toBeInstanceOf(IdempotencyKeyReused);
  });

  it('after release, the next claim runs at once with the SAME payment id', async () => {
    const { records: r } = records();
    const req = request();
    const id = randomUUID();
    await r.claim(req, id);
    await r.release(req, id);
    expect(await r.claim(req, randomUUID())).toEqual({ kind: 'new', paymentId: id });
    // That retry holds a fresh lease: a third attempt waits for it.
    await expect(r.claim(req, randomUUID())).rejects.toBeInstanceOf(AttemptInProgress);
    // And a second failure releases it again, still under the first id.
    await r.release(req, id);
    expect(await r.claim(req, randomUUID())).toEqual({ kind: 'new', paymentId: id });
  });

  it('takes over an attempt whose lease ran out, with the same payment id and a new lease', async () => {
    const { records: r } = records();
    const req = request();
    const id = randomUUID();
    await r.claim(req, id);
    now += LEASE_MS;
    expect(await r.claim(req, randomUUID())).toEqual({ kind: 'new', paymentId: id });
    await expect(r.claim(req, randomUUID())).rejects.toBeInstanceOf(AttemptInProgress);
    now += LEASE_MS + 1;
    expect(await r.claim(req, randomUUID())).toEqual({ kind: 'new', paymentId: id });
  });

  it('once completed, a claim returns the stored first response (also after its lease), and get() the payment', async () => {
    const { records: r } = records();
    const req = request();
    const id = randomUUID();
    await r.claim(req, id);
    const { payment, response } = approved(id);
    await r.complete(req, payment, response);
    expect(await r.claim(req, randomUUID())).toEqual({ kind: 'done', response });
    now += 10 * LEASE_MS;
    expect(await r.claim(req, randomUUID())).toEqual({ kind: 'done', response });
    expect(await r.get(id)).toEqual(payment);
    expect(await r.get(randomUUID())).toBeUndefined();
  });

  it('a late release of an attempt that was taken over does not erase the answer the take-over gave', async () => {
    const { records: r } = records();
    const req = request();
    const id = randomUUID();
    await r.claim(req, id); // attempt A stalls past its lease
    now += LEASE_MS;
    expect(await r.claim(req, randomUUID())).toEqual({ kind: 'new', paymentId: id }); // B takes over
    const { payment, response } = approved(id);
    await r.complete(req, payment, response); // B answers APPROVED
    await r.release(req, id); // A fails late
    // A retry must get B's answer, not run the payment again (which could decline it while B's hold stays).
    expect(await r.claim(req, randomUUID())).toEqual({ kind: 'done', response });
  });

  it('keeps keys per merchant: the same key at another merchant is independent', async () => {
    const { records: r } = records();
    const key = randomUUID();
    const atA = request({ idempotencyKey: key, merchantId: 'm-a' });
    const atB = request({ idempotencyKey: key, merchantId: 'm-b' });
    const idA = randomUUID();
    const idB = randomUUID();
    expect(await r.claim(atA, idA)).toEqual({ kind: 'new', paymentId: idA });
    // Neither "in progress" nor "reused": B's request is its own.
    expect(await r.claim(atB, idB)).toEqual({ kind: 'new', paymentId: idB });
    const { payment, response } = approved(idA);
    await r.complete(atA, payment, response);
    await expect(r.claim(atB, randomUUID())).rejects.toBeInstanceOf(AttemptInProgress);
    await r.release(atB, idB);
    expect(await r.claim(atB, randomUUID())).toEqual({ kind: 'new', paymentId: idB });
  });

  it('requires an idempotency key of 1-200 characters', async () => {
    const { records: r } = records();
    await expect(r.claim(request({ idempotencyKey: '' }), randomUUID())).rejects.toBeInstanceOf(InvalidArgument);
    await expect(r.claim(request({ idempotencyKey: 'k'.repeat(201) }), randomUUID())).rejects.toBeInstanceOf(InvalidArgument);
    expect((await r.claim(request({ idempotencyKey: 'k'.repeat(200) }), 'p1')).kind).toBe('new');
  });

  it('expires every record it writes (claim, release, complete, save)', async () => {
    const { records: r, prefix } = records();
    const keysTtl = async () => {
      const keys = await redis.keys(`${prefix}:*`);
      return Promise.all(keys.map(async (k) => ({ k, ttl: await redis.ttl(k) })));
    };
    const running = request();
    const failed = request();
    const done = request();
    await r.claim(running, 'p-running');
    await r.claim(failed, 'p-failed');
    await r.release(failed, 'p-failed');
    await r.claim(done, 'p-done');
    const { payment, response } = approved('p-done');
    await r.complete(done, payment, response);
    await r.save({ ...payment, paymentId: 'p-saved' });
    const ttls = await keysTtl();
    // Three idempotency records and two payments, every one with a TTL of at most TTL_SECONDS.
    expect(ttls).toHaveLength(5);
    for (const { k, ttl } of ttls) expect({ k, ok: ttl > 0 && ttl <= TTL_SECONDS }).toEqual({ k, ok: true });
  });

  it('release never creates a record for a key that was not claimed', async () => {
    const { records: r, prefix } = records();
    const req = request();
    await r.release(req, 'p-ghost');
    expect(await redis.keys(`${prefix}:*`)).toEqual([]);
    expect(await r.claim(req, 'p-real')).toEqual({ kind: 'new', paymentId: 'p-real' });
  });
});

import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { jetstreamManager } from '@nats-io/jetstream';
import Redis from 'ioredis';
import { Channel } from '../../../gen/wristpay/common/v1/common';
import { Decision, Label, RiskServiceClient, type ScoreRequest } from '../../../gen/wristpay/risk/v1/risk';
import { ConfigError } from '../../../platform/config';
import { encodeEvent, newEvent } from '../../../platform/events';
import { createLogger } from '../../../platform/log';
import { EventBus, perTypeDurable } from '../../../platform/nats';
import { watchEvents } from '../../../test/support/events';
import { requireServers, TEST_NATS_URL, TEST_REDIS_URL, TEST_STREAM_LIMITS } from '../../../test/support/servers';
import { tcpProxy, type TcpProxy } from '../../../test/support/tcp-proxy';
import { expectStatus, testClient, testEnv, testLogger, uniqueName } from '../../../test/support/services';
import { startRisk } from '../src/app';
import { CONSUMERS, LIMITS_CHANGED } from '../src/consumers';
import { readConfig } from '../src/config';
import { DecisionStore } from '../src/decision-store';
import type { Features } from '../src/domain/features';
import { toScoreResponse } from '../src/server';

const PARIS = { latitude: 48.8566, longitude: 2.3522 };
const NEW_YORK = { latitude: 40.7128, longitude: -74.006 };
const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/** A live, established band paying a small amount; each call gets fresh ids unless told otherwise. */
function payment(over: Partial<ScoreRequest> = {}): ScoreRequest {
  return {
    paymentId: randomUUID(),
    accountId: 'acct-x',
    deviceId: 'dev-x',
    tokenId: 'tok-1',
    // One merchant per account: these tests are about one account's features, and many fresh
    // accounts paying one shared merchant would look like collusion to the merchant's features.
    merchantId: `merchant-of-${over.accountId ?? 'acct-1'}`,
    amount: { amountMinor: 1_250n, currency: 'EUR' },
    location: PARIS,
    channel: Channel.CHANNEL_BAND_TAP,
    sessionLive: true,
    sessionAgeSeconds: 600n,
    deviceAgeSeconds: BigInt(90 * 86_400),
    recentCryptogramFailures: 0,
    // No occurred_at: these tests walk the service's clock, and a payment without one is windowed
    // at that clock (event time has its own test in event-time.test.ts).
    occurredAt: undefined,
    ...over,
  };
}

describe('risk against real Redis and NATS', () => {
  const prefix = uniqueName();
  const clock = { now: Date.now() };
  let service: Awaited<ReturnType<typeof startRisk>>;
  let client: ReturnType<typeof testClient<RiskServiceClient>>;
  let events: Awaited<ReturnType<typeof watchEvents>>;
  let redis: Redis;

  /** Fresh account and band ids for one test, so tests never share features. */
  const ids = () => ({ accountId: uniqueName('acct'), deviceId: uniqueName('dev') });

  beforeAll(async () => {
    await requireServers('Redis', 'NATS');
    events = await watchEvents(prefix);
    // Degraded mode has its own service below (Redis unreachable); this one tests the full path, so
    // a feature script slower than the default 100 ms on the loaded shared machine must not
    // degrade it (window-edge counts would then be the fallback's).
    service = await startRisk(readConfig(testEnv(prefix, { RISK_PORT: '0', RISK_RULES_WATCH: 'false', RISK_REDIS_TIMEOUT_MS: '5000' })), testLogger('risk'), { clock: () => clock.now });
    client = testClient(RiskServiceClient, service.port);
    redis = new Redis(TEST_REDIS_URL);
  });

  afterAll(async () => {
    client?.close();
    await service?.stop();
    await events?.close();
    redis?.disconnect();
  });

  it('learns the amount baseline from approved payments only, and a FRAUD label takes one back out', async () => {
    const who = ids();
    const start = Date.now();
    const paid: string[] = [];
    for (let i = 0; i < 5; i++) {
      clock.now = start + i * 10 * MIN;
      const req = payment({ ...who, amount: { amountMinor: BigInt(1_000 + i), currency: 'EUR' } });
      expect((await client.score(req)).decision).toBe(Decision.DECISION_APPROVE);
      paid.push(req.paymentId);
    }
    // Not live and ninety times the usual amount: stopped, so it teaches nothing.
    clock.now = start + 60 * MIN;
    const stopped = payment({ ...who, sessionLive: false, amount: { amountMinor: 90_000n, currency: 'EUR' } });
    expect((await client.score(stopped)).decision).not.toBe(Decision.DECISION_APPROVE);
    const probe = async (minutes: number) => {
      clock.now = start + minutes * MIN;
      const req = payment({ ...who, sessionLive: false });
      await client.score(req);
      return (await client.explain({ paymentId: req.paymentId })).features;
    };
    expect((await probe(70)).amount_history_n).toBe(5);
    await client.feedback({ idempotencyKey: randomUUID(), paymentId: paid[4]!, label: Label.LABEL_FRAUD, source: 'support' });
    const after = await probe(80);
    expect(after.amount_history_n).toBe(4);
    expect(after.amount_mean).toBeCloseTo(1_001.5, 3);
  });

  it('approves a normal small payment from a live session and explains it', async () => {
    clock.now = Date.now();
    const req = payment(ids());
    const res = await client.score(req);
    expect(res.decision).toBe(Decision.DECISION_APPROVE);
    expect(res.score).toBeLessThan(400);
    expect(res.rulesetVersion).toMatch(/^default-\d+\+[0-9a-f]{8}$/);
    expect(res.modelVersion).toMatch(/^logit-\d+\+[0-9a-f]{8}$/);

    const explained = await client.explain({ paymentId: req.paymentId });
    expect(explained.decision).toEqual(res);
    expect(explained.scoredAt!.getTime()).toBe(clock.now);
    expect(explained.label).toBe(Label.LABEL_UNSPECIFIED);
    expect(explained.features).toMatchObject({ amount_minor: 1250, session_live: 1, device_count_1m: 1, account_count_24h: 1, merchant_first: 1, account_merchants_1h: 1, geo_known: 0, degraded: 0 });
  });

  it('challenges a payment without a live session, SESSION_NOT_LIVE first', async () => {
    const res = await client.score(payment({ ...ids(), sessionLive: false, sessionAgeSeconds: 0n }));
    expect(res.decision).toBe(Decision.DECISION_CHALLENGE);
    expect(res.reasons[0]).toMatchObject({ code: 'SESSION_NOT_LIVE', description: expect.stringContaining('live') });
  });

  it('escalates a burst on one band: approve, challenge, decline within a minute', async () => {
    const who = ids();
    const start = Date.now();
    const decisions: Decision[] = [];
    for (let i = 0; i < 10; i++) {
      clock.now = start + i * 2_000;
      decisions.push((await client.score(payment({ ...who, merchantId: 'vending-1', amount: { amountMinor: 100n, currency: 'EUR' } }))).decision);
    }
    expect(decisions.slice(0, 2)).toEqual([Decision.DECISION_APPROVE, Decision.DECISION_APPROVE]);
    expect(decisions[4]).toBe(Decision.DECISION_CHALLENGE);
    expect(decisions[9]).toBe(Decision.DECISION_DECLINE);
    // Monotone: once challenged, the burst never goes back to a silent approve.
    const firstChallenge = decisions.indexOf(Decision.DECISION_CHALLENGE);
    expect(decisions.slice(firstChallenge).every((d) => d !== Decision.DECISION_APPROVE)).toBe(true);
  });

  it('challenges impossible travel: Paris, then New York an hour later', async () => {
    const who = ids();
    clock.now = Date.now();
    expect((await client.score(payment({ ...who, location: PARIS }))).decision).toBe(Decision.DECISION_APPROVE);
    clock.now += HOUR;
    const req = payment({ ...who, location: NEW_YORK, merchantId: 'merchant-ny' });
    const res = await client.score(req);
    expect(res.decision).toBe(Decision.DECISION_CHALLENGE);
    expect(res.reasons.map((r) => r.code)).toContain('IMPOSSIBLE_TRAVEL');
    const { features } = await client.explain({ paymentId: req.paymentId });
    expect(features.geo_distance_km).toBeCloseTo(5837, -1);
    expect(features.geo_elapsed_s).toBe(3600);
    expect(features.geo_speed_kmh).toBeCloseTo(5837, -1);
    // The next payment in New York is a short hop from the last one, but Paris was 70 minutes ago.
    clock.now += 10 * MIN;
    const next = await client.score(payment({ ...who, location: { latitude: 40.75, longitude: -73.99 }, merchantId: 'merchant-ny-2' }));
    expect(next.reasons.map((r) => r.code)).toContain('IMPOSSIBLE_TRAVEL');
  });

  it('rescoring the same payment id counts it once and answers the same', async () => {
    const who = ids();
    clock.now = Date.now();
    const first = payment(who);
    const a = await client.score(first);
    clock.now += 1_000;
    await client.score(payment(who));
    clock.now += 1_000;
    const again = await client.score(first);
    expect(again).toEqual(a);
    const [x, y] = await Promise.all([client.score(first), client.score(first)]);
    expect(x).toEqual(a);
    expect(y).toEqual(a);
    clock.now += 1_000;
    const third = payment(who);
    await client.score(third);
    const { features } = await client.explain({ paymentId: third.paymentId });
    expect(features).toMatchObject({ device_count_1m: 3, account_count_1m: 3, account_sum_1m: 3 * 1250, amount_history_n: 2 });
    expect((await client.explain({ paymentId: first.paymentId })).features.device_count_1m).toBe(1);
  });

  it('publishes risk.scored once per payment with a stable id, and risk.alert for a decline', async () => {
    const who = ids();
    clock.now = Date.now();
    const req = payment(who);
    const first = await client.score(req);
    await client.score(req);
    const declined = payment({ ...who, recentCryptogramFailures: 7 });
    const res = await client.score(declined);
    expect(res.decision).toBe(Decision.DECISION_DECLINE);
    const mine = (type: string, id: string) => events.ofType(type).filter((e) => e.event.payload?.$case === 'risk' && e.event.payload.value.paymentId === id);
    await events.waitFor(() => mine('risk.scored', req.paymentId).length >= 1 && mine('risk.alert', declined.paymentId).length === 1, 5_000, 'risk events');
    await new Promise((r) => setTimeout(r, 300));
    const scored = mine('risk.scored', req.paymentId);
    expect(scored).toHaveLength(1);
    expect(scored[0]!.msgId).toBe(`risk.scored.${req.paymentId}`);
    expect(scored[0]!.event.payload).toEqual({
      $case: 'risk',
      value: {
        paymentId: req.paymentId,
        decision: 'APPROVE',
        score: first.score,
        reasons: first.reasons.map((r) => r.code),
        accountId: who.accountId,
        deviceId: who.deviceId,
        rulesetVersion: first.rulesetVersion,
        modelVersion: first.modelVersion,
        // The score input, for the backtest's replay; the token id stays out.
        payment: {
          merchantId: req.merchantId,
          amount: req.amount,
          location: req.location,
          channel: Channel.CHANNEL_BAND_TAP,
          sessionLive: true,
          sessionAgeSeconds: req.sessionAgeSeconds,
          deviceAgeSeconds: req.deviceAgeSeconds,
          recentCryptogramFailures: 0,
        },
      },
    });
    // Stamped with the service's clock when it scored (the time the feature windows counted it at).
    expect(scored[0]!.event.occurredAt).toEqual(new Date(clock.now));
    expect(mine('risk.scored', declined.paymentId)).toHaveLength(1);
    const alert = mine('risk.alert', declined.paymentId)[0]!;
    expect(alert.event.payload?.$case === 'risk' && alert.event.payload.value).toMatchObject({ decision: 'DECLINE', reasons: expect.arrayContaining(['CRYPTOGRAM_FAILURES_EXTREME']) });
    expect(mine('risk.alert', req.paymentId)).toHaveLength(0);
  });

  it('records feedback labels once per idempotency key', async () => {
    clock.now = Date.now();
    const req = payment(ids());
    await client.score(req);
    const key = randomUUID();
    await client.feedback({ idempotencyKey: key, paymentId: req.paymentId, label: Label.LABEL_FRAUD, source: 'support' });
    await client.feedback({ idempotencyKey: key, paymentId: req.paymentId, label: Label.LABEL_FRAUD, source: 'support' });
    expect((await client.explain({ paymentId: req.paymentId })).label).toBe(Label.LABEL_FRAUD);
    await expectStatus(client.feedback({ idempotencyKey: key, paymentId: req.paymentId, label: Label.LABEL_LEGIT, source: 'support' }), status.ALREADY_EXISTS, /idempotency key/);
    // A later outcome under its own key overrules the first label.
    await client.feedback({ idempotencyKey: randomUUID(), paymentId: req.paymentId, label: Label.LABEL_LEGIT, source: 'dispute' });
    expect((await client.explain({ paymentId: req.paymentId })).label).toBe(Label.LABEL_LEGIT);
    await expectStatus(client.feedback({ idempotencyKey: randomUUID(), paymentId: 'never-scored', label: Label.LABEL_FRAUD, source: '' }), status.NOT_FOUND, /never-scored/);
    await expectStatus(client.feedback({ idempotencyKey: randomUUID(), paymentId: req.paymentId, label: Label.LABEL_UNSPECIFIED, source: '' }), status.INVALID_ARGUMENT, /label/);
    await expectStatus(client.feedback({ idempotencyKey: '', paymentId: req.paymentId, label: Label.LABEL_FRAUD, source: '' }), status.INVALID_ARGUMENT, /idempotency_key/);
  });

  it('explains only what it scored', async () => {
    await expectStatus(client.explain({ paymentId: 'no-such-payment' }), status.NOT_FOUND, /no-such-payment/);
    await expectStatus(client.explain({ paymentId: '' }), status.INVALID_ARGUMENT, /payment_id/);
  });

  it.each<[string, Partial<ScoreRequest>, RegExp]>([
    ['no payment id', { paymentId: '' }, /payment_id/],
    ['no account id', { accountId: '' }, /account_id/],
    ['no device id', { deviceId: '' }, /device_id/],
    ['a hash-tag brace in an id', { accountId: 'a}b' }, /account_id/],
    ['no amount', { amount: undefined }, /amount is required/],
    ['a zero amount', { amount: { amountMinor: 0n, currency: 'EUR' } }, /positive/],
    ['a negative amount', { amount: { amountMinor: -5n, currency: 'EUR' } }, /positive/],
    ['a lower-case currency', { amount: { amountMinor: 100n, currency: 'eur' } }, /currency/],
    ['no currency', { amount: { amountMinor: 100n, currency: '' } }, /currency/],
    ['a latitude off the globe', { location: { latitude: 91, longitude: 0 } }, /latitude/],
    ['a negative device age', { deviceAgeSeconds: -1n }, /device_age_seconds/],
  ])('refuses %s with INVALID_ARGUMENT and counts nothing', async (_what, over, message) => {
    const who = ids();
    await expectStatus(client.score(payment({ ...who, ...over })), status.INVALID_ARGUMENT, message);
    expect(await redis.keys(`${prefix}:risk-*:{${who.deviceId}}*`)).toEqual([]);
  });

  describe('feature arithmetic at window edges', () => {
    const t0 = Date.UTC(2030, 0, 1);

    async function featuresAt(at: number, over: Partial<ScoreRequest>) {
      clock.now = at;
      const req = payment(over);
      await client.score(req);
      return (await client.explain({ paymentId: req.paymentId })).features;
    }

    it('windows are (now - W, now]: a payment exactly W old has left', async () => {
      const who = ids();
      const eur = (n: number) => ({ amountMinor: BigInt(n), currency: 'EUR' });
      await featuresAt(t0, { ...who, amount: eur(100) });
      expect(await featuresAt(t0 + MIN - 1, { ...who, amount: eur(200) })).toMatchObject({ device_count_1m: 2, device_sum_1m: 300, account_count_1m: 2 });
      // t0 is now exactly one minute old: out of the minute, still in the hour.
      expect(await featuresAt(t0 + MIN, { ...who, amount: eur(400) })).toMatchObject({ device_count_1m: 2, device_sum_1m: 600, device_count_1h: 3, device_sum_1h: 700 });
      expect(await featuresAt(t0 + HOUR - 1, { ...who, amount: eur(800) })).toMatchObject({ device_count_1m: 1, device_count_1h: 4, device_sum_1h: 1500 });
      expect(await featuresAt(t0 + HOUR, { ...who, amount: eur(1600) })).toMatchObject({ device_count_1m: 2, device_count_1h: 4, device_sum_1h: 3000, device_count_24h: 5, device_sum_24h: 3100 });
      expect(await featuresAt(t0 + DAY, { ...who, amount: eur(3200) })).toMatchObject({ device_count_1m: 1, device_count_1h: 1, device_count_24h: 5, device_sum_24h: 200 + 400 + 800 + 1600 + 3200, account_count_24h: 5 });
      // Trimmed out of Redis too, not only out of the count.
      expect(await redis.zcard(`${prefix}:risk-device:{${who.deviceId}}:payments`)).toBe(5);
    });

    it('counts every currency but sums only the payment’s own', async () => {
      const who = ids();
      await featuresAt(t0, { ...who, amount: { amountMinor: 500n, currency: 'EUR' } });
      await featuresAt(t0 + 1, { ...who, amount: { amountMinor: 9_000n, currency: 'JPY' } });
      expect(await featuresAt(t0 + 2, { ...who, amount: { amountMinor: 700n, currency: 'EUR' } })).toMatchObject({ device_count_1m: 3, device_sum_1m: 1200, account_sum_24h: 1200, amount_history_n: 1, amount_mean: 500 });
    });

    it('band and account windows are separate: a second band on the account', async () => {
      const who = ids();
      await featuresAt(t0, who);
      await featuresAt(t0 + 1, who);
      expect(await featuresAt(t0 + 2, { ...who, deviceId: uniqueName('dev') })).toMatchObject({ device_count_1m: 1, account_count_1m: 3 });
    });

    it('distinct merchants in the last hour and the first payment at a merchant', async () => {
      const who = ids();
      expect(await featuresAt(t0, { ...who, merchantId: 'm-a' })).toMatchObject({ account_merchants_1h: 1, merchant_first: 1 });
      expect(await featuresAt(t0 + 10, { ...who, merchantId: 'm-b' })).toMatchObject({ account_merchants_1h: 2, merchant_first: 1 });
      expect(await featuresAt(t0 + 20, { ...who, merchantId: 'm-a' })).toMatchObject({ account_merchants_1h: 2, merchant_first: 0 });
      // m-b's last payment is exactly an hour old: it has left the hour; m-a (t0 + 20) has not.
      expect(await featuresAt(t0 + 10 + HOUR, { ...who, merchantId: 'm-c' })).toMatchObject({ account_merchants_1h: 2, merchant_first: 1 });
      // Still remembered a day later: not a first payment.
      expect(await featuresAt(t0 + 2 * DAY, { ...who, merchantId: 'm-b' })).toMatchObject({ account_merchants_1h: 1, merchant_first: 0 });
    });

    it('running mean and variance of the account’s amounts (Welford) before this payment', async () => {
      const who = ids();
      for (const [i, amount] of [1_000, 2_000, 3_000].entries()) await featuresAt(t0 + i * HOUR, { ...who, amount: { amountMinor: BigInt(amount), currency: 'EUR' } });
      const f = await featuresAt(t0 + 3 * HOUR, { ...who, amount: { amountMinor: 6_000n, currency: 'EUR' } });
      expect(f).toMatchObject({ amount_history_n: 3, amount_mean: 2_000, amount_std: 1_000, amount_zscore: 4, amount_ratio: 3 });
    });

    it('geo-velocity uses the last located payment; a payment without a place keeps it', async () => {
      const who = ids();
      await featuresAt(t0, { ...who, location: PARIS });
      expect(await featuresAt(t0 + HOUR, { ...who, location: undefined })).toMatchObject({ geo_known: 0, geo_speed_kmh: 0 });
      const f = await featuresAt(t0 + 2 * HOUR, { ...who, location: NEW_YORK });
      expect(f.geo_known).toBe(1);
      expect(f.geo_elapsed_s).toBe(7200);
      expect(f.geo_speed_kmh).toBeCloseTo(5837 / 2, -1);
    });
  });

  describe('signals from other services on NATS', () => {
    let bus: EventBus;
    beforeAll(async () => {
      bus = await EventBus.connect({ url: TEST_NATS_URL, prefix, source: 'test', log: testLogger('test'), limits: TEST_STREAM_LIMITS });
    });
    afterAll(async () => {
      await bus?.close();
    });

    async function until(predicate: () => Promise<boolean>, what: string) {
      const deadline = Date.now() + 5_000;
      while (!(await predicate())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const codes = async (req: ScoreRequest) => (await client.score(req)).reasons.map((r) => r.code);

    it('declines a band reported lost, and approves it again once resumed (a stale event changes nothing)', async () => {
      const who = ids();
      clock.now = Date.now();
      const device = (type: string, at: Date) => ({ ...newEvent(type, 'device-registry', { $case: 'device' as const, value: { deviceId: who.deviceId, accountId: who.accountId, status: '', previousStatus: '', reason: '' } }), occurredAt: at });
      await bus.publish(device('device.lost', new Date()));
      await until(async () => (await codes(payment(who))).includes('DEVICE_BLOCKED'), 'device.lost to reach risk');
      const res = await client.score(payment(who));
      expect(res.decision).toBe(Decision.DECISION_DECLINE);
      expect(res.reasons[0]!.code).toBe('DEVICE_BLOCKED');
      await bus.publish(device('device.resumed', new Date(Date.now() + 1_000)));
      await until(async () => !(await codes(payment(who))).includes('DEVICE_BLOCKED'), 'device.resumed to reach risk');
      // A late copy of an older suspension does not undo the newer resume.
      const stale = device('device.suspended', new Date(Date.now() - 60_000));
      await bus.publish(stale);
      await until(async () => (await redis.hget(`${prefix}:risk-device:{${who.deviceId}}:status`, 'status')) === 'ACTIVE', 'the status to settle');
      await new Promise((r) => setTimeout(r, 200));
      expect(await codes(payment(who))).not.toContain('DEVICE_BLOCKED');
    });

    it('declines a suspended token; counts tokenization refusals and gateway declines', async () => {
      const who = ids();
      clock.now = Date.now();
      await bus.publish(newEvent('token.suspended', 'tokenization', { $case: 'token', value: { tokenId: 'tok-9', deviceId: who.deviceId, accountId: who.accountId, status: 'SUSPENDED', reason: '', tokenLast4: '' } }));
      await until(async () => (await codes(payment({ ...who, tokenId: 'tok-9' }))).includes('TOKEN_BLOCKED'), 'token.suspended to reach risk');
      expect(await codes(payment({ ...who, tokenId: 'tok-other' }))).not.toContain('TOKEN_BLOCKED');

      const refused = () => newEvent('token.payment.refused', 'tokenization', { $case: 'verification', value: { tokenId: 'tok-1', deviceId: who.deviceId, result: 'BAD_CRYPTOGRAM', amount: undefined, merchantId: 'm', atc: 1n, channel: Channel.CHANNEL_BAND_TAP } });
      const declined = () => newEvent('payment.declined', 'gateway', { $case: 'payment', value: { paymentId: randomUUID(), status: 'DECLINED', declineReason: 'risk', amount: undefined, merchantId: 'm', accountId: who.accountId, deviceId: who.deviceId, holdId: '', merchantName: '', discount: undefined, stepUp: undefined } });
      const once = refused();
      for (const e of [once, once, refused(), refused(), declined(), declined(), declined()]) await bus.publish(e);
      await until(async () => {
        const req = payment(who);
        await client.score(req);
        const { features } = await client.explain({ paymentId: req.paymentId });
        return features.device_refusals_1h === 3 && features.account_declines_1h === 3;
      }, 'refusals and declines to be counted');
      const c = await codes(payment(who));
      expect(c).toEqual(expect.arrayContaining(['VERIFY_REFUSALS_1H', 'ACCOUNT_DECLINES_1H']));
    });
  });

  describe('band limits from settlement (payment.limits.changed, payment.authorized)', () => {
    let bus: EventBus;
    let dir: string;
    /** The same service with the rule set as it was before limits existed (the shipped file without its BAND_* rules). */
    let before: Awaited<ReturnType<typeof startRisk>>;
    let bclient: ReturnType<typeof testClient<RiskServiceClient>>;

    beforeAll(async () => {
      bus = await EventBus.connect({ url: TEST_NATS_URL, prefix, source: 'test', log: testLogger('test'), limits: TEST_STREAM_LIMITS });
      dir = mkdtempSync(join(tmpdir(), 'risk-nolimits-'));
      const shipped = readFileSync(join(__dirname, '..', 'rules', 'default.yaml'), 'utf8');
      const start = shipped.indexOf('\n  - id: BAND_FROZEN');
      // Cut from the comment block that introduces the limit rules to the end of the file.
      const withoutLimits = shipped.slice(0, shipped.lastIndexOf('\n\n', start) + 1);
      // (Other rules mention bands, e.g. NEW_BAND_OTHER_BAND_ACTIVE: only the limit rules and features must be gone.)
      expect(withoutLimits).not.toMatch(/BAND_(FROZEN|LIMIT)|band_(frozen|limit|spend)/);
      writeFileSync(join(dir, 'rules.yaml'), withoutLimits);
      before = await startRisk(
        readConfig(testEnv(prefix, { RISK_PORT: '0', RISK_RULES_WATCH: 'false', RISK_CONSUMERS: 'false', RISK_RULES_FILE: join(dir, 'rules.yaml') })),
        testLogger('risk'),
        { clock: () => clock.now },
      );
      bclient = testClient(RiskServiceClient, before.port);
    });
    afterAll(async () => {
      bclient?.close();
      await before?.stop();
      await bus?.close();
    });

    const eur = (minor: number) => ({ amountMinor: BigInt(minor), currency: 'EUR' });
    const limitsChanged = (deviceId: string, version: number, over: { perPayment?: number; perDay?: number; frozen?: boolean } = {}) =>
      newEvent(LIMITS_CHANGED, 'settlement', {
        $case: 'limits',
        value: {
          deviceId,
          accountId: 'acct-x',
          perPayment: over.perPayment === undefined ? undefined : eur(over.perPayment),
          perDay: over.perDay === undefined ? undefined : eur(over.perDay),
          frozen: over.frozen ?? false,
          version: BigInt(version),
          changedBy: 'owner',
          reason: 'test',
        },
      });
    const authorized = (who: { deviceId: string; accountId: string }, paymentId: string, minor: number) =>
      newEvent('payment.authorized', 'gateway', { $case: 'payment', value: { paymentId, status: 'APPROVED', declineReason: '', amount: eur(minor), merchantId: 'm', accountId: who.accountId, deviceId: who.deviceId, holdId: randomUUID(), merchantName: '', discount: undefined, stepUp: undefined } });
    const limitsKey = (deviceId: string) => `${prefix}:risk-device:{${deviceId}}:limits`;

    async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, what: string): Promise<T> {
      const deadline = Date.now() + 5_000;
      for (;;) {
        const value = await read();
        if (ok(value)) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last saw ${JSON.stringify(value)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    /** Resolves once `durable` has acked everything up to stream sequence `seq`. */
    async function handledUpTo(durable: string, seq: number): Promise<void> {
      const jsm = await jetstreamManager(bus.nc);
      await until(async () => (await jsm.consumers.info(bus.streamName('payment'), durable)).ack_floor.stream_seq, (floor) => floor >= seq, `${durable} to ack seq ${seq}`);
    }
    /** A copy of `event` under the same message id, past JetStream's duplicate window: what a redelivery looks like to the handler. */
    const redeliver = async (event: ReturnType<typeof newEvent>) => (await bus.js.publish(bus.subject(event.type), encodeEvent(event))).seq;
    const codes = (res: { reasons: Array<{ code: string }> }) => res.reasons.map((r) => r.code);

    it('a payment near the per-payment limit gets BAND_LIMIT_PER_PAYMENT_NEAR, one well under does not; Explain shows the limit', async () => {
      const who = ids();
      clock.now = Date.now();
      await handledUpTo(CONSUMERS.limits, (await bus.publish(limitsChanged(who.deviceId, 1, { perPayment: 5_000 }))).seq);
      expect(await redis.hget(limitsKey(who.deviceId), 'version')).toBe('1');
      const near = payment({ ...who, amount: eur(4_600) });
      const res = await client.score(near);
      expect(codes(res)).toContain('BAND_LIMIT_PER_PAYMENT_NEAR');
      expect(res.decision).toBe(Decision.DECISION_APPROVE);
      expect((await client.explain({ paymentId: near.paymentId })).features).toMatchObject({ band_limit_per_payment: 5_000, band_limit_per_payment_share: 0.92, band_frozen: 0, band_limit_per_day: 0, band_limit_per_day_share: 0 });
      const under = await client.score(payment({ ...who, amount: eur(1_000) }));
      expect(codes(under).filter((c) => c.startsWith('BAND_'))).toEqual([]);
      // Over the limit: settlement refuses it with its own reason; risk adds nothing.
      expect(codes(await client.score(payment({ ...who, amount: eur(5_001) }))).filter((c) => c.startsWith('BAND_'))).toEqual([]);
    });

    it('an older version arriving late does not roll the limits back', async () => {
      const who = ids();
      clock.now = Date.now();
      await bus.publish(limitsChanged(who.deviceId, 3, { perPayment: 5_000 }));
      await until(() => redis.hget(limitsKey(who.deviceId), 'version'), (v) => v === '3', 'version 3 to be applied');
      // Version 2 would lift the limit to 1000.00: 46.00 would be far under it.
      await handledUpTo(CONSUMERS.limits, (await bus.publish(limitsChanged(who.deviceId, 2, { perPayment: 100_000 }))).seq);
      expect(await redis.hgetall(limitsKey(who.deviceId))).toMatchObject({ version: '3', pp: '5000' });
      expect(codes(await client.score(payment({ ...who, amount: eur(4_600) })))).toContain('BAND_LIMIT_PER_PAYMENT_NEAR');
      // A newer one does replace it, and a limit it leaves unset is gone.
      await handledUpTo(CONSUMERS.limits, (await bus.publish(limitsChanged(who.deviceId, 10, { perDay: 50_000 }))).seq);
      expect(await redis.hgetall(limitsKey(who.deviceId))).toMatchObject({ version: '10', pp: '', pd: '50000' });
      expect(codes(await client.score(payment({ ...who, amount: eur(4_600) }))).filter((c) => c.startsWith('BAND_'))).toEqual([]);
    });

    it('the same limits event delivered twice is applied once', async () => {
      const who = ids();
      clock.now = Date.now();
      const event = limitsChanged(who.deviceId, 7, { perPayment: 5_000 });
      await handledUpTo(CONSUMERS.limits, (await bus.publish(event)).seq);
      const first = await redis.hgetall(limitsKey(who.deviceId));
      expect(first).toMatchObject({ version: '7', event: event.eventId, applied_at: String(clock.now) });
      clock.now += 5_000;
      await handledUpTo(CONSUMERS.limits, await redeliver(event));
      expect(await redis.hgetall(limitsKey(who.deviceId))).toEqual(first);
    });

    it('spend today (payment.authorized, once per payment) near the daily limit gets BAND_LIMIT_PER_DAY_NEAR', async () => {
      const who = ids();
      clock.now = Date.now();
      await bus.publish(limitsChanged(who.deviceId, 1, { perDay: 10_000 }));
      const a = authorized(who, randomUUID(), 4_000);
      const b = authorized(who, randomUUID(), 4_000);
      await bus.publish(a);
      await bus.publish(b);
      // A second event for an already counted payment (a gateway retry under a new event id) adds nothing.
      const copy = await bus.publish({ ...a, eventId: randomUUID() });
      await handledUpTo(perTypeDurable(CONSUMERS.payment, 'payment.authorized'), copy.seq);
      await until(() => redis.hget(limitsKey(who.deviceId), 'version'), (v) => v === '1', 'the daily limit to be applied');
      const near = payment({ ...who, amount: eur(1_000) });
      const res = await client.score(near);
      expect(codes(res)).toContain('BAND_LIMIT_PER_DAY_NEAR');
      expect((await client.explain({ paymentId: near.paymentId })).features).toMatchObject({ band_limit_per_day: 10_000, band_spend_today: 8_000, band_limit_per_day_share: 0.9 });
      const under = await client.score(payment({ ...who, amount: eur(100) }));
      expect(codes(under).filter((c) => c.startsWith('BAND_'))).toEqual([]);
    });

    it('a frozen band is flagged BAND_FROZEN (settlement declines it with its own reason)', async () => {
      const who = ids();
      clock.now = Date.now();
      await handledUpTo(CONSUMERS.limits, (await bus.publish(limitsChanged(who.deviceId, 1, { frozen: true }))).seq);
      const res = await client.score(payment(who));
      expect(res.decision).toBe(Decision.DECISION_APPROVE);
      expect(codes(res)).toContain('BAND_FROZEN');
    });

    it('a band without limits scores exactly as with the rules before limits existed', async () => {
      const withRules = ids();
      const withoutRules = ids();
      const start = Date.now();
      // Quiet payments, a burst, a spike and a new merchant: enough to fire rules and the model.
      const script: Array<Partial<ScoreRequest>> = [
        { amount: eur(1_000) },
        { amount: eur(1_200), merchantId: 'm-2' },
        { amount: eur(900) },
        { amount: eur(50_000), merchantId: 'm-3' },
        { amount: eur(100), merchantId: 'm-4' },
        { amount: eur(100), merchantId: 'm-5', sessionLive: false },
        { amount: eur(100), recentCryptogramFailures: 2 },
      ];
      for (const [i, step] of script.entries()) {
        clock.now = start + i * 5_000;
        const paymentId = randomUUID();
        // Each side at its own merchants, so one side's payments are not the other's merchant history.
        const own = (side: string) => (step.merchantId ? { merchantId: `${step.merchantId}-${side}` } : {});
        const now = await client.score(payment({ ...withRules, ...step, ...own('a'), paymentId }));
        const old = await bclient.score(payment({ ...withoutRules, ...step, ...own('b'), paymentId: `${paymentId}-b` }));
        expect({ ...now, rulesetVersion: '' }).toEqual({ ...old, rulesetVersion: '' });
        const { features } = await client.explain({ paymentId });
        expect(Object.entries(features).filter(([name, value]) => name.startsWith('band_') && value !== 0)).toEqual([]);
      }
    });
  });

  describe('dispute outcomes from settlement become labels', () => {
    let bus: EventBus;
    beforeAll(async () => {
      bus = await EventBus.connect({ url: TEST_NATS_URL, prefix, source: 'test', log: testLogger('test'), limits: TEST_STREAM_LIMITS });
    });
    afterAll(async () => {
      await bus?.close();
    });

    const disputeResolved = (paymentId: string, outcome: string) =>
      newEvent('payment.dispute.resolved', 'settlement', {
        $case: 'dispute',
        value: { disputeId: randomUUID(), holdId: randomUUID(), paymentId, accountId: 'acct-x', merchantId: 'merchant-1', amount: { amountMinor: 1_250n, currency: 'EUR' }, outcome, reason: 'item never arrived', transferId: randomUUID(), merchantName: '', deviceId: '' },
      }, randomUUID());

    async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, what: string): Promise<T> {
      const deadline = Date.now() + 5_000;
      for (;;) {
        const value = await read();
        if (ok(value)) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last saw ${JSON.stringify(value)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    /** Resolves once the dispute consumer has acked everything up to stream sequence `seq`. */
    async function handledUpTo(seq: number): Promise<void> {
      const jsm = await jetstreamManager(bus.nc);
      await until(async () => (await jsm.consumers.info(bus.streamName('payment'), CONSUMERS.disputes)).ack_floor.stream_seq, (floor) => floor >= seq, `the dispute consumer to ack seq ${seq}`);
    }

    /** A copy of `event` under the same message id, past JetStream's duplicate window: what a redelivery looks like to the handler. */
    const redeliver = async (event: ReturnType<typeof disputeResolved>) => (await bus.js.publish(bus.subject(event.type), encodeEvent(event))).seq;

    const labelled = (paymentId: string) => until(async () => (await client.explain({ paymentId })).label, (l) => l !== Label.LABEL_UNSPECIFIED, `a label on ${paymentId}`);

    it('REFUND_BUYER labels the payment FRAUD and RELEASE_TO_MERCHANT labels it LEGIT, source "dispute"', async () => {
      clock.now = Date.now();
      const refunded = payment(ids());
      const released = payment(ids());
      await client.score(refunded);
      await client.score(released);
      await bus.publish(disputeResolved(refunded.paymentId, 'REFUND_BUYER'));
      await bus.publish(disputeResolved(released.paymentId, 'RELEASE_TO_MERCHANT'));
      expect(await labelled(refunded.paymentId)).toBe(Label.LABEL_FRAUD);
      expect(await labelled(released.paymentId)).toBe(Label.LABEL_LEGIT);
      const stored = await redis.hgetall(`${prefix}:risk-decision:{${refunded.paymentId}}`);
      expect(stored).toMatchObject({ label: 'FRAUD', label_source: 'dispute', labeled_at: String(clock.now) });
      // The decision itself is untouched: Explain still returns what was scored.
      expect((await client.explain({ paymentId: refunded.paymentId })).decision!.decision).toBe(Decision.DECISION_APPROVE);
    });

    it('a redelivered outcome changes nothing, so a later Feedback overrules the dispute and stays', async () => {
      clock.now = Date.now();
      const req = payment(ids());
      await client.score(req);
      const event = disputeResolved(req.paymentId, 'REFUND_BUYER');
      await bus.publish(event);
      expect(await labelled(req.paymentId)).toBe(Label.LABEL_FRAUD);
      const key = `${prefix}:risk-decision:{${req.paymentId}}`;
      const firstLabelledAt = await redis.hget(key, 'labeled_at');

      clock.now += 1_000;
      await handledUpTo(await redeliver(event));
      expect(await redis.hget(key, 'labeled_at')).toBe(firstLabelledAt);

      // An analyst's Feedback after the dispute is the latest word; the dispute's copy does not undo it.
      await client.feedback({ idempotencyKey: randomUUID(), paymentId: req.paymentId, label: Label.LABEL_LEGIT, source: 'analyst' });
      await handledUpTo(await redeliver(event));
      expect((await client.explain({ paymentId: req.paymentId })).label).toBe(Label.LABEL_LEGIT);
      expect(await redis.hget(key, 'label_source')).toBe('analyst');
    });

    it('an outcome for a payment with no stored decision is acked and stores nothing; the next one still lands', async () => {
      clock.now = Date.now();
      const unknown = `never-scored-${randomUUID()}`;
      const first = await bus.publish(disputeResolved(unknown, 'REFUND_BUYER'));
      const odd = await bus.publish(disputeResolved(randomUUID(), 'SPLIT_THE_DIFFERENCE'));
      await handledUpTo(Math.max(first.seq, odd.seq));
      expect(await redis.exists(`${prefix}:risk-decision:{${unknown}}`)).toBe(0);
      await expectStatus(client.explain({ paymentId: unknown }), status.NOT_FOUND, /never-scored/);

      const req = payment(ids());
      await client.score(req);
      await bus.publish(disputeResolved(req.paymentId, 'RELEASE_TO_MERCHANT'));
      expect(await labelled(req.paymentId)).toBe(Label.LABEL_LEGIT);
    });
  });

  describe('degraded mode', () => {
    let degraded: Awaited<ReturnType<typeof startRisk>>;
    let dclient: ReturnType<typeof testClient<RiskServiceClient>>;

    beforeAll(async () => {
      // Nothing listens on port 1: the service must still start and answer.
      degraded = await startRisk(readConfig(testEnv(prefix, { RISK_PORT: '0', RISK_RULES_WATCH: 'false', REDIS_URL: 'redis://127.0.0.1:1' })), testLogger('risk'));
      dclient = testClient(RiskServiceClient, degraded.port);
    });

    afterAll(async () => {
      dclient?.close();
      await degraded?.stop();
    });

    it('approves only small live payments, flagged REDIS_UNAVAILABLE', async () => {
      const small = await dclient.score(payment({ ...ids(), amount: { amountMinor: 5_000n, currency: 'EUR' } }));
      expect(small.decision).toBe(Decision.DECISION_APPROVE);
      expect(small.reasons[0]!.code).toBe('REDIS_UNAVAILABLE');
      const large = await dclient.score(payment({ ...ids(), amount: { amountMinor: 5_001n, currency: 'EUR' } }));
      expect(large.decision).toBe(Decision.DECISION_CHALLENGE);
      expect(large.reasons.map((r) => r.code)).toEqual(expect.arrayContaining(['REDIS_UNAVAILABLE', 'FALLBACK_AMOUNT_LIMIT']));
      const notLive = await dclient.score(payment({ ...ids(), sessionLive: false, amount: { amountMinor: 100n, currency: 'EUR' } }));
      expect(notLive.decision).toBe(Decision.DECISION_CHALLENGE);
      expect(notLive.reasons.map((r) => r.code)).toEqual(expect.arrayContaining(['REDIS_UNAVAILABLE', 'SESSION_NOT_LIVE']));
      // Request-only rules still apply.
      expect((await dclient.score(payment({ ...ids(), recentCryptogramFailures: 9 }))).decision).toBe(Decision.DECISION_DECLINE);
    });

    it('still publishes its decisions and explains them from memory; Feedback and unknown payments are UNAVAILABLE', async () => {
      const req = payment(ids());
      const res = await dclient.score(req);
      await events.waitFor(() => events.ofType('risk.scored').some((e) => e.event.payload?.$case === 'risk' && e.event.payload.value.paymentId === req.paymentId), 5_000, 'degraded risk.scored');
      const explained = await dclient.explain({ paymentId: req.paymentId });
      expect(explained.decision).toEqual(res);
      expect(explained.decision!.reasons[0]!.code).toBe('REDIS_UNAVAILABLE');
      expect(explained.features).toMatchObject({ degraded: 1, amount_minor: 1250, session_live: 1 });
      expect(explained.label).toBe(Label.LABEL_UNSPECIFIED);
      expect(degraded.unsaved.size).toBeGreaterThan(0);
      await expectStatus(dclient.explain({ paymentId: 'scored-elsewhere' }), status.UNAVAILABLE);
      // A label needs the decision in Redis: the caller retries once Redis is back.
      await expectStatus(dclient.feedback({ idempotencyKey: randomUUID(), paymentId: req.paymentId, label: Label.LABEL_FRAUD, source: '' }), status.UNAVAILABLE);
    });

    it('a malformed REDIS_URL is still a configuration error', () => {
      expect(() => readConfig(testEnv(prefix, { REDIS_URL: 'not a url' }))).toThrow(ConfigError);
      expect(() => readConfig(testEnv(prefix, { REDIS_URL: 'http://127.0.0.1:6379' }))).toThrow(/REDIS_URL/);
    });
  });

  describe('decisions made while Redis is down are written once it is back', () => {
    let proxy: TcpProxy;
    let flaky: Awaited<ReturnType<typeof startRisk>>;
    let fclient: ReturnType<typeof testClient<RiskServiceClient>>;
    /** Straight to Redis, as a fresh risk instance would read and write. */
    let store: DecisionStore;
    const flakyEnv = () => testEnv(prefix, { RISK_PORT: '0', RISK_RULES_WATCH: 'false', RISK_CONSUMERS: 'false', REDIS_URL: `redis://127.0.0.1:${proxy.port}` });

    beforeAll(async () => {
      proxy = await tcpProxy(TEST_REDIS_URL);
      // Long retries: what writes the backlog here is the client's 'ready' on reconnect.
      flaky = await startRisk(readConfig(flakyEnv()), testLogger('risk'), { unsaved: { retryMinMs: 30_000, retryMaxMs: 30_000 } });
      fclient = testClient(RiskServiceClient, flaky.port);
      store = new DecisionStore(redis, prefix, 30);
    });

    afterAll(async () => {
      fclient?.close();
      await flaky?.stop();
      await proxy?.close();
    });

    async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, what: string): Promise<T> {
      const deadline = Date.now() + 8_000;
      for (;;) {
        const value = await read().catch((err: Error) => err as unknown as T);
        if (ok(value)) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last saw ${value instanceof Error ? value.message : JSON.stringify(value)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    it('explains from memory during the outage, writes the decision when Redis is back, and keeps labels', async () => {
      clock.now = Date.now();
      const req = payment(ids());
      const other = payment(ids());
      await proxy.cut();
      const res = await fclient.score(req);
      expect(res.reasons[0]!.code).toBe('REDIS_UNAVAILABLE');
      const otherDegraded = await fclient.score(other);
      expect(otherDegraded.reasons[0]!.code).toBe('REDIS_UNAVAILABLE');
      expect(flaky.unsaved.size).toBe(2);

      // This replica answers from memory; another replica (the main service, same Redis) cannot see it.
      const explained = await fclient.explain({ paymentId: req.paymentId });
      expect(explained.decision).toEqual(res);
      expect(explained.features).toMatchObject({ degraded: 1 });
      await expectStatus(client.explain({ paymentId: req.paymentId }), status.NOT_FOUND);
      await expectStatus(fclient.feedback({ idempotencyKey: randomUUID(), paymentId: req.paymentId, label: Label.LABEL_FRAUD, source: 'support' }), status.UNAVAILABLE);

      // Meanwhile a retry of `other` reached a replica with Redis, which stored a full decision, and it was labelled.
      const full = await client.score(other);
      expect(full.reasons.map((r) => r.code)).not.toContain('REDIS_UNAVAILABLE');
      await client.feedback({ idempotencyKey: randomUUID(), paymentId: other.paymentId, label: Label.LABEL_FRAUD, source: 'analyst' });

      await proxy.restore();
      await until(async () => flaky.unsaved.size, (n) => n === 0, 'the backlog to be written');

      const stored = await store.get(req.paymentId);
      expect(toScoreResponse(stored.verdict)).toEqual(res);
      expect(stored.features.degraded).toBe(1);
      expect(stored.scoredAt.getTime()).toBe(explained.scoredAt!.getTime());
      expect(stored.label).toBeUndefined();
      expect(await redis.pttl(store.key(req.paymentId))).toBeGreaterThan(29 * DAY);
      // The older fallback did not replace the full decision, nor its label.
      const kept = await store.get(other.paymentId);
      expect(toScoreResponse(kept.verdict)).toEqual(full);
      expect(kept.features.degraded).toBe(0);
      expect(kept).toMatchObject({ label: 'FRAUD', labelSource: 'analyst' });

      // Explain from a fresh instance (the main service) finds it; Feedback now lands, and a
      // rescore of the payment (a retry after the outage) replaces the fallback but keeps the label.
      expect((await client.explain({ paymentId: req.paymentId })).decision).toEqual(res);
      await client.feedback({ idempotencyKey: randomUUID(), paymentId: req.paymentId, label: Label.LABEL_LEGIT, source: 'support' });
      const rescored = await fclient.score(req);
      expect(rescored.reasons.map((r) => r.code)).not.toContain('REDIS_UNAVAILABLE');
      const after = await fclient.explain({ paymentId: req.paymentId });
      expect(after.decision).toEqual(rescored);
      expect(after.features.degraded).toBe(0);
      expect(after.label).toBe(Label.LABEL_LEGIT);
    });

    it('a Feedback retried as Redis comes back lands on the decision, and the backlog write does not undo it', async () => {
      const req = payment(ids());
      await proxy.cut();
      expect((await fclient.score(req)).reasons[0]!.code).toBe('REDIS_UNAVAILABLE');
      const key = randomUUID();
      await expectStatus(fclient.feedback({ idempotencyKey: key, paymentId: req.paymentId, label: Label.LABEL_FRAUD, source: 'support' }), status.UNAVAILABLE);
      await proxy.restore();
      // The caller retries UNAVAILABLE with the same key; whichever comes first, this Feedback or the write on reconnect, the decision is written before the label.
      await until(() => fclient.feedback({ idempotencyKey: key, paymentId: req.paymentId, label: Label.LABEL_FRAUD, source: 'support' }), (r) => !(r instanceof Error), 'Feedback to be accepted');
      await until(async () => flaky.unsaved.size, (n) => n === 0, 'the backlog to be written');
      const stored = await store.get(req.paymentId);
      expect(stored).toMatchObject({ label: 'FRAUD', labelSource: 'support' });
      expect(stored.features.degraded).toBe(1);
      expect((await client.explain({ paymentId: req.paymentId })).label).toBe(Label.LABEL_FRAUD);
    });

    it('on stop, writes what waits if Redis is back within the grace period', async () => {
      const lines: Array<Record<string, unknown>> = [];
      const log = createLogger('risk', 'info', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
      const late = await startRisk(readConfig(flakyEnv()), log, { unsaved: { retryMinMs: 30_000, retryMaxMs: 30_000 } });
      const lclient = testClient(RiskServiceClient, late.port);
      const req = payment(ids());
      await proxy.cut();
      await lclient.score(req);
      await proxy.restore();
      lclient.close();
      await late.stop();
      expect((await store.get(req.paymentId)).features.degraded).toBe(1);
      expect(lines.filter((l) => 'notStored' in l)).toEqual([]);
    });

    it('on stop with Redis still down, logs how many decisions were not written', async () => {
      const lines: Array<Record<string, unknown>> = [];
      const log = createLogger('risk', 'info', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
      const late = await startRisk(readConfig(testEnv(prefix, { RISK_PORT: '0', RISK_RULES_WATCH: 'false', RISK_CONSUMERS: 'false', REDIS_URL: 'redis://127.0.0.1:1', SHUTDOWN_GRACE_MS: '300' })), log);
      const lclient = testClient(RiskServiceClient, late.port);
      await lclient.score(payment(ids()));
      await lclient.score(payment(ids()));
      lclient.close();
      const started = Date.now();
      await late.stop();
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(lines.find((l) => 'notStored' in l)).toMatchObject({ level: 'warn', notStored: 2, msg: expect.stringContaining('risk.scored events on JetStream') });
    });
  });

  describe('DecisionStore.saveIfAbsent (writing a decision that waited in memory)', () => {
    let store: DecisionStore;
    beforeAll(() => {
      store = new DecisionStore(redis, prefix, 30);
    });
    const verdict = (code: string) => ({ decision: 'APPROVE' as const, score: 10, reasons: [{ code, description: code, points: 10 }], rulesetVersion: 'r', modelVersion: 'm', probability: 0 });
    const features = (degraded: number) => ({ amount_minor: 100, degraded }) as unknown as Features;

    it('is idempotent, never replaces a full decision with a fallback, upgrades a fallback, and never touches a label', async () => {
      const id = randomUUID();
      const fallback = { verdict: verdict('REDIS_UNAVAILABLE'), features: features(1), scoredAt: new Date(1_000), degraded: true };
      expect(await store.saveIfAbsent(id, fallback)).toBe('stored');
      expect(await store.saveIfAbsent(id, fallback)).toBe('kept');
      await store.label(id, 'k1', 'FRAUD', 'support', 5_000);
      // A second fallback (another replica's backlog) changes nothing.
      expect(await store.saveIfAbsent(id, { ...fallback, verdict: verdict('OTHER'), scoredAt: new Date(2_000) })).toBe('kept');
      expect(await store.get(id)).toMatchObject({ verdict: { reasons: [{ code: 'REDIS_UNAVAILABLE' }] }, scoredAt: new Date(1_000), label: 'FRAUD', labelSource: 'support' });
      // A full decision (a save that failed on another replica) replaces the fallback; the label stays.
      const full = { verdict: verdict('FULL'), features: features(0), scoredAt: new Date(3_000), degraded: false };
      expect(await store.saveIfAbsent(id, full)).toBe('stored');
      expect(await store.saveIfAbsent(id, fallback)).toBe('kept');
      expect(await store.saveIfAbsent(id, { ...full, verdict: verdict('LATER') })).toBe('kept');
      expect(await store.get(id)).toMatchObject({ verdict: { reasons: [{ code: 'FULL' }] }, features: { degraded: 0 }, scoredAt: new Date(3_000), label: 'FRAUD', labelSource: 'support' });
      expect(await redis.hget(store.key(id), 'fb:k1')).toBe('FRAUD|support');
    });

    it('keeps a decision Score already saved (a save that timed out but landed)', async () => {
      const id = randomUUID();
      await store.save(id, { verdict: verdict('SAVED'), features: features(0), scoredAt: new Date(1_000) });
      expect(await redis.hget(store.key(id), 'degraded')).toBe('0');
      expect(await store.saveIfAbsent(id, { verdict: verdict('SAVED'), features: features(0), scoredAt: new Date(1_000), degraded: false })).toBe('kept');
      expect(await store.saveIfAbsent(id, { verdict: verdict('REDIS_UNAVAILABLE'), features: features(1), scoredAt: new Date(900), degraded: true })).toBe('kept');
      expect((await store.get(id)).verdict.reasons[0]!.code).toBe('SAVED');
    });
  });

  describe('rule and model reload', () => {
    let dir: string;
    let live: Awaited<ReturnType<typeof startRisk>>;
    let lclient: ReturnType<typeof testClient<RiskServiceClient>>;
    const shipped = readFileSync(join(__dirname, '..', 'rules', 'default.yaml'), 'utf8');

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'risk-rules-'));
      writeFileSync(join(dir, 'rules.yaml'), shipped);
      writeFileSync(join(dir, 'model.yaml'), readFileSync(join(__dirname, '..', 'rules', 'model.yaml'), 'utf8'));
      live = await startRisk(
        readConfig(testEnv(prefix, { RISK_PORT: '0', RISK_RULES_FILE: join(dir, 'rules.yaml'), RISK_MODEL_FILE: join(dir, 'model.yaml') })),
        testLogger('risk'),
        { clock: () => clock.now },
      );
      lclient = testClient(RiskServiceClient, live.port);
    });

    afterAll(async () => {
      lclient?.close();
      await live?.stop();
    });

    async function until(predicate: () => Promise<boolean>, what: string) {
      const deadline = Date.now() + 5_000;
      while (!(await predicate())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    it('takes a good edit without a restart and refuses a broken one, keeping the last good', async () => {
      clock.now = Date.now();
      const before = await lclient.score(payment({ ...ids(), amount: { amountMinor: 777n, currency: 'EUR' } }));
      expect(before.decision).toBe(Decision.DECISION_APPROVE);
      // A new rule: challenge exactly 7.77.
      const edited = shipped.replace(/^version: .*$/m, 'version: reload-test') + '  - id: LUCKY_SEVENS\n    description: test rule\n    when: { feature: amount_minor, op: eq, value: 777 }\n    effect: { force: CHALLENGE }\n';
      writeFileSync(join(dir, 'rules.yaml'), edited);
      await until(async () => (await lclient.score(payment(ids()))).rulesetVersion.startsWith('reload-test+'), 'the edited rules');
      const after = await lclient.score(payment({ ...ids(), amount: { amountMinor: 777n, currency: 'EUR' } }));
      expect(after.decision).toBe(Decision.DECISION_CHALLENGE);
      expect(after.reasons[0]!.code).toBe('LUCKY_SEVENS');

      writeFileSync(join(dir, 'rules.yaml'), edited.replace('op: eq, value: 777', 'op: equals, value: 777'));
      await until(async () => live.rules.lastError !== undefined, 'the broken file to be refused');
      expect(live.rules.lastError).toMatch(/rules\.yaml: rules\.\d+\.when/);
      const still = await lclient.score(payment({ ...ids(), amount: { amountMinor: 777n, currency: 'EUR' } }));
      expect(still.rulesetVersion).toBe(after.rulesetVersion);
      expect(still.decision).toBe(Decision.DECISION_CHALLENGE);
    });

    it('refuses to start on a broken rules file, naming the variable', async () => {
      const broken = join(dir, 'broken.yaml');
      writeFileSync(broken, 'version: x\nrules: [{ id: NOPE }]\n');
      await expect(startRisk(readConfig(testEnv(prefix, { RISK_PORT: '0', RISK_RULES_FILE: broken })), testLogger('risk'))).rejects.toThrow(/RISK_RULES_FILE.*broken\.yaml/);
    });
  });
});

import Redis from 'ioredis';
import { requireServers, TEST_REDIS_URL, uniqueName } from '../../../test/support/servers';
import { applyEvent } from '../src/consumers';
import { deriveFeatures, type ScoreInput } from '../src/domain/features';
import { input } from '../src/domain/fixtures';
import { FeatureStore } from '../src/feature-store';
import { SignalStore } from '../src/signals';
import { newEvent } from '../../../platform/events';

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const T0 = Date.UTC(2031, 0, 5, 9);
const HOME = { lat: 48.8566, lon: 2.3522 };

/** The feature store against real Redis: what baselines learn from, per-merchant and per-band windows. */
describe('feature store: baselines, merchants, bands', () => {
  let redis: Redis;
  let store: FeatureStore;
  let prefix: string;
  let n = 0;
  beforeAll(async () => {
    await requireServers('Redis');
    redis = new Redis(TEST_REDIS_URL);
  });
  beforeEach(() => {
    prefix = uniqueName();
    store = new FeatureStore(redis, prefix, { dedupeMs: 2 * DAY, maxEvents: 2_000, merchantMemoryMs: 180 * DAY, profileMs: 365 * DAY });
  });
  afterAll(() => redis?.disconnect());

  const pay = (over: Partial<ScoreInput>) => input({ paymentId: `p${n++}`, ...over });
  const score = async (x: ScoreInput, at: number) => deriveFeatures(x, (await store.record(x, at)).history);

  it('learns the amount baseline and usual area from approved payments only, and forgets a payment labelled fraud', async () => {
    for (let i = 0; i < 6; i++) {
      const x = pay({ amountMinor: 1_000 + i * 10, location: HOME });
      await store.record(x, T0 + i * HOUR);
      await store.settle(x, T0 + i * HOUR, 'APPROVE');
    }
    const before = await score(pay({ amountMinor: 1_000, location: HOME }), T0 + 7 * HOUR);
    expect(before.amount_history_n).toBe(6);
    expect(before.area_known).toBe(1);
    expect(before.area_distance_km).toBeLessThan(1);
    // A ramp that is challenged or declined teaches nothing.
    for (let i = 0; i < 5; i++) {
      const x = pay({ amountMinor: 20_000, location: { lat: 49.5, lon: 3.5 } });
      await store.record(x, T0 + (8 + i) * HOUR);
      await store.settle(x, T0 + (8 + i) * HOUR, i % 2 ? 'CHALLENGE' : 'DECLINE');
    }
    const after = await score(pay({ amountMinor: 1_000, location: HOME }), T0 + 14 * HOUR);
    expect(after.amount_history_n).toBe(6);
    expect(after.amount_mean).toBeCloseTo(before.amount_mean, 6);
    // An approved fraud payment is learned, then taken back out exactly by its FRAUD label.
    const fraud = pay({ amountMinor: 50_000, location: { lat: 45.76, lon: 4.83 } });
    await store.record(fraud, T0 + 15 * HOUR);
    await store.settle(fraud, T0 + 15 * HOUR, 'APPROVE');
    const learned = await score(pay({ amountMinor: 1_000, location: HOME }), T0 + 16 * HOUR);
    expect(learned.amount_history_n).toBe(7);
    expect(learned.area_distance_km).toBeGreaterThan(10);
    expect(await store.unlearn(fraud.paymentId, T0 + 17 * HOUR)).toBe(true);
    expect(await store.unlearn(fraud.paymentId, T0 + 17 * HOUR)).toBe(false);
    // Settling it again (a retried Score) does not bring it back.
    await store.settle(fraud, T0 + 15 * HOUR, 'APPROVE');
    const forgotten = await score(pay({ amountMinor: 1_000, location: HOME }), T0 + 18 * HOUR);
    expect(forgotten.amount_history_n).toBe(6);
    expect(forgotten.amount_mean).toBeCloseTo(before.amount_mean, 6);
    expect(forgotten.amount_std).toBeCloseTo(before.amount_std, 3);
    expect(forgotten.area_distance_km).toBeCloseTo(before.area_distance_km, 3);
  });

  it('counts accounts new to a merchant across accounts, and its stopped payments', async () => {
    let last;
    for (let i = 0; i < 6; i++) {
      const x = pay({ accountId: `acct-${i}`, deviceId: `band-${i}`, merchantId: 'shop' });
      last = await score(x, T0 + i * MIN);
      if (i < 2) await store.settle(x, T0 + i * MIN, 'DECLINE');
    }
    expect(last!.merchant_count_1h).toBe(6);
    expect(last!.merchant_accounts_1h).toBe(6);
    expect(last!.merchant_new_accounts_1h).toBe(6);
    expect(last!.merchant_stopped_24h).toBe(2);
    expect(last!.merchant_stopped_rate_24h).toBeCloseTo(2 / 16, 4);
    // A returning account is not new; an hour later the hour's windows are empty again.
    const back = await score(pay({ accountId: 'acct-0', deviceId: 'band-0', merchantId: 'shop' }), T0 + 2 * HOUR);
    expect(back.merchant_new_accounts_1h).toBe(0);
    expect(back.merchant_accounts_1h).toBe(1);
    expect(back.merchant_new_accounts_24h).toBe(6);
  });

  it("measures a merchant against its own baseline: a busy shop's usual hour is ordinary, a quiet shop's surge is not", async () => {
    // A busy shop: 40 payments an hour (20 by accounts new to it) for two days, pipelined per hour.
    let busy;
    for (let h = 0; h < 48; h++) {
      const hour = [];
      for (let k = 0; k < 40; k++) hour.push(score(pay({ accountId: k % 2 ? `reg-${k}` : `new-${h}-${k}`, deviceId: `b-${h}-${k}`, merchantId: 'busy', amountMinor: 2_000 }), T0 + h * HOUR + k * MIN));
      busy = (await Promise.all(hour)).pop();
    }
    // The next hour, an ordinary one for it.
    for (let k = 0; k < 39; k++) await score(pay({ accountId: k % 2 ? `reg-${k}` : `new-48-${k}`, deviceId: `b-48-${k}`, merchantId: 'busy', amountMinor: 2_000 }), T0 + 48 * HOUR + k * MIN);
    busy = await score(pay({ accountId: 'new-48-x', deviceId: 'b-48-x', merchantId: 'busy', amountMinor: 2_000 }), T0 + 48 * HOUR + 39 * MIN);
    expect(busy.merchant_new_accounts_1h).toBeGreaterThanOrEqual(20);
    expect(busy.merchant_new_accounts_1h_ratio).toBeGreaterThan(0.5);
    expect(busy.merchant_new_accounts_1h_ratio).toBeLessThan(1.5);
    expect(busy.merchant_new_accounts_24h_ratio).toBeLessThan(1.5);
    expect(busy.merchant_count_1h_ratio).toBeLessThan(1.5);
    expect(busy.merchant_amount_ratio).toBeCloseTo(1, 3);
    // 48 h 39 min, rounded to a tenth of an hour.
    expect(busy.merchant_age_h).toBeCloseTo(48.7, 5);
    // A quiet shop (one regular twice a day for a week: decayed weight ≥ MERCHANT_TICKET_MIN), then
    // ten new accounts within the hour.
    for (let i = 0; i < 14; i++) await score(pay({ accountId: 'regular', merchantId: 'quiet', amountMinor: 1_000 }), T0 + i * 12 * HOUR);
    let surge;
    const surges = [];
    for (let k = 0; k < 10; k++) surges.push((surge = await score(pay({ accountId: `s-${k}`, deviceId: `sb-${k}`, merchantId: 'quiet', amountMinor: 5_000 }), T0 + 7 * DAY + k * 3 * MIN)));
    expect(surge!.merchant_new_accounts_1h).toBe(10);
    expect(surge!.merchant_new_accounts_1h_ratio).toBeGreaterThan(3);
    // Its typical ticket is the regular's 10.00 until the surge itself starts to weigh in.
    expect(surges[0]!.merchant_amount_ratio).toBeCloseTo(5, 3);
    expect(surges[0]!.merchant_new_accounts_1h_ratio).toBeLessThan(0.5);
    // A rescored payment gets its first snapshot and does not count into the baseline twice.
    const again = await score(pay({ paymentId: 'busy-again', accountId: 'z', merchantId: 'fresh', amountMinor: 700 }), T0);
    const twice = await score(pay({ paymentId: 'busy-again', accountId: 'z', merchantId: 'fresh', amountMinor: 700 }), T0);
    expect(twice).toEqual(again);
    const next = await score(pay({ accountId: 'y', merchantId: 'fresh' }), T0 + HOUR);
    expect(next.merchant_count_24h).toBe(2);
  }, 30_000);

  it('counts small payments at merchants new to the account, not at its usual ones', async () => {
    await score(pay({ merchantId: 'canteen', amountMinor: 300 }), T0);
    let f;
    // The same canteen every two hours: small, but not new.
    for (let i = 1; i <= 4; i++) f = await score(pay({ merchantId: 'canteen', amountMinor: 300 }), T0 + i * 2 * HOUR);
    expect(f!.account_small_new_24h).toBe(1);
    // Probes at a new shop each: counted, and a big payment at a new shop is not.
    for (let i = 0; i < 4; i++) f = await score(pay({ merchantId: `probe-${i}`, amountMinor: 120 }), T0 + 10 * HOUR + i * 3 * HOUR);
    expect(f!.account_small_new_24h).toBe(5);
    const big = await score(pay({ merchantId: 'tv-shop', amountMinor: 90_000 }), T0 + 23 * HOUR);
    expect(big.account_small_new_24h).toBe(5);
    const week = await score(pay({ merchantId: 'probe-late', amountMinor: 100 }), T0 + 3 * DAY);
    expect(week.account_small_new_24h).toBe(1);
    expect(week.account_small_new_7d).toBe(6);
  });

  it('counts small payments over a day and a week, and per token', async () => {
    let f;
    for (let i = 0; i < 9; i++) f = await score(pay({ amountMinor: 150, tokenId: 'tok-a' }), T0 + i * 2 * HOUR);
    expect(f!.device_small_24h).toBe(9);
    expect(f!.token_count_24h).toBe(9);
    const later = await score(pay({ amountMinor: 150, tokenId: 'tok-b' }), T0 + 3 * DAY);
    expect(later.device_small_24h).toBe(1);
    expect(later.device_small_7d).toBe(10);
    expect(later.token_count_24h).toBe(1);
  });

  it('sees a band paired recently while another band of the account keeps paying', async () => {
    const signals = new SignalStore(redis, prefix);
    const paired = T0 + DAY;
    // The new band is paired (device.paired), the owner's own band pays after that, then the new band pays two days later.
    const event = { ...newEvent('device.paired', 'device-registry', { $case: 'device' as const, value: { deviceId: 'band-new', accountId: 'a1', status: 'ACTIVE', previousStatus: '', reason: '' } }), occurredAt: new Date(paired) };
    expect(await applyEvent(event, signals)).toBe('pairing');
    await score(pay({ deviceId: 'band-own' }), T0);
    await score(pay({ deviceId: 'band-own' }), paired + 2 * HOUR);
    const thief = await score(pay({ deviceId: 'band-new', deviceAgeSeconds: 2 * 86_400 }), paired + 2 * DAY);
    expect(thief.account_other_band_after_pairing).toBe(1);
    expect(thief.account_bands_paired_7d).toBe(1);
    expect(thief.account_bands_7d).toBe(2);
    // A replacement: the old band is silent after the new one is paired.
    const replacement = await score(pay({ accountId: 'a2', deviceId: 'band-old' }), T0);
    expect(replacement.account_other_band_after_pairing).toBe(0);
    const fresh = await score(pay({ accountId: 'a2', deviceId: 'band-repl', deviceAgeSeconds: DAY / 1000 }), T0 + 2 * DAY);
    expect(fresh.account_other_band_after_pairing).toBe(0);
    expect(fresh.account_bands_paired_7d).toBe(1);
  });

  it('windows a late payment at the time it happened', async () => {
    await score(pay({}), T0);
    // Arrives two hours later but happened 30 s after the first: the same minute.
    const late = await score(pay({}), T0 + 30_000);
    expect(late.device_count_1m).toBe(2);
    const onTime = await score(pay({}), T0 + 2 * HOUR);
    expect(onTime.device_count_1m).toBe(1);
    expect(onTime.device_count_24h).toBe(3);
  });
  it("dates an account from its first payment or its oldest band's pairing, whichever is earlier", async () => {
    // An old band: the account is as old as the band, from the first payment risk sees.
    const old = await score(pay({ accountId: 'old', deviceId: 'old-band', deviceAgeSeconds: 30 * DAY / 1000 }), T0);
    expect(old.account_age_h).toBe(720);
    // A wallet opened an hour ago with a band paired then; a day later it is a day older.
    const young = await score(pay({ accountId: 'new', deviceId: 'new-band', deviceAgeSeconds: 3600 }), T0);
    expect(young.account_age_h).toBe(1);
    const later = await score(pay({ accountId: 'new', deviceId: 'new-band', deviceAgeSeconds: 3600 + DAY / 1000 }), T0 + DAY);
    expect(later.account_age_h).toBe(25);
    // A band paired today on the old account does not make the account young.
    const paired = await score(pay({ accountId: 'old', deviceId: 'other-band', deviceAgeSeconds: 60 }), T0 + HOUR);
    expect(paired.account_age_h).toBe(721);
  });

  it("knows where a merchant's payments usually are and how far this one is from it", async () => {
    for (let i = 0; i < 6; i++) await score(pay({ accountId: `c${i}`, deviceId: `b${i}`, merchantId: 'cafe', location: { lat: HOME.lat + (i % 2 ? 0.01 : -0.01), lon: HOME.lon } }), T0 + i * MIN);
    const here = await score(pay({ accountId: 'c9', deviceId: 'b9', merchantId: 'cafe', location: HOME }), T0 + 10 * MIN);
    expect(here.merchant_place_known).toBe(1);
    expect(here.merchant_distance_km).toBeLessThan(1);
    expect(here.merchant_radius_km).toBeCloseTo(1.1, 0);
    // A terminal reporting Lyon for the same shop: ~390 km away, far beyond its radius.
    const far = await score(pay({ accountId: 'c8', deviceId: 'b8', merchantId: 'cafe', location: { lat: 45.764, lon: 4.8357 } }), T0 + 11 * MIN);
    expect(far.merchant_distance_km).toBeGreaterThan(380);
    expect(far.merchant_distance_ratio).toBeGreaterThan(100);
    // A merchant with too few located payments has no place yet; no location, no distance.
    expect((await score(pay({ merchantId: 'new-shop', location: HOME }), T0)).merchant_place_known).toBe(0);
    expect((await score(pay({ accountId: 'c7', deviceId: 'b7', merchantId: 'cafe', location: undefined }), T0 + 12 * MIN)).merchant_distance_km).toBe(0);
  });

  it("counts one account's repeated payments at one merchant within 10 minutes and an hour", async () => {
    const at = (m: number, merchantId = 'shop') => score(pay({ merchantId, amountMinor: 1_000 }), T0 + m * MIN);
    expect((await at(0)).account_merchant_count_10m).toBe(1);
    expect((await at(2)).account_merchant_count_10m).toBe(2);
    expect((await at(3, 'elsewhere')).account_merchant_count_10m).toBe(1);
    const third = await at(4);
    expect(third.account_merchant_count_10m).toBe(3);
    expect(third.account_merchant_count_1h).toBe(3);
    const later = await at(30);
    expect(later.account_merchant_count_10m).toBe(1);
    expect(later.account_merchant_count_1h).toBe(4);
  });

  it('counts young-band accounts at a merchant and their share of its accounts of the week', async () => {
    for (let i = 0; i < 3; i++) await score(pay({ accountId: `reg${i}`, deviceId: `rb${i}`, merchantId: 'ring-shop', deviceAgeSeconds: 400 * DAY / 1000 }), T0 + i * HOUR);
    for (let i = 0; i < 3; i++) await score(pay({ accountId: `mule${i}`, deviceId: `mb${i}`, merchantId: 'ring-shop', deviceAgeSeconds: 3 * DAY / 1000 }), T0 + DAY + i * HOUR);
    const f = await score(pay({ accountId: 'mule0', deviceId: 'mb0', merchantId: 'ring-shop', deviceAgeSeconds: 3 * DAY / 1000 + 3600 }), T0 + DAY + 4 * HOUR);
    expect(f.merchant_young_accounts_24h).toBe(3);
    expect(f.merchant_young_accounts_7d).toBe(3);
    expect(f.merchant_young_share_7d).toBe(0.5);
    expect(f.account_age_h).toBe(76);
  });
});

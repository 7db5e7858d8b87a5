/**
 * The named features a risk decision is made from, and the pure arithmetic that turns a scoring
 * request plus the history the feature store kept (counts, sums, last place, running amount
 * statistics) into them. No Redis here: the store returns a {@link History}; this file derives.
 */

import { limitFeatures, type BandLimits } from './band-limits';

export const FEATURE_NAMES = [
  // From the request.
  'amount_minor',
  'session_live',
  'session_age_s',
  'device_age_s',
  'cryptogram_failures',
  'channel_qr',
  // Sliding windows per band and per account, counting this payment. Sums are in this payment's
  // currency only (minor units of different currencies never add up).
  'device_count_1m',
  'device_count_1h',
  'device_count_24h',
  'device_sum_1m',
  'device_sum_1h',
  'device_sum_24h',
  'account_count_1m',
  'account_count_1h',
  'account_count_24h',
  'account_sum_1m',
  'account_sum_1h',
  'account_sum_24h',
  // Merchants.
  'account_merchants_1h',
  'merchant_first',
  // This amount against the account's own earlier amounts in this currency (Welford, before this one).
  'amount_history_n',
  'amount_mean',
  'amount_std',
  'amount_zscore',
  'amount_ratio',
  // Geo-velocity from the account's previous located payment (looking back 24 h)...
  'geo_known',
  'geo_distance_km',
  'geo_elapsed_s',
  'geo_speed_kmh',
  // ...and the fastest travel implied against any located payment of the last 24 h at least
  // GEO_NOISE_KM away (catches the second and later payments in the far city, too).
  'geo_speed_max_24h',
  // From other services' events (device.*, token.*, payment.*), kept by the consumers.
  'device_blocked',
  'token_blocked',
  'device_refusals_1h',
  'account_declines_1h',
  // The band's own spending limits (payment.limits.changed from settlement) and its approved spend
  // today (UTC, payment.authorized); all 0 for a band without limits (see band-limits.ts).
  'band_frozen',
  'band_limit_per_payment',
  'band_limit_per_payment_share',
  'band_limit_per_day',
  'band_spend_today',
  'band_limit_per_day_share',
  // Longer horizons: small payments (card testing paced slower than an hour-window notices) and
  // distinct merchants over a day and a week.
  'device_small_24h',
  'device_small_7d',
  'account_small_24h',
  'account_small_7d',
  'account_merchants_24h',
  'account_merchants_7d',
  // Per token (the credential, whichever band carries it): payments in 1 h and 24 h; 0 without a token id.
  'token_count_1h',
  'token_count_24h',
  // Bands on the account: distinct bands paying within 7 days (this one included), bands paired in
  // the last 7 days (any band, not only this one), and whether another band of the account paid
  // after this band was paired (the owner still paying with their own band while a new one spends:
  // account takeover; a replacement after a loss has the old band silent).
  'account_bands_7d',
  'account_bands_paired_7d',
  'account_other_band_after_pairing',
  // The account's usual area: a decayed centre and radius of its approved payments, and how far
  // this payment is from it (0 when unknown: no approved located payment yet or no location).
  'area_known',
  'area_distance_km',
  'area_radius_km',
  'area_distance_ratio',
  // The merchant across accounts (its own hash tag): payments and distinct accounts in an hour,
  // accounts paying it for the first time in 1 h and 24 h, and how many of its payments of 24 h
  // were not approved; 0 without a merchant id.
  'merchant_count_1h',
  'merchant_accounts_1h',
  'merchant_new_accounts_1h',
  'merchant_new_accounts_24h',
  'merchant_count_24h',
  'merchant_stopped_24h',
  'merchant_stopped_rate_24h',
  // The merchant against its OWN baseline (decayed over MERCHANT_BASELINE_TAU_MS), so a busy shop
  // is not unusual for being busy: this hour's payments, this hour's and this day's payments by
  // accounts new to it ÷ (what its earlier hours/days averaged + MERCHANT_RATIO_PRIOR); the amount ÷ its typical ticket (geometric mean; 1 until it
  // has MERCHANT_TICKET_MIN payments); hours since it was first seen (capped at a year).
  'merchant_count_1h_ratio',
  'merchant_new_accounts_1h_ratio',
  'merchant_new_accounts_24h_ratio',
  'merchant_amount_ratio',
  'merchant_age_h',
  // Small payments (≤ SMALL_MINOR) at merchants new to this account, in 24 h and 7 d (this one
  // included): probes spread over days, each at another shop.
  'account_small_new_24h',
  'account_small_new_7d',
  // The amount against this account's 24 h spend baseline: (approved-only mean) × payments in 24 h.
  'account_sum_24h_ratio',
  // Issue 14, third round. The account's age in hours: since the earliest of its first payment
  // and any of its bands' pairing that risk has seen (capped at a year).
  'account_age_h',
  // The merchant's usual place: a decayed centre and radius of its located payments (any
  // account's), and how far this payment's reported location is from it (0 when unknown: fewer
  // than MERCHANT_PLACE_MIN_WEIGHT located payments, or no location). A cloned token at a terminal
  // that reports another place, or a terminal that moved, is far from where the shop usually is.
  'merchant_place_known',
  'merchant_distance_km',
  'merchant_radius_km',
  'merchant_distance_ratio',
  // This account's payments at this merchant in 10 min and 1 h (this one included), and their sum
  // against the account's usual amount (approved mean; 0 without one): a sale split in parts, a
  // charge repeated.
  'account_merchant_count_10m',
  'account_merchant_count_1h',
  'account_merchant_sum_10m_ratio',
  // Accounts paying this merchant with a young band (paired less than YOUNG_BAND_MS ago: a wallet
  // or band set up days ago), distinct, in 24 h and 7 d, and their share of the merchant's
  // distinct accounts in 7 d: a ring of new accounts cashing out at a few shops.
  'merchant_young_accounts_24h',
  'merchant_young_accounts_7d',
  'merchant_young_share_7d',
  // 1 when the feature store was unreachable and history features are neutral placeholders.
  'degraded',
] as const;

export type FeatureName = (typeof FEATURE_NAMES)[number];
export type Features = Record<FeatureName, number>;

export const isFeatureName = (name: string): name is FeatureName => (FEATURE_NAMES as readonly string[]).includes(name);

export const WINDOWS_MS = { '1m': 60_000, '1h': 3_600_000, '24h': 86_400_000, '7d': 7 * 86_400_000 } as const;

/** A payment at or under this many minor units counts as "small" (card-testing probes). */
export const SMALL_MINOR = 500;

/** Below this radius an account's usual area is treated as this wide (one neighbourhood). */
export const AREA_MIN_RADIUS_KM = 3;

export interface GeoPoint {
  lat: number;
  lon: number;
}

/** One payment to score, validated and in plain numbers. */
export interface ScoreInput {
  paymentId: string;
  accountId: string;
  deviceId: string;
  /** Empty when the caller did not say; token features are then neutral. */
  tokenId: string;
  /** Empty when the caller did not say; merchant features are then neutral. */
  merchantId: string;
  amountMinor: number;
  currency: string;
  location: GeoPoint | undefined;
  channelQr: boolean;
  sessionLive: boolean;
  sessionAgeSeconds: number;
  deviceAgeSeconds: number;
  cryptogramFailures: number;
  /** When the payment happened (occurred_at, ms); undefined: not said, windowed at arrival. */
  occurredAtMs?: number | undefined;
}

/** Counts and same-currency sums in each sliding window, including the payment being scored. */
export interface WindowStats {
  count1m: number;
  count1h: number;
  count24h: number;
  sum1m: number;
  sum1h: number;
  sum24h: number;
}

/** What the feature store knew when it recorded this payment (amount statistics and place are from before it). */
export interface History {
  /** The clock reading the store used for this payment, ms since the epoch. */
  at: number;
  device: WindowStats;
  account: WindowStats;
  merchants1h: number;
  merchantFirst: boolean;
  /** Earlier amounts of this account in this currency: count, mean and Welford's M2. */
  amountN: number;
  amountMean: number;
  amountM2: number;
  /** The account's located payments of the last 24 h (before this one), any order. */
  places: Array<GeoPoint & { at: number }>;
  /** Signals heard on NATS: the band is lost/suspended/deregistered, the token suspended/deleted. */
  deviceBlocked: boolean;
  tokenBlocked: boolean;
  /** token.payment.refused for this band, and payment.declined for this account, in the last hour. */
  refusals1h: number;
  declines1h: number;
  /** The band's limits in force (undefined: none heard, or a snapshot from before risk kept them). */
  limits?: BandLimits | undefined;
  /** The band's approved spend today (UTC), in this payment's currency, before this payment. */
  spendToday?: number | undefined;
  /** Longer horizons and the other keys (absent in snapshots from before they existed: 0). */
  extra?: HistoryExtra | undefined;
}

/** History beyond the first feature set: longer horizons, tokens, bands, usual area, merchant. */
export interface HistoryExtra {
  deviceSmall24h: number;
  deviceSmall7d: number;
  accountSmall24h: number;
  accountSmall7d: number;
  merchants24h: number;
  merchants7d: number;
  token1h: number;
  token24h: number;
  bands7d: number;
  bandsPaired7d: number;
  otherBandAfterPairing: boolean;
  /** Decayed centre (degrees), weight and mean squared distance (km²) of approved located payments. */
  area: { weight: number; lat: number; lon: number; r2: number } | undefined;
  merchant: { count1h: number; accounts1h: number; newAccounts1h: number; newAccounts24h: number; count24h: number; stopped24h: number; baseline?: MerchantBaseline | undefined; place?: { weight: number; lat: number; lon: number; r2: number } | undefined; young?: { young24h: number; young7d: number; accounts24h: number; accounts7d: number } | undefined } | undefined;
  accountSmallNew24h?: number;
  accountSmallNew7d?: number;
  /** When the account was first known, ms (undefined in older snapshots: age 0 is not claimed, see below). */
  accountBornAt?: number | undefined;
  atMerchant?: { count10m: number; count1h: number; sum10m: number; sum1h: number } | undefined;
}

/** A merchant's decayed history before this payment (time constant tauMs) and how long it has been seen. */
export interface MerchantBaseline {
  payments: number;
  newAccounts: number;
  sumLnAmount: number;
  ageMs: number;
  tauMs: number;
}

/** The merchant baseline's time constant: about a week of its hours weigh in. */
export const MERCHANT_BASELINE_TAU_MS = 7 * 86_400_000;
/** Added to a merchant's expected hourly count, so a quiet shop needs several payments to look unusual. */
export const MERCHANT_RATIO_PRIOR = 3;
/** Payments a merchant needs before its typical ticket means anything. */
export const MERCHANT_TICKET_MIN = 5;

/**
 * A window's count (this hour, this day) against what the merchant's earlier windows of that
 * length averaged. The baseline includes the window's earlier payments (weight ≈ 1, τ ≫ window),
 * so they are taken out and the average is over the time before the window: a decayed sum over
 * an age a estimates rate × τ × (1 − e^(−a/τ)).
 */
export function merchantWindowRatio(inWindow: number, decayedBefore: number, b: MerchantBaseline, windowMs: number, selfCounted: 0 | 1 = 1): number {
  const earlier = Math.max(0, decayedBefore - (inWindow - selfCounted));
  const span = b.ageMs > windowMs ? (b.tauMs / windowMs) * (1 - Math.exp(-(b.ageMs - windowMs) / b.tauMs)) : 0;
  const expected = span > 0 ? earlier / span : 0;
  return inWindow / (expected + MERCHANT_RATIO_PRIOR);
}

export const EMPTY_EXTRA: HistoryExtra = {
  deviceSmall24h: 0,
  deviceSmall7d: 0,
  accountSmall24h: 0,
  accountSmall7d: 0,
  merchants24h: 0,
  merchants7d: 0,
  token1h: 0,
  token24h: 0,
  bands7d: 0,
  bandsPaired7d: 0,
  otherBandAfterPairing: false,
  area: undefined,
  merchant: undefined,
};

/** Below this distance two payments are "the same place": terminal locations are not precise. */
export const GEO_NOISE_KM = 50;

const EARTH_RADIUS_KM = 6371.0088;
const rad = (deg: number) => (deg * Math.PI) / 180;

/** Great-circle distance in km (haversine). */
export function haversineKm(a: GeoPoint, b: GeoPoint): number {
  const dLat = rad(b.lat - a.lat);
  const dLon = rad(b.lon - a.lon);
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(rad(a.lat)) * Math.cos(rad(b.lat)) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** One step of Welford's online mean/variance; the Lua script in the store does the same. */
export function welfordStep(state: { n: number; mean: number; m2: number }, x: number): { n: number; mean: number; m2: number } {
  const n = state.n + 1;
  const delta = x - state.mean;
  const mean = state.mean + delta / n;
  return { n, mean, m2: state.m2 + delta * (x - mean) };
}

/** Sample standard deviation from Welford's state (0 below two samples). */
export const welfordStd = (n: number, m2: number): number => (n >= 2 ? Math.sqrt(Math.max(0, m2) / (n - 1)) : 0);

/**
 * How unusual `amount` is for this account. The spread is floored at a quarter of the mean (and
 * one minor unit) so an account that always pays the same coffee price does not see every
 * sandwich as a ten-sigma event.
 */
export function amountZScore(amount: number, n: number, mean: number, m2: number): number {
  if (n < 2) return 0;
  const spread = Math.max(welfordStd(n, m2), 0.25 * mean, 1);
  return (amount - mean) / spread;
}

/** Speed between two located payments; elapsed time is floored at one second. */
export function geoVelocity(from: GeoPoint & { at: number }, to: GeoPoint, at: number): { distanceKm: number; elapsedS: number; speedKmh: number } {
  const distanceKm = haversineKm(from, to);
  const elapsedS = Math.abs(at - from.at) / 1000;
  const speedKmh = distanceKm / (Math.max(elapsedS, 1) / 3600);
  return { distanceKm, elapsedS, speedKmh };
}

const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Request features alone: what is known about a payment before any history. */
function requestFeatures(input: ScoreInput): Pick<Features, 'amount_minor' | 'session_live' | 'session_age_s' | 'device_age_s' | 'cryptogram_failures' | 'channel_qr'> {
  return {
    amount_minor: input.amountMinor,
    session_live: input.sessionLive ? 1 : 0,
    session_age_s: input.sessionLive ? input.sessionAgeSeconds : 0,
    device_age_s: input.deviceAgeSeconds,
    cryptogram_failures: input.cryptogramFailures,
    channel_qr: input.channelQr ? 1 : 0,
  };
}

/** Every feature, from the request and the store's history for it. */
export function deriveFeatures(input: ScoreInput, history: History): Features {
  const { device, account } = history;
  const std = welfordStd(history.amountN, history.amountM2);
  const here = input.location;
  const last = history.places.reduce<History['places'][number] | undefined>((a, b) => (!a || b.at > a.at ? b : a), undefined);
  const geo = last && here ? geoVelocity(last, here, history.at) : undefined;
  let maxSpeed = 0;
  if (here) {
    for (const place of history.places) {
      const v = geoVelocity(place, here, history.at);
      if (v.distanceKm >= GEO_NOISE_KM) maxSpeed = Math.max(maxSpeed, v.speedKmh);
    }
  }
  return {
    ...requestFeatures(input),
    device_count_1m: device.count1m,
    device_count_1h: device.count1h,
    device_count_24h: device.count24h,
    device_sum_1m: device.sum1m,
    device_sum_1h: device.sum1h,
    device_sum_24h: device.sum24h,
    account_count_1m: account.count1m,
    account_count_1h: account.count1h,
    account_count_24h: account.count24h,
    account_sum_1m: account.sum1m,
    account_sum_1h: account.sum1h,
    account_sum_24h: account.sum24h,
    account_merchants_1h: history.merchants1h,
    merchant_first: history.merchantFirst ? 1 : 0,
    amount_history_n: history.amountN,
    amount_mean: round(history.amountMean),
    amount_std: round(std),
    amount_zscore: round(amountZScore(input.amountMinor, history.amountN, history.amountMean, history.amountM2)),
    amount_ratio: history.amountN > 0 && history.amountMean > 0 ? round(input.amountMinor / history.amountMean) : 1,
    geo_known: geo ? 1 : 0,
    geo_distance_km: geo ? round(geo.distanceKm) : 0,
    geo_elapsed_s: geo ? round(geo.elapsedS) : 0,
    geo_speed_kmh: geo ? round(geo.speedKmh, 1) : 0,
    geo_speed_max_24h: round(maxSpeed, 1),
    device_blocked: history.deviceBlocked ? 1 : 0,
    token_blocked: history.tokenBlocked ? 1 : 0,
    device_refusals_1h: history.refusals1h,
    account_declines_1h: history.declines1h,
    ...limitFeatures(input.amountMinor, input.currency, history.limits, history.spendToday ?? 0),
    ...extraFeatures(input, history),
    degraded: 0,
  };
}

/** Payments assumed to have gone through before a merchant's first, for its stopped rate. */
export const MERCHANT_RATE_PRIOR = 10;

/** A merchant's usual place needs this much decayed weight (located payments) to mean anything. */
export const MERCHANT_PLACE_MIN_WEIGHT = 2;
/** Below this radius a merchant's place is treated as this wide (terminal locations are not precise). */
export const MERCHANT_MIN_RADIUS_KM = 2;
/** A band younger than this counts as young at a merchant (merchant_young_accounts_*). */
export const YOUNG_BAND_MS = 14 * 86_400_000;
/** An account age is capped here (hours): a year. */
export const ACCOUNT_AGE_CAP_H = 8760;

/** An area needs this much decayed weight (about three approved located payments) to mean anything. */
export const AREA_MIN_WEIGHT = 2.5;

function extraFeatures(input: ScoreInput, history: History) {
  const x = history.extra ?? EMPTY_EXTRA;
  const here = input.location;
  const area = x.area && x.area.weight >= AREA_MIN_WEIGHT && here ? x.area : undefined;
  const distance = area && here ? haversineKm(area, here) : 0;
  const radius = area ? Math.sqrt(Math.max(0, area.r2)) : 0;
  const m = x.merchant;
  const baseline24h = history.amountN > 0 ? history.amountMean * Math.max(1, history.account.count24h - 1) : 0;
  return {
    device_small_24h: x.deviceSmall24h,
    device_small_7d: x.deviceSmall7d,
    account_small_24h: x.accountSmall24h,
    account_small_7d: x.accountSmall7d,
    account_merchants_24h: x.merchants24h,
    account_merchants_7d: x.merchants7d,
    token_count_1h: x.token1h,
    token_count_24h: x.token24h,
    account_bands_7d: x.bands7d,
    account_bands_paired_7d: x.bandsPaired7d,
    account_other_band_after_pairing: x.otherBandAfterPairing ? 1 : 0,
    area_known: area ? 1 : 0,
    area_distance_km: round(distance),
    area_radius_km: round(radius),
    area_distance_ratio: area ? round(distance / Math.max(radius, AREA_MIN_RADIUS_KM)) : 0,
    merchant_count_1h: m?.count1h ?? 0,
    merchant_accounts_1h: m?.accounts1h ?? 0,
    merchant_new_accounts_1h: m?.newAccounts1h ?? 0,
    merchant_new_accounts_24h: m?.newAccounts24h ?? 0,
    merchant_count_24h: m?.count24h ?? 0,
    merchant_stopped_24h: m?.stopped24h ?? 0,
    // Smoothed as if ten more payments had gone through, so one stopped payment at a small
    // merchant does not make it look like a fraud shop (and stop the next customer in turn).
    merchant_stopped_rate_24h: m ? round(m.stopped24h / (m.count24h + MERCHANT_RATE_PRIOR), 4) : 0,
    account_sum_24h_ratio: baseline24h > 0 ? round(history.account.sum24h / baseline24h) : 0,
    ...merchantRelative(input, m, history.merchantFirst),
    account_small_new_24h: x.accountSmallNew24h ?? 0,
    account_small_new_7d: x.accountSmallNew7d ?? 0,
    ...thirdRound(input, history, x),
  };
}

function thirdRound(input: ScoreInput, history: History, x: HistoryExtra) {
  const here = input.location;
  const place = x.merchant?.place && x.merchant.place.weight >= MERCHANT_PLACE_MIN_WEIGHT && here ? x.merchant.place : undefined;
  const distance = place && here ? haversineKm(place, here) : 0;
  const radius = place ? Math.sqrt(Math.max(0, place.r2)) : 0;
  const at = x.atMerchant;
  const young = x.merchant?.young;
  // A snapshot from before the age was kept says nothing about it: counted as a year, not as new.
  const ageH = x.accountBornAt !== undefined ? Math.max(0, history.at - x.accountBornAt) / WINDOWS_MS['1h'] : ACCOUNT_AGE_CAP_H;
  return {
    account_age_h: round(Math.min(ageH, ACCOUNT_AGE_CAP_H), 1),
    merchant_place_known: place ? 1 : 0,
    merchant_distance_km: round(distance),
    merchant_radius_km: round(radius),
    merchant_distance_ratio: place ? round(distance / Math.max(radius, MERCHANT_MIN_RADIUS_KM)) : 0,
    account_merchant_count_10m: at?.count10m ?? (input.merchantId ? 1 : 0),
    account_merchant_count_1h: at?.count1h ?? (input.merchantId ? 1 : 0),
    account_merchant_sum_10m_ratio: at && history.amountN > 0 && history.amountMean > 0 ? round(at.sum10m / history.amountMean) : 0,
    merchant_young_accounts_24h: young?.young24h ?? 0,
    merchant_young_accounts_7d: young?.young7d ?? 0,
    merchant_young_share_7d: young && young.accounts7d > 0 ? round(young.young7d / young.accounts7d, 4) : 0,
  };
}

function merchantRelative(input: ScoreInput, m: HistoryExtra['merchant'], accountNewHere: boolean) {
  const b = m?.baseline;
  if (!m || !b) return { merchant_count_1h_ratio: 0, merchant_new_accounts_1h_ratio: 0, merchant_new_accounts_24h_ratio: 0, merchant_amount_ratio: 1, merchant_age_h: 0 };
  const hour = WINDOWS_MS['1h'];
  const day = WINDOWS_MS['24h'];
  const self = accountNewHere ? 1 : 0;
  const typical = b.payments >= MERCHANT_TICKET_MIN ? Math.exp(b.sumLnAmount / b.payments) : 0;
  return {
    merchant_count_1h_ratio: round(merchantWindowRatio(m.count1h, b.payments, b, hour)),
    // The account's and the merchant's memories of who paid where last equally long, so "new to
    // the merchant" is the account's merchant_first.
    merchant_new_accounts_1h_ratio: round(merchantWindowRatio(m.newAccounts1h, b.newAccounts, b, hour, self)),
    merchant_new_accounts_24h_ratio: round(merchantWindowRatio(m.newAccounts24h, b.newAccounts, b, day, self)),
    merchant_amount_ratio: typical > 0 ? round(input.amountMinor / typical) : 1,
    merchant_age_h: round(Math.min(b.ageMs / WINDOWS_MS['1h'], 8760), 1),
  };
}

/**
 * Features when the store is unreachable: the request's own, with history at "this is the only
 * payment we know of" (no velocity, no spike, no travel) and `degraded` = 1, so rules on request
 * features still apply and the fallback policy decides the rest.
 */
export function degradedFeatures(input: ScoreInput): Features {
  const only: WindowStats = { count1m: 1, count1h: 1, count24h: 1, sum1m: input.amountMinor, sum1h: input.amountMinor, sum24h: input.amountMinor };
  const features = deriveFeatures(input, { at: 0, device: only, account: only, merchants1h: input.merchantId ? 1 : 0, merchantFirst: false, amountN: 0, amountMean: 0, amountM2: 0, places: [], deviceBlocked: false, tokenBlocked: false, refusals1h: 0, declines1h: 0 });
  return { ...features, degraded: 1 };
}

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
  // 1 when the feature store was unreachable and history features are neutral placeholders.
  'degraded',
] as const;

export type FeatureName = (typeof FEATURE_NAMES)[number];
export type Features = Record<FeatureName, number>;

export const isFeatureName = (name: string): name is FeatureName => (FEATURE_NAMES as readonly string[]).includes(name);

export const WINDOWS_MS = { '1m': 60_000, '1h': 3_600_000, '24h': 86_400_000 } as const;

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
}

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
    degraded: 0,
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

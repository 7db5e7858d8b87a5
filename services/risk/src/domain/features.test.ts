import { amountZScore, degradedFeatures, deriveFeatures, geoVelocity, haversineKm, welfordStd, welfordStep } from './features';
import { history, input } from './fixtures';

describe('feature arithmetic', () => {
  it('haversine: Paris to London is about 344 km, a point to itself is 0', () => {
    expect(haversineKm({ lat: 48.8566, lon: 2.3522 }, { lat: 51.5074, lon: -0.1278 })).toBeCloseTo(343.6, 0);
    expect(haversineKm({ lat: 10, lon: 10 }, { lat: 10, lon: 10 })).toBe(0);
    // Antipodes: half the circumference, no NaN from rounding above 1.
    expect(haversineKm({ lat: 0, lon: 0 }, { lat: 0, lon: 180 })).toBeCloseTo(Math.PI * 6371.0088, 3);
  });

  it('geo-velocity: km/h from the previous place and time, elapsed floored at a second', () => {
    const paris = { lat: 48.8566, lon: 2.3522, at: 0 };
    const v = geoVelocity(paris, { lat: 51.5074, lon: -0.1278 }, 30 * 60_000);
    expect(v.elapsedS).toBe(1800);
    expect(v.speedKmh).toBeCloseTo(343.6 * 2, 0);
    const london = { lat: 51.5074, lon: -0.1278 };
    expect(geoVelocity(paris, london, 0).speedKmh).toBeCloseTo(haversineKm(paris, london) * 3600, 6);
  });

  it('Welford matches the two-pass mean and sample variance', () => {
    const xs = [1200, 800, 1500, 950, 3000, 1100];
    let s = { n: 0, mean: 0, m2: 0 };
    for (const x of xs) s = welfordStep(s, x);
    const mean = xs.reduce((a, b) => a + b) / xs.length;
    const variance = xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1);
    expect(s.mean).toBeCloseTo(mean, 9);
    expect(welfordStd(s.n, s.m2)).toBeCloseTo(Math.sqrt(variance), 9);
    expect(welfordStd(1, 0)).toBe(0);
  });

  it('z-score needs two samples and floors the spread at a quarter of the mean', () => {
    expect(amountZScore(10_000, 1, 1_000, 0)).toBe(0);
    // Always the same 350: std 0, spread floored at 87.5.
    expect(amountZScore(1_000, 10, 350, 0)).toBeCloseTo(650 / 87.5, 6);
    expect(amountZScore(3_000, 3, 1_000, 2 * 500 ** 2)).toBeCloseTo(4, 6);
  });

  it('derives every feature from the request and the history', () => {
    const f = deriveFeatures(
      input({ location: { lat: 51.5074, lon: -0.1278 }, cryptogramFailures: 2, channelQr: true }),
      history({ merchantFirst: true, merchants1h: 3, amountN: 5, amountMean: 1_000, amountM2: 4 * 200 ** 2, places: [{ lat: 48.8566, lon: 2.3522, at: 1_700_000_000_000 - 3_600_000 }] }),
    );
    expect(f).toMatchObject({ amount_minor: 1_000, session_live: 1, cryptogram_failures: 2, channel_qr: 1, merchant_first: 1, account_merchants_1h: 3, amount_history_n: 5, amount_std: 200, amount_zscore: 0, amount_ratio: 1, geo_known: 1, geo_elapsed_s: 3600, degraded: 0 });
    expect(f.geo_speed_kmh).toBeCloseTo(343.6, 0);
  });

  it('fastest implied travel over 24 h: the second payment in the far city is still impossible', () => {
    const at = 1_700_000_000_000;
    const paris = { lat: 48.8566, lon: 2.3522 };
    const newYork = { lat: 40.7128, lon: -74.006 };
    const f = deriveFeatures(input({ location: { lat: 40.72, lon: -74.0 } }), history({ at, places: [{ ...paris, at: at - 2 * 3_600_000 }, { ...newYork, at: at - 600_000 }] }));
    // The last hop (New York to New York) is slow; against Paris two hours ago it is not.
    expect(f.geo_distance_km).toBeLessThan(2);
    expect(f.geo_speed_kmh).toBeLessThan(20);
    expect(f.geo_speed_max_24h).toBeCloseTo(haversineKm(paris, { lat: 40.72, lon: -74.0 }) / 2, 0);
    // Hops under the noise floor never count, however short the time.
    const jitter = deriveFeatures(input({ location: { lat: 48.9, lon: 2.4 } }), history({ at, places: [{ ...paris, at: at - 1_000 }] }));
    expect(jitter.geo_speed_kmh).toBeGreaterThan(900);
    expect(jitter.geo_speed_max_24h).toBe(0);
  });

  it('session age counts only while live; no location means no geo features', () => {
    const f = deriveFeatures(input({ sessionLive: false, sessionAgeSeconds: 99 }), history({ places: [{ lat: 1, lon: 1, at: 0 }] }));
    expect(f).toMatchObject({ session_live: 0, session_age_s: 0, geo_known: 0, geo_speed_kmh: 0 });
  });

  it('degraded features are the request alone, flagged', () => {
    const f = degradedFeatures(input({ amountMinor: 4_200 }));
    expect(f).toMatchObject({ degraded: 1, device_count_1m: 1, account_sum_24h: 4_200, merchant_first: 0, amount_zscore: 0, geo_known: 0 });
  });
});

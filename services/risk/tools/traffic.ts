/**
 * A labelled synthetic payment stream for backtesting the risk rules: ordinary spending by a
 * population of accounts (home city, favourite merchants, their own amount scale, occasional
 * trips by plane, new bands, big purchases, double taps, bad taps) with fraud episodes mixed in:
 *
 *   stolen_band        a band used after wrist-off: no live session, new merchants, a few payments
 *   card_testing       a relayed/cloned token tried in a burst of small payments within minutes
 *   impossible_travel  the token used in a far city minutes after the owner paid at home
 *   account_takeover   a band newly paired to the account by someone else, big amounts, new merchants
 *   many_merchants     one band emptied shop by shop: many merchants within half an hour
 *
 * and many more families of fraud and of legitimate look-alikes (FRAUD_FAMILIES, LEGIT_FAMILIES
 * below, each described where it is generated), split into TUNE and HELD-OUT for tools/evaluate.ts.
 *
 * Deterministic for a seed. Usage (after `npm run build`):
 *   node dist/services/risk/tools/traffic.js --payments 100000 --seed 7 --out .data/risk/traffic.jsonl
 */
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { haversineKm } from '../src/domain/features';

/**
 * Families of fraud and of legitimate look-alikes. The evaluation (tools/evaluate.ts) tunes and
 * trains on TUNE families and reports on HELD_OUT ones, which nothing was fitted or tuned against.
 */
/*
 * Rounds: the first HELD-OUT set (stolen_band_drift, compromised_terminal, ato_usual_merchants,
 * card_testing_trickle; replacement_band, big_shopping_day, shared_two_bands) and the second
 * (thief_owner_hours, sim_swap_takeover, split_sale, mule_ring, location_spoof; festival_popup,
 * child_band, night_shift) had their per-family misses read and written up (README: risk), so they
 * are TUNE now. The HELD-OUT families below (third round) were written before any engine change
 * that followed (their commit comes first on the branch) and are reported once, after the engine
 * is fixed.
 */
export const FRAUD_FAMILIES = {
  tune: [
    'stolen_band', 'card_testing', 'impossible_travel', 'account_takeover', 'many_merchants', 'stolen_band_ramp', 'merchant_collusion', 'ato_delayed_pairing', 'slow_card_testing',
    'stolen_band_drift', 'compromised_terminal', 'ato_usual_merchants', 'card_testing_trickle',
    'thief_owner_hours', 'sim_swap_takeover', 'split_sale', 'mule_ring', 'location_spoof',
  ],
  heldOut: ['relay_same_city', 'bust_out', 'new_account_cashout', 'duplicate_charge', 'scam_merchant'],
} as const;
export const LEGIT_FAMILIES = {
  tune: ['normal', 'bar_crawl', 'traveller_arrival', 'commuter_operator_switch', 'replacement_band', 'big_shopping_day', 'shared_two_bands', 'festival_popup', 'child_band', 'night_shift', 'new_account'],
  heldOut: ['group_round_payer', 'market_day', 'road_trip', 'moving_house'],
} as const;
export type FraudPattern = (typeof FRAUD_FAMILIES)['tune' | 'heldOut'][number];
export type LegitPattern = (typeof LEGIT_FAMILIES)['tune' | 'heldOut'][number];
export type Pattern = FraudPattern | LegitPattern;
/** The original five, kept for the tests and tools that use them. */
export const FRAUD_PATTERNS: FraudPattern[] = ['stolen_band', 'card_testing', 'impossible_travel', 'account_takeover', 'many_merchants'];
export const ALL_FRAUD: FraudPattern[] = [...FRAUD_FAMILIES.tune, ...FRAUD_FAMILIES.heldOut];
export const ALL_LEGIT: LegitPattern[] = [...LEGIT_FAMILIES.tune, ...LEGIT_FAMILIES.heldOut];

/** One line of the traffic file: a ScoreRequest in plain JSON plus its label. */
export interface TrafficRecord {
  payment_id: string;
  account_id: string;
  device_id: string;
  merchant_id: string;
  amount_minor: number;
  currency: string;
  lat: number | null;
  lon: number | null;
  channel: 'TAP' | 'QR';
  session_live: boolean;
  session_age_seconds: number;
  device_age_seconds: number;
  recent_cryptogram_failures: number;
  occurred_at_ms: number;
  /** When it reached risk, if later (an offline QR payment uploaded afterwards). */
  arrived_at_ms?: number;
  token_id?: string;
  label: 'FRAUD' | 'LEGIT';
  pattern: Pattern;
  /** Fraud only: the episode (one attack) this payment belongs to. */
  episode?: string;
}

export interface TrafficOptions {
  /** Roughly how many payments to produce (the population is sized to it). */
  payments: number;
  seed: number;
  /** Share of fraud episodes per account over the period. */
  fraudAccountShare?: number;
  days?: number;
  start?: number;
  /** Fraud families to draw episodes from (default: the original five). */
  fraud?: readonly FraudPattern[];
  /** Legitimate look-alike families to mix in (default: none beyond normal spending). */
  legit?: readonly LegitPattern[];
}

const CITIES: Array<[string, number, number]> = [
  ['paris', 48.8566, 2.3522],
  ['london', 51.5074, -0.1278],
  ['berlin', 52.52, 13.405],
  ['madrid', 40.4168, -3.7038],
  ['rome', 41.9028, 12.4964],
  ['warsaw', 52.2297, 21.0122],
  ['stockholm', 59.3293, 18.0686],
  ['new-york', 40.7128, -74.006],
  ['chicago', 41.8781, -87.6298],
  ['sao-paulo', -23.5505, -46.6333],
  ['shanghai', 31.2304, 121.4737],
  ['beijing', 39.9042, 116.4074],
  ['shenzhen', 22.5431, 114.0579],
  ['tokyo', 35.6762, 139.6503],
  ['singapore', 1.3521, 103.8198],
  ['sydney', -33.8688, 151.2093],
  ['dubai', 25.2048, 55.2708],
  ['lagos', 6.5244, 3.3792],
];

/** mulberry32: small, fast, good enough for simulation. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  return {
    next,
    chance: (p: number) => next() < p,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
    lognormal: (median: number, sigma: number) => median * Math.exp(sigma * normal()),
    exp: (mean: number) => -Math.log(1 - next()) * mean,
    normal,
  };
}

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

interface Account {
  id: string;
  device: { id: string; registeredAt: number };
  /** Every band the account had, oldest first: a payment uses the one it had at the time. */
  bands: Array<{ id: string; registeredAt: number }>;
  home: number;
  scale: number;
  perDay: number;
  favourites: string[];
  /** When the account is away from home (a trip, with the flights and a margin), if it travels. */
  away?: [number, number];
}

export function generateTraffic(options: TrafficOptions): TrafficRecord[] {
  const r = rng(options.seed);
  // Draws for the accounts opened during the period (new_account), apart so the rest of a seed's
  // traffic stays what it was without them.
  const rNew = rng(options.seed ^ 0x5eed);
  const days = options.days ?? 14;
  const start = options.start ?? Date.UTC(2030, 0, 1);
  const end = start + days * DAY;
  const fraudShare = options.fraudAccountShare ?? 0.06;
  const accounts = Math.max(10, Math.round(options.payments / (days * 3.15)));
  const out: TrafficRecord[] = [];
  const byHome: Account[][] = CITIES.map(() => []);
  // Legitimate payments that never happened after all: the owner lost the band or the wallet.
  const dropped = new Set<TrafficRecord>();
  let seq = 0;
  const pid = () => `pay-${options.seed}-${(seq++).toString(36)}`;
  const merchant = (city: number, n: number) => `m-${CITIES[city]![0]}-${n}`;
  const place = (city: number) => ({ lat: CITIES[city]![1] + r.normal() * 0.03, lon: CITIES[city]![2] + r.normal() * 0.03 });
  const flightMs = (a: number, b: number) => {
    // Great-circle distance (as risk measures it) at 800 km/h, plus two hours at the airports.
    const km = haversineKm({ lat: CITIES[a]![1], lon: CITIES[a]![2] }, { lat: CITIES[b]![1], lon: CITIES[b]![2] });
    return (km / 800) * HOUR + 2 * HOUR;
  };
  // Daytime only, roughly in local time.
  const daytime = (t: number, city: number) => {
    const local = t + (CITIES[city]![2] / 15) * HOUR;
    const hour = Math.floor((((local % DAY) + DAY) % DAY) / HOUR);
    return hour < 8 ? t + (8 - hour) * HOUR + r.int(0, 50) * MIN : t;
  };

  function pay(a: Account, at: number, over: Partial<TrafficRecord> & { city: number }): TrafficRecord {
    const band = a.bands.filter((b) => b.registeredAt <= at).pop() ?? a.device;
    const located = r.chance(0.9);
    const loc = place(over.city);
    const record: TrafficRecord = {
      payment_id: pid(),
      account_id: a.id,
      device_id: band.id,
      merchant_id: r.chance(0.85) ? r.pick(a.favourites) : merchant(over.city, r.int(0, 399)),
      amount_minor: Math.max(50, Math.round(r.lognormal(a.scale, 0.5))),
      currency: 'EUR',
      lat: located ? loc.lat : null,
      lon: located ? loc.lon : null,
      channel: located ? 'TAP' : 'QR',
      session_live: !r.chance(0.015),
      session_age_seconds: r.int(30, 6 * 3600),
      device_age_seconds: Math.max(0, Math.floor((at - band.registeredAt) / 1000)),
      recent_cryptogram_failures: r.chance(0.005) ? 1 : 0,
      occurred_at_ms: at,
      label: 'LEGIT',
      pattern: 'normal',
    };
    const { city: _city, ...rest } = over;
    Object.assign(record, rest);
    if (!record.session_live) record.session_age_seconds = 0;
    return record;
  }

  for (let i = 0; i < accounts; i++) {
    const home = r.int(0, CITIES.length - 1);
    const a: Account = {
      id: `acct-${options.seed}-${i}`,
      device: { id: `band-${options.seed}-${i}-0`, registeredAt: start - r.int(10, 700) * DAY },
      home,
      scale: r.lognormal(1_500, 0.6),
      perDay: 1.5 + r.next() * 4.5,
      favourites: Array.from({ length: r.int(4, 12) }, () => merchant(home, r.int(0, 399))),
      bands: [],
    };
    a.bands.push(a.device);
    const legit: TrafficRecord[] = [];
    // A trip: fly out, spend there at local merchants, fly back.
    const trip = r.chance(0.15) ? { to: (home + r.int(1, CITIES.length - 1)) % CITIES.length, leave: start + r.int(1, days - 5) * DAY + r.int(6, 12) * HOUR, stay: r.int(2, 4) * DAY } : undefined;
    // A new band bought during the period.
    const newBandAt = r.chance(0.05) ? start + r.int(1, days - 2) * DAY + r.int(9, 18) * HOUR : undefined;
    // An account opened during the period (new_account): its first band paired minutes after
    // opening, ordinary spending from then on (the first days at shops that are all new to it), and
    // sometimes a bigger setting-up purchase or two in the first days.
    const fresh = (options.legit ?? []).includes('new_account') && rNew.chance(0.05) ? start + rNew.int(0, days - 3) * DAY + rNew.int(7, 20) * HOUR : undefined;
    if (fresh) a.device.registeredAt = fresh + rNew.int(2, 60) * MIN;
    // Known from the start so every payment, whenever generated, uses the band of its time.
    if (newBandAt && !(fresh && newBandAt < fresh)) a.bands.push({ id: `band-${options.seed}-${i}-1`, registeredAt: newBandAt });
    if (trip) a.away = [trip.leave - 6 * HOUR, trip.leave + trip.stay + flightMs(trip.to, a.home) + 6 * HOUR];

    let t = start + r.exp(DAY / a.perDay);
    while (t < end) {
      if (newBandAt && t >= newBandAt && a.device.registeredAt < newBandAt) a.device = a.bands[a.bands.length - 1]!;
      let city = a.home;
      if (trip) {
        const arrive = trip.leave + flightMs(a.home, trip.to);
        const back = trip.leave + trip.stay;
        if (t >= trip.leave && t < arrive) t = arrive + r.int(10, 90) * MIN;
        if (t >= arrive && t < back) city = trip.to;
        else if (t >= back && t < back + flightMs(trip.to, a.home)) t = back + flightMs(trip.to, a.home) + r.int(10, 90) * MIN;
      }
      t = daytime(t, city);
      if (t >= end) break;
      const over: Partial<TrafficRecord> & { city: number } = { city };
      if (city !== a.home) over.merchant_id = merchant(city, r.int(0, 399));
      if (r.chance(0.02)) {
        // A big purchase somewhere new.
        over.amount_minor = Math.round(a.scale * (4 + r.next() * 8));
        over.merchant_id = merchant(city, r.int(400, 499));
      }
      const p = pay(a, Math.round(t), over);
      legit.push(p);
      if (r.chance(0.03)) legit.push(pay(a, p.occurred_at_ms + r.int(10, 50) * 1000, { city, merchant_id: p.merchant_id, lat: p.lat, lon: p.lon, channel: p.channel }));
      t += r.exp(DAY / a.perDay);
    }
    if (fresh) {
      const opened = a.device.registeredAt;
      legit.splice(0, legit.length, ...legit.filter((p) => p.occurred_at_ms >= opened + 10 * MIN));
      for (const p of legit) p.pattern = 'new_account';
      let at = opened + rNew.int(20, 48 * 60) * MIN;
      for (let k = rNew.chance(0.4) ? rNew.int(1, 2) : 0; k > 0 && at < end; k--, at += rNew.int(60, 24 * 60) * MIN) {
        legit.push({ ...pay(a, Math.round(daytime(at, a.home)), { city: a.home, merchant_id: merchant(a.home, rNew.int(400, 699)), session_live: true, amount_minor: Math.round(a.scale * (3 + rNew.next() * 7)) }), pattern: 'new_account' });
      }
    }
    const looks = new Set<LegitPattern>(options.legit ?? []);
    if (looks.size) legit.push(...lookAlikes(a, i, legit, looks, trip, newBandAt));
    out.push(...legit);
    byHome[a.home]!.push(a);

    if (!r.chance(fraudShare) || legit.length < 3) continue;
    const families = (options.fraud ?? FRAUD_PATTERNS).filter((f) => !CROSS_ACCOUNT.includes(f));
    if (!families.length) continue;
    const pattern = r.pick(families);
    const anchor = legit[r.int(1, legit.length - 1)]!;
    const episode = `ep-${options.seed}-${i}`;
    const fraud = (at: number, over: Partial<TrafficRecord> & { city: number }): TrafficRecord => ({
      ...pay(a, Math.round(at), over),
      label: 'FRAUD',
      pattern,
      episode,
      recent_cryptogram_failures: over.recent_cryptogram_failures ?? 0,
    });
    const deviceAge = (at: number) => Math.max(0, Math.floor((at - (a.bands.filter((b) => b.registeredAt <= at).pop() ?? a.device).registeredAt) / 1000));
    switch (pattern) {
      case 'stolen_band': {
        let at = anchor.occurred_at_ms + r.int(20, 180) * MIN;
        for (let k = r.int(2, 6); k > 0; k--, at += r.int(2, 12) * MIN) {
          out.push(fraud(at, { city: a.home, merchant_id: merchant(a.home, r.int(0, 399)), session_live: false, amount_minor: Math.round(a.scale * (1 + r.next() * 3)), device_age_seconds: deviceAge(at) }));
        }
        break;
      }
      case 'card_testing': {
        let at = anchor.occurred_at_ms + r.int(5, 600) * MIN;
        const shops = Array.from({ length: r.int(1, 3) }, () => merchant(a.home, r.int(500, 520)));
        const live = r.chance(0.5);
        for (let k = r.int(8, 25); k > 0; k--, at += r.int(3, 15) * 1000) {
          out.push(fraud(at, { city: a.home, merchant_id: r.pick(shops), amount_minor: r.int(50, 300), session_live: live, channel: r.chance(0.5) ? 'QR' : 'TAP', recent_cryptogram_failures: r.int(0, 2), device_age_seconds: deviceAge(at) }));
        }
        break;
      }
      case 'impossible_travel': {
        const far = (a.home + r.int(1, CITIES.length - 1)) % CITIES.length;
        let at = anchor.occurred_at_ms + r.int(5, 90) * MIN;
        for (let k = r.int(1, 4); k > 0; k--, at += r.int(5, 40) * MIN) {
          const loc = place(far);
          out.push(fraud(at, { city: far, merchant_id: merchant(far, r.int(0, 399)), lat: loc.lat, lon: loc.lon, channel: 'TAP', amount_minor: Math.round(a.scale * (2 + r.next() * 3)), device_age_seconds: deviceAge(at) }));
        }
        break;
      }
      case 'account_takeover': {
        const device = `band-${options.seed}-${i}-x`;
        const paired = anchor.occurred_at_ms + r.int(10, 600) * MIN;
        let at = paired + r.int(2, 90) * MIN;
        for (let k = r.int(2, 6); k > 0; k--, at += r.int(5, 60) * MIN) {
          out.push(fraud(at, { city: a.home, device_id: device, merchant_id: merchant(a.home, r.int(400, 499)), amount_minor: Math.round(a.scale * (5 + r.next() * 25)), device_age_seconds: Math.floor((at - paired) / 1000) }));
        }
        break;
      }
      case 'many_merchants': {
        let at = anchor.occurred_at_ms + r.int(10, 600) * MIN;
        for (let k = r.int(6, 12); k > 0; k--, at += r.int(1, 5) * MIN) {
          out.push(fraud(at, { city: a.home, merchant_id: merchant(a.home, r.int(0, 399)), amount_minor: Math.round(a.scale * (1 + r.next() * 2)), device_age_seconds: deviceAge(at) }));
        }
        break;
      }
      case 'stolen_band_ramp': {
        // Worn by the thief (live session), driving away at a plausible speed, amounts ramping.
        const bearing = r.next() * 2 * Math.PI;
        const speedKmh = 30 + r.next() * 50;
        const t0 = anchor.occurred_at_ms + r.int(20, 180) * MIN;
        let at = t0;
        const n = r.int(5, 10);
        for (let k = 0; k < n; k++, at += r.int(15, 60) * MIN) {
          const loc = offset(CITIES[a.home]!, bearing, (speedKmh * (at - t0)) / HOUR);
          out.push(fraud(at, { city: a.home, merchant_id: `m-road-${options.seed}-${i}-${k}`, lat: loc.lat, lon: loc.lon, channel: 'TAP', session_live: true, amount_minor: Math.round(a.scale * (1 + k * (0.8 + r.next() * 0.7))), device_age_seconds: deviceAge(at) }));
        }
        break;
      }
      case 'stolen_band_drift': {
        // Worn by the thief in another district of the same city, spending more than the owner does.
        const bearing = r.next() * 2 * Math.PI;
        const district = offset(CITIES[a.home]!, bearing, 6 + r.next() * 14);
        let at = anchor.occurred_at_ms + r.int(30, 240) * MIN;
        for (let k = r.int(4, 9); k > 0; k--, at += r.int(20, 90) * MIN) {
          out.push(fraud(at, { city: a.home, merchant_id: `m-${CITIES[a.home]![0]}-d${r.int(0, 199)}`, lat: district.lat + r.normal() * 0.01, lon: district.lon + r.normal() * 0.01, channel: 'TAP', session_live: true, amount_minor: Math.round(a.scale * (1.5 + r.next() * 3.5)), device_age_seconds: deviceAge(at) }));
        }
        break;
      }
      case 'slow_card_testing': {
        let at = anchor.occurred_at_ms + r.int(5, 600) * MIN;
        const shops = Array.from({ length: r.int(1, 3) }, () => merchant(a.home, r.int(500, 520)));
        const live = r.chance(0.5);
        for (let k = r.int(10, 30); k > 0; k--, at += r.int(20, 90) * MIN) {
          out.push(fraud(at, { city: a.home, merchant_id: r.pick(shops), amount_minor: r.int(50, 300), session_live: live, channel: r.chance(0.5) ? 'QR' : 'TAP', recent_cryptogram_failures: r.chance(0.2) ? 1 : 0, device_age_seconds: deviceAge(at) }));
        }
        break;
      }
      case 'card_testing_trickle': {
        // Probes spread over days, each at another merchant.
        let at = anchor.occurred_at_ms + r.int(5, 600) * MIN;
        const live = r.chance(0.7);
        for (let k = r.int(8, 20); k > 0; k--, at += r.int(120, 480) * MIN) {
          out.push(fraud(at, { city: a.home, merchant_id: merchant(a.home, r.int(520, 700)), amount_minor: r.int(50, 400), session_live: live, channel: r.chance(0.3) ? 'QR' : 'TAP', device_age_seconds: deviceAge(at) }));
        }
        break;
      }
      case 'ato_delayed_pairing':
      case 'ato_usual_merchants': {
        // A band paired to the account by someone else a day or more before it is used; the owner
        // keeps paying with their own band meanwhile.
        const device = `band-${options.seed}-${i}-x`;
        const paired = anchor.occurred_at_ms;
        const usual = pattern === 'ato_usual_merchants';
        let at = paired + (usual ? r.int(24, 72) : r.int(24, 96)) * HOUR;
        for (let k = usual ? r.int(3, 7) : r.int(3, 8); k > 0; k--, at += r.int(20, 180) * MIN) {
          out.push(
            fraud(at, {
              city: a.home,
              device_id: device,
              session_live: true,
              merchant_id: usual || r.chance(0.3) ? r.pick(a.favourites) : merchant(a.home, r.int(400, 499)),
              amount_minor: Math.round(a.scale * (usual ? 1.5 + r.next() * 3.5 : 3 + r.next() * 9)),
              device_age_seconds: Math.floor((at - paired) / 1000),
            }),
          );
        }
        break;
      }
      case 'thief_owner_hours': {
        // The band taken while its session was live and kept live, used only at the hours the owner
        // usually pays, in the owner's city (half the time at the owner's own merchants), a little
        // above the owner's amounts, one to three payments a day for days. The owner, without the
        // band, stops paying and has not reported it yet.
        const theft = anchor.occurred_at_ms + r.int(10, 120) * MIN;
        const hours = legit.filter((p) => p.occurred_at_ms <= theft).map((p) => p.occurred_at_ms % DAY);
        for (const p of legit) if (p.occurred_at_ms > theft) dropped.add(p);
        const firstDay = Math.floor(theft / DAY) * DAY;
        for (let d = 0, n = r.int(2, 5); d < n; d++) {
          for (let k = r.int(1, 3); k > 0; k--) {
            const at = firstDay + d * DAY + r.pick(hours) + r.int(-20, 20) * MIN;
            if (at <= theft) continue;
            out.push(fraud(at, { city: a.home, merchant_id: r.chance(0.5) ? r.pick(a.favourites) : merchant(a.home, r.int(0, 399)), session_live: true, channel: 'TAP', amount_minor: Math.round(a.scale * (1.2 + 0.3 * d + r.next() * 1.5)), device_age_seconds: deviceAge(at) }));
          }
        }
        break;
      }
      case 'sim_swap_takeover': {
        // The owner's phone number ported to the attacker's SIM: the wallet moves to the attacker's
        // phone and a band is paired to it there (the owner's pairing is gone, so the owner stops
        // paying, as after a replaced band). The attacker spends hours later, mostly at new shops.
        const device = `band-${options.seed}-${i}-s`;
        const paired = anchor.occurred_at_ms + r.int(10, 300) * MIN;
        for (const p of legit) if (p.occurred_at_ms > paired) dropped.add(p);
        let at = paired + r.int(2, 40) * HOUR;
        for (let k = r.int(3, 7); k > 0; k--, at += r.int(10, 90) * MIN) {
          out.push(fraud(at, { city: a.home, device_id: device, token_id: `tok-${device}`, session_live: true, channel: 'TAP', merchant_id: r.chance(0.3) ? r.pick(a.favourites) : merchant(a.home, r.int(0, 499)), amount_minor: Math.round(a.scale * (2 + r.next() * 6)), device_age_seconds: Math.floor((at - paired) / 1000) }));
        }
        break;
      }
      case 'location_spoof': {
        // A cloned token relayed to terminals in another city, with the location the terminal
        // reports spoofed to the owner's home city (or withheld, as a QR payment), so travel and
        // distance look like home; the owner keeps paying at home meanwhile.
        const far = (a.home + r.int(1, CITIES.length - 1)) % CITIES.length;
        const live = r.chance(0.6);
        let at = anchor.occurred_at_ms + r.int(30, 600) * MIN;
        for (let k = r.int(3, 8); k > 0; k--, at += r.int(5, 60) * MIN) {
          const spoofed = r.chance(0.7) ? place(a.home) : undefined;
          out.push(fraud(at, { city: far, merchant_id: merchant(far, r.int(0, 399)), lat: spoofed?.lat ?? null, lon: spoofed?.lon ?? null, channel: spoofed ? 'TAP' : 'QR', session_live: live, amount_minor: Math.round(a.scale * (1.5 + r.next() * 2.5)), device_age_seconds: deviceAge(at) }));
        }
        break;
      }
      case 'relay_same_city': {
        // A relay attack: the owner wears the band (live session) on a crowded tram or in a queue;
        // an accomplice's phone relays it to a terminal elsewhere in the same city, a few km away,
        // minutes before or after one of the owner's own payments. One to three bigger purchases at
        // shops the owner never used; the owner keeps paying as usual and notices days later.
        const own = legit.filter((p) => p.lat !== null && p.occurred_at_ms > anchor.occurred_at_ms - DAY).slice(0, 3);
        for (const p of own.length ? own : [anchor]) {
          if (!r.chance(0.7)) continue;
          const spot = offset(CITIES[a.home]!, r.next() * 2 * Math.PI, 3 + r.next() * 12);
          let at = p.occurred_at_ms + r.int(-25, 25) * MIN;
          for (let k = r.int(1, 3); k > 0; k--, at += r.int(2, 8) * MIN) {
            out.push(fraud(at, { city: a.home, merchant_id: merchant(a.home, r.int(700, 799)), lat: spot.lat + r.normal() * 0.002, lon: spot.lon + r.normal() * 0.002, channel: 'TAP', session_live: true, amount_minor: Math.round(a.scale * (2 + r.next() * 5)), device_age_seconds: deviceAge(at) }));
          }
        }
        break;
      }
      default:
        break;
    }
  }

  // Many accounts of one city paying one merchant in a short time.
  for (const family of (options.fraud ?? []).filter((f) => f === 'merchant_collusion' || f === 'compromised_terminal')) {
    const episodes = Math.max(1, Math.round((accounts * fraudShare) / Math.max(1, (options.fraud ?? []).length)));
    for (let e = 0; e < episodes; e++) {
      const city = r.int(0, CITIES.length - 1);
      const victims = byHome[city]!;
      if (victims.length < 5) continue;
      const collusion = family === 'merchant_collusion';
      const shop = collusion ? `m-coll-${options.seed}-${e}` : merchant(city, r.int(0, 399));
      const spot = place(city);
      const t0 = start + r.int(1, days - 1) * DAY + r.int(9, 17) * HOUR;
      const span = (collusion ? r.int(60, 180) : r.int(120, 360)) * MIN;
      const chosen = new Set<Account>();
      const want = Math.min(victims.length, collusion ? r.int(15, 40) : r.int(12, 30));
      while (chosen.size < want) chosen.add(r.pick(victims));
      for (const v of chosen) {
        const at = t0 + r.next() * span;
        out.push({
          ...pay(v, Math.round(at), { city, merchant_id: shop, lat: spot.lat + r.normal() * 0.0005, lon: spot.lon + r.normal() * 0.0005, channel: 'TAP', session_live: true, amount_minor: Math.round(v.scale * (collusion ? 2 + r.next() * 4 : 0.8 + r.next() * 1.2)) }),
          label: 'FRAUD',
          pattern: family,
          episode: `ep-${options.seed}-${family}-${e}`,
          recent_cryptogram_failures: 0,
        });
      }
    }
  }
  // A merchant splitting each sale into several small payments within minutes, customer after
  // customer, over a day or more (the customers pay once; the rest is the merchant's).
  if ((options.fraud ?? []).includes('split_sale')) {
    const episodes = Math.max(1, Math.round((accounts * fraudShare) / 2 / Math.max(1, (options.fraud ?? []).length)));
    // Cities with enough customers for a merchant to split sales for (a small population has few).
    const cities = CITIES.map((_, c) => c).filter((c) => byHome[c]!.filter((v) => !v.away).length >= 5);
    for (let e = 0; e < episodes && cities.length; e++) {
      const city = r.pick(cities);
      const victims = byHome[city]!.filter((v) => !v.away);
      const shop = merchant(city, r.int(0, 399));
      const spot = place(city);
      const t0 = start + r.int(1, days - 3) * DAY;
      for (let c = Math.min(victims.length, r.int(8, 20)); c > 0; c--) {
        const v = r.pick(victims);
        let at = daytime(t0 + r.next() * r.int(1, 3) * DAY, city);
        const parts = r.int(3, 8);
        const sale = v.scale * (3 + r.next() * 5);
        for (let k = 0; k < parts; k++, at += r.int(20, 90) * 1000) {
          out.push({ ...pay(v, Math.round(at), { city, merchant_id: shop, lat: spot.lat + r.normal() * 0.0005, lon: spot.lon + r.normal() * 0.0005, channel: 'TAP', session_live: true, amount_minor: Math.max(50, Math.round((sale / parts) * (0.9 + r.next() * 0.2))) }), label: 'FRAUD', pattern: 'split_sale', episode: `ep-${options.seed}-split-${e}`, recent_cryptogram_failures: 0 });
        }
      }
    }
  }
  // A ring of money mules: accounts opened days ago, bands paired to them, each paying a little at
  // many of the ring's shops over one to three days (cashing out stolen credentials).
  if ((options.fraud ?? []).includes('mule_ring')) {
    const rings = Math.max(1, Math.round((accounts * fraudShare) / 10 / Math.max(1, (options.fraud ?? []).length)));
    for (let e = 0; e < rings; e++) {
      const city = r.int(0, CITIES.length - 1);
      const shops = Array.from({ length: r.int(8, 20) }, () => merchant(city, r.int(0, 399)));
      const t0 = start + r.int(1, days - 4) * DAY;
      for (let k = r.int(6, 15); k > 0; k--) {
        const opened = t0 - r.int(1, 10) * DAY;
        const mule: Account = { id: `acct-${options.seed}-mule-${e}-${k}`, device: { id: `band-${options.seed}-mule-${e}-${k}`, registeredAt: opened + r.int(10, 600) * MIN }, bands: [], home: city, scale: r.lognormal(2_000, 0.4), perDay: 0, favourites: shops };
        mule.bands.push(mule.device);
        const span = r.int(1, 3) * DAY;
        for (let n = r.int(6, 14); n > 0; n--) {
          const at = daytime(t0 + r.next() * span, city);
          out.push({ ...pay(mule, Math.round(at), { city, merchant_id: r.pick(shops), channel: 'TAP', session_live: true, amount_minor: r.int(800, 4000) }), label: 'FRAUD', pattern: 'mule_ring', episode: `ep-${options.seed}-mule-${e}`, recent_cryptogram_failures: 0 });
        }
      }
    }
  }
  // Third-round HELD-OUT families that bring their own accounts or merchants.
  const fraudAsked = options.fraud ?? [];
  const perFamily = Math.max(1, Math.round((accounts * fraudShare) / Math.max(1, fraudAsked.length)));
  /** An account opened during the period (bands paired at opening), living in `city`. */
  const opened = (name: string, city: number, at: number, scale: number): Account => {
    const acc: Account = { id: `acct-${options.seed}-${name}`, device: { id: `band-${options.seed}-${name}`, registeredAt: at + r.int(2, 90) * MIN }, bands: [], home: city, scale, perDay: 0, favourites: Array.from({ length: r.int(3, 6) }, () => merchant(city, r.int(0, 399))) };
    acc.bands.push(acc.device);
    return acc;
  };
  if (fraudAsked.includes('bust_out')) {
    // First-party bust-out: an account opened during the period behaves for a week (a couple of
    // ordinary small payments a day at a few shops, labelled legitimate: they are paid for), then
    // spends everything it can in one day at shops it never used, well above its own habits.
    for (let e = 0; e < perFamily; e++) {
      const city = r.int(0, CITIES.length - 1);
      const t0 = start + r.int(0, 3) * DAY + r.int(8, 18) * HOUR;
      const acc = opened(`bust-${e}`, city, t0, r.lognormal(900, 0.4));
      const bust = t0 + r.int(5, 9) * DAY;
      if (bust + DAY > end) continue;
      for (let t = acc.device.registeredAt + r.int(30, 300) * MIN; t < bust; t += r.exp(DAY / 2)) {
        const at = daytime(t, city);
        if (at < bust) out.push(pay(acc, Math.round(at), { city, merchant_id: r.pick(acc.favourites) }));
      }
      let at = daytime(bust, city);
      for (let k = r.int(5, 12); k > 0; k--, at += r.int(15, 70) * MIN) {
        out.push({ ...pay(acc, Math.round(at), { city, merchant_id: merchant(city, r.int(700, 799)), session_live: true, channel: 'TAP', amount_minor: Math.round(acc.scale * (5 + r.next() * 15)) }), label: 'FRAUD', pattern: 'bust_out', episode: `ep-${options.seed}-bust-${e}`, recent_cryptogram_failures: 0 });
      }
    }
  }
  if (fraudAsked.includes('new_account_cashout')) {
    // A wallet opened with a stolen identity and card: a band paired minutes after opening, then
    // three to seven purchases of resellable goods within a few hours (every shop is new to it).
    for (let e = 0; e < perFamily; e++) {
      const city = r.int(0, CITIES.length - 1);
      const t0 = daytime(start + r.int(0, days - 1) * DAY + r.int(0, 23) * HOUR, city);
      const acc = opened(`cash-${e}`, city, t0, 1_500);
      let at = acc.device.registeredAt + r.int(5, 120) * MIN;
      for (let k = r.int(3, 7); k > 0; k--, at += r.int(10, 60) * MIN) {
        out.push({ ...pay(acc, Math.round(at), { city, merchant_id: merchant(city, r.int(700, 799)), session_live: true, channel: 'TAP', amount_minor: r.int(15_000, 90_000) }), label: 'FRAUD', pattern: 'new_account_cashout', episode: `ep-${options.seed}-cash-${e}`, recent_cryptogram_failures: 0 });
      }
    }
  }
  if (fraudAsked.includes('duplicate_charge')) {
    // A dishonest shop that charges some customers a second time a few minutes after their real
    // payment (about the same amount: "the first one didn't go through"), over a few days. The
    // first payment is genuine; only the second is fraud.
    const cities = CITIES.map((_, c) => c).filter((c) => byHome[c]!.filter((v) => !v.away).length >= 4);
    for (let e = 0; e < Math.max(1, Math.round(perFamily / 3)) && cities.length; e++) {
      const city = r.pick(cities);
      const victims = byHome[city]!.filter((v) => !v.away);
      const shop = merchant(city, r.int(0, 399));
      const spot = place(city);
      const t0 = start + r.int(1, days - 5) * DAY;
      for (let c = Math.min(victims.length, r.int(6, 15)); c > 0; c--) {
        const v = r.pick(victims);
        const at = Math.round(daytime(t0 + r.next() * r.int(2, 5) * DAY, city));
        const first = pay(v, at, { city, merchant_id: shop, lat: spot.lat + r.normal() * 0.0005, lon: spot.lon + r.normal() * 0.0005, channel: 'TAP', session_live: true });
        out.push(first);
        out.push({ ...pay(v, at + r.int(1, 20) * MIN, { city, merchant_id: shop, lat: first.lat, lon: first.lon, channel: 'TAP', session_live: true, amount_minor: Math.max(50, Math.round(first.amount_minor * (0.8 + r.next() * 0.4))) }), label: 'FRAUD', pattern: 'duplicate_charge', episode: `ep-${options.seed}-dup-${e}`, recent_cryptogram_failures: 0 });
      }
    }
  }
  if (fraudAsked.includes('scam_merchant')) {
    // A doorstep / street scam: a "merchant" registered days ago visits victims near their homes
    // (older people, mostly) and has them pay with their own band, one to three large payments
    // each, over a few days. The victim pays willingly: live session, their own area.
    const cities = CITIES.map((_, c) => c).filter((c) => byHome[c]!.filter((v) => !v.away).length >= 3);
    for (let e = 0; e < Math.max(1, Math.round(perFamily / 3)) && cities.length; e++) {
      const city = r.pick(cities);
      const victims = byHome[city]!.filter((v) => !v.away);
      const shop = `m-${CITIES[city]![0]}-svc-${options.seed}-${e}`;
      const t0 = start + r.int(1, days - 6) * DAY;
      for (let c = Math.min(victims.length, r.int(3, 10)); c > 0; c--) {
        const v = r.pick(victims);
        let at = Math.round(daytime(t0 + r.next() * r.int(2, 6) * DAY, city));
        const door = place(city);
        for (let k = r.int(1, 3); k > 0; k--, at += r.int(2, 30) * MIN) {
          out.push({ ...pay(v, at, { city, merchant_id: shop, lat: door.lat, lon: door.lon, channel: 'TAP', session_live: true, amount_minor: Math.round(v.scale * (5 + r.next() * 20)) }), label: 'FRAUD', pattern: 'scam_merchant', episode: `ep-${options.seed}-scam-${e}`, recent_cryptogram_failures: 0 });
        }
      }
    }
  }
  // A festival: a pop-up merchant (a few stalls) outside a city, where most of the city's accounts
  // pay within an afternoon and evening, none of them ever having paid there before.
  if ((options.legit ?? []).includes('festival_popup')) {
    for (let e = 0, n = Math.max(2, Math.round(accounts / 250)); e < n; e++) {
      const city = r.int(0, CITIES.length - 1);
      const site = offset(CITIES[city]!, r.next() * 2 * Math.PI, 8 + r.next() * 17);
      const stalls = Array.from({ length: r.int(1, 4) }, (_, k) => `m-fest-${options.seed}-${e}-${k}`);
      const t0 = start + r.int(1, days - 1) * DAY + (13 - CITIES[city]![2] / 15) * HOUR;
      const span = r.int(6, 10) * HOUR;
      for (const v of byHome[city]!) {
        if (!r.chance(0.8) || (v.away && t0 + span >= v.away[0] && t0 < v.away[1])) continue;
        for (let k = r.int(2, 6); k > 0; k--) {
          out.push({ ...pay(v, Math.round(t0 + r.next() * span), { city, merchant_id: r.pick(stalls), lat: site.lat + r.normal() * 0.002, lon: site.lon + r.normal() * 0.002, channel: 'TAP', session_live: true, amount_minor: Math.round(v.scale * (0.4 + r.next() * 1.1)) }), pattern: 'festival_popup' });
        }
      }
    }
  }
  if (dropped.size) out.splice(0, out.length, ...out.filter((x) => !dropped.has(x)));
  for (const x of out) x.token_id ??= `tok-${x.device_id}`;
  // Replayed in the order risk would receive them: an offline payment when it was uploaded.
  return out.sort((x, y) => (x.arrived_at_ms ?? x.occurred_at_ms) - (y.arrived_at_ms ?? y.occurred_at_ms));

  /** Legitimate behaviour that looks like fraud, for one account (only the families asked for). */
  function lookAlikes(a: Account, i: number, legit: TrafficRecord[], looks: Set<LegitPattern>, trip: { to: number; leave: number; stay: number } | undefined, newBandAt: number | undefined): TrafficRecord[] {
    const more: TrafficRecord[] = [];
    const city = a.home;
    // Nobody commutes or goes out at home while abroad.
    const away = (t: number) => !!trip && t >= trip.leave - 6 * HOUR && t < trip.leave + trip.stay + flightMs(trip.to, a.home) + 6 * HOUR;
    if (looks.has('traveller_arrival') && trip) {
      const arrive = trip.leave + flightMs(a.home, trip.to);
      // Just landed: taxi, hotel, dinner within two hours, all new and far from home.
      let at = arrive + r.int(10, 40) * MIN;
      for (let k = r.int(2, 4); k > 0; k--, at += r.int(15, 50) * MIN) more.push({ ...pay(a, Math.round(at), { city: trip.to, merchant_id: merchant(trip.to, r.int(400, 499)), amount_minor: Math.round(a.scale * (1.5 + r.next() * 4)), session_live: true }), pattern: 'traveller_arrival' });
      for (const p of legit) if (p.occurred_at_ms >= arrive && p.occurred_at_ms < arrive + DAY) p.pattern = 'traveller_arrival';
    }
    if (looks.has('replacement_band') && newBandAt) {
      for (const p of legit) if (p.occurred_at_ms >= newBandAt && p.occurred_at_ms < newBandAt + 3 * DAY) p.pattern = 'replacement_band';
    }
    if (looks.has('bar_crawl') && r.chance(0.12)) {
      let at = start + r.int(0, days - 1) * DAY + (19 - CITIES[city]![2] / 15) * HOUR;
      for (let k = away(at) ? 0 : r.int(4, 7); k > 0; k--, at += r.int(20, 50) * MIN) more.push({ ...pay(a, Math.round(at), { city, merchant_id: `m-${CITIES[city]![0]}-bar-${r.int(0, 300)}`, amount_minor: Math.round(a.scale * (0.5 + r.next() * 1.5)), session_live: true, channel: 'TAP' }), pattern: 'bar_crawl' });
    }
    if (looks.has('commuter_operator_switch') && r.chance(0.1)) {
      const switchDay = r.int(2, days - 2);
      for (let d = 0; d < days; d++) {
        if (d % 7 >= 5) continue;
        const op = `m-${CITIES[city]![0]}-transit-${d < switchDay ? 'a' : 'b'}`;
        for (const h of [8, 18]) {
          const at = start + d * DAY + (h - CITIES[city]![2] / 15) * HOUR + r.int(0, 40) * MIN;
          if (away(at)) continue;
          more.push({ ...pay(a, Math.round(at), { city, merchant_id: op, amount_minor: r.int(150, 450), session_live: true, channel: 'TAP' }), pattern: 'commuter_operator_switch' });
        }
      }
    }
    if (looks.has('big_shopping_day') && r.chance(0.05)) {
      let at = start + r.int(1, days - 1) * DAY + (10 - CITIES[city]![2] / 15) * HOUR;
      for (let k = away(at) ? 0 : r.int(3, 6); k > 0; k--, at += r.int(30, 90) * MIN) more.push({ ...pay(a, Math.round(at), { city, merchant_id: merchant(city, r.int(600, 699)), amount_minor: Math.round(a.scale * (3 + r.next() * 7)), session_live: true }), pattern: 'big_shopping_day' });
    }
    if (looks.has('shared_two_bands') && r.chance(0.03)) {
      // A partner's band on the same wallet, paired long ago, used for some of the payments.
      const second = { id: `band-${options.seed}-${i}-p`, registeredAt: start - r.int(30, 400) * DAY };
      for (const p of legit) {
        p.pattern = 'shared_two_bands';
        if (r.chance(0.4)) {
          p.device_id = second.id;
          p.device_age_seconds = Math.floor((p.occurred_at_ms - second.registeredAt) / 1000);
        }
      }
    }
    if (looks.has('child_band') && r.chance(0.04)) {
      // A child's band on the family wallet (paired recently or long ago): school canteen and
      // shop near the school on weekdays, small amounts; now and then the parent pays with it.
      const child = { id: `band-${options.seed}-${i}-c`, registeredAt: r.chance(0.5) ? start + r.int(0, days - 3) * DAY + r.int(8, 20) * HOUR : start - r.int(30, 400) * DAY };
      const school = offset(CITIES[city]!, r.next() * 2 * Math.PI, 1.5 + r.next() * 4.5);
      const shops = Array.from({ length: r.int(2, 3) }, (_, k) => `m-${CITIES[city]![0]}-school-${options.seed}-${i}-${k}`);
      for (let d = 0; d < days; d++) {
        if (d % 7 >= 5) continue;
        for (let k = r.int(1, 2); k > 0; k--) {
          const at = Math.round(start + d * DAY + (7.5 - CITIES[city]![2] / 15) * HOUR + r.int(0, 510) * MIN);
          if (at < child.registeredAt || away(at)) continue;
          more.push({ ...pay(a, at, { city, device_id: child.id, device_age_seconds: Math.floor((at - child.registeredAt) / 1000), merchant_id: r.pick(shops), lat: school.lat + r.normal() * 0.001, lon: school.lon + r.normal() * 0.001, channel: 'TAP', session_live: true, amount_minor: r.int(150, 700) }), pattern: 'child_band' });
        }
      }
      for (const p of legit) {
        p.pattern = 'child_band';
        if (p.occurred_at_ms >= child.registeredAt && r.chance(0.1)) {
          p.device_id = child.id;
          p.device_age_seconds = Math.floor((p.occurred_at_ms - child.registeredAt) / 1000);
        }
      }
    }
    if (looks.has('night_shift') && r.chance(0.03)) {
      // Works nights 5-20 km from home: canteen, vending, petrol station between 22:00 and 05:30.
      const work = offset(CITIES[city]!, r.next() * 2 * Math.PI, 5 + r.next() * 15);
      const shops = Array.from({ length: r.int(2, 4) }, (_, k) => `m-${CITIES[city]![0]}-night-${options.seed}-${i}-${k}`);
      for (let d = 0; d < days; d++) {
        if (!r.chance(0.7)) continue;
        for (let k = r.int(1, 3); k > 0; k--) {
          const at = Math.round(start + d * DAY + (22 - CITIES[city]![2] / 15) * HOUR + r.int(0, 450) * MIN);
          if (away(at)) continue;
          more.push({ ...pay(a, at, { city, merchant_id: r.chance(0.85) ? r.pick(shops) : merchant(city, r.int(0, 399)), lat: work.lat + r.normal() * 0.003, lon: work.lon + r.normal() * 0.003, channel: 'TAP', session_live: true, amount_minor: Math.round(a.scale * (0.3 + r.next() * 0.9)) }), pattern: 'night_shift' });
        }
      }
      for (const p of legit) p.pattern = 'night_shift';
    }
    if (looks.has('group_round_payer') && r.chance(0.06)) {
      // One person paying for a group at one place: rounds of drinks at the same bar every 10-30
      // minutes, or a restaurant bill paid in two or three parts within a couple of minutes (a
      // band's per-payment limit, or "put the wine on a separate one").
      const at0 = start + r.int(0, days - 1) * DAY + (19.5 - CITIES[city]![2] / 15) * HOUR + r.int(0, 90) * MIN;
      if (!away(at0)) {
        const shop = `m-${CITIES[city]![0]}-bar-${r.int(0, 300)}`;
        const spot = place(city);
        const split = r.chance(0.4);
        let at = at0;
        for (let k = split ? r.int(2, 3) : r.int(3, 6); k > 0; k--, at += split ? r.int(20, 120) * 1000 : r.int(10, 30) * MIN) {
          more.push({ ...pay(a, Math.round(at), { city, merchant_id: shop, lat: spot.lat + r.normal() * 0.0003, lon: spot.lon + r.normal() * 0.0003, channel: 'TAP', session_live: true, amount_minor: Math.round(a.scale * (split ? 1.5 + r.next() * 3 : 0.8 + r.next() * 2)) }), pattern: 'group_round_payer' });
        }
      }
    }
    if (looks.has('market_day') && r.chance(0.08)) {
      // A weekend farmers' market: four to nine of the city's thirty stalls, each paid once within
      // an hour or two, small amounts; stalls shared by everyone of the city who goes.
      const spot = offset(CITIES[city]!, (city * 2.3) % (2 * Math.PI), 1 + ((city * 7) % 6));
      const saturday = 5 + 7 * r.int(0, Math.max(0, Math.floor((days - 6) / 7)));
      let at = start + saturday * DAY + (9 - CITIES[city]![2] / 15) * HOUR + r.int(0, 120) * MIN;
      const stalls = new Set<number>();
      for (let k = away(at) ? 0 : r.int(4, 9); k > 0; k--, at += r.int(4, 20) * MIN) {
        let stall = r.int(0, 29);
        while (stalls.has(stall)) stall = (stall + 1) % 30;
        stalls.add(stall);
        more.push({ ...pay(a, Math.round(at), { city, merchant_id: `m-${CITIES[city]![0]}-market-${options.seed}-${stall}`, lat: spot.lat + r.normal() * 0.001, lon: spot.lon + r.normal() * 0.001, channel: 'TAP', session_live: true, amount_minor: r.int(200, 1500) }), pattern: 'market_day' });
      }
    }
    if (looks.has('road_trip') && !trip && r.chance(0.05)) {
      // A drive to somewhere 250-700 km away at motorway speed, charging or fuelling every 1.5-3
      // hours, a few days there at shops new to the account, and the drive back. No home payments
      // meanwhile.
      const leave = start + r.int(1, Math.max(1, days - 6)) * DAY + (7 - CITIES[city]![2] / 15) * HOUR;
      const bearing = r.next() * 2 * Math.PI;
      const km = 250 + r.next() * 450;
      const speed = 80 + r.next() * 40;
      const driveMs = (km / speed) * HOUR;
      const stay = r.int(2, 4) * DAY;
      const back = leave + driveMs + stay;
      const home = CITIES[city]!;
      const dest = offset(home, bearing, km);
      for (const p of legit) if (p.occurred_at_ms >= leave - HOUR && p.occurred_at_ms < back + driveMs + HOUR) dropped.add(p);
      const drive = (from: number, out: boolean) => {
        for (let at = from + r.int(60, 120) * MIN; at < from + driveMs; at += r.int(90, 180) * MIN) {
          const done = (speed * (at - from)) / HOUR;
          const loc = offset(home, bearing, out ? done : km - done);
          more.push({ ...pay(a, Math.round(at), { city, merchant_id: `m-hwy-${options.seed}-${i}-${more.length}`, lat: loc.lat, lon: loc.lon, channel: 'TAP', session_live: true, amount_minor: Math.round(2_000 + r.next() * 6_000) }), pattern: 'road_trip' });
        }
      };
      drive(leave, true);
      const there = Array.from({ length: r.int(3, 6) }, (_, k) => `m-trip-${options.seed}-${i}-${k}`);
      for (let at = leave + driveMs + r.int(30, 120) * MIN; at < back; at += r.exp(DAY / a.perDay)) {
        more.push({ ...pay(a, Math.round(at), { city, merchant_id: r.pick(there), lat: dest.lat + r.normal() * 0.02, lon: dest.lon + r.normal() * 0.02, session_live: true, amount_minor: Math.round(r.lognormal(a.scale * 1.3, 0.5)) }), pattern: 'road_trip' });
      }
      drive(back, false);
    }
    if (looks.has('moving_house') && !trip && r.chance(0.03)) {
      // Moving to another city for good: a removal firm and furniture on the day, then everyday
      // spending at the new city's shops (new favourites) for the rest of the period.
      const to = (city + r.int(1, CITIES.length - 1)) % CITIES.length;
      const moveAt = start + r.int(2, days - 4) * DAY + (9 - CITIES[to]![2] / 15) * HOUR;
      const arrive = moveAt + flightMs(city, to);
      const favourites = Array.from({ length: r.int(4, 10) }, () => merchant(to, r.int(0, 399)));
      for (const p of legit) {
        if (p.occurred_at_ms < moveAt) continue;
        if (p.occurred_at_ms < arrive + HOUR) {
          dropped.add(p);
          continue;
        }
        const loc = place(to);
        p.pattern = 'moving_house';
        p.merchant_id = r.chance(0.8) ? r.pick(favourites) : merchant(to, r.int(0, 499));
        if (p.lat !== null) Object.assign(p, loc);
      }
      let at = arrive + r.int(60, 180) * MIN;
      for (let k = r.int(2, 4); k > 0; k--, at += r.int(30, 120) * MIN) {
        more.push({ ...pay(a, Math.round(at), { city: to, merchant_id: merchant(to, r.int(600, 699)), session_live: true, channel: 'TAP', amount_minor: Math.round(a.scale * (3 + r.next() * 10)) }), pattern: 'moving_house' });
      }
    }
    // Offline QR payments uploaded a while after they happened.
    for (const p of legit) if (p.channel === 'QR' && r.chance(0.3)) p.arrived_at_ms = p.occurred_at_ms + r.int(1, 180) * MIN;
    return more;
  }
}

/** Families that involve many accounts at once (generated after the per-account loop). */
const CROSS_ACCOUNT: readonly Pattern[] = ['merchant_collusion', 'compromised_terminal', 'split_sale', 'mule_ring', 'bust_out', 'new_account_cashout', 'duplicate_charge', 'scam_merchant'];

/** The point `km` away from `from` on `bearing` (radians), flat-earth: tens of km at most. */
function offset(from: [string, number, number], bearing: number, km: number): { lat: number; lon: number } {
  const dLat = (km * Math.cos(bearing)) / 111;
  const dLon = (km * Math.sin(bearing)) / (111 * Math.cos((from[1] * Math.PI) / 180));
  return { lat: from[1] + dLat, lon: from[2] + dLon };
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

async function main(): Promise<void> {
  const out = arg('out', '.data/risk/traffic.jsonl');
  const records = generateTraffic({ payments: Number(arg('payments', '100000')), seed: Number(arg('seed', '7')), fraudAccountShare: Number(arg('fraud-share', '0.06')) });
  await mkdir(dirname(out), { recursive: true });
  const file = createWriteStream(out);
  for (const rec of records) if (!file.write(`${JSON.stringify(rec)}\n`)) await new Promise<void>((res) => file.once('drain', () => res()));
  await new Promise<void>((res, rej) => file.end((err?: Error | null) => (err ? rej(err) : res())));
  const fraud = records.filter((x) => x.label === 'FRAUD').length;
  process.stdout.write(`wrote ${records.length} payments (${fraud} fraud, ${((100 * fraud) / records.length).toFixed(2)}%) to ${out}\n`);
}

if (require.main === module) {
  main().catch((err: Error) => {
    process.stderr.write(`traffic: ${err.message}\n`);
    process.exit(1);
  });
}

import type { Summary } from './floors';
import { compare, figures, floorSum, formatTarget, formatValue, meets, quantiles, ratios, type SuiteResult } from './targets';

const s = (p50: number, perSecond: number): Summary => ({ p50, p99: 2 * p50, max: 3 * p50, perSecond, seconds: 1, calls: 100 });

/** A run whose figures meet every target except the ones a test changes. */
function result(): SuiteResult {
  const floors = {
    echo: { one: s(1, 1000), wide: s(30, 2000) },
    insertCommit: { one: s(0.5, 2000), wide: s(8, 2400) },
    select: { one: s(0.1, 8000), wide: s(2, 9000) },
    redisGet: { one: s(0.05, 20000), wide: s(1, 30000) },
    publish: { one: s(0.3, 3000), wide: s(5, 10000) },
  };
  const path = { perPayment: { hops: 5, commits: 4, statements: 10, redisRoundTrips: 3, publishes: 1, spans: 60 }, payments: 20, missing: 0, server: { transactions: 12, redisCommands: 40, events: 6 } };
  const base: Omit<SuiteResult, 'ratios'> = {
    version: 1,
    startedAt: '2026-12-03T15:00:00.000Z',
    finishedAt: '2026-12-03T15:05:00.000Z',
    command: 'npm run bench',
    quick: false,
    machine: { cores: 2, loadAverageStart: 1, loadAverageEnd: 2 },
    floors,
    synchronousCommit: 'on',
    wide: 64,
    holdWide: 16,
    authorize: { one: s(10, 90), wide: s(300, 250), outcomes: { APPROVED: 100 } },
    score: { one: s(2, 400), wide: s(60, 1000), errors: {} },
    placeHold: { one: s(3, 300), wide: s(40, 1200), outcomes: { HOLD_OUTCOME_PLACED: 100 } },
    reportLost: { cutOff: quantiles([50, 60, 200]), call: quantiles([10, 20]), notDeclinedAfter: 0 },
    cpu: { payments: 100, perProcessMs: { gateway: 2, postgres: 3 }, sumMs: 5, clientMs: 1, machineMs: 7 },
    rssMiB: { gateway: 120, risk: 100 },
    path,
    floorSum: floorSum(path.perPayment, floors),
    timings: { floors: 10 },
  };
  return { ...base, ratios: ratios(base) };
}

describe('floorSum', () => {
  it('is hops × echo + commits × INSERT+COMMIT + statements × SELECT + Redis round trips × GET + publishes × publish (p50s at 1 in flight)', () => {
    const f = floorSum({ hops: 5, commits: 4, statements: 10, redisRoundTrips: 3, publishes: 1, spans: 60 }, result().floors);
    expect(f.parts).toEqual({ hops: 5, commits: 2, statements: 1, redisRoundTrips: 3 * 0.05, publishes: 0.3 });
    expect(f.total).toBeCloseTo(8.45, 10);
  });

  it('is NaN, not 0, when the path was not counted', () => {
    const zero = { hops: 0, commits: 0, statements: 0, redisRoundTrips: 0, publishes: 0, spans: 0 };
    expect(floorSum(zero, result().floors).total).toBeNaN();
    expect(floorSum({ ...zero, hops: 5 }, result().floors, false).total).toBeNaN();
  });
});

describe('ratios and targets', () => {
  it('puts each figure against its target: all met here', () => {
    const r = result().ratios;
    const targeted = r.filter((x) => x.target);
    expect(targeted.map((x) => x.met)).toEqual([true, true, true, true, true, true]);
    expect(r.find((x) => x.label.startsWith('Authorize @64 rate'))!.value).toBeCloseTo(0.125);
    expect(r.find((x) => x.label === 'Authorize p50 @1 / floor sum of its path')!.value).toBeCloseTo(10 / 8.45);
  });

  it('misses each target on the wrong side of its bound', () => {
    const base = result();
    const worse: Omit<SuiteResult, 'ratios'> = {
      ...base,
      authorize: { ...base.authorize, one: s(20, 90), wide: s(300, 150) }, // 7.5% of echo; 20× echo p50; 2.4× the floor sum
      cpu: { ...base.cpu, sumMs: 10.5 },
      rssMiB: { gateway: 120, 'device-registry': 151 },
      reportLost: { ...base.reportLost, cutOff: quantiles([50, 251]) },
    };
    expect(ratios(worse).filter((x) => x.target).map((x) => x.met)).toEqual([false, false, false, false, false, false]);
  });

  it('counts a bound itself as met, and a figure not measured as neither met nor missed', () => {
    expect(meets(10, { op: '<=', bound: 10 })).toBe(true);
    expect(meets(0.1, { op: '>=', bound: 0.1 })).toBe(true);
    expect(meets(NaN, { op: '<=', bound: 10 })).toBeUndefined();
    expect(meets(3, undefined)).toBeUndefined();
    const base = result();
    const uncounted = { ...base, floorSum: { ...base.floorSum, total: NaN } };
    expect(ratios(uncounted).find((x) => x.label.includes('floor sum'))!.met).toBeUndefined();
  });

  it('formats values and targets by unit', () => {
    expect(formatValue(0.1234, '%')).toBe('12.3%');
    expect(formatValue(4.2, 'x')).toBe('4.20×');
    expect(formatValue(9.876, 'ms')).toBe('9.88 ms');
    expect(formatValue(150.04, 'MiB')).toBe('150.0 MiB'); // a bound just crossed shows as crossed only with the decimal
    expect(formatValue(150.4, 'MiB')).toBe('150.4 MiB');
    expect(formatValue(NaN, 'ms')).toBe('not measured');
    expect(formatTarget({ label: '', value: 1, unit: '%', target: { op: '>=', bound: 0.1 } })).toBe('≥ 10.0%');
  });
});

describe('quantiles', () => {
  it('takes p50 and p99 by rank, and NaN of nothing', () => {
    expect(quantiles([5, 1, 3, 2, 4])).toEqual({ n: 5, p50: 3, p99: 5, max: 5 });
    expect(quantiles([])).toMatchObject({ n: 0, p50: NaN });
  });
});

describe('compare', () => {
  it('gives each figure its relative change between two runs', () => {
    const before = result();
    const after = result();
    after.authorize.one.p50 = 5;
    after.rssMiB = { gateway: 60, alerts: 50 };
    const changes = new Map(compare(before, after).map((c) => [c.figure, c]));
    expect(changes.get('authorize @1 p50 (ms)')).toEqual({ figure: 'authorize @1 p50 (ms)', before: 10, after: 5, change: -0.5 });
    expect(changes.get('floor echo @64 rate (/s)')!.change).toBe(0);
    // Only in one run: shown, with no change.
    expect(changes.get('RSS alerts (MiB)')).toMatchObject({ before: undefined, after: 50, change: undefined });
    expect(changes.get('RSS risk (MiB)')).toMatchObject({ before: 100, after: undefined, change: undefined });
  });

  it('has no change where a side is not a number or the old one is 0', () => {
    const before = result();
    const after = result();
    before.floorSum.total = NaN;
    before.cpu.perProcessMs.gateway = 0;
    const changes = new Map(compare(before, after).map((c) => [c.figure, c.change]));
    expect(changes.get('floor sum of the path (ms)')).toBeUndefined();
    expect(changes.get('CPU per payment gateway (ms)')).toBeUndefined();
    expect(figures(after).get('per payment: commits')).toBe(4);
  });
});

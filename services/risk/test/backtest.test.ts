import { join } from 'node:path';
import Redis from 'ioredis';
import { backtest, report } from '../src/backtest';
import { loadBook } from '../src/rulebook';
import { FRAUD_PATTERNS, generateTraffic } from '../src/traffic';
import { requireServers, TEST_REDIS_URL, uniqueName } from '../../../test/support/servers';

const rules = join(__dirname, '..', 'rules');

async function* each<T>(xs: T[]): AsyncIterable<T> {
  yield* xs;
}

describe('synthetic traffic and backtest', () => {
  let redis: Redis;
  beforeAll(async () => {
    await requireServers('Redis');
    redis = new Redis(TEST_REDIS_URL);
  });
  afterAll(() => redis?.disconnect());

  it('generates the same labelled, time-ordered traffic for a seed, with every fraud pattern', () => {
    const a = generateTraffic({ payments: 6_000, seed: 3, fraudAccountShare: 0.3 });
    const b = generateTraffic({ payments: 6_000, seed: 3, fraudAccountShare: 0.3 });
    expect(a).toEqual(b);
    expect(a.length).toBeGreaterThan(4_000);
    expect(a.every((x, i) => i === 0 || a[i - 1]!.occurred_at_ms <= x.occurred_at_ms)).toBe(true);
    const patterns = new Set(a.filter((x) => x.label === 'FRAUD').map((x) => x.pattern));
    for (const p of FRAUD_PATTERNS) expect(patterns).toContain(p);
    expect(a.filter((x) => x.label === 'FRAUD').every((x) => x.episode)).toBe(true);
    expect(new Set(a.map((x) => x.payment_id)).size).toBe(a.length);
  });

  it('replays through the real feature scripts, reports, and leaves no keys behind', async () => {
    const traffic = generateTraffic({ payments: 6_000, seed: 11, fraudAccountShare: 0.3 });
    const book = await loadBook(join(rules, 'default.yaml'), join(rules, 'model.yaml'));
    const prefix = uniqueName('bt');
    const result = await backtest(each(traffic), redis, { baseline: book, candidate: book }, { challengeAt: 400, declineAt: 800, maxReasons: 5 }, { prefix, chunk: 250 });
    expect(result.payments).toBe(traffic.length);
    const m = result.candidate.metrics();
    expect(m.fraud).toBe(traffic.filter((x) => x.label === 'FRAUD').length);
    // The shipped rules on a fresh seed: most fraud stopped, almost no legitimate payment declined.
    expect(m.recall).toBeGreaterThan(0.85);
    expect(m.falseDeclineRate).toBeLessThan(0.01);
    expect(result.changed.size).toBe(0);
    expect(report(result)).toMatch(/false-decline rate/);
    expect(await redis.keys(`${prefix}:*`)).toEqual([]);
  });

  it('refuses traffic that goes back in time', async () => {
    const [x, y] = generateTraffic({ payments: 100, seed: 5 });
    const book = await loadBook(join(rules, 'default.yaml'), join(rules, 'model.yaml'));
    await expect(backtest(each([{ ...y!, occurred_at_ms: x!.occurred_at_ms + 10 }, x!]), redis, { baseline: book, candidate: book }, { challengeAt: 400, declineAt: 800, maxReasons: 5 })).rejects.toThrow(/time order/);
  });
});

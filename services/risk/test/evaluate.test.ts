import Redis from 'ioredis';
import { requireServers, TEST_REDIS_URL } from '../../../test/support/servers';
import { readConfig } from '../src/config';
import { loadBook } from '../src/rulebook';
import { familyTable, headline, headlineLine, meets, run, traffic } from '../tools/evaluate';
import { FRAUD_FAMILIES, LEGIT_FAMILIES } from '../tools/traffic';

/**
 * Whether the full-size evaluation in the README (seeds 8 and 9) met every target on the HELD-OUT
 * families with the shipped rules and model. It does not (default-9 / logit-5 stop 33-35% of the
 * third round's held-out fraud, and miss the legitimate targets on the new held-out legitimate
 * families: README: risk), so the targets are not asserted on held-out fraud; a small sample
 * passing would say nothing while the full one does not.
 */
const FULL_SIZE_MEETS_TARGETS = false;

/**
 * Legitimate friction, asserted with a margin on small samples (4,000 payments with 30% of
 * accounts defrauded, so every family shows up). On the TUNE legitimate families the full-size
 * run of the third round declines 0.031-0.043% and steps up 1.91-2.03% of live-session payments
 * (seeds 8, 9); small samples of seeds 11-15 measured 0-0.098% and 1.24-2.18%
 * (`traffic(4000, seed, 'all', 0.3)` replayed with `run`), asserted ≤ 0.3% and ≤ 3% as before.
 * Every legitimate family, the third round's held-out ones included, misses the targets at full
 * size (0.064-0.079% declined, 2.9% stepped up: market_day, road_trip; README: risk); seeds 11-15
 * measured 0.024-0.539% and 2.19-3.61%, asserted ≤ 1% and ≤ 5%: a guard against a larger
 * regression (default-7 with logit-3's merchant volumes would step up whole shops), not the targets.
 */
const SMALL_SAMPLE_BOUNDS = { tune: { legitDeclined: 0.003, legitLiveStepUp: 0.03 }, all: { legitDeclined: 0.01, legitLiveStepUp: 0.05 } };

describe('evaluation on held-out families (small)', () => {
  let redis: Redis;
  beforeAll(async () => {
    await requireServers('Redis');
    redis = new Redis(TEST_REDIS_URL);
  });
  afterAll(() => redis?.disconnect());

  it.each([11, 12])('replays fresh seed %i with every family, reports per family, and keeps legitimate friction within bounds', async (seed) => {
    const config = readConfig({ ...process.env, REDIS_URL: TEST_REDIS_URL });
    const book = await loadBook(config.RISK_RULES_FILE, config.RISK_MODEL_FILE);
    const policy = { challengeAt: config.RISK_CHALLENGE_THRESHOLD, declineAt: config.RISK_DECLINE_THRESHOLD, maxReasons: config.RISK_MAX_REASONS };
    // More fraud than the full run's 6% of accounts, so every held-out family shows up in a small sample.
    const records = traffic(4_000, seed, 'all', 0.3);
    const { tally } = await run(redis, records, book, policy);
    const allLegit = [...LEGIT_FAMILIES.tune, ...LEGIT_FAMILIES.heldOut];
    const held = headline(tally, FRAUD_FAMILIES.heldOut, allLegit);
    process.stdout.write(`${familyTable(tally)}\n${headlineLine(`held-out (small sample, seed ${seed})`, held)}\n`);
    // The held-out fraud families are present, so the figures are about them.
    for (const family of FRAUD_FAMILIES.heldOut) expect(tally.byPattern.get(family)?.total ?? 0).toBeGreaterThan(0);
    for (const family of LEGIT_FAMILIES.heldOut) expect(tally.byPattern.get(family)?.total ?? 0).toBeGreaterThan(0);
    expect(held.fraud).toBeGreaterThan(20);
    if (FULL_SIZE_MEETS_TARGETS) expect(meets(held)).toBe(true);
    const tune = headline(tally, FRAUD_FAMILIES.heldOut, LEGIT_FAMILIES.tune);
    expect(tune.legitDeclined).toBeLessThanOrEqual(SMALL_SAMPLE_BOUNDS.tune.legitDeclined);
    expect(tune.legitLiveStepUp).toBeLessThanOrEqual(SMALL_SAMPLE_BOUNDS.tune.legitLiveStepUp);
    expect(held.legitDeclined).toBeLessThanOrEqual(SMALL_SAMPLE_BOUNDS.all.legitDeclined);
    expect(held.legitLiveStepUp).toBeLessThanOrEqual(SMALL_SAMPLE_BOUNDS.all.legitLiveStepUp);
  }, 180_000);
});

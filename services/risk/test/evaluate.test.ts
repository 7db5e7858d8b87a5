import Redis from 'ioredis';
import { requireServers, TEST_REDIS_URL } from '../../../test/support/servers';
import { readConfig } from '../src/config';
import { loadBook } from '../src/rulebook';
import { familyTable, headline, headlineLine, meets, run, traffic } from '../tools/evaluate';
import { FRAUD_FAMILIES, LEGIT_FAMILIES } from '../tools/traffic';

/**
 * Whether the full-size evaluation in the README (seeds 8 and 9) met every target on the HELD-OUT
 * families with the shipped rules and model. It does not (default-8 / logit-4, still shipped, stop
 * 57.6% / 38.6% of the third round's held-out fraud and miss the legitimate targets; the third
 * round's candidate default-9 / logit-5 stops 33-35%: README: risk), so the targets are not
 * asserted; a small sample passing would say nothing while the full one does not.
 */
const FULL_SIZE_MEETS_TARGETS = false;

/**
 * Legitimate friction, asserted with a margin on small samples (4,000 payments with 30% of
 * accounts defrauded, so every family shows up; the seeds are fixed, so the figures are too). At
 * full size (seeds 8, 9) the shipped default-8 / logit-4 declines 0.071-0.109% of the TUNE
 * legitimate families' payments and steps up 2.43-2.68% of live-session ones, and 0.113-0.178% /
 * 3.36-3.57% over every legitimate family (the third round's held-out market_day and road_trip
 * most); the candidate default-9 / logit-5 0.031-0.043% / 1.91-2.03% and 0.064-0.079% / 2.9%
 * (README: risk). Both miss the targets somewhere, so these bounds are a guard against a larger
 * regression (default-7 with logit-3's merchant volumes would step up whole shops), not the
 * targets: ≤ 0.3% / 3% on TUNE families, ≤ 1% / 5% over all (seeds 11-15 measured with the
 * candidate: 0-0.098% / 1.24-2.18% and 0.024-0.539% / 2.19-3.61%).
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

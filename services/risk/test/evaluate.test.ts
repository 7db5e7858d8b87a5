import Redis from 'ioredis';
import { requireServers, TEST_REDIS_URL } from '../../../test/support/servers';
import { readConfig } from '../src/config';
import { loadBook } from '../src/rulebook';
import { familyTable, headline, headlineLine, meets, run, traffic } from '../tools/evaluate';
import { FRAUD_FAMILIES, LEGIT_FAMILIES } from '../tools/traffic';

/**
 * Whether the full-size evaluation in the README (seeds 8 and 9) met every target on the HELD-OUT
 * families with the shipped rules and model. It does not (default-8 / logit-4 stop about 5-11% of
 * the held-out fraud: README: risk), so the fraud targets are not asserted; a small sample
 * passing would say nothing while the full one does not.
 */
const FULL_SIZE_MEETS_TARGETS = false;

/**
 * What the full-size run does meet, asserted with a margin on small samples (4,000 payments with
 * 30% of accounts defrauded, so every family shows up): legitimate payments, every family, are
 * declined ≤ 0.05% and stepped up ≤ 2% on live sessions at full size. Small samples of seeds
 * 11-15 measured 0.046-0.118% declined and 1.50-2.11% stepped up (README: risk); the bounds below
 * leave room for that spread and still fail on a real regression (default-7 with logit-3's
 * merchant volumes would step up whole shops).
 */
const SMALL_SAMPLE_BOUNDS = { legitDeclined: 0.003, legitLiveStepUp: 0.03 };

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
    expect(held.legitDeclined).toBeLessThanOrEqual(SMALL_SAMPLE_BOUNDS.legitDeclined);
    expect(held.legitLiveStepUp).toBeLessThanOrEqual(SMALL_SAMPLE_BOUNDS.legitLiveStepUp);
  }, 180_000);
});

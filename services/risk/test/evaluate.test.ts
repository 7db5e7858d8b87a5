import Redis from 'ioredis';
import { requireServers, TEST_REDIS_URL } from '../../../test/support/servers';
import { readConfig } from '../src/config';
import { loadBook } from '../src/rulebook';
import { familyTable, headline, headlineLine, meets, run, traffic } from '../tools/evaluate';
import { FRAUD_FAMILIES, LEGIT_FAMILIES } from '../tools/traffic';

/**
 * Whether the full-size evaluation in the README (100,000 payments per seed, seeds 8 and 9) met
 * every target on the HELD-OUT families with the shipped rules and model. This small run asserts
 * the targets only when that is true: a small sample passing would say nothing if the full one
 * does not.
 */
const FULL_SIZE_MEETS_TARGETS = false;

describe('evaluation on held-out families (small)', () => {
  let redis: Redis;
  beforeAll(async () => {
    await requireServers('Redis');
    redis = new Redis(TEST_REDIS_URL);
  });
  afterAll(() => redis?.disconnect());

  it('replays a fresh seed with every family and reports per family', async () => {
    const config = readConfig({ ...process.env, REDIS_URL: TEST_REDIS_URL });
    const book = await loadBook(config.RISK_RULES_FILE, config.RISK_MODEL_FILE);
    const policy = { challengeAt: config.RISK_CHALLENGE_THRESHOLD, declineAt: config.RISK_DECLINE_THRESHOLD, maxReasons: config.RISK_MAX_REASONS };
    // More fraud than the full run's 6% of accounts, so every held-out family shows up in a small sample.
    const records = traffic(4_000, 11, 'all', 0.3);
    const { tally } = await run(redis, records, book, policy);
    const held = headline(tally, FRAUD_FAMILIES.heldOut, [...LEGIT_FAMILIES.tune, ...LEGIT_FAMILIES.heldOut]);
    process.stdout.write(`${familyTable(tally)}\n${headlineLine('held-out (small sample)', held)}\n`);
    // Every held-out fraud family is present, so the figures are about them.
    for (const family of FRAUD_FAMILIES.heldOut) expect(tally.byPattern.get(family)?.total ?? 0).toBeGreaterThan(0);
    expect(held.fraud).toBeGreaterThan(20);
    if (FULL_SIZE_MEETS_TARGETS) expect(meets(held)).toBe(true);
    // Whatever the targets, legitimate payments are almost never declined.
    expect(held.legitDeclined).toBeLessThan(0.005);
  }, 60_000);
});

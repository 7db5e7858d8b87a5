import { join } from 'node:path';
import { decide } from '../src/domain/decision';
import { deriveFeatures, MERCHANT_BASELINE_TAU_MS, type History, type ScoreInput } from '../src/domain/features';
import { history, input } from '../src/domain/fixtures';
import { loadBook, type Book } from '../src/rulebook';

/**
 * The shipped rules and model (rules/default.yaml, rules/model.yaml) on merchant situations the
 * generator does not produce: a large shop at its usual pace must not step up its customers
 * (what kept logit-3 from shipping), while a quiet shop's surge of new accounts paying above
 * their usual is stepped up and says why.
 */
const HOUR = 3_600_000;
const DAY = 86_400_000;
const policy = { challengeAt: 400, declineAt: 800, maxReasons: 5 };

/** An established account (40 approved payments around 20.00) paying in a live session. */
const established: Partial<History> = { amountN: 40, amountMean: 2_000, amountM2: 39 * 500 ** 2, merchantFirst: true };

function merchant(count1h: number, newAccounts1h: number, baselinePerHour: number, newPerHour: number, ageMs: number): History['extra'] {
  // Decayed sums as the store keeps them: rate × τ × (1 − e^(−age/τ)), plus this hour's earlier payments.
  const fill = (MERCHANT_BASELINE_TAU_MS / HOUR) * (1 - Math.exp(-ageMs / MERCHANT_BASELINE_TAU_MS));
  return {
    deviceSmall24h: 0, deviceSmall7d: 0, accountSmall24h: 0, accountSmall7d: 0, merchants24h: 2, merchants7d: 5, token1h: 1, token24h: 2,
    bands7d: 1, bandsPaired7d: 0, otherBandAfterPairing: false, area: undefined,
    merchant: {
      count1h, accounts1h: count1h, newAccounts1h, newAccounts24h: newAccounts1h * 12, count24h: count1h * 12, stopped24h: 0,
      baseline: { payments: baselinePerHour * fill + count1h - 1, newAccounts: newPerHour * fill + newAccounts1h - 1, sumLnAmount: (baselinePerHour * fill + count1h - 1) * Math.log(2_000), ageMs, tauMs: MERCHANT_BASELINE_TAU_MS },
    },
  };
}

describe('shipped rules and model on busy and surging merchants', () => {
  let book: Book;
  beforeAll(async () => {
    book = await loadBook(join(__dirname, '..', 'rules', 'default.yaml'), join(__dirname, '..', 'rules', 'model.yaml'));
  });
  const verdict = (x: ScoreInput, h: History) => decide(deriveFeatures(x, h), book.rules, book.model, policy);

  it('approves a customer of a large shop at its usual pace (1,000 accounts an hour, half of them new)', () => {
    const v = verdict(input({ amountMinor: 2_200 }), history({ ...established, extra: merchant(1_000, 500, 1_000, 500, 60 * DAY) }));
    expect(v.decision).toBe('APPROVE');
    expect(v.reasons.map((r) => r.code)).not.toContain('MERCHANT_NEW_ACCOUNT_SURGE');
  });

  it('approves a dozen brand-new wallets with brand-new bands paying one new merchant within a minute (the gateway tests, with the account-age and young-band features of the third round)', () => {
    const extra = merchant(12, 12, 0, 0, 60_000)!;
    extra.merchant!.young = { young24h: 12, young7d: 12, accounts24h: 12, accounts7d: 12 };
    extra.accountBornAt = Date.UTC(2031, 0, 5, 9) - 60_000;
    extra.merchants24h = 1;
    const h = history({ at: Date.UTC(2031, 0, 5, 9), merchantFirst: true, extra });
    const f = deriveFeatures(input({ amountMinor: 1_500, deviceAgeSeconds: 60 }), h);
    expect(f.merchant_young_share_7d).toBe(1);
    expect(f.account_age_h).toBeLessThan(1);
    expect(decide(f, book.rules, book.model, policy).decision).toBe('APPROVE');
  });

  it('approves a dozen brand-new accounts paying one new merchant within a minute (the gateway tests)', () => {
    const f = deriveFeatures(input({ amountMinor: 1_500 }), history({ merchantFirst: true, extra: merchant(12, 12, 0, 0, 60_000) }));
    expect(f.merchant_new_accounts_1h_ratio).toBeGreaterThan(3);
    expect(decide(f, book.rules, book.model, policy).decision).toBe('APPROVE');
  });

  it("steps up a quiet shop's surge of new accounts when this one pays three times its usual, and names the rule", () => {
    const v = verdict(input({ amountMinor: 6_000 }), history({ ...established, extra: merchant(10, 10, 0.05, 0.02, 30 * DAY) }));
    expect(v.decision).toBe('CHALLENGE');
    expect(v.reasons[0]!.code).toBe('MERCHANT_NEW_ACCOUNT_SURGE');
  });

  it('does not step up the same surge for an account paying its usual amount', () => {
    const v = verdict(input({ amountMinor: 2_000 }), history({ ...established, extra: merchant(10, 10, 0.05, 0.02, 30 * DAY) }));
    expect(v.decision).toBe('APPROVE');
  });
});

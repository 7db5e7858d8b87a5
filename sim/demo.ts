import { randomUUID } from 'node:crypto';
import Table from 'cli-table3';
import { SessionEndReason } from '../gen/wristpay/device_registry/v1/device_registry';
import { DeclineReason, PaymentStatus } from '../gen/wristpay/gateway/v1/gateway';
import { formatAmount } from '../platform/money';
import type { Band } from './band';
import type { MeshClients } from './clients';
import { terminalNonce } from './terminal';
import { onboardBand, pay, type PaymentAttempt } from './wallet';

type Expected = 'APPROVED' | 'DECLINED' | 'CHALLENGE_REQUIRED';

interface Step {
  scenario: string;
  band: number;
  attempt: PaymentAttempt | ((bands: Band[], previous: DemoRow[]) => PaymentAttempt);
  expect: Expected | Expected[];
  /** A retry: the answer must carry the payment id of this earlier step (0-based). */
  samePaymentAs?: number;
  /** For a decline, the reason it must carry. */
  reason?: DeclineReason;
  /** Something the wallet does first (wrist-off, report lost). */
  before?: (clients: MeshClients, bands: Band[]) => Promise<void>;
}

export interface DemoRow {
  n: number;
  scenario: string;
  band: number;
  merchant: string;
  amount: string;
  expected: string;
  outcome: string;
  detail: string;
  ms: number;
  traceId: string;
  paymentId: string;
  ok: boolean;
  idempotencyKey: string;
  tap?: ReturnType<Band['tap']>;
}

const everyday = (band: number, merchantId: string, minor: number): Step => ({
  scenario: 'band live, no password',
  band,
  attempt: { merchantId, amountMinor: BigInt(minor) },
  expect: 'APPROVED',
});

/** Eight quick small taps on one band: what card testing looks like; risk stops it. */
function cardTestingBurst(band: number, taps: number): Step[] {
  return Array.from({ length: taps }, (_, i) => ({
    scenario: `card-testing burst, tap ${i + 1}/${taps}`,
    band,
    attempt: { merchantId: 'm-gift-cards', amountMinor: 99n },
    // Stopped from the first tap (step-up or decline); by the last, declined outright.
    expect: i === taps - 1 ? ('DECLINED' as const) : ['CHALLENGE_REQUIRED' as const, 'DECLINED' as const],
    ...(i === taps - 1 ? { reason: DeclineReason.DECLINE_REASON_RISK } : {}),
  }));
}

/**
 * About twenty payments: everyday taps in two rounds a minute apart (people do not tap one band
 * three times a minute, and the risk model knows it), then each way a payment must not go
 * through without the phone, or at all.
 */
function script(): Array<Step | 'pause'> {
  return [
    everyday(0, 'm-coffee-lab', 450),
    everyday(1, 'm-fruit-stall', 1290),
    { scenario: 'more than the wallet holds', band: 2, attempt: { merchantId: 'm-electronics', amountMinor: 1_200n }, expect: 'DECLINED', reason: DeclineReason.DECLINE_REASON_INSUFFICIENT_FUNDS },
    'pause',
    everyday(0, 'm-coffee-lab', 380),
    everyday(1, 'm-fruit-stall', 660),
    {
      scenario: 'wrist off: step-up on the phone',
      band: 2,
      before: async (clients, bands) => {
        await clients.registry.endSession({ idempotencyKey: randomUUID(), deviceId: bands[2]!.deviceId!, reason: SessionEndReason.SESSION_END_REASON_WRIST_OFF });
      },
      attempt: { merchantId: 'm-pharmacy', amountMinor: 1_150n },
      expect: 'CHALLENGE_REQUIRED',
    },
    {
      scenario: 'retry, same idempotency key',
      band: 0,
      attempt: (_bands, rows) => ({ merchantId: rows[0]!.merchant, amountMinor: 450n, tap: rows[0]!.tap, idempotencyKey: rows[0]!.idempotencyKey }),
      expect: 'APPROVED',
      samePaymentAs: 0,
    },
    {
      scenario: 'copied payment (replayed tap)',
      band: 1,
      attempt: (bands) => ({ merchantId: 'm-fruit-stall', amountMinor: 660n, tap: bands[1]!.replayLastTap() }),
      expect: 'DECLINED',
      reason: DeclineReason.DECLINE_REASON_REPLAY,
    },
    {
      scenario: 'terminal alters the amount',
      band: 1,
      attempt: (bands) => ({
        merchantId: 'm-fruit-stall',
        amountMinor: 500n,
        presentedAmountMinor: 50_000n,
        tap: bands[1]!.tap({ amountMinor: 500n, currency: 'EUR', merchantId: 'm-fruit-stall', terminalNonce: terminalNonce() }),
      }),
      expect: 'DECLINED',
      reason: DeclineReason.DECLINE_REASON_CRYPTOGRAM_INVALID,
    },
    ...cardTestingBurst(0, 10),
    {
      scenario: 'band reported lost',
      band: 0,
      before: async (clients, bands) => {
        await clients.registry.reportLost({ idempotencyKey: randomUUID(), deviceId: bands[0]!.deviceId! });
      },
      attempt: { merchantId: 'm-coffee-lab', amountMinor: 520n },
      expect: 'DECLINED',
    },
  ];
}

/** Pairs three bands, funds their wallets and runs the script; every row says whether it went as expected. */
export async function runDemo(clients: MeshClients, onPause?: (ms: number) => void, runId = randomUUID().slice(0, 8)): Promise<{ rows: DemoRow[]; bands: Band[]; accounts: string[] }> {
  const accounts = [0, 1, 2].map((i) => `acct-demo-${runId}-${i + 1}`);
  const funding = [20_000n, 20_000n, 1_000n];
  const pauseMs = Number(process.env.DEMO_PAUSE_MS ?? 61_000);
  const bands: Band[] = [];
  for (const [i, account] of accounts.entries()) bands.push(await onboardBand(clients, account, funding[i]!));
  const rows: DemoRow[] = [];
  for (const step of script()) {
    if (step === 'pause') {
      onPause?.(pauseMs);
      await new Promise((r) => setTimeout(r, pauseMs));
      continue;
    }
    await step.before?.(clients, bands);
    const attempt = typeof step.attempt === 'function' ? step.attempt(bands, rows) : step.attempt;
    const result = await pay(clients, bands[step.band]!, attempt);
    const r = result.response;
    const outcome = PaymentStatus[r.status].replace('PAYMENT_STATUS_', '');
    const declineReason = DeclineReason[r.declineReason].replace('DECLINE_REASON_', '').toLowerCase();
    const detail =
      r.status === PaymentStatus.PAYMENT_STATUS_DECLINED
        ? r.declineReason === DeclineReason.DECLINE_REASON_RISK
          ? `risk: ${r.riskReasons.slice(0, 2).join(', ')}`
          : declineReason
        : r.riskReasons.length
          ? r.riskReasons.slice(0, 2).join(', ')
          : `risk ${r.riskScore}`;
    rows.push({
      n: rows.length + 1,
      scenario: step.scenario,
      band: step.band + 1,
      merchant: attempt.merchantId,
      amount: formatAmount({ amountMinor: attempt.presentedAmountMinor ?? attempt.amountMinor, currency: attempt.currency ?? 'EUR' }),
      expected: [step.expect].flat().join(' or '),
      outcome,
      detail,
      ms: result.ms,
      traceId: result.traceId,
      paymentId: r.paymentId,
      ok:
        [step.expect].flat().includes(outcome as Expected) &&
        (step.reason === undefined || r.declineReason === step.reason) &&
        (step.samePaymentAs === undefined || r.paymentId === rows[step.samePaymentAs]?.paymentId),
      idempotencyKey: result.idempotencyKey,
      tap: result.tap,
    });
  }
  return { rows, bands, accounts };
}

export function renderDemo(rows: DemoRow[]): string {
  const table = new Table({ head: ['#', 'scenario', 'band', 'merchant', 'amount', 'outcome', 'reason / risk', 'ms', 'trace id'], style: { head: [], border: [] } });
  for (const r of rows) table.push([r.n, r.scenario, r.band, r.merchant, r.amount, `${r.ok ? '✓' : '✗ expected ' + r.expected + ', got'} ${r.outcome}`, r.detail, r.ms.toFixed(1), r.traceId]);
  const ms = rows.map((r) => r.ms).sort((a, b) => a - b);
  const pct = (p: number) => ms[Math.min(ms.length - 1, Math.floor((p / 100) * ms.length))]!.toFixed(1);
  const count = (o: string) => rows.filter((r) => r.outcome === o).length;
  return `${table.toString()}\n${rows.length} payments: ${count('APPROVED')} approved, ${count('CHALLENGE_REQUIRED')} step-up, ${count('DECLINED')} declined; latency p50 ${pct(50)} ms, p95 ${pct(95)} ms, max ${pct(100)} ms; ${rows.filter((r) => !r.ok).length} unexpected`;
}

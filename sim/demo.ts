import { randomUUID } from 'node:crypto';
import { status as GrpcStatus } from '@grpc/grpc-js';
import Table from 'cli-table3';
import { SessionEndReason } from '../gen/wristpay/device_registry/v1/device_registry';
import { DeclineReason, PaymentStatus, type AuthorizeResponse, type PaymentChallenge, type QrPayload } from '../gen/wristpay/gateway/v1/gateway';
import { AlertKind, type Alert } from '../gen/wristpay/alerts/v1/alerts';
import { DisputeOutcome } from '../gen/wristpay/settlement/v1/settlement';
import { formatAmount } from '../platform/money';
import { AlertFollower, stepUpAlert } from './alert-feed';
import type { Band } from './band';
import type { DemoClients } from './clients';
import { isUndecided, merchantIdentity, terminalNonce, watchPayment } from './terminal';
import { confirmStepUp, onboardBand, pay, qrCode, type PaymentAttempt } from './wallet';

/** REFUSED: the gateway answered with a gRPC error status (see `refusal`), not a payment. */
type Expected = 'APPROVED' | 'DECLINED' | 'CHALLENGE_REQUIRED' | 'REFUSED';

/** What a step's hooks may use. */
interface DemoContext {
  /** The merchants' terminals, the phone-facing wallet backend and the back office, each with its identity. */
  clients: DemoClients;
  /** Voucher codes merchants issued during the run, by a name the script gives them. */
  vouchers: Map<string, string>;
  /** Each band's account. */
  accounts: string[];
}

interface Step {
  scenario: string;
  band: number;
  attempt: PaymentAttempt | ((bands: Band[], previous: DemoRow[], ctx: DemoContext) => PaymentAttempt);
  expect: Expected | Expected[];
  /** A retry: the answer must carry the payment id of this earlier step (0-based). */
  samePaymentAs?: number;
  /** For a decline, the reason it must carry. */
  reason?: DeclineReason;
  /** For a refusal, the gRPC status it must carry. */
  refusal?: GrpcStatus;
  /** For an approval with a voucher, what the voucher must take off. */
  discountMinor?: bigint;
  /**
   * For a step-up, what the phone does: `confirm` at once (the band signs the challenge from the
   * alert feed; the terminal's WatchPayment must see it end APPROVED), or `leave` it unanswered
   * (once the script is done, GetPayment must say DECLINED, challenge_expired).
   */
  stepUp?: 'confirm' | 'leave';
  /** Something the wallet (or the merchant) does first (wrist-off, report lost, set limits, issue a voucher). */
  before?: (bands: Band[], ctx: DemoContext) => Promise<void>;
  /** A name later steps (and the escrow section) find this payment by. */
  key?: string;
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
  tap?: ReturnType<Band['tap']> | undefined;
  qr?: QrPayload | undefined;
  key?: string | undefined;
  status: PaymentStatus;
  holdId: string;
  amountMinor: bigint;
  currency: string;
  /** What was held on the buyer's wallet (the amount less a voucher's discount). */
  chargedMinor: bigint;
  /** The step-up Authorize answered with CHALLENGE_REQUIRED. */
  challenge?: PaymentChallenge | undefined;
  /** How a step-up ended (the terminal's watch, or GetPayment), once the phone answered or did not. */
  then?: string | undefined;
}

/** The row of the payment a step named `key`; throws when the script has none (a bug in the script). */
function rowByKey(rows: DemoRow[], key: string): DemoRow {
  const row = rows.find((r) => r.key === key);
  if (!row) throw new Error(`demo script: no payment named ${key}`);
  return row;
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

/** The band owner sets band 4's limits in the wallet app (SetBandLimits, the wallet's identity). */
const setLimits = (band: number, perPaymentMinor: bigint, perDayMinor: bigint) => async (bands: Band[], ctx: DemoContext) => {
  await ctx.clients.wallet.settlement.setBandLimits({
    idempotencyKey: randomUUID(),
    deviceId: bands[band]!.deviceId!,
    accountId: ctx.accounts[band]!,
    perPayment: { amountMinor: perPaymentMinor, currency: 'EUR' },
    perDay: { amountMinor: perDayMinor, currency: 'EUR' },
    frozen: false,
    reason: 'set by the owner in the wallet app',
    expectedVersion: 0n,
  });
};

/** A merchant issues a single-use percentage voucher through the gateway; the script finds its code by `name`. */
const issueVoucher = (merchantId: string, percentOff: number, name: string) => async (_bands: Band[], ctx: DemoContext) => {
  const { voucher } = await ctx.clients.merchants.of(merchantId).issueVoucher({
    idempotencyKey: randomUUID(),
    merchantId,
    code: '',
    discount: { $case: 'percentOff', value: percentOff },
    expiresAt: new Date(Date.now() + 24 * 3_600_000),
    maxUses: 1,
  });
  ctx.vouchers.set(name, voucher!.code);
};

const voucherCode = (ctx: DemoContext, name: string): string => {
  const code = ctx.vouchers.get(name);
  if (!code) throw new Error(`demo script: no voucher named ${name}`);
  return code;
};

/** The wallet app hears the band leave the wrist: its live session ends (the phone must confirm payments now). */
const wristOff = (band: number) => async (bands: Band[], ctx: DemoContext) => {
  await ctx.clients.wallet.registry.endSession({ idempotencyKey: randomUUID(), deviceId: bands[band]!.deviceId!, reason: SessionEndReason.SESSION_END_REASON_WRIST_OFF });
};

/**
 * About twenty-five payments: everyday taps in two rounds a minute apart (people do not tap one band
 * three times a minute, and the risk model knows it; a QR payment with the band's offline code
 * counts as one of band 2's two in the second round), then each way a payment must not go
 * through without the phone, or at all. Band 2's payments named `delivered` and `qr` are the
 * ones the escrow section captures. Band 3 comes off the wrist in the first round: its step-up
 * then is left unanswered (the challenge expires during the pause), the one in the second round
 * (named `stepped-up`, which its merchant later voids) is confirmed on the band. Band 4's owner
 * has set spending limits (25.00 a payment, 30.00 a day): it hits the daily limit in the first
 * round; in the second it pays with a merchant's single-use voucher (the payment named
 * `voucher`), the voucher is refused the second time, and a payment over the per-payment limit
 * is declined.
 */
function script(): Array<Step | 'pause'> {
  return [
    everyday(0, 'm-coffee-lab', 450),
    { ...everyday(1, 'm-fruit-stall', 1290), key: 'delivered' },
    { scenario: 'more than the wallet holds', band: 2, attempt: { merchantId: 'm-electronics', amountMinor: 1_200n }, expect: 'DECLINED', reason: DeclineReason.DECLINE_REASON_INSUFFICIENT_FUNDS },
    {
      scenario: 'wrist off, the phone does not answer',
      band: 2,
      before: wristOff(2),
      attempt: { merchantId: 'm-pharmacy', amountMinor: 720n },
      expect: 'CHALLENGE_REQUIRED',
      stepUp: 'leave',
    },
    { scenario: 'owner set limits: 25.00/payment, 30.00/day', band: 3, before: setLimits(3, 2_500n, 3_000n), attempt: { merchantId: 'm-bakery', amountMinor: 1_500n }, expect: 'APPROVED' },
    { scenario: 'over the daily limit (15.00 of 30.00 spent)', band: 3, attempt: { merchantId: 'm-bakery', amountMinor: 1_800n }, expect: 'DECLINED', reason: DeclineReason.DECLINE_REASON_OVER_DAILY_LIMIT },
    'pause',
    everyday(0, 'm-coffee-lab', 380),
    // Band 2's first payment this round: a QR code with the band's offline code (TOTP), no tap.
    {
      scenario: 'QR code, band offline code',
      band: 1,
      key: 'qr',
      attempt: (bands) => ({ merchantId: 'm-fruit-stall', amountMinor: 840n, qr: qrCode(bands[1]!) }),
      expect: 'APPROVED',
    },
    everyday(1, 'm-fruit-stall', 660),
    {
      // Band 3 is still off the wrist since the first round.
      scenario: 'wrist off: step-up on the phone',
      band: 2,
      key: 'stepped-up',
      attempt: { merchantId: 'm-pharmacy', amountMinor: 890n },
      expect: 'CHALLENGE_REQUIRED',
      stepUp: 'confirm',
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
      // After band 2's last payment that risk scores, so this refusal cannot step up a later one.
      scenario: 'copied QR code (shown again)',
      band: 1,
      attempt: (_bands, rows) => ({ merchantId: 'm-fruit-stall', amountMinor: 840n, qr: rowByKey(rows, 'qr').qr! }),
      expect: 'DECLINED',
      reason: DeclineReason.DECLINE_REASON_OFFLINE_CODE_INVALID,
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
    {
      scenario: 'merchant voucher: 20% off, single use',
      band: 3,
      key: 'voucher',
      before: issueVoucher('m-bakery', 20, 'bakery'),
      attempt: (_bands, _rows, ctx) => ({ merchantId: 'm-bakery', amountMinor: 1_000n, voucherCode: voucherCode(ctx, 'bakery') }),
      expect: 'APPROVED',
      discountMinor: 200n,
    },
    {
      scenario: 'the same voucher a second time',
      band: 3,
      attempt: (_bands, _rows, ctx) => ({ merchantId: 'm-bakery', amountMinor: 1_000n, voucherCode: voucherCode(ctx, 'bakery') }),
      expect: 'REFUSED',
      refusal: GrpcStatus.FAILED_PRECONDITION,
    },
    { scenario: 'over the per-payment limit (25.00)', band: 3, attempt: { merchantId: 'm-bakery', amountMinor: 2_600n }, expect: 'DECLINED', reason: DeclineReason.DECLINE_REASON_OVER_PAYMENT_LIMIT },
    ...cardTestingBurst(0, 10),
    {
      scenario: 'band reported lost',
      band: 0,
      before: async (bands, ctx) => {
        await ctx.clients.wallet.registry.reportLost({ idempotencyKey: randomUUID(), deviceId: bands[0]!.deviceId! });
      },
      attempt: { merchantId: 'm-coffee-lab', amountMinor: 520n },
      expect: 'DECLINED',
    },
  ];
}

/** The account whose alert feed the demo follows: band 4's (limits, a voucher, a capture). */
export const FOLLOWED_BAND = 3;

const statusName = (status: PaymentStatus): string => PaymentStatus[status].replace('PAYMENT_STATUS_', '');
const reasonName = (reason: DeclineReason): string => DeclineReason[reason].replace('DECLINE_REASON_', '').toLowerCase();

/** What a step's payment answered: a payment, or the gRPC status a refusal carried. */
function describeRow(r: AuthorizeResponse): { outcome: string; detail: string } {
  const outcome = statusName(r.status);
  const discount = r.discount?.amountMinor ?? 0n;
  const detail =
    r.status === PaymentStatus.PAYMENT_STATUS_DECLINED
      ? r.declineReason === DeclineReason.DECLINE_REASON_RISK
        ? `risk: ${r.riskReasons.slice(0, 2).join(', ')}`
        : reasonName(r.declineReason)
      : discount > 0n
        ? `voucher -${money(discount, r.discount!.currency)}, charged ${money(r.charged!.amountMinor, r.charged!.currency)}`
        : r.riskReasons.length
          ? r.riskReasons.slice(0, 2).join(', ')
          : `risk ${r.riskScore}`;
  return { outcome, detail };
}

/** What a step-up's ending changes on its row. */
type StepUpEnding = Pick<DemoRow, 'then' | 'detail' | 'ok'> & Partial<Pick<DemoRow, 'status' | 'holdId' | 'chargedMinor'>>;

/**
 * A step-up confirmed on the band, as it happens at the counter: the terminal follows the payment
 * (WatchPayment) while the phone finds the payment's CHALLENGED alert on the account's feed, the
 * band signs the challenge and the wallet backend sends it (ConfirmPayment, as `wallet`). The
 * alert must carry the challenge Authorize answered with, and the watch must end APPROVED with a hold.
 */
async function confirmOnTheBand(row: DemoRow, band: Band, accountId: string, ctx: DemoContext, onStepUp?: (alert: Alert) => void): Promise<StepUpEnding> {
  const stop = new AbortController();
  const watch = watchPayment(ctx.clients.merchants.of(row.merchant), row.paymentId, { signal: stop.signal });
  // Awaited below; if the phone's side fails first, the watch's own failure must not go unhandled.
  watch.catch(() => undefined);
  try {
    const alert = await stepUpAlert(ctx.clients.wallet.alerts, accountId, row.paymentId);
    onStepUp?.(alert);
    await confirmStepUp(ctx.clients.wallet.gateway, band, { paymentId: row.paymentId, accountId, challengeId: alert.stepUp.challengeId, nonce: alert.stepUp.nonce });
    const { statuses, payment } = await watch;
    return {
      then: statusName(payment.status),
      detail: `alert #${alert.sequence} signed on the band; watched ${statuses.map(statusName).join(' → ')}`,
      ok: row.ok && alert.stepUp.challengeId === row.challenge?.challengeId && payment.status === PaymentStatus.PAYMENT_STATUS_APPROVED && payment.holdId !== '',
      status: payment.status,
      holdId: payment.holdId,
      chargedMinor: payment.charged?.amountMinor ?? row.chargedMinor,
    };
  } catch (err) {
    return { then: 'ERROR', detail: describeError(err), ok: false };
  } finally {
    stop.abort();
  }
}

/**
 * A step-up nobody answered, once the script is done: the terminal asks GetPayment, which must say
 * DECLINED (challenge_expired). Its challenge normally expired during the pause; with a shorter
 * DEMO_PAUSE_MS the terminal first waits (WatchPayment) for the gateway to expire it.
 */
async function leftToExpire(row: DemoRow, ctx: DemoContext, onWait?: (ms: number) => void): Promise<StepUpEnding> {
  const terminal = ctx.clients.merchants.of(row.merchant);
  try {
    let { payment } = await terminal.getPayment({ paymentId: row.paymentId, merchantId: '' });
    if (payment && isUndecided(payment.status)) {
      const left = Math.max(0, (row.challenge?.expiresAt?.getTime() ?? Date.now()) - Date.now());
      onWait?.(left);
      await watchPayment(terminal, row.paymentId, { timeoutMs: left + 10_000 });
      ({ payment } = await terminal.getPayment({ paymentId: row.paymentId, merchantId: '' }));
    }
    return {
      then: statusName(payment!.status),
      detail: `not confirmed; GetPayment: ${statusName(payment!.status)}, ${reasonName(payment!.declineReason)}`,
      ok: row.ok && payment!.status === PaymentStatus.PAYMENT_STATUS_DECLINED && payment!.declineReason === DeclineReason.DECLINE_REASON_CHALLENGE_EXPIRED,
      status: payment!.status,
    };
  } catch (err) {
    return { then: 'ERROR', detail: describeError(err), ok: false };
  }
}

export interface DemoHooks {
  onPause?: (ms: number) => void;
  onResume?: (after: bigint) => void;
  /** Each alert of the followed feed (band 4's account) as it streams. */
  onAlert?: (alert: Alert) => void;
  /** The CHALLENGED alert the phone answers, as it reads it. */
  onStepUp?: (alert: Alert) => void;
  /** The demo waits `ms` for an unanswered step-up to expire (only when the pause was shorter than the challenge). */
  onExpiryWait?: (ms: number) => void;
}

/**
 * Pairs four bands, funds their wallets and runs the script; every row says whether it went as
 * expected. The wallet side (bands, top-ups, limits, alerts, step-ups) goes as `wallet`, each
 * terminal as its merchant. The alert feed of band 4's account is followed from the start
 * (`onAlert` sees each alert as it streams); the phone drops the connection during the pause
 * and resumes from the last alert it saw. A step-up left unanswered is looked up at the end.
 */
export async function runDemo(clients: DemoClients, hooks: DemoHooks = {}, runId = randomUUID().slice(0, 8)): Promise<{ rows: DemoRow[]; bands: Band[]; accounts: string[]; feed: AlertFollower }> {
  const accounts = [0, 1, 2, 3].map((i) => `acct-demo-${runId}-${i + 1}`);
  const funding = [20_000n, 20_000n, 1_000n, 10_000n];
  const pauseMs = Number(process.env.DEMO_PAUSE_MS ?? 61_000);
  const bands: Band[] = [];
  for (const [i, account] of accounts.entries()) bands.push(await onboardBand(clients.wallet, account, funding[i]!));
  const feed = new AlertFollower(clients.wallet.alerts, accounts[FOLLOWED_BAND]!, (alert) => hooks.onAlert?.(alert));
  feed.connect();
  const ctx: DemoContext = { clients, vouchers: new Map(), accounts };
  const rows: DemoRow[] = [];
  const unanswered: DemoRow[] = [];
  for (const step of script()) {
    if (step === 'pause') {
      hooks.onPause?.(pauseMs);
      feed.disconnect();
      await new Promise((r) => setTimeout(r, pauseMs));
      hooks.onResume?.(feed.last);
      feed.connect();
      continue;
    }
    await step.before?.(bands, ctx);
    const attempt = typeof step.attempt === 'function' ? step.attempt(bands, rows, ctx) : step.attempt;
    const started = process.hrtime.bigint();
    let row: Pick<DemoRow, 'outcome' | 'detail' | 'ms' | 'traceId' | 'paymentId' | 'idempotencyKey' | 'tap' | 'status' | 'holdId' | 'chargedMinor' | 'challenge'> & { ok: boolean };
    try {
      const result = await pay({ gateway: clients.merchants.of(attempt.merchantId) }, bands[step.band]!, attempt);
      const r = result.response;
      const { outcome, detail } = describeRow(r);
      row = {
        outcome,
        detail,
        ms: result.ms,
        traceId: result.traceId,
        paymentId: r.paymentId,
        idempotencyKey: result.idempotencyKey,
        tap: result.tap,
        status: r.status,
        holdId: r.holdId,
        chargedMinor: r.charged?.amountMinor ?? attempt.amountMinor,
        challenge: r.challenge,
        ok:
          [step.expect].flat().includes(outcome as Expected) &&
          (step.reason === undefined || r.declineReason === step.reason) &&
          (step.samePaymentAs === undefined || r.paymentId === rows[step.samePaymentAs]?.paymentId) &&
          (step.discountMinor === undefined || r.discount?.amountMinor === step.discountMinor) &&
          // A step-up names the challenge the band is to sign.
          (r.status !== PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED || Boolean(r.challenge?.challengeId && r.challenge.expiresAt)),
      };
    } catch (err) {
      const code = (err as { code?: number }).code;
      row = {
        outcome: 'REFUSED',
        detail: describeError(err),
        ms: Number(process.hrtime.bigint() - started) / 1e6,
        traceId: '',
        paymentId: '',
        idempotencyKey: '',
        tap: undefined,
        status: PaymentStatus.PAYMENT_STATUS_UNSPECIFIED,
        holdId: '',
        chargedMinor: 0n,
        challenge: undefined,
        ok: [step.expect].flat().includes('REFUSED') && (step.refusal === undefined || code === step.refusal),
      };
    }
    const ends = { confirm: 'APPROVED', leave: 'DECLINED' } as const;
    const done: DemoRow = {
      ...row,
      n: rows.length + 1,
      scenario: step.scenario,
      band: step.band + 1,
      merchant: attempt.merchantId,
      amount: formatAmount({ amountMinor: attempt.presentedAmountMinor ?? attempt.amountMinor, currency: attempt.currency ?? 'EUR' }),
      expected:
        [step.expect].flat().join(' or ') +
        (step.reason !== undefined ? ` (${reasonName(step.reason)})` : '') +
        (step.refusal !== undefined ? ` (${GrpcStatus[step.refusal]})` : '') +
        (step.stepUp ? ` → ${ends[step.stepUp]}` : ''),
      qr: attempt.qr,
      key: step.key,
      amountMinor: attempt.amountMinor,
      currency: attempt.currency ?? 'EUR',
    };
    rows.push(done);
    // (A step-up step whose payment was not stepped up is already a row gone wrong.)
    if (done.status === PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED && step.stepUp === 'confirm') {
      Object.assign(done, await confirmOnTheBand(done, bands[step.band]!, accounts[step.band]!, ctx, hooks.onStepUp));
    }
    if (done.status === PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED && step.stepUp === 'leave') unanswered.push(done);
  }
  for (const row of unanswered) Object.assign(row, await leftToExpire(row, ctx, hooks.onExpiryWait));
  return { rows, bands, accounts, feed };
}

export function renderDemo(rows: DemoRow[]): string {
  const table = new Table({ head: ['#', 'scenario', 'band', 'merchant', 'amount', 'outcome', 'reason / risk', 'ms', 'trace id'], style: { head: [], border: [] } });
  for (const r of rows) {
    const outcome = `${r.outcome}${r.then ? ` → ${r.then}` : ''}`;
    table.push([r.n, r.scenario, r.band, r.merchant, r.amount, `${r.ok ? '✓' : '✗ expected ' + r.expected + ', got'} ${outcome}`, r.detail, r.ms.toFixed(1), r.traceId]);
  }
  const ms = rows.map((r) => r.ms).sort((a, b) => a - b);
  const pct = (p: number) => ms[Math.min(ms.length - 1, Math.floor((p / 100) * ms.length))]!.toFixed(1);
  const count = (o: string) => rows.filter((r) => r.outcome === o).length;
  const stepUps = rows.filter((r) => r.outcome === 'CHALLENGE_REQUIRED');
  const ended = (then: string) => stepUps.filter((r) => r.then === then).length;
  const answered = `${ended('APPROVED')} confirmed on the band → approved, ${ended('DECLINED')} not answered → declined`;
  return `${table.toString()}\n${rows.length} payments: ${count('APPROVED')} approved, ${stepUps.length} step-up (${answered}), ${count('DECLINED')} declined, ${count('REFUSED')} refused; latency p50 ${pct(50)} ms, p95 ${pct(95)} ms, max ${pct(100)} ms; ${rows.filter((r) => !r.ok).length} unexpected`;
}

export interface EscrowRow {
  n: number;
  step: string;
  payment: string;
  call: string;
  expected: string;
  outcome: string;
  detail: string;
  ms: number;
  ok: boolean;
}

/** What one escrow step saw: its outcome, a readable detail, and whether the ledger moved as it should. */
interface StepResult {
  outcome: string;
  detail: string;
  ok: boolean;
}

/** A gRPC error as `CODE: message`; anything else as its message. */
function describeError(err: unknown): string {
  const e = err as { code?: number; details?: string; message?: string };
  if (typeof e.code === 'number' && GrpcStatus[e.code] !== undefined) return `${GrpcStatus[e.code]}: ${e.details || e.message}`;
  return e.message ?? String(err);
}

const money = (amountMinor: bigint, currency = 'EUR') => formatAmount({ amountMinor, currency });
const signed = (amountMinor: bigint, currency = 'EUR') => `${amountMinor >= 0n ? '+' : ''}${money(amountMinor, currency)}`;

/** YYYY-MM-DD in UTC, the business date RunPayouts takes. */
export function utcDate(at = new Date()): string {
  return at.toISOString().slice(0, 10);
}

/** The merchant that looks at another merchant's payment in the refusal steps. */
const OTHER_MERCHANT = 'm-coffee-lab';

/**
 * What happens to approved payments afterwards, each merchant call as that merchant. Another
 * merchant cannot see or capture band 2's payment (NOT_FOUND, as for a payment that does not
 * exist), nor act in its merchant's name (PERMISSION_DENIED). Its merchant captures two of band
 * 2's payments into escrow; one is delivered (escrow released to the merchant, confirmed by the
 * buyer's wallet), the other disputed by the buyer and refunded to the buyer by the back office;
 * the voucher payment is captured; the pharmacy voids band 3's step-up payment before capture
 * (the buyer's hold is released at once); then the back office runs the day's payouts. Every step
 * checks the ledger balances it should (or must not) move, and a failed call is a row of its own
 * (✗), never an exception.
 */
export async function runEscrow(clients: DemoClients, demo: { rows: DemoRow[]; accounts: string[] }): Promise<{ rows: EscrowRow[]; report: string }> {
  const rows: EscrowRow[] = [];
  const delivered = rowByKey(demo.rows, 'delivered');
  const disputed = rowByKey(demo.rows, 'qr');
  const merchant = delivered.merchant;
  const escrowAccount = `merchant:${merchant}:escrow`;
  const payableAccount = `merchant:${merchant}:payable`;
  const { wallet, backoffice } = clients;
  const terminal = (merchantId: string) => clients.merchants.of(merchantId);
  // The demo checks the ledger as the back office would.
  const balance = async (accountId: string, currency = 'EUR') => backoffice.settlement.getBalance({ accountId, currency });
  const posted = async (accountId: string, currency = 'EUR') => (await balance(accountId, currency)).posted?.amountMinor ?? 0n;
  const label = (p: DemoRow) => `#${p.n} ${p.amount} ${p.merchant}`;
  /** The hold of an approved payment; a payment that was not approved stops the step with a clear message. */
  const holdOf = (p: DemoRow) => {
    if (p.status !== PaymentStatus.PAYMENT_STATUS_APPROVED || !p.holdId) throw new Error(`payment #${p.n} was not approved (${p.outcome}): nothing to move`);
    return p.holdId;
  };

  async function step(name: string, payment: string, call: string, expected: string, run: () => Promise<StepResult>): Promise<void> {
    const started = process.hrtime.bigint();
    let result: StepResult;
    try {
      result = await run();
    } catch (err) {
      result = { outcome: 'ERROR', detail: describeError(err), ok: false };
    }
    // The call answered as hoped but the balances did not move by the payment's amount.
    if (!result.ok && expected.includes(result.outcome)) result = { ...result, detail: `${result.detail}: not what the ledger should show` };
    rows.push({ n: rows.length + 1, step: name, payment, call, expected, ...result, ms: Number(process.hrtime.bigint() - started) / 1e6 });
  }

  /**
   * A call of another merchant's that must be refused with `code` and leave the payment's escrow
   * as it was: REFUSED when it was, otherwise what the call answered.
   */
  const refusedCall = async (code: GrpcStatus, call: () => Promise<{ payment?: { status: PaymentStatus } | undefined }>): Promise<StepResult> => {
    const before = await posted(escrowAccount, delivered.currency);
    let outcome: string;
    let detail: string;
    let refusal: number | undefined;
    try {
      const { payment } = await call();
      outcome = payment ? statusName(payment.status) : 'OK';
      detail = 'answered: another merchant saw the payment';
    } catch (err) {
      refusal = (err as { code?: number }).code;
      outcome = 'REFUSED';
      detail = describeError(err);
    }
    const moved = (await posted(escrowAccount, delivered.currency)) - before;
    return { outcome, detail: moved === 0n ? detail : `${detail}; ${escrowAccount} ${signed(moved, delivered.currency)}`, ok: refusal === code && moved === 0n };
  };
  const other = terminal(OTHER_MERCHANT);
  const as = (call: string) => `${call} as ${merchantIdentity(OTHER_MERCHANT)}`;
  await step("another merchant's terminal looks it up", label(delivered), as('gateway.GetPayment'), 'REFUSED', () =>
    refusedCall(GrpcStatus.NOT_FOUND, () => other.getPayment({ paymentId: delivered.paymentId, merchantId: '' })),
  );
  await step("another merchant's terminal captures it", label(delivered), as('gateway.Capture'), 'REFUSED', () =>
    refusedCall(GrpcStatus.NOT_FOUND, () => other.capture({ idempotencyKey: randomUUID(), paymentId: delivered.paymentId, merchantId: '', amount: undefined })),
  );
  await step(`… claiming to be ${merchant}`, label(delivered), as('gateway.Capture'), 'REFUSED', () =>
    refusedCall(GrpcStatus.PERMISSION_DENIED, () => other.capture({ idempotencyKey: randomUUID(), paymentId: delivered.paymentId, merchantId: merchant, amount: undefined })),
  );

  for (const p of [delivered, disputed]) {
    await step('capture into escrow', label(p), 'gateway.Capture', 'CAPTURED', async () => {
      holdOf(p);
      const before = await posted(escrowAccount, p.currency);
      const { payment } = await terminal(p.merchant).capture({ idempotencyKey: randomUUID(), paymentId: p.paymentId, merchantId: p.merchant, amount: undefined });
      const moved = (await posted(escrowAccount, p.currency)) - before;
      const outcome = statusName(payment!.status);
      return { outcome, detail: `${escrowAccount} ${signed(moved, p.currency)}`, ok: outcome === 'CAPTURED' && moved === p.amountMinor };
    });
  }

  await step('goods arrived: delivery confirmed', label(delivered), 'settlement.ConfirmDelivery', 'RELEASED', async () => {
    const holdId = holdOf(delivered);
    const [escrowBefore, payableBefore] = [await posted(escrowAccount), await posted(payableAccount)];
    const { transfer } = await wallet.settlement.confirmDelivery({ idempotencyKey: randomUUID(), holdId });
    const [escrowMoved, payableMoved] = [(await posted(escrowAccount)) - escrowBefore, (await posted(payableAccount)) - payableBefore];
    return {
      outcome: 'RELEASED',
      detail: `escrow ${signed(escrowMoved)} → ${payableAccount} ${signed(payableMoved)} (${transfer?.kind ?? 'transfer'})`,
      ok: escrowMoved === -delivered.amountMinor && payableMoved === delivered.amountMinor,
    };
  });

  let disputeId = '';
  await step('buyer opens a dispute', label(disputed), 'settlement.OpenDispute', 'FROZEN', async () => {
    const holdId = holdOf(disputed);
    const before = await posted(escrowAccount);
    const opened = await wallet.settlement.openDispute({ idempotencyKey: randomUUID(), holdId, reason: 'goods not received' });
    disputeId = opened.disputeId;
    const moved = (await posted(escrowAccount)) - before;
    return { outcome: 'FROZEN', detail: `dispute ${disputeId.slice(0, 8)}…, ${disputed.amount} stays in escrow`, ok: Boolean(disputeId) && moved === 0n };
  });

  await step('dispute resolved for the buyer', label(disputed), 'settlement.ResolveDispute', 'REFUNDED', async () => {
    if (!disputeId) throw new Error('no dispute was opened');
    const wallet = demo.accounts[disputed.band - 1]!;
    const [escrowBefore, walletBefore] = [await posted(escrowAccount), await posted(wallet)];
    await backoffice.settlement.resolveDispute({ idempotencyKey: randomUUID(), disputeId, outcome: DisputeOutcome.DISPUTE_OUTCOME_REFUND_BUYER });
    const [escrowMoved, walletMoved] = [(await posted(escrowAccount)) - escrowBefore, (await posted(wallet)) - walletBefore];
    return {
      outcome: 'REFUNDED',
      detail: `escrow ${signed(escrowMoved)} → buyer wallet ${signed(walletMoved)}`,
      ok: escrowMoved === -disputed.amountMinor && walletMoved === disputed.amountMinor,
    };
  });

  const voucher = demo.rows.find((r) => r.key === 'voucher');
  if (voucher) {
    const bakeryEscrow = `merchant:${voucher.merchant}:escrow`;
    const bakeryVouchers = `merchant:${voucher.merchant}:vouchers`;
    await step('capture the voucher payment', label(voucher), 'gateway.Capture', 'CAPTURED', async () => {
      holdOf(voucher);
      const [escrowBefore, vouchersBefore] = [await posted(bakeryEscrow), await posted(bakeryVouchers)];
      const { payment } = await terminal(voucher.merchant).capture({ idempotencyKey: randomUUID(), paymentId: voucher.paymentId, merchantId: voucher.merchant, amount: undefined });
      const [escrowMoved, vouchersMoved] = [(await posted(bakeryEscrow)) - escrowBefore, (await posted(bakeryVouchers)) - vouchersBefore];
      const outcome = statusName(payment!.status);
      const discount = voucher.amountMinor - voucher.chargedMinor;
      return {
        outcome,
        detail: `${bakeryEscrow} ${signed(escrowMoved)}; the discount is the merchant's cost: ${bakeryVouchers} ${signed(vouchersMoved)}`,
        ok: outcome === 'CAPTURED' && discount > 0n && escrowMoved === voucher.chargedMinor && vouchersMoved === -discount,
      };
    });
  }

  const voided = rowByKey(demo.rows, 'stepped-up');
  await step('merchant voids before capture', label(voided), 'gateway.Void', 'VOIDED', async () => {
    holdOf(voided);
    const buyer = demo.accounts[voided.band - 1]!;
    const before = await balance(buyer, voided.currency);
    const { payment } = await terminal(voided.merchant).void({ idempotencyKey: randomUUID(), paymentId: voided.paymentId, merchantId: voided.merchant });
    const after = await balance(buyer, voided.currency);
    const held = (b: typeof before) => b.held?.amountMinor ?? 0n;
    const available = (b: typeof before) => b.available?.amountMinor ?? 0n;
    const outcome = statusName(payment!.status);
    return {
      outcome,
      detail: `buyer ${buyer} held ${money(held(before), voided.currency)} → ${money(held(after), voided.currency)}, available ${signed(available(after) - available(before), voided.currency)}`,
      ok: outcome === 'VOIDED' && held(before) - held(after) === voided.chargedMinor && available(after) - available(before) === voided.chargedMinor,
    };
  });

  let report = '';
  const date = utcDate();
  await step(`payouts for ${date}`, '—', 'settlement.RunPayouts', 'PAID OUT (or PAID EARLIER TODAY)', async () => {
    const before = await posted(payableAccount);
    const res = await backoffice.settlement.runPayouts({ idempotencyKey: randomUUID(), businessDate: date });
    report = res.report;
    const after = await posted(payableAccount);
    const mine = res.payouts.find((p) => p.merchantId === merchant && p.amount?.currency === delivered.currency);
    const count = `${res.payouts.length} payout${res.payouts.length === 1 ? '' : 's'}`;
    if (!mine) return { outcome: 'NO PAYOUT', detail: `${count}, none for ${merchant}`, ok: false };
    if (after === 0n) {
      return { outcome: 'PAID OUT', detail: `${count}; ${merchant} ${money(mine.amount!.amountMinor, delivered.currency)} (${mine.transfers} transfer${mine.transfers === 1 ? '' : 's'})`, ok: true };
    }
    // One payout per merchant, day and currency: an earlier run today already paid this merchant,
    // so what was released since waits on the payable for tomorrow's run.
    return {
      outcome: 'PAID EARLIER TODAY',
      detail: `${count}; ${merchant} was paid ${money(mine.amount!.amountMinor)} by an earlier run, ${money(after)} waits for tomorrow`,
      ok: after === before && after >= delivered.amountMinor,
    };
  });

  return { rows, report };
}

export function renderEscrow(rows: EscrowRow[], report: string): string {
  const table = new Table({ head: ['#', 'after authorization', 'payment', 'call', 'outcome', 'detail', 'ms'], style: { head: [], border: [] } });
  const mark = (r: EscrowRow) => (r.ok ? '✓' : r.expected.includes(r.outcome) ? '✗' : `✗ expected ${r.expected}, got`);
  for (const r of rows) table.push([r.n, r.step, r.payment, r.call, `${mark(r)} ${r.outcome}`, r.detail, r.ms.toFixed(1)]);
  const bad = rows.filter((r) => !r.ok).length;
  return `${table.toString()}\n${rows.length} steps after authorization; ${bad} unexpected${report ? `\n\n${report.trimEnd()}` : ''}`;
}

/** What band 4's account must see on its feed: the script's steps for that band, then the capture. */
const EXPECTED_FEED = [
  AlertKind.ALERT_KIND_LIMITS_CHANGED,
  AlertKind.ALERT_KIND_AUTHORIZED,
  AlertKind.ALERT_KIND_DECLINED,
  AlertKind.ALERT_KIND_AUTHORIZED,
  AlertKind.ALERT_KIND_DECLINED,
  AlertKind.ALERT_KIND_CAPTURED,
];

/** Waits (at most `timeoutMs`) for the followed feed to hold what the script made, stops it, and says whether it was right. */
export async function finishFeed(feed: AlertFollower, timeoutMs = 15_000): Promise<{ ok: boolean; summary: string }> {
  const name = (k: AlertKind) => AlertKind[k].replace('ALERT_KIND_', '');
  const arrived = await feed.waitFor((alerts) => alerts.length >= EXPECTED_FEED.length, timeoutMs);
  feed.stop();
  const kinds = feed.alerts.map((a) => a.kind);
  // The feed's order is the order alerts were stored; settlement's limits event and the gateway's
  // payment events come from different publishers, so only what arrived is compared, not its order
  // (the follower itself checks the sequences run 1, 2, 3, ... with no gap or duplicate).
  const sorted = (list: AlertKind[]) => [...list].sort((x, y) => x - y);
  const same = kinds.length === EXPECTED_FEED.length && sorted(kinds).every((k, i) => k === sorted(EXPECTED_FEED)[i]);
  const ok = arrived && same && feed.problems.length === 0;
  const summary = ok
    ? `alert feed of ${feed.accountId}: ${kinds.length} alerts streamed as #1-#${kinds.length} (resumed after a disconnect), no gap, no duplicate`
    : `alert feed of ${feed.accountId}: expected ${EXPECTED_FEED.map(name).join(', ')}; got ${kinds.map(name).join(', ') || 'nothing'}${feed.problems.length ? `; ${feed.problems.join('; ')}` : ''}`;
  return { ok, summary };
}

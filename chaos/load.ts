/**
 * The payment load: terminals (each the gateway as `merchant.<id>`) paying with bands the wallet
 * backend onboarded, as a real terminal does it: one idempotency key and one tap per payment,
 * the same request again on UNAVAILABLE or DEADLINE_EXCEEDED with backoff, anything else final.
 * Every request's final outcome and every attempt are recorded for the invariants and the
 * per-fault error rates.
 */
import { randomUUID } from 'node:crypto';
import { Metadata, status as Status, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { DeclineReason, GatewayServiceClient, MerchantAdminServiceClient, PaymentStatus, type AuthorizeRequest, type AuthorizeResponse, type CaptureRequest, type CaptureResponse } from '../gen/wristpay/gateway/v1/gateway';
import type { Band } from '../sim/band';
import { meshClients, type MeshAddresses } from '../sim/clients';
import { merchantIdentity, terminalNonce } from '../sim/terminal';
import { merchantLocation, onboardBand, unlock } from '../sim/wallet';

/** Codes a terminal retries with the same key (CONVENTIONS.md: only these, only idempotent calls). */
const RETRYABLE = new Set<number>([Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED]);

/** One call attempt as the terminal saw it. */
export interface Attempt {
  at: number;
  ms: number;
  /** 0 (OK) or the gRPC status code. */
  code: number;
  kind: 'authorize' | 'capture' | 'setup';
}

/** What a terminal finally got for one payment, after its retries. */
export interface RequestOutcome {
  kind: 'authorize' | 'capture';
  merchantId: string;
  idempotencyKey: string;
  /** Known once an answer came (authorize), or the captured payment (capture). */
  paymentId?: string;
  startedAt: number;
  endedAt: number;
  attempts: number;
  /** APPROVED / CHALLENGE_REQUIRED / DECLINED / CAPTURED, or undefined when it ended in an error. */
  status?: string;
  declineReason?: number;
  /** The final error's code name when there was no answer (retries exhausted, or a non-retryable code). */
  error?: string;
  errorMessage?: string;
  /** INTERNAL or UNKNOWN seen on any attempt: a bug, never an answer (CONVENTIONS.md). */
  internal?: string[];
}

export interface LoadOptions {
  addresses: MeshAddresses;
  certDir: string;
  credentials: (identity: string) => ChannelCredentials;
  merchants: string[];
  /** Bands to onboard; each pays one merchant at most twice a minute (risk's velocity rules). */
  bands: number;
  terminals: number;
  /** Payments started per second over all terminals (steady, so every fault meets the same load). */
  ratePerSecond: number;
  /** Stop starting payments after this many, or at `stopAt()` (whichever first). */
  maxPayments: number;
  /** A terminal gives up on a payment whose retries have run this long. */
  giveUpMs: number;
  /** Capture every n-th approved payment (same-key retries too). */
  captureEvery: number;
  /** Bands kept apart for recovery probes (they take turns, within the velocity rules). */
  probeBands: number;
  onProgress?: (line: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The terminal's own channels reconnect quickly after a gateway restart (grpc-js defaults start at 1 s and grow to 120 s). */
const TERMINAL_CHANNEL = { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1_000, 'grpc.min_reconnect_backoff_ms': 100 };

const codeName = (code: number) => Status[code] ?? String(code);

function unary<Req, Res>(fn: (req: Req, md: Metadata, opts: { deadline: Date }, cb: (err: ServiceError | null, res: Res) => void) => unknown, req: Req, deadlineMs: number): Promise<Res> {
  return new Promise((resolve, reject) => fn(req, new Metadata(), { deadline: new Date(Date.now() + deadlineMs) }, (err, res) => (err ? reject(err) : resolve(res))));
}

/**
 * Calls `once` until it answers, a non-retryable code ends it, or `giveUpMs` passed; backoff
 * 50 ms doubling to 1 s, as a terminal does. Each attempt goes to `attempts`.
 */
export async function withRetries<T>(kind: Attempt['kind'], attempts: Attempt[], giveUpMs: number, once: () => Promise<T>): Promise<{ value?: T; error?: ServiceError; tries: number; internal: string[] }> {
  const started = Date.now();
  const internal: string[] = [];
  for (let tries = 1; ; tries++) {
    const at = Date.now();
    try {
      const value = await once();
      attempts.push({ at, ms: Date.now() - at, code: 0, kind });
      return { value, tries, internal };
    } catch (err) {
      const e = err as ServiceError;
      const code = typeof e.code === 'number' ? e.code : Status.UNKNOWN;
      attempts.push({ at, ms: Date.now() - at, code, kind });
      if (code === Status.INTERNAL || code === Status.UNKNOWN) internal.push(`${codeName(code)}: ${String(e.details ?? e.message).slice(0, 200)}`);
      if (!RETRYABLE.has(code) || Date.now() - started > giveUpMs) return { error: e, tries, internal };
      await sleep(Math.min(1_000, 50 * 2 ** Math.min(tries - 1, 5)));
    }
  }
}

interface PayingBand {
  band: Band;
  accountId: string;
  merchantId: string;
  /** When it last paid (risk challenges a third payment within a minute). */
  paidAt: number[];
  unlockedAt: number;
  busy: boolean;
}

export interface Load {
  outcomes: RequestOutcome[];
  attempts: Attempt[];
  /** Starts the terminals; resolves when `stop()` was called (or maxPayments reached) and every payment in flight has ended. */
  run(): Promise<void>;
  /** No new payments from now on. */
  stop(): void;
  /** Payments started so far. */
  readonly started: number;
  /**
   * A recovery probe: a fresh band pays once (one key, one tap), retried every 100 ms with a
   * 1.5 s deadline until it gets an answer: when payments flow again, to within about 100 ms.
   */
  probe(giveUpMs: number): Promise<ProbeResult>;
  close(): void;
}

export interface ProbeResult {
  /** Each probe payment's answer, in order (a stepped-up one is followed by another band's). */
  seen: Array<{ at: number; status: string; paymentId: string; reasons: string }>;
  /** When the first APPROVED answer came. */
  approvedAt?: number;
  error?: string;
}

/** Onboards the merchants (as `backoffice`) and the bands (as `wallet`), retrying what a just-started mesh may refuse. */
export async function prepareLoad(options: LoadOptions): Promise<Load> {
  const attempts: Attempt[] = [];
  const outcomes: RequestOutcome[] = [];
  const setup = <T>(what: string, fn: () => Promise<T>) =>
    withRetries('setup', attempts, 60_000, fn).then((r) => {
      if (r.error) throw new Error(`setup: ${what}: ${codeName(r.error.code)} ${r.error.details ?? r.error.message}`);
      return r.value as T;
    });
  const admin = new MerchantAdminServiceClient(options.addresses.gateway, options.credentials('backoffice'), TERMINAL_CHANNEL);
  for (const merchantId of options.merchants) {
    const key = `chaos-merchant:${merchantId}`;
    await setup(`onboard ${merchantId}`, () =>
      unary(admin.createMerchant.bind(admin), { idempotencyKey: key, merchantId, displayName: `Chaos shop ${merchantId}`, mcc: '5812', country: 'CN', settlementCurrency: 'EUR' }, 10_000),
    );
  }
  admin.close();

  const wallet = meshClients(options.addresses, options.credentials('wallet'));
  const bands: PayingBand[] = [];
  let next = 0;
  const onboardOne = async (i: number) => {
    const accountId = `acct-chaos-${randomUUID().slice(0, 8)}-${i}`;
    // One RPC sequence per band; a fresh start of it on a retryable failure (each step is keyed or a read).
    const band = await setup(`band ${i}`, () => onboardBand(wallet, accountId, 1_000_000n));
    bands.push({ band, accountId, merchantId: options.merchants[i % options.merchants.length]!, paidAt: [], unlockedAt: Date.now(), busy: false });
  };
  await Promise.all(
    Array.from({ length: 6 }, async () => {
      while (next < options.bands + options.probeBands) await onboardOne(next++);
    }),
  );
  const probes = bands.splice(0, options.probeBands);
  options.onProgress?.(`onboarded ${options.merchants.length} merchants and ${bands.length} bands (+${probes.length} for recovery probes)`);

  const terminals = new Map<string, GatewayServiceClient>();
  for (const m of options.merchants) terminals.set(m, new GatewayServiceClient(options.addresses.gateway, options.credentials(merchantIdentity(m)), TERMINAL_CHANNEL));

  /** One probe payment: one key, one tap, retried every 100 ms (1.5 s deadline) until it is answered or `until`. */
  const probeOnce = async (b: PayingBand, until: number): Promise<{ answeredAt?: number; status?: string; paymentId?: string; reasons?: string; error?: string }> => {
    const terminal = terminals.get(b.merchantId)!;
    const amountMinor = 500n;
    const tap = b.band.tap({ amountMinor, currency: 'EUR', merchantId: b.merchantId, terminalNonce: terminalNonce() });
    const req: AuthorizeRequest = { idempotencyKey: randomUUID(), merchantId: b.merchantId, amount: { amountMinor, currency: 'EUR' }, payload: { $case: 'tap', value: tap }, location: merchantLocation(b.merchantId), terminalId: `probe-${b.merchantId}`, voucherCode: '', merchantName: '' };
    const started = Date.now();
    const probeAttempts: Attempt[] = [];
    const internal: string[] = [];
    for (;;) {
      const r = await withRetries('authorize', probeAttempts, -1, () => unary<AuthorizeRequest, AuthorizeResponse>(terminal.authorize.bind(terminal), req, 1_500));
      internal.push(...r.internal);
      const base = { kind: 'authorize' as const, merchantId: b.merchantId, idempotencyKey: req.idempotencyKey, startedAt: started, endedAt: Date.now(), attempts: probeAttempts.length, ...(internal.length ? { internal } : {}) };
      if (r.value) {
        const status = PaymentStatus[r.value.status].replace('PAYMENT_STATUS_', '');
        outcomes.push({ ...base, paymentId: r.value.paymentId, status, declineReason: r.value.declineReason });
        // Why it was not approved (risk's reasons, the decline reason): for the report, never a secret.
        const reasons = [...r.value.riskReasons, ...(r.value.declineReason ? [DeclineReason[r.value.declineReason]] : [])].join(' ');
        return { answeredAt: Date.now(), status, paymentId: r.value.paymentId, reasons };
      }
      const code = r.error!.code;
      if (!RETRYABLE.has(code) || Date.now() > until) {
        outcomes.push({ ...base, error: codeName(code), errorMessage: String(r.error!.details ?? '').slice(0, 200) });
        return { error: `${codeName(code)} ${r.error!.details ?? ''}` };
      }
      await sleep(100);
    }
  };

  let stopped = false;
  let started = 0;
  let approvedCount = 0;

  /**
   * The band to pay with next: one with fewer than two payments in the last 61 s if there is one
   * (risk steps up a band's third payment within a minute), else the one that paid longest ago,
   * never one that paid in the last 7 s (ten in a minute is a card-testing burst and declined).
   * Mixed outcomes are fine: every answer, approved or not, must leave the stores consistent.
   */
  const pickBand = (pool: PayingBand[] = bands, calmOnly = false): PayingBand | undefined => {
    const now = Date.now();
    let calm: PayingBand | undefined;
    let busiest: PayingBand | undefined;
    for (const b of pool) {
      if (b.busy) continue;
      b.paidAt = b.paidAt.filter((t) => now - t < 61_000);
      const last = b.paidAt[b.paidAt.length - 1] ?? 0;
      if (now - last < 7_000) continue;
      if (b.paidAt.length < 2) {
        if (!calm || last < (calm.paidAt[calm.paidAt.length - 1] ?? 0)) calm = b;
      } else if (!busiest || last < busiest.paidAt[busiest.paidAt.length - 1]!) busiest = b;
    }
    return calm ?? (calmOnly ? undefined : busiest);
  };

  const payOnce = async (b: PayingBand) => {
    const terminal = terminals.get(b.merchantId)!;
    // A band's live session lapses after 300 s; the wearer's phone unlocks it again before then.
    if (Date.now() - b.unlockedAt > 240_000) {
      await setup(`unlock ${b.accountId}`, () => unlock(wallet, b.band));
      b.unlockedAt = Date.now();
    }
    const amountMinor = 100n + BigInt(Math.floor(Math.random() * 1_900));
    const tap = b.band.tap({ amountMinor, currency: 'EUR', merchantId: b.merchantId, terminalNonce: terminalNonce() });
    const idempotencyKey = randomUUID();
    // The same request on every retry: the gateway tells a retry from a reused key by its hash.
    const req: AuthorizeRequest = {
      idempotencyKey,
      merchantId: b.merchantId,
      amount: { amountMinor, currency: 'EUR' },
      payload: { $case: 'tap', value: tap },
      location: merchantLocation(b.merchantId),
      terminalId: `pos-${b.merchantId}`,
      voucherCode: '',
      merchantName: '',
    };
    b.paidAt.push(Date.now());
    const startedAt = Date.now();
    const r = await withRetries('authorize', attempts, options.giveUpMs, () => unary<AuthorizeRequest, AuthorizeResponse>(terminal.authorize.bind(terminal), req, 5_000));
    const outcome: RequestOutcome = { kind: 'authorize', merchantId: b.merchantId, idempotencyKey, startedAt, endedAt: Date.now(), attempts: r.tries };
    if (r.internal.length) outcome.internal = r.internal;
    if (r.value) {
      outcome.paymentId = r.value.paymentId;
      outcome.status = PaymentStatus[r.value.status].replace('PAYMENT_STATUS_', '');
      outcome.declineReason = r.value.declineReason;
    } else {
      outcome.error = codeName(r.error!.code);
      outcome.errorMessage = String(r.error!.details ?? r.error!.message).slice(0, 200);
    }
    outcomes.push(outcome);
    if (r.value?.status === PaymentStatus.PAYMENT_STATUS_APPROVED && ++approvedCount % options.captureEvery === 0) {
      const capKey = randomUUID();
      const capStarted = Date.now();
      const cap: CaptureRequest = { idempotencyKey: capKey, paymentId: r.value.paymentId, amount: { amountMinor, currency: 'EUR' }, merchantId: '' };
      const c = await withRetries('capture', attempts, options.giveUpMs, () => unary<CaptureRequest, CaptureResponse>(terminal.capture.bind(terminal), cap, 5_000));
      const capOutcome: RequestOutcome = { kind: 'capture', merchantId: b.merchantId, idempotencyKey: capKey, paymentId: r.value.paymentId, startedAt: capStarted, endedAt: Date.now(), attempts: c.tries };
      if (c.internal.length) capOutcome.internal = c.internal;
      if (c.value) capOutcome.status = PaymentStatus[c.value.payment!.status].replace('PAYMENT_STATUS_', '');
      else {
        capOutcome.error = codeName(c.error!.code);
        capOutcome.errorMessage = String(c.error!.details ?? c.error!.message).slice(0, 200);
      }
      outcomes.push(capOutcome);
    }
  };

  let nextStart = Date.now();
  const terminal = async () => {
    while (!stopped && started < options.maxPayments) {
      // Steady pacing: a terminal held up by retries does not make the others burst afterwards.
      const wait = nextStart - Date.now();
      nextStart = Math.max(nextStart, Date.now() - 1_000) + 1_000 / options.ratePerSecond;
      if (wait > 0) await sleep(wait);
      if (stopped) break;
      const b = pickBand();
      if (!b) {
        await sleep(100);
        continue;
      }
      b.busy = true;
      started++;
      try {
        await payOnce(b);
      } catch (err) {
        options.onProgress?.(`terminal: ${(err as Error).message}`);
      } finally {
        b.busy = false;
      }
    }
  };

  return {
    outcomes,
    attempts,
    get started() {
      return started;
    },
    run: async () => {
      await Promise.all(Array.from({ length: options.terminals }, terminal));
    },
    stop: () => {
      stopped = true;
    },
    probe: async (giveUpMs) => {
      const started = Date.now();
      const seen: ProbeResult['seen'] = [];
      // Until a payment is APPROVED: right after a fault a dependency's client may still be
      // reconnecting and risk steps payments up meanwhile. The probe bands take turns within the
      // velocity rules (pickBand), so a run of step-ups does not use them up.
      while (Date.now() < started + giveUpMs) {
        // Only a band risk's velocity rules leave alone: its own pool first, then the load's.
        const b = pickBand(probes, true) ?? pickBand(bands, true);
        if (!b) {
          await sleep(100);
          continue;
        }
        b.busy = true;
        b.paidAt.push(Date.now());
        const one = await probeOnce(b, started + giveUpMs).finally(() => (b.busy = false));
        if (one.error) return { seen, error: one.error };
        seen.push({ at: one.answeredAt!, status: one.status!, paymentId: one.paymentId!, reasons: one.reasons ?? '' });
        if (one.status === 'APPROVED') return { seen, approvedAt: one.answeredAt };
        await sleep(150);
      }
      return { seen, error: `no payment approved within ${giveUpMs} ms` };
    },
    close: () => {
      wallet.close();
      for (const t of terminals.values()) t.close();
    },
  };
}

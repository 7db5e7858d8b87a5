import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import Redis from 'ioredis';
import { Client } from 'pg';
import { DeclineReason, PaymentStatus, type AuthorizeResponse } from '../../../gen/wristpay/gateway/v1/gateway';
import { freePort } from '../../../scripts/mesh';
import type { Band, TapPayload } from '../../../sim/band';
import type { MeshClients } from '../../../sim/clients';
import { terminalNonce } from '../../../sim/terminal';
import { onboardBand, pay } from '../../../sim/wallet';
import { watchEvents } from '../../../test/support/events';
import { eventually } from '../../../test/support/eventually';
import { startGatewayMesh, type GatewayMesh } from '../../../test/support/gateway-mesh';
import { gatewayProcess, type GatewayProcess } from '../../../test/support/gateway-process';
import { startNatsServer, type NatsServer } from '../../../test/support/nats-server';
import { requireServers, TEST_REDIS_URL } from '../../../test/support/servers';
import { expectStatus, uniqueName } from '../../../test/support/services';
import { merchantIdentity } from '../src/merchants';

/**
 * The gateway under real faults, on real servers: NATS stopped under load, the gateway process
 * killed with SIGKILL mid-payment, Redis emptied, holds expiring in settlement. Two meshes
 * (test/support/gateway-mesh.ts; starting one takes ~10 s, so the faults share them): one on a
 * NATS server of this file's own, which it stops, with holds that lapse after 2 s; one on the
 * machine's NATS, beside which the gateway also runs as its own process, to be killed.
 */

const EUR = 'EUR';
type Watcher = Awaited<ReturnType<typeof watchEvents>>;

/** The event each decision publishes. */
const DECISION_EVENT: Partial<Record<PaymentStatus, string>> = {
  [PaymentStatus.PAYMENT_STATUS_APPROVED]: 'payment.authorized',
  [PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED]: 'payment.challenged',
  [PaymentStatus.PAYMENT_STATUS_DECLINED]: 'payment.declined',
};
const DECISION_TYPES = Object.values(DECISION_EVENT);

/** The decision events (authorized / challenged / declined) seen for `paymentId`, by type. */
function decisionEventsOf(events: Watcher, paymentId: string): string[] {
  return events.seen.filter((s) => DECISION_TYPES.includes(s.subject) && s.event.payload?.$case === 'payment' && s.event.payload.value.paymentId === paymentId).map((s) => s.subject);
}

/**
 * Waits until every decided payment's decision event has arrived, then a little longer for a
 * duplicate, and asserts each arrived exactly once and nothing else was decided for it.
 */
async function expectDecisionEventsOnce(events: Watcher, decided: AuthorizeResponse[], timeoutMs: number): Promise<void> {
  const missing = () => decided.filter((r) => decisionEventsOf(events, r.paymentId).length === 0);
  await events.waitFor(() => missing().length === 0, timeoutMs, `the decision events of ${decided.length} payments (missing ${missing().length})`);
  await new Promise((r) => setTimeout(r, 300));
  const seen = decided.map((r) => ({ paymentId: r.paymentId, events: decisionEventsOf(events, r.paymentId) }));
  expect(seen).toEqual(decided.map((r) => ({ paymentId: r.paymentId, events: [DECISION_EVENT[r.status]] })));
}

const ONBOARD_AT_ONCE = 5;

/**
 * One band per account, a few at a time: twenty at once fill every service's connection pool,
 * a burst the machine's PostgreSQL (shared with other suites, max_connections 100) refused with
 * "too many clients" once, which tokenization answered INTERNAL.
 */
async function onboardBands(clients: MeshClients, accounts: string[], topUpMinor: bigint): Promise<Band[]> {
  const bands: Band[] = [];
  for (let i = 0; i < accounts.length; i += ONBOARD_AT_ONCE) bands.push(...(await Promise.all(accounts.slice(i, i + ONBOARD_AT_ONCE).map((a) => onboardBand(clients, a, topUpMinor)))));
  return bands;
}

const tapFor = (band: Band, merchantId: string, amountMinor: bigint): TapPayload => band.tap({ amountMinor, currency: EUR, merchantId, terminalNonce: terminalNonce() });
const codeOf = (err: unknown) => (err as { code?: number }).code;
const retryable = (err: unknown) => codeOf(err) === status.UNAVAILABLE || codeOf(err) === status.DEADLINE_EXCEEDED;
const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((values.length * p) / 100))] ?? NaN;
const summary = (values: number[]) => `n=${values.length} p50=${percentile(values, 50).toFixed(0)} ms p95=${percentile(values, 95).toFixed(0)} ms max=${Math.max(...values).toFixed(0)} ms`;

describe('a mesh on its own NATS server, with holds that lapse after 2 s', () => {
  let nats: NatsServer;
  let mesh: GatewayMesh;
  let events: Watcher | undefined;
  /** A watcher of the mesh's streams opened now: it reads them from the start (closing it deletes them, so only afterAll does). */
  const watch = async () => (events ??= await watchEvents(mesh.prefix, nats.url));

  beforeAll(async () => {
    await requireServers('PostgreSQL', 'Redis');
    nats = await startNatsServer();
    mesh = await startGatewayMesh({ natsUrl: nats.url, settlementEnv: { HOLD_TTL_SECONDS: '2', SWEEP_INTERVAL_MS: '300' } });
  }, 60_000);

  afterAll(async () => {
    // The services drain their NATS connections on stop: give them a server to drain to.
    if (nats && !nats.running) await nats.start();
    await events?.close();
    await mesh?.stop();
    await nats?.close();
  });

  describe('NATS stopped for 3 s under payment load', () => {
    const PAYMENTS = 48;
    const IN_FLIGHT = 4;
    // One payment starts every INTERVAL_MS: the load spans ~7 s, the outage 3 s in its middle.
    const INTERVAL_MS = 150;
    const OUTAGE_AT_MS = 2_000;
    const OUTAGE_MS = 3_000;

    it('every Authorize is answered without waiting on NATS, and every decision event arrives once after NATS is back', async () => {
      const merchants = await Promise.all(Array.from({ length: 4 }, () => mesh.merchant()));
      const wallet = merchants[0]!.clients;
      const bands = await onboardBands(wallet, Array.from({ length: 8 }, () => uniqueName('acct')), 1_000_000n);

      type Outcome = { i: number; startedAt: number; endedAt: number; ms: number; response?: AuthorizeResponse; error?: { code?: number; details?: string } };
      const outcomes: Outcome[] = [];
      const t0 = Date.now();
      // Worker w owns bands w and w+4, so a band never has two taps in flight (its ATCs arrive in order).
      const worker = async (w: number) => {
        for (let i = w; i < PAYMENTS; i += IN_FLIGHT) {
          const wait = t0 + i * INTERVAL_MS - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          const k = Math.floor(i / IN_FLIGHT);
          const band = bands[w + IN_FLIGHT * (k % 2)]!;
          const shop = merchants[(w + k) % merchants.length]!;
          const amountMinor = 100n + BigInt((i * 37) % 900);
          const startedAt = Date.now();
          const outcome = await pay(shop.clients, band, { merchantId: shop.merchantId, amountMinor }).then(
            ({ response }) => ({ response }),
            (err: { code?: number; details?: string }) => ({ error: { code: err.code, details: err.details } }),
          );
          const endedAt = Date.now();
          outcomes.push({ i, startedAt, endedAt, ms: endedAt - startedAt, ...outcome });
        }
      };
      const outage = (async () => {
        await new Promise((r) => setTimeout(r, OUTAGE_AT_MS));
        const downAt = Date.now();
        await nats.stop('SIGKILL');
        await new Promise((r) => setTimeout(r, OUTAGE_MS));
        await nats.start();
        return { downAt, upAt: Date.now() };
      })();
      await Promise.all(Array.from({ length: IN_FLIGHT }, (_, w) => worker(w)));
      const { downAt, upAt } = await outage;

      // Every call was answered: no UNAVAILABLE, no DEADLINE_EXCEEDED, nothing else either.
      expect(outcomes.filter((o) => o.error).map((o) => ({ i: o.i, ...o.error }))).toEqual([]);
      const during = outcomes.filter((o) => o.endedAt >= downAt && o.startedAt <= upAt);
      const before = outcomes.filter((o) => o.endedAt < downAt);
      const after = outcomes.filter((o) => o.startedAt > upAt);
      const decided = outcomes.map((o) => o.response!);
      const byStatus = (s: PaymentStatus) => decided.filter((r) => r.status === s).length;
      console.log(
        [
          `NATS down ${upAt - downAt} ms (SIGKILL, ${OUTAGE_MS} ms, restart until ready); ${outcomes.length} Authorizes, ${IN_FLIGHT} in flight:`,
          `  approved ${byStatus(PaymentStatus.PAYMENT_STATUS_APPROVED)}, challenged ${byStatus(PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED)}, declined ${byStatus(PaymentStatus.PAYMENT_STATUS_DECLINED)}`,
          `  answer latency before the outage: ${summary(before.map((o) => o.ms))}`,
          `  answer latency while NATS was down: ${summary(during.map((o) => o.ms))}`,
          `  answer latency after NATS was back: ${summary(after.map((o) => o.ms))}`,
        ].join('\n'),
      );
      // The outage really fell in the middle of the load.
      expect(during.length).toBeGreaterThanOrEqual(10);
      expect(after.length).toBeGreaterThanOrEqual(5);
      // The answer never waits on NATS.
      expect(during.filter((o) => o.ms > 1_500).map((o) => ({ i: o.i, ms: o.ms }))).toEqual([]);
      for (const r of decided) expect(DECISION_EVENT[r.status]).toBeDefined();

      // Read JetStream from the start: each decided payment's event is stored exactly once.
      await expectDecisionEventsOnce(await watch(), decided, 15_000);
      console.log(`all ${decided.length} decision events on JetStream ${Date.now() - upAt} ms after NATS was back (each exactly once)`);
    }, 60_000);
  });

  describe('hold expiry in settlement is reflected in the payment', () => {
    it('an approved, uncaptured payment becomes EXPIRED; a later Capture or Void is FAILED_PRECONDITION', async () => {
      const shop = await mesh.merchant();
      const { merchantId, clients } = shop;
      const accountId = uniqueName('acct');
      const band = await onboardBand(clients, accountId, 10_000n);
      const { response } = await pay(clients, band, { merchantId, amountMinor: 1_500n });
      expect(response.status).toBe(PaymentStatus.PAYMENT_STATUS_APPROVED);
      const approvedAt = Date.now();
      const paymentOf = async () => (await clients.gateway.getPayment({ paymentId: response.paymentId, merchantId })).payment!;

      await eventually(async () => (await paymentOf()).status === PaymentStatus.PAYMENT_STATUS_EXPIRED, 8_000, 'the payment to become EXPIRED', 100);
      console.log(`payment EXPIRED in GetPayment ${Date.now() - approvedAt} ms after approval (hold ttl 2 s, settlement sweep 300 ms)`);
      expect(await paymentOf()).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_EXPIRED, holdId: response.holdId, message: 'the hold lapsed before capture' });
      await expectStatus(clients.gateway.capture({ paymentId: response.paymentId, merchantId, idempotencyKey: randomUUID(), amount: undefined }), status.FAILED_PRECONDITION, /EXPIRED/);
      await expectStatus(clients.gateway.void({ paymentId: response.paymentId, merchantId, idempotencyKey: randomUUID() }), status.FAILED_PRECONDITION, /EXPIRED/);
      const balance = await clients.settlement.getBalance({ accountId, currency: EUR });
      expect({ held: balance.held!.amountMinor, available: balance.available!.amountMinor }).toEqual({ held: 0n, available: 10_000n });
    });
  });
});

describe('a mesh on the machine’s NATS, its gateway also run as a process of its own', () => {
  let mesh: GatewayMesh;
  let events: Watcher;

  beforeAll(async () => {
    await requireServers('PostgreSQL', 'Redis', 'NATS');
    mesh = await startGatewayMesh();
    events = await watchEvents(mesh.prefix);
  }, 60_000);

  afterAll(async () => {
    await events?.close();
    await mesh?.stop();
  });

  describe('kill -9 of the gateway in the middle of payments', () => {
    const PAYMENTS = 20;
    // Killed in the middle: half the payments answered, the rest in flight. (Killed after 5, the 15
    // retries at once took 0.6-1.97 s on this 2-core machine under a load average of 8-15.)
    const KILL_AFTER = PAYMENTS / 2;
    const TOP_UP = 10_000n;
    let db: Client;
    let work: string;
    let gateway: GatewayProcess | undefined;

    beforeAll(async () => {
      db = new Client({ connectionString: String(mesh.gatewayEnv().DATABASE_URL) });
      await db.connect();
      work = mkdtempSync(join(tmpdir(), 'wp-faults-'));
    });

    afterAll(async () => {
      await gateway?.stop();
      await db?.end();
      if (work) rmSync(work, { recursive: true, force: true });
    });

    it('retries with the same key and tap complete on the restarted gateway within 2 s: one hold each, no REPLAY, each event once', async () => {
      const shop = await mesh.merchant();
      const { merchantId } = shop;
      gateway = gatewayProcess(mesh, await freePort(), work);
      // One band per payment: taps of one band racing each other would be refused as replays for
      // arriving out of ATC order, which is not what this test is about.
      const accounts = Array.from({ length: PAYMENTS }, () => uniqueName('acct'));
      const [bands] = await Promise.all([onboardBands(shop.clients, accounts, TOP_UP), gateway.start()]);
      const requests = bands.map((band, i) => {
        const amountMinor = 500n + BigInt(i) * 10n;
        return { band, accountId: accounts[i]!, attempt: { merchantId, amountMinor, tap: tapFor(band, merchantId, amountMinor), idempotencyKey: randomUUID() } };
      });

      const terminal = (via: GatewayProcess): MeshClients => ({ ...shop.clients, gateway: via.client(merchantIdentity(merchantId)) });
      const first = terminal(gateway);
      // A replica that has served before it dies (its channels open, its code warm), as in production.
      const warm = await onboardBand(shop.clients, uniqueName('acct'), TOP_UP);
      expect((await pay(first, warm, { merchantId, amountMinor: 100n })).response.status).toBe(PaymentStatus.PAYMENT_STATUS_APPROVED);

      const answers = new Map<number, AuthorizeResponse>();
      const failures = new Map<number, number | undefined>();
      let killed: Promise<void> | undefined;
      // Staggered, and killed the moment the KILL_AFTER-th answer arrives, so the kill finds
      // payments at every stage: not yet recorded, RECEIVED with or without a hold, decided but
      // not yet answered.
      const fired = requests.map(async (r, i) => {
        await new Promise((resolve) => setTimeout(resolve, i * 10));
        await pay(first, r.band, r.attempt).then(
          ({ response }) => {
            answers.set(i, response);
            if (answers.size === KILL_AFTER) killed = gateway!.kill();
          },
          (err) => failures.set(i, codeOf(err)),
        );
      });
      await Promise.all(fired);
      await killed;
      first.gateway.close();
      expect(killed).toBeDefined();
      const unanswered = requests.map((_, i) => i).filter((i) => !answers.has(i));
      const rows = (await db.query<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM payments WHERE merchant_id = $1 GROUP BY status ORDER BY status', [merchantId])).rows;
      const heldUnanswered = (await Promise.all(unanswered.map(async (i) => (await shop.clients.settlement.getBalance({ accountId: requests[i]!.accountId, currency: EUR })).held!.amountMinor > 0n))).filter(Boolean).length;
      console.log(
        [
          `kill -9 after ${KILL_AFTER} answers: ${unanswered.length}/${PAYMENTS} unanswered (${[...new Set(failures.values())].map((c) => status[c ?? -1] ?? c).join(', ')}), ${heldUnanswered} of them with a hold placed;`,
          `  payments recorded: ${rows.map((r) => `${r.status} ${r.n - (r.status === 'APPROVED' ? 1 : 0)}`).join(', ') || 'none'} (besides the warm-up payment)`,
        ].join('\n'),
      );
      expect(unanswered.length).toBeGreaterThan(0);

      const servingAt = await gateway.start();
      const again = terminal(gateway);
      // As a terminal does: the same request (key and tap) again, again while UNAVAILABLE.
      const retried = await Promise.all(
        unanswered.map(async (i) => {
          const r = requests[i]!;
          for (;;) {
            try {
              const { response } = await pay(again, r.band, r.attempt);
              answers.set(i, response);
              return Date.now() - servingAt;
            } catch (err) {
              if (!retryable(err) || Date.now() - servingAt > 5_000) throw err;
              await new Promise((resolve) => setTimeout(resolve, 50));
            }
          }
        }),
      );
      console.log(`retries after restart completed ${summary(retried)} after the restarted gateway answered health`);
      expect(Math.max(...retried)).toBeLessThan(2_000);

      const final = requests.map((_, i) => answers.get(i)!);
      expect(final.filter((r) => r.declineReason === DeclineReason.DECLINE_REASON_REPLAY)).toEqual([]);
      expect(final.map((r) => r.status)).toEqual(requests.map(() => PaymentStatus.PAYMENT_STATUS_APPROVED));
      // One payment per key; answered again, each key gives its first answer.
      expect(new Set(final.map((r) => r.paymentId)).size).toBe(PAYMENTS);
      expect((await db.query('SELECT 1 FROM payments WHERE merchant_id = $1', [merchantId])).rowCount).toBe(PAYMENTS + 1);
      expect((await Promise.all(requests.map((r) => pay(again, r.band, r.attempt)))).map((p) => p.response)).toEqual(final);
      // Exactly one hold per approved payment: the account holds its amount once, the payment names that hold.
      const holds = await Promise.all(
        requests.map(async (r, i) => {
          const balance = await shop.clients.settlement.getBalance({ accountId: r.accountId, currency: EUR });
          const { payment } = await again.gateway.getPayment({ paymentId: final[i]!.paymentId, merchantId });
          return { held: balance.held!.amountMinor, available: balance.available!.amountMinor, status: payment!.status, holdId: payment!.holdId };
        }),
      );
      expect(holds).toEqual(requests.map((r, i) => ({ held: r.attempt.amountMinor, available: TOP_UP - r.attempt.amountMinor, status: PaymentStatus.PAYMENT_STATUS_APPROVED, holdId: final[i]!.holdId })));
      again.gateway.close();

      await expectDecisionEventsOnce(events, final, 10_000);
      const holdsPlaced = (paymentId: string) => events.ofType('payment.hold.placed').filter((s) => s.event.payload?.$case === 'ledger' && s.event.payload.value.paymentId === paymentId).length;
      await events.waitFor(() => final.every((r) => holdsPlaced(r.paymentId) > 0), 5_000, 'payment.hold.placed of every payment');
      expect(final.map((r) => holdsPlaced(r.paymentId))).toEqual(final.map(() => 1));
    }, 60_000);
  });

  describe('Redis flushed', () => {
    let redis: Redis;

    beforeAll(async () => {
      redis = new Redis(TEST_REDIS_URL, { lazyConnect: true });
      await redis.connect();
    });

    afterAll(() => {
      redis?.disconnect();
    });

    /** Every key of the mesh's prefix (live sessions, risk features and decisions, caches). */
    const meshKeys = async () => {
      const keys: string[] = [];
      for await (const batch of redis.scanStream({ match: `${mesh.prefix}:*`, count: 1_000 })) keys.push(...(batch as string[]));
      return keys;
    };

    it('after every key of the mesh is deleted, payments are still readable, capturable and voidable', async () => {
      const shop = await mesh.merchant();
      const { merchantId, clients } = shop;
      const paid = await Promise.all(
        [1_100n, 1_200n, 1_300n].map(async (amountMinor) => {
          const accountId = uniqueName('acct');
          const band = await onboardBand(clients, accountId, 10_000n);
          const { response } = await pay(clients, band, { merchantId, amountMinor });
          expect(response.status).toBe(PaymentStatus.PAYMENT_STATUS_APPROVED);
          return { accountId, band, amountMinor, paymentId: response.paymentId, holdId: response.holdId };
        }),
      );
      const [kept, toCapture, toVoid] = paid as [(typeof paid)[0], (typeof paid)[0], (typeof paid)[0]];

      const keys = await meshKeys();
      console.log(`deleted ${keys.length} Redis keys of the mesh: ${[...new Set(keys.map((k) => k.split(':')[1]))].sort().join(', ')}`);
      expect([...new Set(keys.map((k) => k.split(':')[1]))]).toEqual(expect.arrayContaining(['session', 'risk-decision', 'risk-device']));
      await redis.del(...keys);
      // Risk keeps writing features as the payments' events reach it, so new keys may appear; the
      // flushed ones are gone: the bands' live sessions with them.
      expect((await clients.registry.getSession({ deviceId: kept.band.deviceId! })).session?.live ?? false).toBe(false);

      for (const p of paid) {
        const { payment } = await clients.gateway.getPayment({ paymentId: p.paymentId, merchantId });
        expect(payment).toMatchObject({ paymentId: p.paymentId, status: PaymentStatus.PAYMENT_STATUS_APPROVED, holdId: p.holdId, amount: { amountMinor: p.amountMinor, currency: EUR }, accountId: p.accountId });
      }
      const captured = await clients.gateway.capture({ paymentId: toCapture.paymentId, merchantId, idempotencyKey: randomUUID(), amount: undefined });
      expect(captured.payment).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_CAPTURED });
      const voided = await clients.gateway.void({ paymentId: toVoid.paymentId, merchantId, idempotencyKey: randomUUID() });
      expect(voided.payment).toMatchObject({ status: PaymentStatus.PAYMENT_STATUS_VOIDED });

      const statusOf = async (paymentId: string) => (await clients.gateway.getPayment({ paymentId, merchantId })).payment!.status;
      expect(await Promise.all(paid.map((p) => statusOf(p.paymentId)))).toEqual([PaymentStatus.PAYMENT_STATUS_APPROVED, PaymentStatus.PAYMENT_STATUS_CAPTURED, PaymentStatus.PAYMENT_STATUS_VOIDED]);
      const balance = async (accountId: string) => {
        const b = await clients.settlement.getBalance({ accountId, currency: EUR });
        return { held: b.held!.amountMinor, available: b.available!.amountMinor };
      };
      expect(await balance(kept.accountId)).toEqual({ held: kept.amountMinor, available: 10_000n - kept.amountMinor });
      expect(await balance(toCapture.accountId)).toEqual({ held: 0n, available: 10_000n - toCapture.amountMinor });
      expect(await balance(toVoid.accountId)).toEqual({ held: 0n, available: 10_000n });
      expect((await clients.settlement.getBalance({ accountId: `merchant:${merchantId}:escrow`, currency: EUR })).posted).toEqual({ amountMinor: toCapture.amountMinor, currency: EUR });
    });
  });
});

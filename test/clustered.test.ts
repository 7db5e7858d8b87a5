import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { DeclineReason, PaymentStatus, type AuthorizeResponse } from '../gen/wristpay/gateway/v1/gateway';
import { openDb } from '../platform/db';
import { natsServers } from '../platform/nats';
import { STREAM_AREAS } from '../platform/events';
import { startNatsCluster, type NatsCluster } from '../scripts/engines/nats-cluster';
import { startRedisSentinel, type RedisSentinel } from '../scripts/engines/redis-sentinel';
import type { Band } from '../sim/band';
import { terminalNonce } from '../sim/terminal';
import { onboardBand, pay } from '../sim/wallet';
import { checkLedger } from '../services/settlement/src/invariants';
import { watchEvents } from './support/events';
import { startGatewayMesh, type GatewayMesh, type MerchantTerminal } from './support/gateway-mesh';
import { requireServers, uniqueName } from './support/servers';

/**
 * The payment path on clustered engines, as k8s/base runs them: NATS as a 3-node JetStream
 * cluster with every stream replicated 3 times, Redis as a primary and a replica behind three
 * Sentinels (device-registry's sessions and risk's features reach it through Sentinel). Under a
 * steady payment load, one NATS node is SIGKILLed (the one leading the payment stream), then the
 * Redis primary. Terminals retry UNAVAILABLE with the same idempotency key and tap, as a real
 * terminal does. Afterwards: payments went on after each fault, nothing was answered INTERNAL,
 * every approved payment holds its amount exactly once in the ledger (and nothing else holds),
 * the ledger's invariants hold, and every decided payment's decision event is on JetStream once.
 * Engines on this file's own ports (26100-26122 NATS, 26200-26212 Redis).
 */

const EUR = 'EUR';
const LOAD_MS = 20_000;
const NATS_KILL_AT_MS = 4_000;
const REDIS_KILL_AT_MS = 10_000;
const IN_FLIGHT = 4;
const BANDS = 12;
/** How long a terminal keeps retrying one payment (same key) before it gives up. */
const RETRY_FOR_MS = 15_000;

const DECISION_EVENT: Partial<Record<PaymentStatus, string>> = {
  [PaymentStatus.PAYMENT_STATUS_APPROVED]: 'payment.authorized',
  [PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED]: 'payment.challenged',
  [PaymentStatus.PAYMENT_STATUS_DECLINED]: 'payment.declined',
};

interface Outcome {
  startedAt: number;
  endedAt: number;
  attempts: number;
  amountMinor: bigint;
  response?: AuthorizeResponse;
  /** Statuses of the attempts that failed (retried while UNAVAILABLE / DEADLINE_EXCEEDED). */
  failures: number[];
  gaveUp?: { code?: number; details?: string };
}

/** How many times each string occurs, most frequent first. */
const tally = (values: string[]) => Object.fromEntries([...values.reduce((m, v) => m.set(v, (m.get(v) ?? 0) + 1), new Map<string, number>())].sort((a, b) => b[1] - a[1]));
const codeOf = (err: unknown) => (err as { code?: number }).code;

describe('payments on clustered engines: NATS node and Redis primary killed under load', () => {
  let nats: NatsCluster;
  let redis: RedisSentinel;
  let mesh: GatewayMesh;
  const rulesDir = mkdtempSync(join(tmpdir(), 'wp-clustered-rules-'));

  beforeAll(async () => {
    await requireServers('PostgreSQL');
    // The load taps each band every second or so: the default velocity rules would force most of
    // it to DECLINE. This test is about the engines, so risk keeps only the live-session rule
    // (a payment without a live band session, e.g. while Redis fails over, must be confirmed).
    const rules = join(rulesDir, 'rules.yaml');
    writeFileSync(
      rules,
      'version: clustered-test\nrules:\n  - id: SESSION_NOT_LIVE\n    description: no live band session\n    when: { feature: session_live, op: eq, value: 0 }\n    effect: { force: CHALLENGE, points: 150 }\n',
    );
    [nats, redis] = await Promise.all([
      startNatsCluster({ basePort: 26100, dir: mkdtempSync(join(tmpdir(), 'wp-nats-cluster-')) }),
      startRedisSentinel({ basePort: 26200, dir: mkdtempSync(join(tmpdir(), 'wp-redis-sentinel-')), password: `pw-${process.pid}` }),
    ]);
    mesh = await startGatewayMesh({
      // Every service on the cluster, streams R3; Redis only through Sentinel (no REDIS_URL).
      serviceEnv: { ...nats.env, ...redis.env, REDIS_URL: undefined },
      riskEnv: { RISK_RULES_FILE: join(rulesDir, 'rules.yaml'), RISK_CHALLENGE_THRESHOLD: '999', RISK_DECLINE_THRESHOLD: '1000' },
    });
  }, 60_000);

  afterAll(async () => {
    // Services drain their NATS connections on stop: bring every node back first.
    for (let i = 0; nats && i < nats.nodes; i++) if (!nats.running(i)) await nats.restartNode(i).catch(() => undefined);
    await mesh?.stop();
    await Promise.all([nats?.stop(), redis?.stop()]);
    rmSync(rulesDir, { recursive: true, force: true });
  }, 30_000);

  it('payments continue after each fault, no money is lost or doubled, every decision event is on the stream once', async () => {
    const merchants: MerchantTerminal[] = [await mesh.merchant(), await mesh.merchant()];
    const wallet = merchants[0]!.clients;
    const bands: Band[] = [];
    for (let i = 0; i < BANDS; i += 4) bands.push(...(await Promise.all(Array.from({ length: Math.min(4, BANDS - i) }, () => onboardBand(wallet, uniqueName('acct'), 10_000_000n)))));

    // The streams really are replicated on all three nodes.
    const nc = await connect({ servers: natsServers(nats.url) });
    const jsm = await jetstreamManager(nc);
    const paymentStream = `${mesh.prefix.toUpperCase()}_PAYMENT`;
    for (const area of STREAM_AREAS) {
      const info = await jsm.streams.info(`${mesh.prefix.toUpperCase()}_${area.toUpperCase()}`);
      expect(info.config.num_replicas).toBe(3);
    }
    const leaderName = (await jsm.streams.info(paymentStream)).cluster?.leader;
    await nc.close();
    const natsVictim = Number(leaderName?.slice(1));
    expect(natsVictim).toBeGreaterThanOrEqual(0);

    const outcomes: Outcome[] = [];
    const t0 = Date.now();
    const stopAt = t0 + LOAD_MS;
    let tapNo = 0;
    // Worker w pays with bands w, w+IN_FLIGHT, ... in turn: a band never has two taps in flight.
    const worker = async (w: number) => {
      const mine = bands.filter((_, i) => i % IN_FLIGHT === w);
      for (let k = 0; Date.now() < stopAt; k++) {
        const band = mine[k % mine.length]!;
        const shop = merchants[(w + k) % merchants.length]!;
        const amountMinor = 100n + BigInt((tapNo++ * 37) % 900);
        // A terminal: one tap, one idempotency key, retried as is while the answer is "retry".
        const tap = band.tap({ amountMinor, currency: EUR, merchantId: shop.merchantId, terminalNonce: terminalNonce() });
        const idempotencyKey = crypto.randomUUID();
        const outcome: Outcome = { startedAt: Date.now(), endedAt: 0, attempts: 0, amountMinor, failures: [] };
        for (;;) {
          outcome.attempts++;
          try {
            outcome.response = (await pay(shop.clients, band, { merchantId: shop.merchantId, amountMinor, tap, idempotencyKey })).response;
            break;
          } catch (err) {
            const code = codeOf(err);
            outcome.failures.push(code ?? -1);
            const retry = code === status.UNAVAILABLE || code === status.DEADLINE_EXCEEDED;
            if (!retry || Date.now() - outcome.startedAt > RETRY_FOR_MS) {
              outcome.gaveUp = { code, details: (err as { details?: string }).details };
              break;
            }
            await new Promise((r) => setTimeout(r, 200));
          }
        }
        outcome.endedAt = Date.now();
        outcomes.push(outcome);
      }
    };
    const faults = (async () => {
      await new Promise((r) => setTimeout(r, t0 + NATS_KILL_AT_MS - Date.now()));
      const natsDownAt = Date.now();
      await nats.killNode(natsVictim, 'SIGKILL');
      const natsLeaderAgain = await nats.waitForMetaLeader();
      const natsLeaderAt = Date.now();
      await new Promise((r) => setTimeout(r, t0 + REDIS_KILL_AT_MS - Date.now()));
      const failover = await redis.killPrimary();
      return { natsDownAt, natsLeaderAt, natsLeaderAgain, failover };
    })();
    await Promise.all(Array.from({ length: IN_FLIGHT }, (_, w) => worker(w)));
    const { natsDownAt, natsLeaderAt, failover } = await faults;

    // ---- what the terminals saw ------------------------------------------------------------
    const approved = outcomes.filter((o) => o.response?.status === PaymentStatus.PAYMENT_STATUS_APPROVED);
    const decided = outcomes.filter((o) => o.response);
    const count = (s: PaymentStatus) => decided.filter((o) => o.response!.status === s).length;
    /** From the fault until the first approval of a payment that started after it, and the longest stretch with no approval answered around it. */
    const gapAfter = (at: number, until: number) => {
      const first = approved.filter((o) => o.startedAt >= at).sort((a, b) => a.endedAt - b.endedAt)[0];
      const ends = [at, ...approved.map((o) => o.endedAt).filter((t) => t > at && t < until).sort((a, b) => a - b)];
      const longest = Math.max(...ends.slice(1).map((t, i) => t - ends[i]!));
      return { firstMs: first ? first.endedAt - at : Infinity, longestMs: longest };
    };
    const natsGap = gapAfter(natsDownAt, failover.downAt);
    const redisGap = gapAfter(failover.downAt, stopAt);
    const retried = outcomes.filter((o) => o.failures.length > 0);
    const failureCodes = outcomes.flatMap((o) => o.failures);
    const byCode = (c: number) => failureCodes.filter((x) => x === c).length;
    console.log(
      [
        `clustered engines: ${outcomes.length} payments in ${LOAD_MS / 1000} s, ${IN_FLIGHT} in flight, ${BANDS} bands: approved ${approved.length}, challenged ${count(PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED)}, declined ${count(PaymentStatus.PAYMENT_STATUS_DECLINED)}, gave up ${outcomes.filter((o) => o.gaveUp).length}`,
        `  NATS node n${natsVictim} (leader of the payment stream) SIGKILLed at +${natsDownAt - t0} ms; meta leader n${nats ? (await faults).natsLeaderAgain : '?'} ${natsLeaderAt - natsDownAt} ms later; first approval of a payment started after the kill ${natsGap.firstMs} ms after it, longest gap between approvals until the Redis kill ${natsGap.longestMs} ms`,
        `  Redis primary r${failover.killed} SIGKILLed at +${failover.downAt - t0} ms; r${failover.promoted} promoted ${failover.promotedAt - failover.downAt} ms later; first approval of a payment started after the kill ${redisGap.firstMs} ms after it, longest gap between approvals from the kill to the end of the load ${redisGap.longestMs} ms`,
        `  ${retried.length} payments needed retries (${failureCodes.length} attempts answered: UNAVAILABLE ${byCode(status.UNAVAILABLE)}, DEADLINE_EXCEEDED ${byCode(status.DEADLINE_EXCEEDED)}, other ${failureCodes.length - byCode(status.UNAVAILABLE) - byCode(status.DEADLINE_EXCEEDED)}); most attempts for one payment ${Math.max(0, ...outcomes.map((o) => o.attempts))}`,
        `  not approved, by reason: ${JSON.stringify(tally(decided.filter((o) => o.response!.status !== PaymentStatus.PAYMENT_STATUS_APPROVED).map((o) => `${PaymentStatus[o.response!.status]} ${DeclineReason[o.response!.declineReason]} ${o.response!.riskReasons.join('+')}`)))}`,
      ].join('\n'),
    );

    // Nothing answered INTERNAL (or anything else than "retry"), and every payment was decided.
    expect(failureCodes.filter((c) => c !== status.UNAVAILABLE && c !== status.DEADLINE_EXCEEDED)).toEqual([]);
    expect(outcomes.filter((o) => o.gaveUp).map((o) => o.gaveUp)).toEqual([]);
    // The faults fell inside the load, and payments went on after each.
    expect(outcomes.filter((o) => o.startedAt > failover.promotedAt).length).toBeGreaterThanOrEqual(10);
    expect(natsGap.firstMs).toBeLessThan(5_000);
    expect(redisGap.firstMs).toBeLessThan(8_000);
    expect(approved.length).toBeGreaterThan(outcomes.length / 2);

    // ---- the money -------------------------------------------------------------------------
    // Every approved payment holds its amount exactly once; no other payment holds anything.
    const ledger = await openDb({ databaseUrl: mesh.databaseUrls.ledger, poolSize: 1 });
    try {
      const { rows } = await ledger.query<{ payment_id: string; amount_minor: string; status: string }>('SELECT payment_id, amount_minor::text, status FROM holds');
      const holds = new Map(rows.map((r) => [r.payment_id, r]));
      expect(rows.length).toBe(holds.size);
      expect(approved.filter((o) => holds.get(o.response!.paymentId)?.amount_minor !== String(o.amountMinor) || holds.get(o.response!.paymentId)?.status !== 'PENDING').map((o) => o.response!.paymentId)).toEqual([]);
      expect(rows.length).toBe(approved.length);
      const check = await checkLedger(ledger);
      expect(check.violations).toEqual([]);
    } finally {
      await ledger.close();
    }

    // ---- the events ------------------------------------------------------------------------
    // The killed node comes back (as its pod would) and catches up; then the streams, read from
    // the start, hold each decided payment's decision event exactly once (after JetStream's
    // msg-id dedupe of the outbox relay's retries).
    const restartAt = Date.now();
    await nats.restartNode(natsVictim);
    const restartedMs = Date.now() - restartAt;
    const events = await watchEvents(mesh.prefix, nats.url);
    try {
      const decisionsOf = (paymentId: string) =>
        events.seen.filter((s) => Object.values(DECISION_EVENT).includes(s.subject) && s.event.payload?.$case === 'payment' && s.event.payload.value.paymentId === paymentId).map((s) => s.subject);
      const missing = () => decided.filter((o) => decisionsOf(o.response!.paymentId).length === 0);
      await events.waitFor(() => missing().length === 0, 20_000, `the decision events of ${decided.length} payments (missing ${missing().length})`);
      await new Promise((r) => setTimeout(r, 500));
      const wrong = decided.filter((o) => {
        const seen = decisionsOf(o.response!.paymentId);
        return seen.length !== 1 || seen[0] !== DECISION_EVENT[o.response!.status];
      });
      expect(wrong.map((o) => ({ paymentId: o.response!.paymentId, events: decisionsOf(o.response!.paymentId) }))).toEqual([]);
      console.log(`  all ${decided.length} decision events on the R3 stream exactly once (node n${natsVictim} restarted in ${restartedMs} ms), read ${Date.now() - stopAt} ms after the load ended`);
    } finally {
      await events.close();
    }
  }, 90_000);
});

import { randomBytes, randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { AlertKind, AlertsServiceClient, type Alert } from '../../../gen/wristpay/alerts/v1/alerts';
import type { Event, LedgerMoved, PaymentOutcome } from '../../../gen/wristpay/events/v1/events';
import { openDb, type Db } from '../../../platform/db';
import { newEvent } from '../../../platform/events';
import { createLogger } from '../../../platform/log';
import { EventBus } from '../../../platform/nats';
import { watchEvents } from '../../../test/support/events';
import { testPki } from '../../../test/support/pki';
import { freshDatabase, requireServers, TEST_NATS_URL, uniqueName, TEST_STREAM_LIMITS } from '../../../test/support/servers';
import { expectStatus, testClient, testLogger } from '../../../test/support/services';
import { alertFor } from '../src/domain/alert';
import { AlertStore } from '../src/store';
import { eventuallyListed, openStream, startReplica, type Pki, type TestReplica } from './support/alerts';

const eur = (minor: bigint) => ({ amountMinor: minor, currency: 'EUR' });

/** What the gateway publishes for a payment's outcome. */
function paymentEvent(type: 'payment.authorized' | 'payment.challenged' | 'payment.declined', accountId: string, over: Partial<PaymentOutcome> = {}): Event {
  const paymentId = randomUUID();
  const status = { 'payment.authorized': 'APPROVED', 'payment.challenged': 'CHALLENGE_REQUIRED', 'payment.declined': 'DECLINED' }[type];
  return newEvent(
    type,
    'gateway',
    {
      $case: 'payment',
      value: { paymentId, status, declineReason: '', amount: eur(1250n), merchantId: 'merchant-7', accountId, deviceId: randomUUID(), holdId: '', merchantName: 'Corner Café', discount: undefined, stepUp: undefined, ...over },
    },
    `${type}.${paymentId}`,
  );
}

/** What settlement publishes for a ledger movement. */
function ledgerEvent(type: string, accountId: string, over: Partial<LedgerMoved> = {}): Event {
  return newEvent(type, 'settlement', {
    $case: 'ledger',
    value: { transferId: randomUUID(), holdId: randomUUID(), paymentId: randomUUID(), accountId, merchantId: 'merchant-7', amount: eur(1250n), merchantName: 'Corner Café', deviceId: randomUUID(), discount: undefined, voidReason: '', ...over },
  });
}

const sequences = (alerts: Alert[]) => alerts.map((a) => Number(a.sequence));
const oneTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe('alerts (real PostgreSQL and NATS JetStream, mTLS)', () => {
  const prefix = uniqueName();
  let pki: Pki;
  let database: Awaited<ReturnType<typeof freshDatabase>>;
  let events: Awaited<ReturnType<typeof watchEvents>>;
  /** Publishes under the test's prefix, as the gateway and settlement would. */
  let bus: EventBus;
  /** Two replicas on one database, both consuming. Streams poll only once a minute, so what they get in time came by a wake-up. */
  let a: TestReplica;
  let b: TestReplica;

  beforeAll(async () => {
    await requireServers('PostgreSQL', 'NATS');
    pki = testPki(['alerts', 'wallet', 'gateway']);
    database = await freshDatabase();
    events = await watchEvents(prefix);
    bus = await EventBus.connect({ url: TEST_NATS_URL, prefix, source: 'gateway', log: testLogger('gateway'), limits: TEST_STREAM_LIMITS });
    a = await startReplica(prefix, database.url, pki, { ALERTS_POLL_MS: '60000' });
    b = await startReplica(prefix, database.url, pki, { ALERTS_POLL_MS: '60000' });
  });

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await bus?.close();
    await events?.close();
    await database?.drop();
    pki?.remove();
  });

  it('turns each payment and escrow event into its kind of alert, streamed in order as they arrive, with only merchant name, amount and outcome on the wrist', async () => {
    const accountId = uniqueName('acct');
    const stream = openStream(a.wallet, accountId);
    try {
      const flow: Array<[Event, AlertKind, string]> = [
        [paymentEvent('payment.challenged', accountId), AlertKind.ALERT_KIND_CHALLENGED, 'Check phone'],
        [paymentEvent('payment.authorized', accountId), AlertKind.ALERT_KIND_AUTHORIZED, 'Approved'],
        [paymentEvent('payment.declined', accountId, { declineReason: 'INSUFFICIENT_FUNDS', status: 'DECLINED' }), AlertKind.ALERT_KIND_DECLINED, 'Declined'],
        [ledgerEvent('payment.hold.captured', accountId), AlertKind.ALERT_KIND_CAPTURED, 'Captured'],
        [ledgerEvent('escrow.frozen', accountId, { merchantName: '' }), AlertKind.ALERT_KIND_DISPUTE_OPENED, 'Disputed'],
        [
          newEvent('payment.dispute.resolved', 'settlement', {
            $case: 'dispute',
            value: { disputeId: randomUUID(), holdId: randomUUID(), paymentId: randomUUID(), accountId, merchantId: 'merchant-7', amount: eur(1250n), outcome: 'REFUND_BUYER', reason: 'never arrived', transferId: randomUUID(), merchantName: 'Corner Café', deviceId: randomUUID() },
          }),
          AlertKind.ALERT_KIND_DISPUTE_RESOLVED,
          'Dispute won',
        ],
        [ledgerEvent('payment.refunded', accountId), AlertKind.ALERT_KIND_REFUNDED, 'Refunded'],
        [ledgerEvent('escrow.released', accountId), AlertKind.ALERT_KIND_ESCROW_RELEASED, 'Paid out'],
        [ledgerEvent('payment.hold.voided', accountId), AlertKind.ALERT_KIND_VOIDED, 'Cancelled'],
        [ledgerEvent('payment.hold.expired', accountId), AlertKind.ALERT_KIND_EXPIRED, 'Released'],
        [
          newEvent('payment.limits.changed', 'settlement', {
            $case: 'limits',
            value: { deviceId: randomUUID(), accountId, perPayment: eur(5000n), perDay: undefined, frozen: false, version: 2n, changedBy: 'wallet', reason: '' },
          }),
          AlertKind.ALERT_KIND_LIMITS_CHANGED,
          'Limits changed',
        ],
      ];
      // Types that make no alert, and a decline the gateway could not tie to an account: acked and skipped.
      await bus.publish(ledgerEvent('payment.hold.placed', accountId));
      await bus.publish(ledgerEvent('escrow.funded', accountId));
      await bus.publish(paymentEvent('payment.declined', '', { declineReason: 'UNKNOWN_TOKEN' }));
      for (const [i, [event, kind, outcome]] of flow.entries()) {
        await bus.publish(event);
        const alert = await stream.next();
        expect({ sequence: alert.sequence, kind: alert.kind, eventId: alert.eventId, accountId: alert.accountId }).toEqual({ sequence: BigInt(i + 1), kind, eventId: event.eventId, accountId });
        expect(Object.keys(alert.wrist!).sort()).toEqual(['amount', 'merchantName', 'outcome']);
        expect(alert.wrist!.outcome).toBe(outcome);
        expect(alert.occurredAt).toEqual(event.occurredAt);
        expect(alert.phone!.title).not.toBe('');
      }
      const all = await eventuallyListed(a.wallet, accountId, flow.length);
      const [challenged, authorized, declined, captured, disputeOpened] = all;
      expect(authorized!.wrist).toEqual({ merchantName: 'Corner Café', amount: eur(1250n), outcome: 'Approved' });
      // The escrow event had no merchant name: the merchant id stands in.
      expect(disputeOpened!.wrist).toEqual({ merchantName: 'merchant-7', amount: eur(1250n), outcome: 'Disputed' });
      expect(declined!.phone).toEqual({ title: 'Payment declined', body: 'Your 12.50 EUR payment at Corner Café was declined: there is not enough money in your wallet.', merchantId: 'merchant-7', declineReason: 'INSUFFICIENT_FUNDS' });
      expect(challenged!.phone!.declineReason).toBe('');
      expect(captured!.paymentId).not.toBe('');
      expect(all.find((x) => x.kind === AlertKind.ALERT_KIND_LIMITS_CHANGED)!.wrist).toEqual({ merchantName: '', amount: undefined, outcome: 'Limits changed' });
      // Nothing else arrived: the skipped events made no alert.
      expect(sequences(all)).toEqual(oneTo(flow.length));
      await stream.nothingWithin(300);
    } finally {
      stream.close();
    }
  });

  it('a challenged payment’s step-up comes back on the streamed and the listed alert; a voided hold makes a VOIDED alert, without one', async () => {
    const accountId = uniqueName('acct');
    const stream = openStream(a.wallet, accountId);
    try {
      const stepUp = { challengeId: randomUUID(), nonce: randomBytes(32), expiresAt: new Date(Date.now() + 120_000) };
      const challenged = paymentEvent('payment.challenged', accountId, { stepUp });
      const { paymentId } = (challenged.payload as { value: PaymentOutcome }).value;
      await bus.publish(challenged);
      const streamedChallenge = await stream.next();
      expect(streamedChallenge).toMatchObject({ sequence: 1n, kind: AlertKind.ALERT_KIND_CHALLENGED, paymentId, stepUp: { challengeId: stepUp.challengeId, expiresAt: stepUp.expiresAt } });
      expect(Buffer.from(streamedChallenge.stepUp!.nonce).equals(stepUp.nonce)).toBe(true);
      expect(streamedChallenge.phone!.body).toBe(`Confirm the 12.50 EUR payment at Corner Café on your phone by ${stepUp.expiresAt.toISOString().slice(11, 19)} UTC to complete it.`);

      // The merchant cancels the payment before capture: settlement voids its hold.
      const voided = ledgerEvent('payment.hold.voided', accountId, { paymentId, merchantName: 'Corner Bakery', amount: eur(800n) });
      await bus.publish(voided);
      const streamedVoid = await stream.next();
      expect(streamedVoid).toMatchObject({ sequence: 2n, kind: AlertKind.ALERT_KIND_VOIDED, eventId: voided.eventId, paymentId, stepUp: undefined });
      expect(streamedVoid.wrist).toEqual({ merchantName: 'Corner Bakery', amount: eur(800n), outcome: 'Cancelled' });
      expect(streamedVoid.phone).toEqual({ title: 'Payment cancelled', body: 'Corner Bakery cancelled your 8.00 EUR payment; the money is available again.', merchantId: 'merchant-7', declineReason: '' });

      const listed = await eventuallyListed(b.wallet, accountId, 2);
      expect(listed).toEqual([streamedChallenge, streamedVoid]);
      // An alert of another kind never has one.
      await bus.publish(paymentEvent('payment.authorized', accountId));
      expect((await stream.next()).stepUp).toBeUndefined();
    } finally {
      stream.close();
    }
  });

  it('storing, streaming and listing a challenged alert logs its ids, never its nonce (a third replica logging at debug)', async () => {
    const lines: string[] = [];
    const logging = await startReplica(prefix, database.url, pki, { ALERTS_POLL_MS: '60000' }, createLogger('alerts', 'debug', { write: (line: string) => void lines.push(line) }));
    try {
      const accountId = uniqueName('acct');
      const nonce = randomBytes(32);
      const event = paymentEvent('payment.challenged', accountId, { stepUp: { challengeId: randomUUID(), nonce, expiresAt: new Date(Date.now() + 120_000) } });
      const stream = openStream(logging.wallet, accountId);
      try {
        // What this replica's consumer runs for the event (called here so that no other replica takes it).
        expect(await logging.app.ingest(event)).toEqual({ stored: true, sequence: 1n });
        expect(Buffer.from((await stream.next()).stepUp!.nonce).equals(nonce)).toBe(true);
      } finally {
        stream.close();
      }
      expect((await eventuallyListed(logging.wallet, accountId, 1))[0]!.stepUp!.nonce).toHaveLength(32);
      const logged = lines.join('');
      // The log was written, and about this very alert.
      expect(logged).toContain(event.eventId);
      for (const form of [nonce.toString('hex'), nonce.toString('base64'), nonce.toString('base64url'), JSON.stringify([...nonce]).slice(1, -1)]) expect(logged).not.toContain(form);
    } finally {
      await logging.stop();
    }
  });

  it('a client that disconnects mid-way and resumes from the last sequence it saw gets exactly the rest, on either replica', async () => {
    const accountId = uniqueName('acct');
    const first = openStream(a.wallet, accountId);
    for (let i = 0; i < 3; i++) await bus.publish(paymentEvent('payment.authorized', accountId));
    const seen = await first.take(3);
    first.close();
    expect(sequences(seen)).toEqual([1, 2, 3]);
    const more = Array.from({ length: 4 }, () => paymentEvent('payment.authorized', accountId));
    for (const event of more) await bus.publish(event);
    await eventuallyListed(a.wallet, accountId, 7);
    // Resume on the other replica, from the last sequence seen; then one more arrives live.
    const resumed = openStream(b.wallet, accountId, seen[seen.length - 1]!.sequence);
    try {
      const rest = await resumed.take(4);
      expect(sequences(rest)).toEqual([4, 5, 6, 7]);
      // Two replicas share the consumer, so close events may be stored (and numbered) in another
      // order than published: the feed's order is the sequence, and it holds exactly these four.
      expect(rest.map((x) => x.eventId).sort()).toEqual(more.map((e) => e.eventId).sort());
      const live = paymentEvent('payment.declined', accountId, { declineReason: 'RISK' });
      await bus.publish(live);
      expect(await resumed.next()).toMatchObject({ sequence: 8n, eventId: live.eventId });
      await resumed.nothingWithin(300);
    } finally {
      resumed.close();
    }
  });

  it('the same event delivered twice (republished, redelivered to both replicas at once) makes one alert and takes one sequence', async () => {
    const accountId = uniqueName('acct');
    const event = paymentEvent('payment.authorized', accountId);
    expect((await bus.publish(event)).duplicate).toBe(false);
    await eventuallyListed(a.wallet, accountId, 1);
    expect((await bus.publish(event)).duplicate).toBe(true);
    expect(await Promise.all([a.app.ingest(event), b.app.ingest(event), a.app.ingest(event)])).toEqual([
      { stored: false, reason: 'duplicate' },
      { stored: false, reason: 'duplicate' },
      { stored: false, reason: 'duplicate' },
    ]);
    // A new event racing its own redelivery: stored once.
    const racing = paymentEvent('payment.declined', accountId, { declineReason: 'RISK' });
    const outcomes = await Promise.all([a.app.ingest(racing), b.app.ingest(racing)]);
    expect(outcomes.filter((o) => o.stored)).toEqual([{ stored: true, sequence: 2n }]);
    const next = paymentEvent('payment.authorized', accountId);
    await bus.publish(next);
    const all = await eventuallyListed(a.wallet, accountId, 3);
    expect(all.map((x) => [Number(x.sequence), x.eventId])).toEqual([
      [1, event.eventId],
      [2, racing.eventId],
      [3, next.eventId],
    ]);
  });

  it('two replicas storing alerts for one account at once give it sequences 1..N with no gap, and a stream sees them in order', async () => {
    const accountId = uniqueName('acct');
    const stream = openStream(b.wallet, accountId);
    try {
      const published = Array.from({ length: 30 }, (_, i) => (i % 2 ? paymentEvent('payment.authorized', accountId) : ledgerEvent(i % 4 ? 'payment.hold.captured' : 'escrow.released', accountId)));
      const direct = Array.from({ length: 30 }, () => paymentEvent('payment.authorized', accountId));
      // Both replicas' consumers take from JetStream while both store directly (as racing redeliveries would).
      await Promise.all([
        (async () => {
          for (const e of published) await bus.publish(e);
        })(),
        Promise.all(direct.map((e, i) => (i % 2 ? a : b).app.ingest(e))),
      ]);
      const all = await eventuallyListed(a.wallet, accountId, 60);
      expect(sequences(all)).toEqual(oneTo(60));
      expect(new Set(all.map((x) => x.eventId))).toEqual(new Set([...published, ...direct].map((e) => e.eventId)));
      const streamed = await stream.take(60);
      expect(sequences(streamed)).toEqual(oneTo(60));
      await stream.nothingWithin(200);
    } finally {
      stream.close();
    }
  });

  it('a stream on one replica wakes for an alert the other replica stored (core NATS wake-up, not the minute-long poll)', async () => {
    const accountId = uniqueName('acct');
    const onB = openStream(b.wallet, accountId);
    try {
      // Let the stream finish its first (empty) read and start waiting.
      await onB.nothingWithin(300);
      const event = paymentEvent('payment.authorized', accountId);
      expect(await a.app.ingest(event)).toEqual({ stored: true, sequence: 1n });
      // Within 3 s (next() fails after that), though replica B polls only once a minute.
      expect(await onB.next(3_000)).toMatchObject({ sequence: 1n, eventId: event.eventId });
    } finally {
      onB.close();
    }
  });

  it('refuses a malformed account id or limit with INVALID_ARGUMENT, and a caller other than the wallet with PERMISSION_DENIED', async () => {
    for (const accountId of ['', 'two words', 'acct:1', 'x'.repeat(129)]) {
      await expectStatus(a.wallet.listAlerts({ accountId, afterSequence: 0n, limit: 0 }), status.INVALID_ARGUMENT, /^account_id is required/);
      expect(await openStream(a.wallet, accountId).ended()).toEqual({ code: status.INVALID_ARGUMENT, details: expect.stringMatching(/^account_id is required/) });
    }
    await expectStatus(a.wallet.listAlerts({ accountId: 'acct', afterSequence: 0n, limit: 501 }), status.INVALID_ARGUMENT, /^limit must be between 1 and 500/);
    const gateway = testClient(AlertsServiceClient, a.app.port, pki.client('gateway'));
    try {
      await expectStatus(gateway.listAlerts({ accountId: 'acct', afterSequence: 0n, limit: 0 }), status.PERMISSION_DENIED, /^ListAlerts may only be called by wallet \(caller: gateway\)$/);
      expect(await openStream(gateway, 'acct').ended()).toEqual({ code: status.PERMISSION_DENIED, details: 'StreamAlerts may only be called by wallet (caller: gateway)' });
    } finally {
      gateway.close();
    }
  });

  it('a stream’s wake-up watch is released when the client cancels (and a refused stream opens none)', async () => {
    const watching = async (n: number) => {
      for (const until = Date.now() + 3_000; a.app.wakeups.watching !== n; await new Promise((r) => setTimeout(r, 20))) {
        if (Date.now() > until) throw new Error(`expected ${n} open watches, have ${a.app.wakeups.watching}`);
      }
    };
    const before = a.app.wakeups.watching;
    const stream = openStream(a.wallet, uniqueName('acct'));
    await watching(before + 1);
    stream.close();
    await watching(before);
    expect(await openStream(a.wallet, 'two words').ended()).toMatchObject({ code: status.INVALID_ARGUMENT });
    await watching(before);
  });

  it('ListAlerts pages by after_sequence and limit', async () => {
    const accountId = uniqueName('acct');
    for (let i = 0; i < 5; i++) await a.app.ingest(paymentEvent('payment.authorized', accountId));
    const page = (after: bigint, limit: number) => a.wallet.listAlerts({ accountId, afterSequence: after, limit }).then((r) => ({ seq: sequences(r.alerts), last: Number(r.lastSequence) }));
    expect(await page(0n, 2)).toEqual({ seq: [1, 2], last: 2 });
    expect(await page(2n, 2)).toEqual({ seq: [3, 4], last: 4 });
    expect(await page(4n, 2)).toEqual({ seq: [5], last: 5 });
    expect(await page(5n, 2)).toEqual({ seq: [], last: 5 });
    expect(await page(0n, 0)).toEqual({ seq: [1, 2, 3, 4, 5], last: 5 });
    expect(await a.wallet.listAlerts({ accountId: uniqueName('nobody'), afterSequence: 7n, limit: 0 })).toEqual({ alerts: [], lastSequence: 7n });
  });
});

describe('alerts across a restart (own prefix and database, one replica at a time)', () => {
  const prefix = uniqueName();
  let pki: Pki;
  let database: Awaited<ReturnType<typeof freshDatabase>>;
  let events: Awaited<ReturnType<typeof watchEvents>>;
  let bus: EventBus;
  let db: Db;
  const replicas: TestReplica[] = [];

  beforeAll(async () => {
    await requireServers('PostgreSQL', 'NATS');
    pki = testPki(['alerts', 'wallet']);
    database = await freshDatabase();
    events = await watchEvents(prefix);
    bus = await EventBus.connect({ url: TEST_NATS_URL, prefix, source: 'settlement', log: testLogger('settlement'), limits: TEST_STREAM_LIMITS });
    db = await openDb({ databaseUrl: database.url, poolSize: 2 });
  });

  afterAll(async () => {
    for (const r of replicas) await r.stop();
    await db?.close();
    await bus?.close();
    await events?.close();
    await database?.drop();
    pki?.remove();
  });

  const start = async (env: Record<string, string> = {}) => {
    const r = await startReplica(prefix, database.url, pki, env);
    replicas.push(r);
    return r;
  };

  it('events published while the service is down all become alerts when it is back; its open streams ended UNAVAILABLE and resume without a gap', async () => {
    const accountId = uniqueName('acct');
    const first = await start({ ALERTS_POLL_MS: '60000' });
    const stream = openStream(first.wallet, accountId);
    const before = [ledgerEvent('payment.hold.captured', accountId), ledgerEvent('escrow.released', accountId)];
    for (const e of before) await bus.publish(e);
    const seen = await stream.take(2);

    const stopping = first.stop();
    expect(await stream.ended()).toEqual({ code: status.UNAVAILABLE, details: 'the server is shutting down; resume the stream' });
    await stopping;

    const whileDown = [...Array.from({ length: 5 }, () => paymentEvent('payment.authorized', accountId)), ledgerEvent('escrow.frozen', accountId)];
    for (const e of whileDown) await bus.publish(e);

    const second = await start({ ALERTS_POLL_MS: '60000' });
    const resumed = openStream(second.wallet, accountId, seen[1]!.sequence);
    try {
      const rest = await resumed.take(whileDown.length, 10_000);
      expect(sequences(rest)).toEqual([3, 4, 5, 6, 7, 8]);
      // The payment and escrow streams have separate consumers, so only the set is fixed across them.
      expect(new Set(rest.map((x) => x.eventId))).toEqual(new Set(whileDown.map((e) => e.eventId)));
      await resumed.nothingWithin(300);
    } finally {
      resumed.close();
    }
  });

  it('an alert stored without any wake-up still reaches an open stream, by the poll', async () => {
    const accountId = uniqueName('acct');
    const polling = await start({ ALERTS_POLL_MS: '200' });
    const stream = openStream(polling.wallet, accountId);
    try {
      await stream.nothingWithin(300);
      const event = paymentEvent('payment.authorized', accountId);
      const draft = alertFor(event);
      if ('skip' in draft) throw new Error(draft.skip);
      // Straight into the database: no replica's consumer, so no wake-up of any kind.
      await new AlertStore(db).record('alerts', draft);
      expect(await stream.next(2_000)).toMatchObject({ sequence: 1n, eventId: event.eventId });
    } finally {
      stream.close();
    }
  });
});

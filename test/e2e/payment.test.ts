import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { AlertKind, AlertsServiceClient } from '../../gen/wristpay/alerts/v1/alerts';
import { SessionEndReason } from '../../gen/wristpay/device_registry/v1/device_registry';
import { GatewayServiceClient, PaymentStatus } from '../../gen/wristpay/gateway/v1/gateway';
import type { PromiseClient } from '../../platform/grpc/client';
import { repoPath } from '../../platform/paths';
import { ATTR } from '../../platform/telemetry/attributes';
import type { SpanRecord } from '../../platform/telemetry/file-exporter';
import { certPaths, DATABASES, freePort, SERVICES, startMesh, type Mesh, type ServiceName } from '../../scripts/mesh';
import { backOfficeClients, certCredentials, merchantGateways, walletClients, type BackOfficeClients, type MerchantGateways, type WalletClients } from '../../sim/clients';
import { onboardMerchant } from '../../sim/merchant-onboarding';
import { DEMO_MERCHANTS } from '../../sim/terminal';
import { confirmStepUp, onboardBand, pay } from '../../sim/wallet';
import { run as traceTool } from '../../scripts/trace/main';
import { eventually } from '../support/eventually';
import { watchEvents } from '../support/events';
import { freshDatabase, requireServers, TEST_NATS_URL, TEST_REDIS_URL, TEST_STREAM_MAX_BYTES, uniqueName } from '../support/servers';
import { expectStatus, testClient } from '../support/services';

const SPAN_KIND_SERVER = 1;
const SPAN_KIND_CONSUMER = 4;
const AUTHORIZE = 'grpc.wristpay.gateway.v1.GatewayService/Authorize';
/** A demo merchant: scripts/dev-certs.sh issues its identity, merchant.m-coffee-lab; the test onboards it in its fresh gateway. */
const MERCHANT = DEMO_MERCHANTS.get('m-coffee-lab')!;

/**
 * One real payment across all six services (alerts hears it on NATS), each its own process started as in production
 * (telemetry preloaded, mTLS between them), on real PostgreSQL, Redis and NATS JetStream. Each caller has its own
 * identity: the back office onboards the merchant, the merchant's terminal pays and captures, the wallet does the rest.
 */
describe('one payment end to end', () => {
  const prefix = uniqueName('e2e');
  const work = mkdtempSync(join(tmpdir(), 'wp-e2e-'));
  const databases: Array<Awaited<ReturnType<typeof freshDatabase>>> = [];
  let mesh: Mesh | undefined;
  let certs: string;
  let gatewayPort: number;
  let alertsPort: number;
  let wallet: WalletClients;
  let backoffice: BackOfficeClients;
  let merchants: MerchantGateways;
  /** The merchant's terminal: the gateway as merchant.<id>. */
  let terminal: PromiseClient<GatewayServiceClient>;
  let events: Awaited<ReturnType<typeof watchEvents>>;
  const logs: string[] = [];

  beforeAll(async () => {
    await requireServers('PostgreSQL', 'Redis', 'NATS');
    certs = join(work, 'certs');
    execFileSync('bash', [repoPath('scripts', 'dev-certs.sh'), certs], { stdio: 'pipe' });
    const ports = {} as Record<ServiceName, number>;
    for (const s of SERVICES) ports[s] = await freePort();
    gatewayPort = ports.gateway;
    alertsPort = ports.alerts;
    const perService: Partial<Record<ServiceName, Record<string, string>>> = {};
    for (const s of SERVICES) {
      perService[s] = { ...certPaths(certs, s), WRISTPAY_TRACE_FILE: join(work, 'traces', `${s}.jsonl`) };
      if (DATABASES[s]) {
        const db = await freshDatabase();
        databases.push(db);
        perService[s]!.DATABASE_URL = db.url;
      }
    }
    perService.tokenization = { ...perService.tokenization, TOKEN_MASTER_KEY: randomBytes(32).toString('base64'), VAULT_KEKS: `1:${randomBytes(32).toString('base64')}` };
    events = await watchEvents(prefix);
    mesh = await startMesh({
      ports,
      env: { GRPC_TLS: 'mtls', REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: prefix, NATS_URL: TEST_NATS_URL, NATS_SUBJECT_PREFIX: prefix, NATS_STREAM_MAX_BYTES: String(TEST_STREAM_MAX_BYTES), LOG_LEVEL: 'info' },
      perService,
      credentials: certCredentials(certs, 'demo'),
      onLine: (service, line) => logs.push(`${service} ${line}`),
    });
    const at = (s: ServiceName) => `localhost:${ports[s]}`;
    wallet = walletClients({ gateway: at('gateway'), registry: at('device-registry'), tokenization: at('tokenization'), settlement: at('settlement'), alerts: at('alerts') }, certCredentials(certs, 'wallet'));
    backoffice = backOfficeClients({ gateway: at('gateway'), settlement: at('settlement') }, certCredentials(certs, 'backoffice'));
    await onboardMerchant(backoffice.merchants, MERCHANT);
    merchants = merchantGateways(at('gateway'), certs);
    terminal = merchants.of(MERCHANT.merchantId);
  }, 120_000);

  afterAll(async () => {
    for (const c of [wallet, backoffice, merchants]) c?.close();
    await mesh?.stop();
    await events?.close();
    for (const db of databases) await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  /** The spans of one trace, or of every trace when `traceId` is undefined. */
  function spansOf(traceId: string | undefined): SpanRecord[] {
    return SERVICES.flatMap((s) => {
      const file = join(work, 'traces', `${s}.jsonl`);
      if (!existsSync(file)) return [];
      return readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as SpanRecord)
        .filter((span) => traceId === undefined || span.traceId === traceId);
    });
  }

  it('approves a live band, holds the money exactly once, publishes each step and keeps one trace', async () => {
    const accountId = uniqueName('acct');
    const band = await onboardBand(wallet, accountId, 10_000n);
    // device-registry heard tokenization's token.provisioned: the band shows its one token.
    const provisionedBy = Date.now() + 5_000;
    let device = (await wallet.registry.getDevice({ deviceId: band.deviceId! })).device!;
    while (device.tokensProvisioned < 1 && Date.now() < provisionedBy) {
      await new Promise((r) => setTimeout(r, 50));
      device = (await wallet.registry.getDevice({ deviceId: band.deviceId! })).device!;
    }
    expect({ tokensProvisioned: device.tokensProvisioned, provisionedAt: device.lastTokenProvisionedAt instanceof Date }).toEqual({ tokensProvisioned: 1, provisionedAt: true });
    const first = await pay({ gateway: terminal }, band, { merchantId: MERCHANT.merchantId, amountMinor: 1_234n });
    expect(first.response.status).toBe(PaymentStatus.PAYMENT_STATUS_APPROVED);
    const paymentId = first.response.paymentId;

    // A retry of the same request returns the first answer and moves nothing.
    const retry = await pay({ gateway: terminal }, band, { merchantId: MERCHANT.merchantId, amountMinor: 1_234n, tap: first.tap, idempotencyKey: first.idempotencyKey });
    expect(retry.response.paymentId).toBe(paymentId);
    const balance = await wallet.settlement.getBalance({ accountId, currency: 'EUR' });
    expect(balance.held!.amountMinor).toBe(1_234n);
    expect(balance.available!.amountMinor).toBe(10_000n - 1_234n);

    const forPayment = (type: string) => events.ofType(type).filter((e) => JSON.stringify(e.event.payload?.value ?? {}, (_k, v) => (typeof v === 'bigint' ? String(v) : v)).includes(paymentId));
    await events.waitFor(() => ['risk.scored', 'payment.hold.placed', 'payment.authorized'].every((t) => forPayment(t).length > 0), 10_000, 'the payment events');
    await new Promise((r) => setTimeout(r, 500));
    for (const type of ['risk.scored', 'payment.hold.placed', 'payment.authorized']) expect(forPayment(type)).toHaveLength(1);
    expect(events.ofType('token.payment.verified').filter((e) => e.event.payload?.$case === 'verification' && e.event.payload.value.deviceId === band.deviceId)).toHaveLength(1);

    // Every service's spans of this payment, and a NATS consumer's, carry the trace id the terminal started.
    let spans: SpanRecord[] = [];
    const until = Date.now() + 10_000;
    // alerts is no hop of the payment: it joins the trace as a consumer of payment.authorized.
    const onPath = SERVICES.filter((s) => s !== 'alerts');
    const complete = () =>
      onPath.every((s) => spans.some((sp) => sp.service === s && sp.kind === SPAN_KIND_SERVER)) && spans.some((sp) => sp.service === 'alerts' && sp.kind === SPAN_KIND_CONSUMER);
    while (Date.now() < until && !complete()) {
      await new Promise((r) => setTimeout(r, 200));
      spans = spansOf(first.traceId);
    }
    const summary = spans.map((s) => `${s.service}:${s.name}:${s.kind}`);
    expect(onPath.filter((s) => !spans.some((sp) => sp.service === s && sp.kind === SPAN_KIND_SERVER))).toEqual([]);
    expect(summary.some((s) => s.endsWith(`:${SPAN_KIND_CONSUMER}`))).toBe(true);
    expect(summary).toContain(`alerts:payment.authorized process:${SPAN_KIND_CONSUMER}`);
    expect(mesh!.exited).toEqual({});

    // What an analyst needs to tell why, on the gateway's Authorize span; risk's own span agrees on the versions.
    const authorize = spans.find((sp) => sp.service === 'gateway' && sp.name === AUTHORIZE && sp.kind === SPAN_KIND_SERVER)!;
    const score = spans.find((sp) => sp.service === 'risk' && sp.kind === SPAN_KIND_SERVER && sp.name.endsWith('/Score'))!;
    expect(authorize.attributes).toMatchObject({
      [ATTR.paymentId]: paymentId,
      [ATTR.merchantId]: MERCHANT.merchantId,
      [ATTR.channel]: 'CHANNEL_BAND_TAP',
      [ATTR.decision]: 'APPROVED',
      [ATTR.riskDecision]: 'APPROVE',
      [ATTR.riskScore]: expect.any(Number),
      [ATTR.riskReasons]: score.attributes[ATTR.riskReasons],
      [ATTR.rulesetVersion]: expect.stringMatching(/.+/),
      [ATTR.modelVersion]: expect.stringMatching(/.+/),
      [ATTR.voucherUsed]: false,
      [ATTR.holdOutcome]: 'placed',
      [ATTR.holdId]: first.response.holdId,
    });
    expect(authorize.attributes[ATTR.declineReason]).toBeUndefined();
    expect([score.attributes[ATTR.rulesetVersion], score.attributes[ATTR.modelVersion], score.attributes[ATTR.riskScore]]).toEqual([authorize.attributes[ATTR.rulesetVersion], authorize.attributes[ATTR.modelVersion], authorize.attributes[ATTR.riskScore]]);
    expect(spans.find((sp) => sp.service === 'alerts' && sp.name === 'payment.authorized process')!.attributes[ATTR.paymentId]).toBe(paymentId);

    // The analysts' tool reads this run's trace files: the payment's waterfall has every service's spans.
    const waterfall = await traceTool([paymentId, '--dir', join(work, 'traces')]);
    expect(waterfall).toContain(`trace ${first.traceId}`);
    for (const service of SERVICES) expect(waterfall).toMatch(new RegExp(`│ ${service} +│`));
    expect(waterfall).toContain('decision=APPROVED');

    // The merchant captures through the gateway: the hold becomes escrow, and a second capture is refused.
    const captured = await terminal.capture({ idempotencyKey: randomUUID(), paymentId, merchantId: MERCHANT.merchantId, amount: undefined });
    expect(captured.payment!.status).toBe(PaymentStatus.PAYMENT_STATUS_CAPTURED);
    const after = await wallet.settlement.getBalance({ accountId, currency: 'EUR' });
    expect({ held: after.held!.amountMinor, available: after.available!.amountMinor, posted: after.posted!.amountMinor }).toEqual({ held: 0n, available: 10_000n - 1_234n, posted: 10_000n - 1_234n });
    await expect(terminal.capture({ idempotencyKey: randomUUID(), paymentId, merchantId: MERCHANT.merchantId, amount: undefined })).rejects.toMatchObject({ code: status.FAILED_PRECONDITION });
    expect((await terminal.getPayment({ paymentId, merchantId: MERCHANT.merchantId })).payment!.status).toBe(PaymentStatus.PAYMENT_STATUS_CAPTURED);

    // The wallet's feed: the approval, then the capture, each once, in order, under the registry's name of the merchant.
    const feedBy = Date.now() + 10_000;
    const alerts = testClient(AlertsServiceClient, alertsPort, certCredentials(certs, 'wallet'));
    try {
      let feed = await alerts.listAlerts({ accountId, afterSequence: 0n, limit: 0 });
      while (feed.alerts.length < 2 && Date.now() < feedBy) {
        await new Promise((r) => setTimeout(r, 100));
        feed = await alerts.listAlerts({ accountId, afterSequence: 0n, limit: 0 });
      }
      const wrist = (outcome: string) => ({ merchantName: MERCHANT.displayName, amount: { amountMinor: 1_234n, currency: 'EUR' }, outcome });
      expect(feed.alerts.map((a) => ({ sequence: a.sequence, kind: a.kind, paymentId: a.paymentId, wrist: a.wrist }))).toEqual([
        { sequence: 1n, kind: AlertKind.ALERT_KIND_AUTHORIZED, paymentId, wrist: wrist('Approved') },
        { sequence: 2n, kind: AlertKind.ALERT_KIND_CAPTURED, paymentId, wrist: wrist('Captured') },
      ]);
    } finally {
      alerts.close();
    }
  });

  it('declines a replayed tap and moves no money for it', async () => {
    const accountId = uniqueName('acct');
    const band = await onboardBand(wallet, accountId, 5_000n);
    const ok = await pay({ gateway: terminal }, band, { merchantId: MERCHANT.merchantId, amountMinor: 700n });
    expect(ok.response.status).toBe(PaymentStatus.PAYMENT_STATUS_APPROVED);
    const replay = await pay({ gateway: terminal }, band, { merchantId: MERCHANT.merchantId, amountMinor: 700n, tap: band.replayLastTap(), idempotencyKey: randomUUID() });
    expect(replay.response.status).toBe(PaymentStatus.PAYMENT_STATUS_DECLINED);
    const balance = await wallet.settlement.getBalance({ accountId, currency: 'EUR' });
    expect(balance.held!.amountMinor).toBe(700n);

    // The decline's span says why; no risk was asked, so no score, and no hold was tried.
    const declined = await eventually(() => spansOf(replay.traceId).find((sp) => sp.service === 'gateway' && sp.name === AUTHORIZE && sp.kind === SPAN_KIND_SERVER), 10_000, 'the replay’s Authorize span');
    expect(declined.attributes).toMatchObject({ [ATTR.paymentId]: replay.response.paymentId, [ATTR.decision]: 'DECLINED', [ATTR.declineReason]: 'REPLAY', [ATTR.declineMessage]: expect.stringMatching(/replay/), [ATTR.channel]: 'CHANNEL_BAND_TAP' });
    expect([declined.attributes[ATTR.riskScore], declined.attributes[ATTR.holdOutcome]]).toEqual([undefined, undefined]);
    const byReason = await traceTool(['--declined', '--dir', join(work, 'traces')]);
    expect(byReason).toMatch(/│ REPLAY +│ 1 +│/);
    expect(byReason).toContain(replay.response.paymentId);
  });

  it('traces a step-up: the Authorize span says challenged, the ConfirmPayment span confirmed and the hold; the tool shows both traces in order', async () => {
    const accountId = uniqueName('acct');
    const band = await onboardBand(wallet, accountId, 5_000n);
    await wallet.registry.endSession({ idempotencyKey: randomUUID(), deviceId: band.deviceId!, reason: SessionEndReason.SESSION_END_REASON_WRIST_OFF });
    const paid = await pay({ gateway: terminal }, band, { merchantId: MERCHANT.merchantId, amountMinor: 900n });
    expect(paid.response.status).toBe(PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED);
    const paymentId = paid.response.paymentId;
    const challenged = await eventually(
      () => events.ofType('payment.challenged').find((e) => e.event.payload?.$case === 'payment' && e.event.payload.value.paymentId === paymentId),
      10_000,
      'payment.challenged',
    );
    const stepUp = (challenged.event.payload as { value: { stepUp: { challengeId: string; nonce: Uint8Array } } }).value.stepUp;
    const confirmed = await confirmStepUp(wallet.gateway, band, { paymentId, accountId, challengeId: stepUp.challengeId, nonce: stepUp.nonce });
    expect(confirmed.status).toBe(PaymentStatus.PAYMENT_STATUS_APPROVED);

    const gatewaySpans = () => spansOf(undefined).filter((sp) => sp.service === 'gateway' && sp.kind === SPAN_KIND_SERVER && sp.attributes[ATTR.paymentId] === paymentId);
    const [authorize, confirm] = await eventually(() => {
      const found = gatewaySpans();
      const a = found.find((sp) => sp.name === AUTHORIZE);
      const c = found.find((sp) => sp.name.endsWith('/ConfirmPayment'));
      return a && c ? [a, c] : undefined;
    }, 10_000, 'the Authorize and ConfirmPayment spans');
    expect(authorize!.attributes).toMatchObject({ [ATTR.decision]: 'CHALLENGED', [ATTR.challengeOutcome]: 'challenged', [ATTR.riskDecision]: 'CHALLENGE', [ATTR.riskReasons]: expect.arrayContaining(['SESSION_NOT_LIVE']) });
    expect(confirm!.attributes).toMatchObject({ [ATTR.decision]: 'APPROVED', [ATTR.challengeOutcome]: 'confirmed', [ATTR.holdOutcome]: 'placed', [ATTR.holdId]: confirmed.holdId });
    expect(confirm!.traceId).not.toBe(authorize!.traceId);

    const waterfall = await traceTool([paymentId, '--dir', join(work, 'traces')]);
    expect(waterfall.split('\n')[0]).toBe(`payment ${paymentId}: 2 traces`);
    expect(waterfall.indexOf(`trace ${authorize!.traceId}`)).toBeLessThan(waterfall.indexOf(`trace ${confirm!.traceId}`));
    expect(waterfall.indexOf(`trace ${authorize!.traceId}`)).toBeGreaterThan(-1);
  });

  it('lets only merchant identities pay: the demo and the wallet are refused at the gateway', async () => {
    const accountId = uniqueName('acct');
    const band = await onboardBand(wallet, accountId, 5_000n);
    const as = (identity: string) => testClient(GatewayServiceClient, gatewayPort, certCredentials(certs, identity));
    for (const identity of ['demo', 'wallet']) {
      const gateway = as(identity);
      try {
        await expectStatus(pay({ gateway }, band, { merchantId: MERCHANT.merchantId, amountMinor: 300n }), status.PERMISSION_DENIED);
      } finally {
        gateway.close();
      }
    }
    // A merchant certificate the back office never onboarded is refused too.
    await expectStatus(pay({ gateway: merchants.of('m-bakery') }, band, { merchantId: 'm-bakery', amountMinor: 300n }), status.PERMISSION_DENIED, /not registered/);
    expect((await wallet.settlement.getBalance({ accountId, currency: 'EUR' })).held!.amountMinor).toBe(0n);
  });
});

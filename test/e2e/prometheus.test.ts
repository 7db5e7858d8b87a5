import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PaymentStatus, type GatewayServiceClient } from '../../gen/wristpay/gateway/v1/gateway';
import type { PromiseClient } from '../../platform/grpc/client';
import { repoPath } from '../../platform/paths';
import { certPaths, DATABASES, freePort, SERVICES, startMesh, type Mesh, type ServiceName } from '../../scripts/mesh';
import { query, startPrometheus, type RunningPrometheus, type Sample } from '../../scripts/prometheus';
import { backOfficeClients, certCredentials, merchantGateways, walletClients, type BackOfficeClients, type MerchantGateways, type WalletClients } from '../../sim/clients';
import { onboardMerchant } from '../../sim/merchant-onboarding';
import { DEMO_MERCHANTS } from '../../sim/terminal';
import { onboardBand, pay } from '../../sim/wallet';
import { eventually } from '../support/eventually';
import { freshDatabase, requireServers, TEST_NATS_URL, TEST_REDIS_URL, TEST_STREAM_MAX_BYTES, uniqueName } from '../support/servers';

const MERCHANT = DEMO_MERCHANTS.get('m-coffee-lab')!;
const AUTHORIZE = 'rpc_service="wristpay.gateway.v1.GatewayService",rpc_method="Authorize"';

/**
 * Metrics end to end: the six services as separate processes (telemetry preloaded, METRICS_PORT
 * set, as in the cluster), Debian's prometheus scraping them every second, payments through the
 * mesh, then PromQL through Prometheus' HTTP API: the series an SRE's dashboard and the SLO
 * alerts read must be there with the values the payments made.
 */
describe('metrics scraped by a real Prometheus', () => {
  const prefix = uniqueName('prom');
  const work = mkdtempSync(join(tmpdir(), 'wp-prom-'));
  const databases: Array<Awaited<ReturnType<typeof freshDatabase>>> = [];
  let mesh: Mesh | undefined;
  let prometheus: RunningPrometheus | undefined;
  let wallet: WalletClients;
  let backoffice: BackOfficeClients;
  let merchants: MerchantGateways;
  let terminal: PromiseClient<GatewayServiceClient>;
  const logs: string[] = [];

  beforeAll(async () => {
    await requireServers('PostgreSQL', 'Redis', 'NATS');
    const certs = join(work, 'certs');
    execFileSync('bash', [repoPath('scripts', 'dev-certs.sh'), certs], { stdio: 'pipe' });
    const ports = {} as Record<ServiceName, number>;
    const metricsPorts = {} as Record<ServiceName, number>;
    for (const s of SERVICES) {
      ports[s] = await freePort();
      metricsPorts[s] = await freePort();
    }
    const perService: Partial<Record<ServiceName, Record<string, string>>> = {};
    for (const s of SERVICES) {
      perService[s] = { ...certPaths(certs, s), METRICS_PORT: String(metricsPorts[s]), WRISTPAY_TRACE_FILE: join(work, 'traces', `${s}.jsonl`) };
      if (DATABASES[s]) {
        const db = await freshDatabase();
        databases.push(db);
        perService[s]!.DATABASE_URL = db.url;
        perService[s]!.DATABASE_POOL_SIZE = '3';
      }
    }
    perService.tokenization = { ...perService.tokenization, TOKEN_MASTER_KEY: randomBytes(32).toString('base64'), VAULT_KEKS: `1:${randomBytes(32).toString('base64')}` };
    // The in-service ledger check every second, so its result is scraped within the test.
    perService.settlement = { ...perService.settlement, LEDGER_CHECK_INTERVAL_SECONDS: '1' };
    const [started, prom] = await Promise.all([
      startMesh({
        ports,
        env: { GRPC_TLS: 'mtls', REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: prefix, NATS_URL: TEST_NATS_URL, NATS_SUBJECT_PREFIX: prefix, NATS_STREAM_MAX_BYTES: String(TEST_STREAM_MAX_BYTES), LOG_LEVEL: 'warn' },
        perService,
        credentials: certCredentials(certs, 'demo'),
        onLine: (service, line) => logs.push(`${service} ${line}`),
      }),
      startPrometheus({ port: await freePort(), dataDir: join(work, 'prometheus'), targets: metricsPorts, scrapeIntervalSeconds: 1 }),
    ]);
    mesh = started;
    prometheus = prom;
    const at = (s: ServiceName) => `localhost:${ports[s]}`;
    wallet = walletClients({ gateway: at('gateway'), registry: at('device-registry'), tokenization: at('tokenization'), settlement: at('settlement'), alerts: at('alerts') }, certCredentials(certs, 'wallet'));
    backoffice = backOfficeClients({ gateway: at('gateway'), settlement: at('settlement') }, certCredentials(certs, 'backoffice'));
    await onboardMerchant(backoffice.merchants, MERCHANT);
    merchants = merchantGateways(at('gateway'), certs);
    terminal = merchants.of(MERCHANT.merchantId);
  }, 120_000);

  afterAll(async () => {
    for (const c of [wallet, backoffice, merchants]) c?.close();
    await prometheus?.stop();
    await mesh?.stop();
    for (const db of databases) await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  /** The query's samples once `ready` accepts them (Prometheus scrapes every second). */
  async function until(promql: string, ready: (samples: Sample[]) => boolean, timeoutMs = 10_000): Promise<Sample[]> {
    let samples: Sample[] = [];
    await eventually(
      async () => {
        samples = await query(prometheus!.url, promql);
        return ready(samples);
      },
      timeoutMs,
      `${promql} (last answer: ${JSON.stringify(samples)})`,
      250,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; last answer: ${JSON.stringify(samples)}`);
    });
    return samples;
  }

  it('counts payments by decision and reason, times Authorize, and reports the pipelines', async () => {
    const accountId = uniqueName('acct');
    const band = await onboardBand(wallet, accountId, 1_000n);
    for (const amountMinor of [300n, 450n]) {
      const approved = await pay({ gateway: terminal }, band, { merchantId: MERCHANT.merchantId, amountMinor });
      expect(approved.response.status).toBe(PaymentStatus.PAYMENT_STATUS_APPROVED);
    }
    // A second band (a third tap on the first within the minute would be stepped up by risk's velocity rules).
    const poor = await onboardBand(wallet, uniqueName('acct'), 100n);
    const declined = await pay({ gateway: terminal }, poor, { merchantId: MERCHANT.merchantId, amountMinor: 600n });
    expect(declined.response.status).toBe(PaymentStatus.PAYMENT_STATUS_DECLINED);
    // A band reported lost: the cut-off steps in tokenization and settlement are timed.
    await wallet.registry.reportLost({ idempotencyKey: randomUUID(), deviceId: band.deviceId! });

    const byDecision = await until('sum by (decision, reason) (wristpay_payments_total)', (s) => s.length >= 2);
    expect(byDecision.map((s) => ({ decision: s.metric.decision, reason: s.metric.reason, value: s.value })).sort((a, b) => a.decision!.localeCompare(b.decision!))).toEqual([
      { decision: 'APPROVED', reason: 'none', value: 2 },
      { decision: 'DECLINED', reason: 'insufficient_funds', value: 1 },
    ]);

    // Every Authorize recorded with its status (OTel RPC conventions), and a p99 out of the histogram.
    const calls = await until(`sum by (rpc_grpc_status_code) (rpc_server_duration_count{${AUTHORIZE}})`, (s) => s.reduce((n, x) => n + x.value, 0) >= 3);
    expect(calls.map((s) => ({ code: s.metric.rpc_grpc_status_code, value: s.value }))).toEqual([{ code: '0', value: 3 }]);
    // Over the buckets as they stand, not their rate: a scrape may first see the series with all
    // three calls in it, and a counter that never moves after it appears has no rate.
    const p99 = await until(`histogram_quantile(0.99, sum by (le) (rpc_server_duration_bucket{${AUTHORIZE}}))`, (s) => s.length === 1 && Number.isFinite(s[0]!.value));
    expect(p99[0]!.value).toBeGreaterThan(0);
    expect(p99[0]!.value).toBeLessThan(10);

    // Each downstream hop of Authorize is seen by the service that served it.
    const hops = await until('sum by (service_name, rpc_method) (rpc_server_duration_count{rpc_method=~"VerifyPayment|Score|PlaceHold"})', (s) => s.length === 3);
    expect(hops.map((s) => `${s.metric.service_name}/${s.metric.rpc_method}`).sort()).toEqual(['risk/Score', 'settlement/PlaceHold', 'tokenization/VerifyPayment']);

    // Risk scored all three (its score histogram has them), by decision.
    const scored = await until('sum(wristpay_risk_score_count)', (s) => s[0]?.value === 3);
    expect(scored[0]!.value).toBe(3);

    // The lost band's cut-off: tokens suspended and holds frozen, each timed once, well under a second here.
    const cutoff = await until('sum by (step) (wristpay_lost_band_cutoff_count)', (s) => s.length === 2);
    expect(Object.fromEntries(cutoff.map((s) => [s.metric.step, s.value]))).toEqual({ tokens_suspended: 1, account_frozen: 1 });

    // Outboxes drained (age 0) and the consumers caught up (nothing pending).
    const age = await until('max by (service_name) (wristpay_outbox_oldest_age)', (s) => s.length === 5 && s.every((x) => x.value === 0));
    expect(age.map((s) => s.metric.service_name).sort()).toEqual(['alerts', 'device-registry', 'gateway', 'settlement', 'tokenization']);
    const pending = await until('max by (consumer) (wristpay_consumer_pending)', (s) => s.length > 0 && s.every((x) => x.value === 0));
    expect(pending.map((s) => s.metric.consumer)).toEqual(expect.arrayContaining(['tokenization-device-lifecycle', 'settlement-device-lost']));

    // The in-service ledger check ran and found the ledger sound.
    await until('sum by (result) (wristpay_ledger_checks_total)', (s) => s.some((x) => x.metric.result === 'ok' && x.value >= 1));
    expect(await query(prometheus!.url, 'max(wristpay_ledger_violations)')).toEqual([{ metric: {}, value: 0 }]);

    // Pool, Redis and runtime series, and every target up.
    const pools = await until('sum by (service_name) (db_client_connection_max)', (s) => s.length === 5);
    // DATABASE_POOL_SIZE=3 where a service reads it (gateway, settlement, alerts); the others keep the default 10.
    expect(Object.fromEntries(pools.map((s) => [s.metric.service_name, s.value]))).toEqual({ gateway: 3, settlement: 3, alerts: 3, 'device-registry': 10, tokenization: 10 });
    await until('sum by (service_name) (wristpay_redis_clients{state="ready"})', (s) => s.length >= 2);
    await until('max by (service_name) (nodejs_eventloop_delay_p99)', (s) => s.length === 6);
    const up = await until('up{system="wristpay"}', (s) => s.length === 6 && s.every((x) => x.value === 1));
    expect(up.map((s) => s.metric.job).sort()).toEqual([...SERVICES].sort());
    expect(mesh!.exited).toEqual({});
  }, 60_000);

  it('answers every query of the Grafana dashboard (ops/grafana/wristpay.json) without an error', async () => {
    const dashboard = JSON.parse(readFileSync(repoPath('ops', 'grafana', 'wristpay.json'), 'utf8')) as { panels: Array<{ title: string; targets?: Array<{ expr: string }> }> };
    // Grafana's variables as a user's "All" would fill them in.
    const asQuery = (expr: string) => expr.replaceAll('$__rate_interval', '1m').replaceAll('$service', '.*');
    const targets = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: asQuery(t.expr) })));
    expect(targets.length).toBeGreaterThan(20);
    const errors: string[] = [];
    for (const t of targets) await query(prometheus!.url, t.expr).catch((err: Error) => errors.push(`${t.panel}: ${err.message}`));
    expect(errors).toEqual([]);
    // The onboarding in beforeAll already went through the gateway: the RED panel has it.
    const red = targets.find((t) => t.panel === 'Requests per second by service')!;
    const rates = await until(red.expr, (samples) => samples.some((x) => x.metric.service_name === 'gateway'));
    expect(rates.length).toBeGreaterThan(0);
  }, 30_000);
});

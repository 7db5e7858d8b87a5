import { randomUUID } from 'node:crypto';
import { status, type ServiceError } from '@grpc/grpc-js';
import { AlertsServiceClient } from '../gen/wristpay/alerts/v1/alerts';
import { DeviceRegistryServiceClient } from '../gen/wristpay/device_registry/v1/device_registry';
import { SettlementServiceClient } from '../gen/wristpay/settlement/v1/settlement';
import type { RunningService } from '../platform/service';
import { freePort, healthStatus, waitServing } from '../scripts/mesh';
import { startAlerts } from '../services/alerts/src/app';
import { readConfig as alertsConfig } from '../services/alerts/src/config';
import { startDeviceRegistry } from '../services/device-registry/src/app';
import { readConfig as registryConfig } from '../services/device-registry/src/config';
import { startSettlement } from '../services/settlement/src/app';
import { readConfig as settlementConfig } from '../services/settlement/src/config';
import { eventually } from './support/eventually';
import { meshPki } from './support/mesh-pki';
import { freshDatabase, requireServers, TEST_NATS_URL, TEST_REDIS_URL } from './support/servers';
import { testClient, testClientAs, testEnv, testLogger, uniqueName } from './support/services';
import { tcpProxy, type TcpProxy } from './support/tcp-proxy';

// A service that starts before its database, Redis or NATS answers must not exit: it listens at
// once, says NOT_SERVING on grpc.health.v1 (so the kubelet's readiness keeps traffic away while
// liveness leaves it running), refuses calls with UNAVAILABLE (retryable) and turns SERVING on
// its own once the dependency answers. Each dependency here sits behind a TCP proxy that is cut
// before the start and restored while the service waits.

const throughProxy = (url: string, proxy: TcpProxy) => {
  const u = new URL(url);
  u.host = `127.0.0.1:${proxy.port}`;
  return u.toString();
};

const outcome = <T>(call: Promise<T>) =>
  call.then(
    (value) => ({ code: status.OK, details: '', value }),
    (err: ServiceError) => ({ code: err.code, details: err.details, value: undefined }),
  );

describe('a service whose dependency is down at start', () => {
  const proxies: TcpProxy[] = [];
  const services: Array<Promise<RunningService>> = [];
  const dbs: Array<{ drop: () => Promise<void> }> = [];

  beforeAll(() => requireServers('PostgreSQL', 'Redis', 'NATS'));
  afterAll(async () => {
    for (const p of proxies) await p.restore().catch(() => undefined);
    for (const s of services) await (await s).stop();
    for (const p of proxies) await p.close();
    for (const d of dbs) await d.drop();
  });

  const cutProxy = async (target: string) => {
    const proxy = await tcpProxy(target);
    proxies.push(proxy);
    await proxy.cut();
    return proxy;
  };

  it('settlement: PostgreSQL down → listens NOT_SERVING, answers UNAVAILABLE, serves once it is back', async () => {
    const db = await freshDatabase();
    dbs.push(db);
    const proxy = await cutProxy(db.url);
    const port = await freePort();
    const started = startSettlement(settlementConfig(testEnv(uniqueName(), { SETTLEMENT_PORT: String(port), DATABASE_URL: throughProxy(db.url, proxy), DATABASE_POOL_SIZE: '2' })), testLogger('settlement'));
    services.push(started);
    const creds = meshPki().client('gateway');

    await eventually(async () => (await healthStatus(port, creds)) === 'NOT_SERVING', 20_000, 'NOT_SERVING while the dependency is down');
    const client = testClient(SettlementServiceClient, port);
    const whileDown = await outcome(client.getBalance({ accountId: 'wallet:acct-1', currency: 'EUR' }));
    expect(whileDown.code).toBe(status.UNAVAILABLE);
    expect(whileDown.details).toMatch(/^settlement is starting .*; retry shortly$/);
    // The caller policy holds while starting: a merchant is refused for who it is, not told to retry.
    const stranger = await outcome(testClientAs(SettlementServiceClient, port, 'merchant.m-1').getBalance({ accountId: 'wallet:acct-1', currency: 'EUR' }));
    expect(stranger.code).toBe(status.PERMISSION_DENIED);

    await proxy.restore();
    await started;
    expect(await healthStatus(port, creds)).toBe('SERVING');
    const afterwards = await outcome(client.getBalance({ accountId: 'wallet:acct-1', currency: 'EUR' }));
    expect(afterwards.code).toBe(status.OK);
    client.close();
  }, 60_000);

  it('device-registry: Redis down → NOT_SERVING until Redis answers, then SERVING', async () => {
    const db = await freshDatabase();
    dbs.push(db);
    const proxy = await cutProxy(TEST_REDIS_URL);
    const port = await freePort();
    const started = startDeviceRegistry(registryConfig(testEnv(uniqueName(), { DEVICE_REGISTRY_PORT: String(port), DATABASE_URL: db.url, REDIS_URL: throughProxy(TEST_REDIS_URL, proxy) })), testLogger('device-registry'));
    services.push(started);
    const creds = meshPki().client('gateway');
    await eventually(async () => (await healthStatus(port, creds)) === 'NOT_SERVING', 20_000, 'NOT_SERVING while the dependency is down');
    // Still waiting after several retries (a negative, so a fixed wait): nothing gave up.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await healthStatus(port, creds)).toBe('NOT_SERVING');

    await proxy.restore();
    await started;
    await waitServing(port, creds, 5_000);
    const client = testClient(DeviceRegistryServiceClient, port);
    expect((await outcome(client.getDevice({ deviceId: randomUUID() }))).code).toBe(status.NOT_FOUND);
    client.close();
  }, 60_000);

  it('alerts: NATS down → NOT_SERVING until JetStream answers, then SERVING', async () => {
    const db = await freshDatabase();
    dbs.push(db);
    const proxy = await cutProxy(TEST_NATS_URL);
    const port = await freePort();
    const started = startAlerts(alertsConfig(testEnv(uniqueName(), { ALERTS_PORT: String(port), DATABASE_URL: db.url, DATABASE_POOL_SIZE: '2', NATS_URL: throughProxy(TEST_NATS_URL, proxy) })), testLogger('alerts'));
    services.push(started);
    const creds = meshPki().client('wallet');
    await eventually(async () => (await healthStatus(port, creds)) === 'NOT_SERVING', 20_000, 'NOT_SERVING while the dependency is down');

    await proxy.restore();
    await started;
    await waitServing(port, creds, 5_000);
    const client = testClient(AlertsServiceClient, port);
    expect((await outcome(client.listAlerts({ accountId: 'acct-1', afterSequence: 0n, limit: 10 }))).code).toBe(status.OK);
    client.close();
  }, 60_000);
});

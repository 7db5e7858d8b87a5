import { DeviceRegistryServiceClient } from '../../../../gen/wristpay/device_registry/v1/device_registry';
import { watchEvents } from '../../../../test/support/events';
import { freshDatabase } from '../../../../test/support/servers';
import { testClient, testEnv, testLogger } from '../../../../test/support/services';
import { startDeviceRegistry } from '../../src/app';
import { readConfig } from '../../src/config';

/** A device-registry on a fresh database, a client for it, and a watch on its prefix's events (which owns the test's streams, so closing it removes them). */
export interface TestRegistry {
  database: Awaited<ReturnType<typeof freshDatabase>>;
  service: Awaited<ReturnType<typeof startDeviceRegistry>>;
  client: ReturnType<typeof testClient<DeviceRegistryServiceClient>>;
  events: Awaited<ReturnType<typeof watchEvents>>;
}

/** Starts one under `prefix` on port 0 with `env` added to the test environment; if a step fails, removes what the earlier ones started. */
export async function startTestRegistry(prefix: string, env: Record<string, string> = {}): Promise<TestRegistry> {
  const started: Partial<TestRegistry> = {};
  try {
    started.database = await freshDatabase();
    started.events = await watchEvents(prefix);
    started.service = await startDeviceRegistry(readConfig(testEnv(prefix, { DATABASE_URL: started.database.url, DEVICE_REGISTRY_PORT: '0', ...env })), testLogger('device-registry'));
    started.client = testClient(DeviceRegistryServiceClient, started.service.port);
    return started as TestRegistry;
  } catch (err) {
    await stopTestRegistry(started);
    throw err;
  }
}

/** Closes the client, stops the service and the event watch, drops the database (whatever of them there is). */
export async function stopTestRegistry(registry: Partial<TestRegistry> | undefined): Promise<void> {
  registry?.client?.close();
  await registry?.service?.stop();
  await registry?.events?.close();
  await registry?.database?.drop();
}

import { DeviceRegistryServiceClient } from '../../../../gen/wristpay/device_registry/v1/device_registry';
import type { Logger } from '../../../../platform/log';
import { watchEvents } from '../../../../test/support/events';
import { freshDatabase } from '../../../../test/support/servers';
import { testClient, testEnv } from '../../../../test/support/services';
import { startDeviceRegistry } from '../../../device-registry/src/app';
import { readConfig as readRegistryConfig } from '../../../device-registry/src/config';

/** What a tokenization test starts the vault against: a device-registry on its own database, an empty vault database, and a watch on the prefix's events. */
export interface VaultDeps {
  registryDb: Awaited<ReturnType<typeof freshDatabase>>;
  vaultDb: Awaited<ReturnType<typeof freshDatabase>>;
  registry: Awaited<ReturnType<typeof startDeviceRegistry>>;
  registryClient: ReturnType<typeof testClient<DeviceRegistryServiceClient>>;
  events: Awaited<ReturnType<typeof watchEvents>>;
}

/** Starts them (under `prefix`, the registry logging to `registryLogger`); if a step fails, removes what the earlier ones started. */
export async function startVaultDeps(prefix: string, registryLogger: Logger): Promise<VaultDeps> {
  const started: Partial<VaultDeps> = {};
  try {
    [started.registryDb, started.vaultDb] = await Promise.all([freshDatabase(), freshDatabase()]);
    started.events = await watchEvents(prefix);
    started.registry = await startDeviceRegistry(readRegistryConfig(testEnv(prefix, { DATABASE_URL: started.registryDb.url, DEVICE_REGISTRY_PORT: '0' })), registryLogger);
    started.registryClient = testClient(DeviceRegistryServiceClient, started.registry.port);
    return started as VaultDeps;
  } catch (err) {
    await stopVaultDeps(started);
    throw err;
  }
}

/** Closes the client, stops the registry and the event watch, drops both databases (whatever of them there is). */
export async function stopVaultDeps(deps: Partial<VaultDeps> | undefined): Promise<void> {
  deps?.registryClient?.close();
  await deps?.registry?.stop();
  await deps?.events?.close();
  await Promise.all([deps?.registryDb?.drop(), deps?.vaultDb?.drop()]);
}

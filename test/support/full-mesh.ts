import { startAlerts, type RunningAlerts } from '../../services/alerts/src/app';
import { readConfig as alertsConfig } from '../../services/alerts/src/config';
import { startGatewayMesh, type GatewayMesh } from './gateway-mesh';
import { freshDatabase } from './servers';
import { testEnv, testLogger } from './services';

/** The six services a name each, as `serviceOf` in a method path names them. */
export type ServiceName = 'device-registry' | 'tokenization' | 'risk' | 'settlement' | 'gateway' | 'alerts';

export interface FullMesh {
  gatewayMesh: GatewayMesh;
  alerts: RunningAlerts;
  prefix: string;
  pki: GatewayMesh['pki'];
  /** Each service's port on 127.0.0.1 (TLS name `localhost`). */
  ports: Record<ServiceName, number>;
  /** Each service's own database; risk has none (its state is in Redis under `prefix`). */
  databaseUrls: Record<Exclude<ServiceName, 'risk'>, string>;
  stop(): Promise<void>;
}

/**
 * All six services in this process, each on port 0 over mutual TLS: the gateway mesh
 * (test/support/gateway-mesh.ts) and alerts beside it, as services/alerts/test/support/alerts.ts
 * starts it, on its own fresh database and the same Redis/NATS prefix, so it consumes the
 * events the others publish.
 */
export async function startFullMesh(): Promise<FullMesh> {
  const gatewayMesh = await startGatewayMesh();
  const { prefix, pki } = gatewayMesh;
  const alertsDb = await freshDatabase();
  pki.issue('alerts');
  let alerts: RunningAlerts;
  try {
    alerts = await startAlerts(alertsConfig(testEnv(prefix, { DATABASE_URL: alertsDb.url, ALERTS_PORT: '0', DATABASE_POOL_SIZE: '4', ...pki.env('alerts') })), testLogger('alerts'));
  } catch (err) {
    await gatewayMesh.stop();
    await alertsDb.drop();
    throw err;
  }
  const { registry, tokenization, risk, settlement, gateway } = gatewayMesh.ports;
  const dbs = gatewayMesh.databaseUrls;
  return {
    gatewayMesh,
    alerts,
    prefix,
    pki,
    ports: { 'device-registry': registry, tokenization, risk, settlement, gateway, alerts: alerts.port },
    databaseUrls: { 'device-registry': dbs.registry, tokenization: dbs.vault, settlement: dbs.ledger, gateway: dbs.payments, alerts: alertsDb.url },
    async stop() {
      await alerts.stop();
      await alertsDb.drop();
      await gatewayMesh.stop();
    },
  };
}

import { randomBytes, randomUUID } from 'node:crypto';
import { GatewayServiceClient, MerchantAdminServiceClient } from '../../gen/wristpay/gateway/v1/gateway';
import { createClient, type PromiseClient } from '../../platform/grpc/client';
import type { RunningService } from '../../platform/service';
import { startDeviceRegistry } from '../../services/device-registry/src/app';
import { readConfig as registryConfig } from '../../services/device-registry/src/config';
import { startGateway } from '../../services/gateway/src/app';
import { readConfig as gatewayConfig } from '../../services/gateway/src/config';
import { merchantIdentity } from '../../services/gateway/src/merchants';
import { startRisk } from '../../services/risk/src/app';
import { readConfig as riskConfig } from '../../services/risk/src/config';
import { startSettlement } from '../../services/settlement/src/app';
import { readConfig as settlementConfig } from '../../services/settlement/src/config';
import { startTokenization } from '../../services/tokenization/src/app';
import { readConfig as tokenizationConfig } from '../../services/tokenization/src/config';
import { meshClients, type MeshClients } from '../../sim/clients';
import { testPki } from './pki';
import { freshDatabase } from './servers';
import { testEnv, testLogger, uniqueName } from './services';

type Started = RunningService & { port: number };
export type GatewayProcess = Awaited<ReturnType<typeof startGateway>>;

export interface MerchantTerminal {
  merchantId: string;
  displayName: string;
  /** gateway as this merchant (its mTLS identity); registry, tokenization, settlement as `wallet`. */
  clients: MeshClients;
}

export interface GatewayMesh {
  prefix: string;
  pki: ReturnType<typeof testPki>;
  ports: { registry: number; tokenization: number; risk: number; settlement: number; gateway: number };
  /** Each owning service's fresh database (risk keeps its state in Redis). */
  databaseUrls: { registry: string; vault: string; ledger: string; payments: string };
  gateway: GatewayProcess;
  /** Merchant onboarding as the back office. */
  backoffice: PromiseClient<MerchantAdminServiceClient>;
  /** The phone-facing wallet backend: ConfirmPayment / DeclinePayment. */
  wallet: PromiseClient<GatewayServiceClient>;
  /** A gateway client presenting `identity`'s certificate (issued on first use). */
  gatewayAs(identity: string): PromiseClient<GatewayServiceClient>;
  /** Onboards a new merchant (back office) and returns its terminal's clients. */
  merchant(options?: { currency?: string; displayName?: string }): Promise<MerchantTerminal>;
  /** Stops the gateway (cleanly) and starts another on the same database and port. */
  restartGateway(extra?: Record<string, string>): Promise<GatewayProcess>;
  /** Environment the gateway runs with (to start another replica or process). */
  gatewayEnv(extra?: Record<string, string>): NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

const SERVICES = ['device-registry', 'tokenization', 'risk', 'settlement', 'gateway', 'wallet', 'backoffice'];
// Two test files run at once, each with meshes of four databases, against one PostgreSQL that
// takes 100 connections: small pools keep a full run under that.
const TEST_POOL_SIZE = 4;

/**
 * The four downstream services and the gateway in this process, each on port 0 with mutual TLS
 * (a throw-away CA: the certificate CN is the caller identity the policies check), on real
 * PostgreSQL (a fresh database each), Redis and NATS JetStream under one prefix.
 */
export async function startGatewayMesh(
  options: {
    gatewayEnv?: Record<string, string>;
    settlementEnv?: Record<string, string>;
    riskEnv?: Record<string, string>;
    natsUrl?: string;
    /** Set for every service (e.g. a clustered NATS and Redis through Sentinel); undefined unsets a variable. */
    serviceEnv?: Record<string, string | undefined>;
  } = {},
): Promise<GatewayMesh> {
  const prefix = uniqueName('gw');
  const pki = testPki(SERVICES);
  const databases = await Promise.all([freshDatabase(), freshDatabase(), freshDatabase(), freshDatabase()]);
  const [registryDb, vaultDb, ledgerDb, paymentsDb] = databases;
  const running: Array<{ stop(): Promise<void> }> = [];
  const clients: Array<{ close(): void }> = [];
  const env = (name: string, extra: Record<string, string>) => testEnv(prefix, { ...pki.env(name), ...(options.natsUrl ? { NATS_URL: options.natsUrl } : {}), ...options.serviceEnv, ...extra });
  const started = async <T extends Started>(service: Promise<T>): Promise<T> => {
    const s = await service;
    running.push(s);
    return s;
  };
  const registry = await started(startDeviceRegistry(registryConfig(env('device-registry', { DATABASE_URL: registryDb!.url, DEVICE_REGISTRY_PORT: '0' })), testLogger('device-registry')));
  const [tokenization, risk, settlement] = await Promise.all([
    started(
      startTokenization(
        tokenizationConfig(
          env('tokenization', {
            DATABASE_URL: vaultDb!.url,
            TOKENIZATION_PORT: '0',
            DEVICE_REGISTRY_ADDR: `localhost:${registry.port}`,
            TOKEN_MASTER_KEY: randomBytes(32).toString('base64'),
            VAULT_KEKS: `1:${randomBytes(32).toString('base64')}`,
          }),
        ),
        testLogger('tokenization'),
      ),
    ),
    started(startRisk(riskConfig(env('risk', { RISK_PORT: '0', RISK_RULES_WATCH: 'false', ...options.riskEnv })), testLogger('risk'))),
    started(startSettlement(settlementConfig(env('settlement', { DATABASE_URL: ledgerDb!.url, SETTLEMENT_PORT: '0', DATABASE_POOL_SIZE: String(TEST_POOL_SIZE), ...options.settlementEnv })), testLogger('settlement'))),
  ]);
  const ports = { registry: registry.port, tokenization: tokenization.port, risk: risk.port, settlement: settlement.port, gateway: 0 };
  const gatewayEnv = (extra: Record<string, string> = {}) =>
    env('gateway', {
      DATABASE_URL: paymentsDb!.url,
      DATABASE_POOL_SIZE: String(TEST_POOL_SIZE),
      GATEWAY_PORT: String(ports.gateway),
      DEVICE_REGISTRY_ADDR: `localhost:${ports.registry}`,
      TOKENIZATION_ADDR: `localhost:${ports.tokenization}`,
      RISK_ADDR: `localhost:${ports.risk}`,
      SETTLEMENT_ADDR: `localhost:${ports.settlement}`,
      ...options.gatewayEnv,
      ...extra,
    });
  let gateway = await startGateway(gatewayConfig(gatewayEnv()), testLogger('gateway'));
  ports.gateway = gateway.port;

  const client = <C extends { close(): void }>(c: C): C => {
    clients.push(c);
    return c;
  };
  const at = (port: number) => `localhost:${port}`;
  const gatewayAs = (identity: string) => {
    pki.issue(identity);
    return client(createClient(GatewayServiceClient, at(ports.gateway), { credentials: pki.client(identity), deadlineMs: 10_000, retryable: [] }));
  };
  const backoffice = client(createClient(MerchantAdminServiceClient, at(ports.gateway), { credentials: pki.client('backoffice'), deadlineMs: 10_000, retryable: [] }));
  const mesh: GatewayMesh = {
    prefix,
    pki,
    ports,
    databaseUrls: { registry: registryDb!.url, vault: vaultDb!.url, ledger: ledgerDb!.url, payments: paymentsDb!.url },
    get gateway() {
      return gateway;
    },
    backoffice,
    wallet: gatewayAs('wallet'),
    gatewayAs,
    async merchant(opts = {}) {
      const merchantId = uniqueName('m');
      const displayName = opts.displayName ?? `Shop ${merchantId.slice(-6)}`;
      await backoffice.createMerchant({ idempotencyKey: randomUUID(), merchantId, displayName, mcc: '5812', country: 'CN', settlementCurrency: opts.currency ?? 'EUR' });
      pki.issue(merchantIdentity(merchantId));
      const terminal = client(
        meshClients(
          { gateway: at(ports.gateway), registry: at(ports.registry), tokenization: at(ports.tokenization), settlement: at(ports.settlement) },
          pki.client('wallet'),
        ),
      );
      // The terminal's gateway channel presents the merchant's own certificate.
      terminal.gateway.close();
      const merchantGateway = gatewayAs(merchantIdentity(merchantId));
      return { merchantId, displayName, clients: { ...terminal, gateway: merchantGateway } };
    },
    async restartGateway(extra = {}) {
      await gateway.stop();
      gateway = await startGateway(gatewayConfig(gatewayEnv(extra)), testLogger('gateway'));
      return gateway;
    },
    gatewayEnv,
    async stop() {
      for (const c of clients) c.close();
      await gateway.stop();
      for (const s of running.reverse()) await s.stop();
      await Promise.all(databases.map((d) => d.drop()));
      pki.remove();
    },
  };
  return mesh;
}

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials as grpcCredentials, type ChannelCredentials } from '@grpc/grpc-js';
import { AlertsServiceClient } from '../gen/wristpay/alerts/v1/alerts';
import { DeviceRegistryServiceClient } from '../gen/wristpay/device_registry/v1/device_registry';
import { GatewayServiceClient, MerchantAdminServiceClient } from '../gen/wristpay/gateway/v1/gateway';
import { SettlementServiceClient } from '../gen/wristpay/settlement/v1/settlement';
import { TokenizationServiceClient } from '../gen/wristpay/tokenization/v1/tokenization';
import { createClient, type ClientFactoryOptions, type PromiseClient } from '../platform/grpc/client';
import { merchantIdentity } from './terminal';

/** What the wallet app and a merchant terminal talk to. */
export interface MeshClients {
  gateway: PromiseClient<GatewayServiceClient>;
  registry: PromiseClient<DeviceRegistryServiceClient>;
  tokenization: PromiseClient<TokenizationServiceClient>;
  settlement: PromiseClient<SettlementServiceClient>;
  close(): void;
}

export interface MeshAddresses {
  gateway: string;
  registry: string;
  tokenization: string;
  settlement: string;
}

/** Every call has a deadline; the demo and the tests retry nothing behind the caller's back. */
const callOptions = (credentials: ChannelCredentials, serverName?: string): ClientFactoryOptions => ({
  credentials,
  deadlineMs: 10_000,
  retryable: [],
  ...(serverName ? { serverName } : {}),
});

/** `gatewayServerName`: the name to check on the gateway's certificate when `addresses.gateway` is a list of IP addresses (replicas). */
export function meshClients(addresses: MeshAddresses, credentials: ChannelCredentials, gatewayServerName?: string): MeshClients {
  const options = callOptions(credentials);
  const clients = {
    gateway: createClient(GatewayServiceClient, addresses.gateway, callOptions(credentials, gatewayServerName)),
    registry: createClient(DeviceRegistryServiceClient, addresses.registry, options),
    tokenization: createClient(TokenizationServiceClient, addresses.tokenization, options),
    settlement: createClient(SettlementServiceClient, addresses.settlement, options),
  };
  return { ...clients, close: () => Object.values(clients).forEach((c) => c.close()) };
}

/**
 * Client credentials presenting `identity`'s certificate from a certificate directory as
 * scripts/dev-certs.sh makes it (`ca.crt`, `<identity>.key`, `<identity>.crt`).
 */
export function certCredentials(certDir: string, identity: string): ChannelCredentials {
  const read = (name: string) => {
    const path = join(certDir, name);
    if (!existsSync(path)) throw new Error(`${path} is missing: scripts/dev-certs.sh ${certDir} issues the certificate of ${identity}`);
    return readFileSync(path);
  };
  return grpcCredentials.createSsl(read('ca.crt'), read(`${identity}.key`), read(`${identity}.crt`));
}

/**
 * The phone-facing wallet backend (its mTLS identity is `wallet`): it registers, pairs and unlocks
 * bands, provisions their tokens, tops wallets up, sets a band's spending limits, reads the
 * account's alert feed (server streaming, so the plain grpc-js client) and answers step-ups
 * (the gateway's ConfirmPayment / DeclinePayment: `gateway` here is only good for those).
 */
export interface WalletClients extends MeshClients {
  alerts: AlertsServiceClient;
}

export function walletClients(addresses: MeshAddresses & { alerts: string }, credentials: ChannelCredentials): WalletClients {
  const mesh = meshClients(addresses, credentials);
  const alerts = new AlertsServiceClient(addresses.alerts, credentials);
  return {
    ...mesh,
    alerts,
    close: () => {
      mesh.close();
      alerts.close();
    },
  };
}

/**
 * Merchant terminals: a gateway client per merchant, each presenting that merchant's own
 * certificate (CN `merchant.<id>`), so the gateway acts for that merchant only.
 */
export interface MerchantGateways {
  /** The gateway as `merchantId`'s terminal (made on first use, then reused). */
  of(merchantId: string): PromiseClient<GatewayServiceClient>;
  close(): void;
}

/** Merchant gateway clients from a certificate directory (scripts/dev-certs.sh issues `merchant.<id>` for each demo merchant). */
export function merchantGateways(address: string, certDir: string, serverName?: string): MerchantGateways {
  const clients = new Map<string, PromiseClient<GatewayServiceClient>>();
  return {
    of(merchantId) {
      let client = clients.get(merchantId);
      if (!client) {
        client = createClient(GatewayServiceClient, address, callOptions(certCredentials(certDir, merchantIdentity(merchantId)), serverName));
        clients.set(merchantId, client);
      }
      return client;
    },
    close() {
      for (const client of clients.values()) client.close();
      clients.clear();
    },
  };
}

/** People in the back office (the `backoffice` identity): merchant onboarding, resolving disputes, running payouts. */
export interface BackOfficeClients {
  merchants: PromiseClient<MerchantAdminServiceClient>;
  settlement: PromiseClient<SettlementServiceClient>;
  close(): void;
}

export function backOfficeClients(addresses: { gateway: string; settlement: string }, credentials: ChannelCredentials): BackOfficeClients {
  const merchants = createClient(MerchantAdminServiceClient, addresses.gateway, callOptions(credentials));
  const settlement = createClient(SettlementServiceClient, addresses.settlement, callOptions(credentials));
  return { merchants, settlement, close: () => [merchants, settlement].forEach((c) => c.close()) };
}

/** Everyone the demo plays, each with its own identity from `certDir`. */
export interface DemoClients {
  merchants: MerchantGateways;
  wallet: WalletClients;
  backoffice: BackOfficeClients;
  close(): void;
}

export function demoClients(addresses: MeshAddresses & { alerts: string }, certDir: string): DemoClients {
  const merchants = merchantGateways(addresses.gateway, certDir);
  const wallet = walletClients(addresses, certCredentials(certDir, 'wallet'));
  const backoffice = backOfficeClients(addresses, certCredentials(certDir, 'backoffice'));
  return { merchants, wallet, backoffice, close: () => [merchants, wallet, backoffice].forEach((c) => c.close()) };
}

import type { ChannelCredentials } from '@grpc/grpc-js';
import { AlertsServiceClient } from '../gen/wristpay/alerts/v1/alerts';
import { DeviceRegistryServiceClient } from '../gen/wristpay/device_registry/v1/device_registry';
import { GatewayServiceClient } from '../gen/wristpay/gateway/v1/gateway';
import { SettlementServiceClient } from '../gen/wristpay/settlement/v1/settlement';
import { TokenizationServiceClient } from '../gen/wristpay/tokenization/v1/tokenization';
import { createClient, type PromiseClient } from '../platform/grpc/client';

/** What the wallet app and a merchant terminal talk to. */
export interface MeshClients {
  gateway: PromiseClient<GatewayServiceClient>;
  registry: PromiseClient<DeviceRegistryServiceClient>;
  tokenization: PromiseClient<TokenizationServiceClient>;
  settlement: PromiseClient<SettlementServiceClient>;
  close(): void;
}

/** `gatewayServerName`: the name to check on the gateway's certificate when `addresses.gateway` is a list of IP addresses (replicas). */
export function meshClients(
  addresses: { gateway: string; registry: string; tokenization: string; settlement: string },
  credentials: ChannelCredentials,
  gatewayServerName?: string,
): MeshClients {
  const options = { credentials, deadlineMs: 10_000, retryable: [] };
  const clients = {
    gateway: createClient(GatewayServiceClient, addresses.gateway, gatewayServerName ? { ...options, serverName: gatewayServerName } : options),
    registry: createClient(DeviceRegistryServiceClient, addresses.registry, options),
    tokenization: createClient(TokenizationServiceClient, addresses.tokenization, options),
    settlement: createClient(SettlementServiceClient, addresses.settlement, options),
  };
  return { ...clients, close: () => Object.values(clients).forEach((c) => c.close()) };
}

/**
 * What only the phone-facing wallet backend may call (its mTLS identity is `wallet`): a band's
 * spending limits, and the account's alert feed (server streaming, so the plain grpc-js client).
 */
export interface WalletClients {
  settlement: PromiseClient<SettlementServiceClient>;
  alerts: AlertsServiceClient;
  close(): void;
}

export function walletClients(addresses: { settlement: string; alerts: string }, credentials: ChannelCredentials): WalletClients {
  const settlement = createClient(SettlementServiceClient, addresses.settlement, { credentials, deadlineMs: 10_000, retryable: [] });
  const alerts = new AlertsServiceClient(addresses.alerts, credentials);
  return { settlement, alerts, close: () => [settlement, alerts].forEach((c) => c.close()) };
}

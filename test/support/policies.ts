import type { ServiceDefinition } from '@grpc/grpc-js';
import { AlertsServiceService } from '../../gen/wristpay/alerts/v1/alerts';
import { DeviceRegistryServiceService } from '../../gen/wristpay/device_registry/v1/device_registry';
import { GatewayServiceService, MerchantAdminServiceService } from '../../gen/wristpay/gateway/v1/gateway';
import { RiskServiceService } from '../../gen/wristpay/risk/v1/risk';
import { SettlementServiceService } from '../../gen/wristpay/settlement/v1/settlement';
import { TokenizationServiceService } from '../../gen/wristpay/tokenization/v1/tokenization';
import { configSchema as alertsConfig } from '../../services/alerts/src/config';
import { alertsPolicy } from '../../services/alerts/src/policy';
import { deviceRegistryPolicy } from '../../services/device-registry/src/policy';
import { configSchema as gatewayConfig } from '../../services/gateway/src/config';
import { gatewayPolicy } from '../../services/gateway/src/policy';
import { riskPolicy } from '../../services/risk/src/policy';
import { configSchema as settlementConfig } from '../../services/settlement/src/config';
import { settlementPolicy } from '../../services/settlement/src/policy';
import { configSchema as tokenizationConfig } from '../../services/tokenization/src/config';
import { tokenizationPolicy } from '../../services/tokenization/src/policy';

/** A caller-list setting's default, as the service's config schema would give it. */
const fallback = <T>(schema: { shape: Record<string, { parse(v: unknown): unknown }> }, key: string): T => schema.shape[key]!.parse(undefined) as T;

const gateway = gatewayPolicy({ WALLET_CALLERS: fallback(gatewayConfig, 'WALLET_CALLERS'), BACKOFFICE_CALLERS: fallback(gatewayConfig, 'BACKOFFICE_CALLERS') });

/**
 * Every gRPC service of the mesh with the caller policy its server runs under default settings,
 * by full service name (`wristpay.risk.v1.RiskService`).
 */
export const MESH_POLICIES: ReadonlyArray<{ definition: ServiceDefinition; policy: Readonly<Record<string, readonly string[]>> }> = [
  { definition: DeviceRegistryServiceService, policy: deviceRegistryPolicy },
  { definition: TokenizationServiceService, policy: tokenizationPolicy({ OFFLINE_CODE_CALLERS: fallback(tokenizationConfig, 'OFFLINE_CODE_CALLERS') }) },
  { definition: RiskServiceService, policy: riskPolicy },
  { definition: SettlementServiceService, policy: settlementPolicy({ LIMIT_CALLERS: fallback(settlementConfig, 'LIMIT_CALLERS') }) },
  { definition: GatewayServiceService, policy: gateway.gateway },
  { definition: MerchantAdminServiceService, policy: gateway.merchantAdmin },
  { definition: AlertsServiceService, policy: alertsPolicy({ ALERT_CALLERS: fallback(alertsConfig, 'ALERT_CALLERS') }) },
];

/** The full service name of a ts-proto service definition. */
export const serviceNameOf = (definition: ServiceDefinition): string => Object.values(definition)[0]!.path.split('/')[1]!;

/** The policy of the service `definition` describes. */
export function policyOf(definition: ServiceDefinition): Readonly<Record<string, readonly string[]>> {
  const found = MESH_POLICIES.find((p) => serviceNameOf(p.definition) === serviceNameOf(definition));
  if (!found) throw new Error(`no caller policy known for ${serviceNameOf(definition)}`);
  return found.policy;
}

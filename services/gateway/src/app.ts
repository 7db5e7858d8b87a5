import { DeviceRegistryServiceClient } from '../../../gen/wristpay/device_registry/v1/device_registry';
import { RiskServiceClient } from '../../../gen/wristpay/risk/v1/risk';
import { SettlementServiceClient } from '../../../gen/wristpay/settlement/v1/settlement';
import { TokenizationServiceClient } from '../../../gen/wristpay/tokenization/v1/tokenization';
import { createClient } from '../../../platform/grpc/client';
import { channelCredentials } from '../../../platform/grpc/credentials';
import { GrpcServer } from '../../../platform/grpc/server';
import type { Logger } from '../../../platform/log';
import { connectEventBus } from '../../../platform/nats';
import { connectRedis } from '../../../platform/redis';
import { dependency, type RunningService } from '../../../platform/service';
import { SERVICE, type Config } from './config';
import { PaymentRecords } from './payments';
import { gatewayService, type Downstream } from './server';

/** Composes the gateway: four downstream clients, Redis for payment records, NATS for outcomes. */
export async function startGateway(config: Config, log: Logger): Promise<RunningService & { port: number }> {
  const creds = channelCredentials(config);
  const redis = await dependency('Redis', 'REDIS_URL', () => connectRedis(config.REDIS_URL, log));
  const bus = await connectEventBus(config, SERVICE, log);
  const common = { credentials: creds, deadlineMs: config.GRPC_CLIENT_DEADLINE_MS };
  // Retried on UNAVAILABLE: reads, and calls whose effect is keyed (payment id, idempotency key).
  // VerifyPayment and VerifyOfflineCode spend the band's ATC or one-time code, but they carry the
  // payment id, under which tokenization stores the first answer in the same transaction as the
  // spend: a retry gets that answer back (OK stays OK) instead of a REPLAY or CODE_REUSED.
  const downstream: Downstream = {
    registry: createClient(DeviceRegistryServiceClient, config.DEVICE_REGISTRY_ADDR, { ...common, retryable: ['getSession', 'getDevice'] }),
    tokenization: createClient(TokenizationServiceClient, config.TOKENIZATION_ADDR, { ...common, retryable: ['getToken', 'verifyPayment', 'verifyOfflineCode'] }),
    risk: createClient(RiskServiceClient, config.RISK_ADDR, { ...common, retryable: ['score', 'explain'] }),
    settlement: createClient(SettlementServiceClient, config.SETTLEMENT_ADDR, { ...common, retryable: ['placeHold', 'capture', 'refund', 'getBalance', 'quoteVoucher', 'getVoucher'] }),
  };
  const server = GrpcServer.fromConfig(config, {
    service: SERVICE,
    log,
    services: [gatewayService({ downstream, records: new PaymentRecords(redis, config.REDIS_KEY_PREFIX, config.PAYMENT_RECORD_TTL_SECONDS), bus, log })],
  });
  const port = await server.listen(config.GATEWAY_PORT);
  log.info({ port }, 'gateway listening');
  return {
    port,
    async stop() {
      await server.shutdown(config.SHUTDOWN_GRACE_MS);
      for (const client of Object.values(downstream)) client.close();
      await bus.close();
      redis.disconnect();
    },
  };
}

import { DeviceRegistryServiceClient } from '../../../gen/wristpay/device_registry/v1/device_registry';
import { GatewayServiceService, MerchantAdminServiceService } from '../../../gen/wristpay/gateway/v1/gateway';
import { RiskServiceClient } from '../../../gen/wristpay/risk/v1/risk';
import { SettlementServiceClient } from '../../../gen/wristpay/settlement/v1/settlement';
import { TokenizationServiceClient } from '../../../gen/wristpay/tokenization/v1/tokenization';
import { openDurableState } from '../../../platform/durable-state';
import { createClient } from '../../../platform/grpc/client';
import { channelCredentials } from '../../../platform/grpc/credentials';
import { contract, GrpcServer } from '../../../platform/grpc/server';
import type { Logger } from '../../../platform/log';
import { composeService, listenEarly, type RunningService } from '../../../platform/service';
import { PaymentFlow, type Downstream } from './authorize';
import { SERVICE, type Config } from './config';
import { consumeHoldEnds } from './hold-events';
import { InstanceHeartbeat } from './instances';
import { merchantAdminService, MerchantStore } from './merchants';
import { PaymentStore } from './payments';
import { gatewayPolicy } from './policy';
import { gatewayService } from './server';
import { StepUp } from './step-up';
import { PaymentSweeper } from './sweeper';
import { PaymentWatchers } from './watchers';

/**
 * Composes the gateway: its payments database (with outbox), four downstream clients, the
 * step-up, the sweeper of expired challenges and orphaned payments, and the consumer that
 * follows holds settlement ends. `port` is the bound port.
 */
export async function startGateway(config: Config, log: Logger): Promise<RunningService & { port: number; sweeper: PaymentSweeper; instanceId: string }> {
  return composeService(log, async (own) => {
    const policy = gatewayPolicy(config);
    const server = GrpcServer.fromConfig(config, {
      service: SERVICE,
      log,
      services: [contract({ definition: GatewayServiceService, allowedCallers: policy.gateway }), contract({ definition: MerchantAdminServiceService, allowedCallers: policy.merchantAdmin })],
    });
    const { port, serve } = await listenEarly(own, server, config.GATEWAY_PORT, config.SHUTDOWN_GRACE_MS);
    const { bus, db, relay } = await openDurableState(config, SERVICE, log, own, { poolSize: config.DATABASE_POOL_SIZE });
    const creds = channelCredentials(config);
    const common = { credentials: creds, deadlineMs: config.GRPC_CLIENT_DEADLINE_MS };
    // Retried on UNAVAILABLE: reads, and calls whose effect is keyed (payment id, idempotency key).
    // VerifyPayment and VerifyOfflineCode spend the band's ATC or one-time code, but they carry the
    // payment id, under which tokenization stores the first answer in the same transaction as the
    // spend: a retry gets that answer back (OK stays OK) instead of a REPLAY or CODE_REUSED.
    const downstream: Downstream = {
      registry: own(createClient(DeviceRegistryServiceClient, config.DEVICE_REGISTRY_ADDR, { ...common, retryable: ['getSession', 'getDevice', 'verifyDeviceSignature'] }), (c) => c.close()),
      tokenization: own(createClient(TokenizationServiceClient, config.TOKENIZATION_ADDR, { ...common, retryable: ['getToken', 'verifyPayment', 'verifyOfflineCode'] }), (c) => c.close()),
      risk: own(createClient(RiskServiceClient, config.RISK_ADDR, { ...common, retryable: ['score', 'explain', 'feedback'] }), (c) => c.close()),
      settlement: own(
        createClient(SettlementServiceClient, config.SETTLEMENT_ADDR, { ...common, retryable: ['placeHold', 'capture', 'void', 'refund', 'getBalance', 'quoteVoucher', 'getVoucher'] }),
        (c) => c.close(),
      ),
    };
    const store = new PaymentStore(db);
    const merchants = new MerchantStore(db);
    const watchers = new PaymentWatchers();
    const instance = own(new InstanceHeartbeat(db, config.INSTANCE_HEARTBEAT_MS, log), (i) => i.stop());
    await instance.start();
    const flow = new PaymentFlow({ downstream, store, instance, watchers, relay, log, challengeTtlSeconds: config.CHALLENGE_TTL_SECONDS });
    const stepUp = new StepUp({ downstream, store, flow, instance, watchers, relay, log });
    const sweeper = own(new PaymentSweeper({ store, stepUp, flow, instance, log }, { intervalMs: config.SWEEP_INTERVAL_MS, abandonAfterSeconds: config.ABANDON_AFTER_SECONDS }), (s) => s.stop());
    sweeper.start();
    own(await consumeHoldEnds(bus, store, watchers, log), (c) => c.stop());
    serve([
      gatewayService({ downstream, store, merchants, flow, stepUp, watchers, relay, policy, log }),
      merchantAdminService({ db, merchants, log, allowedCallers: policy.merchantAdmin }),
    ]);
    log.info({ port, database: db.kind, instanceId: instance.id }, 'gateway listening');
    return { port, sweeper, instanceId: instance.id };
  });
}

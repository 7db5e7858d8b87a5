import { ConfigError } from '../../../platform/config';
import { openDurableState } from '../../../platform/durable-state';
import { SettlementServiceService } from '../../../gen/wristpay/settlement/v1/settlement';
import { contract, GrpcServer } from '../../../platform/grpc/server';
import type { Logger } from '../../../platform/log';
import { composeService, listenEarly, type RunningService } from '../../../platform/service';
import { SERVICE, type Config } from './config';
import { consumeDeviceLost } from './device-lost';
import { HoldSweeper } from './hold-expiry';
import { Ledger } from './ledger';
import { settlementPolicy } from './policy';
import { LedgerMonitor } from './ledger-monitor';
import { settlementService } from './server';

/** Composes the settlement service from its config and starts serving; `port` is the bound port. */
export async function startSettlement(config: Config, log: Logger): Promise<RunningService & { port: number }> {
  if (config.HOLD_TTL_SECONDS > config.HOLD_MAX_TTL_SECONDS) throw new ConfigError('invalid configuration: HOLD_TTL_SECONDS: must not exceed HOLD_MAX_TTL_SECONDS');
  return composeService(log, async (own) => {
    const server = GrpcServer.fromConfig(config, { service: SERVICE, log, services: [contract({ definition: SettlementServiceService, allowedCallers: settlementPolicy(config) })] });
    const { port, serve } = await listenEarly(own, server, config.SETTLEMENT_PORT, config.SHUTDOWN_GRACE_MS);
    const { bus, db, relay } = await openDurableState(config, SERVICE, log, own, { processedEventsKey: ['event_id'], poolSize: config.DATABASE_POOL_SIZE });
    const ledger = new Ledger({ protectionWindowSeconds: config.PROTECTION_WINDOW_SECONDS });
    const sweeper = own(new HoldSweeper(db, ledger, relay, log, config.SWEEP_INTERVAL_MS, config.SWEEP_BATCH), (s) => s.stop());
    sweeper.start();
    own(await consumeDeviceLost(bus, db, ledger, log), (c) => c.stop());
    own(new LedgerMonitor(db, log, config.LEDGER_CHECK_INTERVAL_SECONDS), (m) => m.stop()).start();
    serve([settlementService({ config, db, ledger, relay, log })]);
    log.info({ port, database: db.kind }, 'settlement listening');
    return { port };
  });
}
